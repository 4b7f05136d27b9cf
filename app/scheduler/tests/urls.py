"""The real URLs plus one view that fails, to see how a 500 is counted."""

from django.urls import path

from scheduler.urls import urlpatterns as real_urlpatterns


def boom(request):
    raise RuntimeError("boom: a failure the metrics must count")


urlpatterns = [*real_urlpatterns, path("boom/", boom, name="boom")]
