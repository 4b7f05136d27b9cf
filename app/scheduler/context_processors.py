"""Template context shared by every page."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def release(request: HttpRequest) -> dict[str, str]:
    """The running release, shown in the page footer."""
    return {"app_version": settings.APP_VERSION}
