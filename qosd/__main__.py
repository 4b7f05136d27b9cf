"""`python -m qosd <command>`."""

import sys

from qosd.cli import main

sys.exit(main())
