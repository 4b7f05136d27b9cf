"""The real URLs plus views that fail, to see how a 500 is counted and what is retried."""

from django.contrib.auth.decorators import login_not_required
from django.db import OperationalError
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from scheduler.urls import urlpatterns as real_urlpatterns

# How often each failing view ran, and how many of its first calls fail; tests set these.
calls: list[str] = []
failures_left = {"count": 0}


def boom(request):
    raise RuntimeError("boom: a failure the metrics must count")


@login_not_required
@csrf_exempt
def connection_lost(request):
    """Loses its database connection on its first `failures_left` calls, then answers."""
    calls.append(request.method)
    if failures_left["count"] > 0:
        failures_left["count"] -= 1
        raise OperationalError("terminating connection due to administrator command")
    return HttpResponse("served")


@login_not_required
def bug(request):
    calls.append(request.method)
    raise RuntimeError("a bug, not the database")


urlpatterns = [
    *real_urlpatterns,
    path("boom/", boom, name="boom"),
    path("connection-lost/", connection_lost, name="connection-lost"),
    path("bug/", bug, name="bug"),
]
