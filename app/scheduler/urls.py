"""Top-level URLs. Everything but /health/, /metrics and the login page needs a login."""

from django.contrib import admin
from django.urls import include, path

from scheduler import views

urlpatterns = [
    path("health/", views.health, name="health"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
    path("", include("events.urls")),
]
