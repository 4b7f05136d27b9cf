"""Repeat a safe request once when its database connection was lost under it."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError, connections

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RetrySafeRequestMiddleware:
    """A GET whose view failed because the database connection broke is run once more.

    A restore or a failover of PostgreSQL ends the sessions of the application: a worker
    whose persistent connection is ended in the middle of a request gets OperationalError
    or InterfaceError, and the user a 500 for a page that would have worked a second
    later. Safe methods change nothing (RFC 9110 9.2.1), so such a view is run once more
    on a fresh connection, which the PostgreSQL backend opens with its own short retry.
    Unsafe methods, requests inside a transaction and a second failure are left alone:
    they fail as before.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        if request.method not in SAFE_METHODS or getattr(request, "_scheduler_db_retried", False):
            return None
        match = request.resolver_match
        if match is None or any(conn.in_atomic_block for conn in connections.all(initialized_only=True)):
            return None
        request._scheduler_db_retried = True
        for conn in connections.all(initialized_only=True):
            conn.close()
        logger.warning("database connection lost during %s %s, running the view once more: %s",
                       request.method, request.path, exception)
        return match.func(request, *match.args, **match.kwargs)
