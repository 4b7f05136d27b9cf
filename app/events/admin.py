from django.contrib import admin

from events.models import Assignment, Attendant, Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("name", "starts_at", "ends_at", "location")
    search_fields = ("name", "location")
    readonly_fields = ("created_by", "created_at")
    date_hierarchy = "starts_at"


@admin.register(Attendant)
class AttendantAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "event")
    list_filter = ("event",)
    search_fields = ("name", "email")


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("attendant", "post", "starts_at", "ends_at")
    list_filter = ("attendant__event",)
    search_fields = ("attendant__name", "post")
