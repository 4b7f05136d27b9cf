"""Django's PostgreSQL backend, with a short retry when a new connection is refused.

A restore of the database (roles/postgresql, scheduler-db-restore) ends with a swap that
takes well under a second: the live database stops taking connections, its sessions are
ended and the restored copy takes its name. A request that opens a connection inside
that window would get "database is not currently accepting connections" or "does not
exist" and answer 500. Opening a connection has no side effect, so it is retried with a
short backoff for up to DB_CONNECT_RETRY_SECONDS (default 3 s: below the 5 s the health
probes of the deploy and the QoS daemon wait, so a database that is really down still
fails /health/ in time). Errors from running queries are not retried here: that is
scheduler.middleware.RetrySafeRequestMiddleware's job, for requests that are safe to
repeat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db.backends.postgresql import base

logger = logging.getLogger(__name__)


class DatabaseWrapper(base.DatabaseWrapper):
    clock: Callable[[], float] = staticmethod(time.monotonic)
    sleep: Callable[[float], None] = staticmethod(time.sleep)

    def get_new_connection(self, conn_params):
        window = float(self.settings_dict.get("CONNECT_RETRY_SECONDS", 3))
        deadline = self.clock() + window
        delay = 0.05
        attempt = 1
        while True:
            try:
                return super().get_new_connection(conn_params)
            except self.Database.OperationalError as exc:
                if self.clock() + delay > deadline:
                    raise
                logger.warning("database connection refused (attempt %d), retrying in %.2f s: %s",
                               attempt, delay, exc)
            self.sleep(delay)
            delay = min(delay * 2, 0.5)
            attempt += 1
