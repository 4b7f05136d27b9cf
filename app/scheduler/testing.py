"""Helpers for the test suites of every app (not itself a test module)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client, TestCase
from django.utils import timezone

from events.models import Assignment, Attendant, Event


class ProxiedClient(Client):
    """A test client whose requests arrive the way nginx forwards them: over HTTPS."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("HTTP_X_FORWARDED_PROTO", "https")
        super().__init__(*args, **kwargs)


def make_user(username: str = "planner", *, staff: bool = False) -> AbstractBaseUser:
    user = get_user_model().objects.create_user(username=username, password=secrets.token_urlsafe(16))
    user.is_staff = staff
    user.save()
    return user


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A timezone-aware moment in a fixed month far in the future."""
    return datetime(2031, 5, day, hour, minute, tzinfo=timezone.get_current_timezone())


def make_event(name: str = "Spring Gala", day: int = 10, hours: int = 8) -> Event:
    return Event.objects.create(name=name, starts_at=at(day, 9), ends_at=at(day, 9) + timedelta(hours=hours))


def make_attendant(event: Event, name: str = "Ada", email: str = "") -> Attendant:
    return Attendant.objects.create(event=event, name=name, email=email)


def make_assignment(
    attendant: Attendant, start: datetime, hours: float, post: str = "Entrance A"
) -> Assignment:
    return Assignment.objects.create(
        attendant=attendant, post=post, starts_at=start, ends_at=start + timedelta(hours=hours)
    )


class SchedulerTestCase(TestCase):
    """Requests as through the proxy, with a logged-in non-staff user at hand."""

    client_class = ProxiedClient

    def setUp(self) -> None:
        super().setUp()
        self.user = make_user()
        self.client.force_login(self.user)
