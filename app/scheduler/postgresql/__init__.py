"""PostgreSQL backend that rides out a database switching under it (see base.py)."""
