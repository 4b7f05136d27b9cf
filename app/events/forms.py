"""Forms for events, attendants and assignments, each validated as a user would expect."""

from __future__ import annotations

from typing import Any

from django import forms

from events.models import Assignment, Attendant, Event

DATETIME_INPUT_FORMAT = "%Y-%m-%dT%H:%M"


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format=DATETIME_INPUT_FORMAT, **kwargs)


def require_end_after_start(form: forms.ModelForm) -> None:
    starts_at = form.cleaned_data.get("starts_at")
    ends_at = form.cleaned_data.get("ends_at")
    if starts_at and ends_at and ends_at <= starts_at:
        form.add_error("ends_at", "The end must be after the start.")


class EventForm(forms.ModelForm):
    class Meta:
        model = Event
        fields = ("name", "starts_at", "ends_at", "location", "description")
        widgets = {"starts_at": DateTimeLocalInput(), "ends_at": DateTimeLocalInput()}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        require_end_after_start(self)
        return cleaned


class AttendantForm(forms.ModelForm):
    """Creates an attendant of the event the form's instance already belongs to."""

    class Meta:
        model = Attendant
        fields = ("name", "email", "phone")

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        # The unique constraint involves `event`, which is not a form field, so
        # model validation skips it: check here to answer with a form error, not a 500.
        if email and Attendant.objects.filter(event=self.instance.event, email__iexact=email).exists():
            raise forms.ValidationError("An attendant with this e-mail address is already on this event.")
        return email


class AssignmentForm(forms.ModelForm):
    """Assigns one of the event's attendants to a post, without double-booking them."""

    class Meta:
        model = Assignment
        fields = ("attendant", "post", "starts_at", "ends_at", "notes")
        widgets = {"starts_at": DateTimeLocalInput(), "ends_at": DateTimeLocalInput()}

    def __init__(self, *args: Any, event: Event, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.event = event
        self.fields["attendant"].queryset = event.attendants.all()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        require_end_after_start(self)
        attendant = cleaned.get("attendant")
        starts_at = cleaned.get("starts_at")
        ends_at = cleaned.get("ends_at")
        if self.errors or not (attendant and starts_at and ends_at):
            return cleaned
        if starts_at < self.event.starts_at or ends_at > self.event.ends_at:
            self.add_error("starts_at", "The assignment must lie within the event's start and end.")
        overlapping = Assignment.objects.filter(
            attendant=attendant, starts_at__lt=ends_at, ends_at__gt=starts_at
        ).first()
        if overlapping is not None:
            self.add_error(
                "attendant",
                f"{attendant} is already assigned to {overlapping.post} at that time.",
            )
        return cleaned
