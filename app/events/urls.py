from django.urls import include, path

from events import views

app_name = "events"

# Everything about one event lives under /event/<event_id>/.
event_scoped = [
    path("", views.EventDetailView.as_view(), name="event-detail"),
    path("attendants/", views.AttendantListView.as_view(), name="attendant-list"),
    path("attendants/new/", views.AttendantCreateView.as_view(), name="attendant-create"),
    path("assignments/", views.AssignmentListView.as_view(), name="assignment-list"),
    path("assignments/new/", views.AssignmentCreateView.as_view(), name="assignment-create"),
]

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("events/", views.EventListView.as_view(), name="event-list"),
    path("events/new/", views.EventCreateView.as_view(), name="event-create"),
    path("event/<int:event_id>/", include(event_scoped)),
    path("reports/", views.reports, name="reports"),
]
