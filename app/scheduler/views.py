"""Operational endpoints: /health/ and /metrics, both without login."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scheduler.metrics import exposition_registry

logger = logging.getLogger(__name__)


def database_status() -> str:
    """`ok` when a query round-trips, else `error: <exception class>`.

    The reason stays short on purpose: /health/ needs no login, and a driver's
    message can name hosts and users. The full error goes to the log.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        logger.warning("health check: database query failed: %s", exc, exc_info=True)
        return f"error: {type(exc).__name__}"
    return "ok"


@login_not_required
@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    database = database_status()
    healthy = database == "ok"
    return JsonResponse(
        {"status": "ok" if healthy else "error", "database": database, "version": settings.APP_VERSION},
        status=200 if healthy else 503,
    )


@login_not_required
@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(exposition_registry()), content_type=CONTENT_TYPE_LATEST)
