"""Pages of the scheduler. LoginRequiredMiddleware guards all of them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.db.models import Count, DurationField, ExpressionWrapper, F, QuerySet, Sum
from django.forms import BaseModelForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.generic import CreateView, DetailView, ListView

from events.forms import AssignmentForm, AttendantForm, EventForm
from events.models import Assignment, Attendant, Event


def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    context = {
        "event_count": Event.objects.count(),
        "attendant_count": Attendant.objects.count(),
        "assignment_count": Assignment.objects.count(),
        "upcoming_events": Event.objects.filter(ends_at__gte=now)[:5],
        "next_assignments": Assignment.objects.filter(ends_at__gte=now).select_related(
            "attendant", "attendant__event"
        )[:10],
    }
    return render(request, "events/dashboard.html", context)


class EventListView(ListView):
    model = Event
    paginate_by = 50


class EventCreateView(CreateView):
    model = Event
    form_class = EventForm

    def form_valid(self, form: BaseModelForm) -> HttpResponse:
        form.instance.created_by = self.request.user
        messages.success(self.request, f"Event '{form.instance.name}' created.")
        return super().form_valid(form)


class EventScopedMixin:
    """Resolves `/event/<event_id>/...` to `self.event` (404 when it does not exist)."""

    event: Event
    request: HttpRequest
    kwargs: dict[str, Any]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.event = get_object_or_404(Event, pk=kwargs["event_id"])
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(event=self.event, **kwargs)


class EventDetailView(DetailView):
    model = Event
    pk_url_kwarg = "event_id"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["attendant_count"] = self.object.attendants.count()
        context["assignments"] = (
            Assignment.objects.filter(attendant__event=self.object).select_related("attendant")[:20]
        )
        return context


class AttendantListView(EventScopedMixin, ListView):
    template_name = "events/attendant_list.html"
    context_object_name = "attendants"

    def get_queryset(self) -> QuerySet[Attendant]:
        return self.event.attendants.annotate(assignment_count=Count("assignments"))


class AttendantCreateView(EventScopedMixin, CreateView):
    form_class = AttendantForm
    template_name = "events/attendant_form.html"

    def get_form_kwargs(self) -> dict[str, Any]:
        kwargs = super().get_form_kwargs()
        kwargs["instance"] = Attendant(event=self.event)
        return kwargs

    def form_valid(self, form: BaseModelForm) -> HttpResponse:
        messages.success(self.request, f"Attendant '{form.instance.name}' added.")
        return super().form_valid(form)

    def get_success_url(self) -> str:
        return reverse("events:attendant-list", kwargs={"event_id": self.event.pk})


class AssignmentListView(EventScopedMixin, ListView):
    template_name = "events/assignment_list.html"
    context_object_name = "assignments"

    def get_queryset(self) -> QuerySet[Assignment]:
        return Assignment.objects.filter(attendant__event=self.event).select_related("attendant")


class AssignmentCreateView(EventScopedMixin, CreateView):
    form_class = AssignmentForm
    template_name = "events/assignment_form.html"

    def get_form_kwargs(self) -> dict[str, Any]:
        kwargs = super().get_form_kwargs()
        kwargs["event"] = self.event
        return kwargs

    def form_valid(self, form: BaseModelForm) -> HttpResponse:
        messages.success(self.request, f"{form.instance.attendant} assigned to {form.instance.post}.")
        return super().form_valid(form)

    def get_success_url(self) -> str:
        return reverse("events:assignment-list", kwargs={"event_id": self.event.pk})


def reports(request: HttpRequest) -> HttpResponse:
    """Per event: attendants, assignments and the hours they cover."""
    assignment = "attendants__assignments"
    duration = ExpressionWrapper(
        F(f"{assignment}__ends_at") - F(f"{assignment}__starts_at"), output_field=DurationField()
    )
    rows = Event.objects.annotate(
        attendants_total=Count("attendants", distinct=True),
        assignments_total=Count(assignment),
        assigned_time=Sum(duration),
    ).order_by("starts_at", "id")
    totals = {
        "assignments": sum(row.assignments_total for row in rows),
        "hours": sum((row.assigned_time or timedelta()).total_seconds() for row in rows) / 3600,
    }
    return render(request, "events/reports.html", {"rows": rows, "totals": totals})
