from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def user_list(request: HttpRequest) -> HttpResponse:
    """Every account, for staff only (others get 403, not a login loop)."""
    if not request.user.is_staff:
        raise PermissionDenied("The users page is for staff only.")
    users = get_user_model().objects.order_by("username")
    return render(request, "accounts/user_list.html", {"users": users})
