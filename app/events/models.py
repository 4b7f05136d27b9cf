"""Events, the attendants who work them, and their assignments (who stands where, when)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.expressions import DatabaseDefault
from django.urls import reverse
from django.utils.text import slugify

SLUG_MAX_LENGTH = 220


def slug_for(name: str) -> str:
    """The URL-safe short name of an event (migration 0002 uses the same rule)."""
    return slugify(name)[:SLUG_MAX_LENGTH]


class Event(models.Model):
    name = models.CharField(max_length=200)
    # Added by 0002 with a database default, so a release without this field
    # keeps inserting events while a rolling deploy is half-way.
    slug = models.SlugField(max_length=SLUG_MAX_LENGTH, blank=True, db_default="")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    location = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("starts_at", "id")
        constraints = (
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="event_ends_after_start"),
        )

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A new instance holds DatabaseDefault() here until it is saved.
        if isinstance(self.slug, DatabaseDefault) or not self.slug:
            self.slug = slug_for(self.name)
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("events:event-detail", kwargs={"event_id": self.pk})


class Attendant(models.Model):
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="attendants")
    name = models.CharField(max_length=150)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name", "id")
        constraints = (
            models.UniqueConstraint(
                fields=("event", "email"), condition=~Q(email=""), name="attendant_email_unique_per_event"
            ),
        )

    def __str__(self) -> str:
        return self.name


class Assignment(models.Model):
    attendant = models.ForeignKey(Attendant, on_delete=models.CASCADE, related_name="assignments")
    post = models.CharField(max_length=100, help_text="Where or what, e.g. 'Entrance A'.")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("starts_at", "id")
        constraints = (
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="assignment_ends_after_start"
            ),
        )

    def __str__(self) -> str:
        return f"{self.attendant} at {self.post}"
