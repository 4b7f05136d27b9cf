from datetime import timedelta

from django.test import Client
from django.urls import reverse

from events.models import Assignment, Attendant, Event
from scheduler.testing import (
    ProxiedClient,
    SchedulerTestCase,
    at,
    make_assignment,
    make_attendant,
    make_event,
    make_user,
)


class LoginRequiredTests(SchedulerTestCase):
    def test_every_page_but_health_metrics_and_login_redirects_to_the_login(self):
        event = make_event()
        anonymous = ProxiedClient()
        pages = ["/", "/events/", "/events/new/", "/reports/", "/users/",
                 *(f"/event/{event.pk}/{tail}" for tail in ("", "attendants/", "attendants/new/",
                                                            "assignments/", "assignments/new/"))]
        for page in pages:
            with self.subTest(page=page):
                response = anonymous.get(page)
                self.assertEqual(response.status_code, 302)
                self.assertEqual(response["Location"], f"/accounts/login/?next={page}")
        for page in ("/health/", "/metrics", "/accounts/login/"):
            with self.subTest(page=page):
                self.assertEqual(anonymous.get(page).status_code, 200)

    def test_admin_asks_for_its_own_login(self):
        response = ProxiedClient().get("/admin/")
        self.assertEqual(response.status_code, 302)
        self.assertIn("/login/", response["Location"])

    def test_login_and_logout(self):
        password = "correct horse battery staple"
        user = make_user("operator")
        user.set_password(password)
        user.save()
        client = ProxiedClient()
        response = client.post("/accounts/login/", {"username": "operator", "password": password})
        self.assertRedirects(response, "/", fetch_redirect_response=False)
        self.assertContains(client.get("/"), "Dashboard")
        self.assertEqual(client.post("/accounts/logout/").status_code, 302)
        self.assertEqual(client.get("/").status_code, 302)

    def test_wrong_password_stays_on_the_login_page(self):
        make_user("operator")
        response = ProxiedClient().post("/accounts/login/", {"username": "operator", "password": "wrong"})
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Please enter a correct username and password")

    def test_plain_http_is_redirected_to_https(self):
        response = Client().get("/events/")
        self.assertEqual(response.status_code, 301)
        self.assertTrue(response["Location"].startswith("https://"))


class EventScopedPageTests(SchedulerTestCase):
    def setUp(self):
        super().setUp()
        self.event = make_event("Harbour Festival")
        self.other = make_event("Book Fair", day=20)
        self.ada = make_attendant(self.event, "Ada Lovelace", "ada@example.test")
        self.bob = make_attendant(self.other, "Bob Other", "bob@example.test")
        make_assignment(self.ada, at(10, 10), 2, post="Main gate")

    def test_detail_shows_the_event(self):
        response = self.client.get(f"/event/{self.event.pk}/")
        self.assertContains(response, "Harbour Festival")
        self.assertContains(response, "Main gate")
        self.assertContains(response, "harbour-festival")

    def test_attendants_are_those_of_the_event_only(self):
        response = self.client.get(f"/event/{self.event.pk}/attendants/")
        self.assertContains(response, "Ada Lovelace")
        self.assertNotContains(response, "Bob Other")

    def test_assignments_are_those_of_the_event_only(self):
        make_assignment(self.bob, at(20, 10), 1, post="Back door")
        response = self.client.get(f"/event/{self.event.pk}/assignments/")
        self.assertContains(response, "Main gate")
        self.assertNotContains(response, "Back door")

    def test_unknown_event_is_404_on_every_scoped_page(self):
        for tail in ("", "attendants/", "attendants/new/", "assignments/", "assignments/new/"):
            with self.subTest(tail=tail):
                self.assertEqual(self.client.get(f"/event/424242/{tail}").status_code, 404)

    def test_create_an_event(self):
        response = self.client.post(reverse("events:event-create"), {
            "name": "Autumn Market", "starts_at": "2031-09-01T08:00", "ends_at": "2031-09-01T18:00",
            "location": "Old Town", "description": "",
        })
        event = Event.objects.get(name="Autumn Market")
        self.assertRedirects(response, f"/event/{event.pk}/", fetch_redirect_response=False)
        self.assertEqual((event.created_by, event.slug), (self.user, "autumn-market"))

    def test_add_an_attendant_to_the_event_in_the_url(self):
        response = self.client.post(f"/event/{self.event.pk}/attendants/new/",
                                    {"name": "Grace Hopper", "email": "Grace@Example.test", "phone": ""})
        self.assertRedirects(response, f"/event/{self.event.pk}/attendants/", fetch_redirect_response=False)
        grace = Attendant.objects.get(name="Grace Hopper")
        self.assertEqual((grace.event, grace.email), (self.event, "grace@example.test"))

    def test_assign_an_attendant(self):
        response = self.client.post(f"/event/{self.event.pk}/assignments/new/", {
            "attendant": self.ada.pk, "post": "Cloakroom",
            "starts_at": "2031-05-10T13:00", "ends_at": "2031-05-10T15:00", "notes": "",
        })
        self.assertRedirects(response, f"/event/{self.event.pk}/assignments/", fetch_redirect_response=False)
        self.assertTrue(Assignment.objects.filter(attendant=self.ada, post="Cloakroom").exists())

    def test_an_attendant_of_another_event_cannot_be_assigned_here(self):
        response = self.client.post(f"/event/{self.event.pk}/assignments/new/", {
            "attendant": self.bob.pk, "post": "Cloakroom",
            "starts_at": "2031-05-10T13:00", "ends_at": "2031-05-10T15:00", "notes": "",
        })
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Select a valid choice")
        self.assertFalse(Assignment.objects.filter(post="Cloakroom").exists())


class DashboardReportsUsersTests(SchedulerTestCase):
    def test_dashboard_counts_and_lists_upcoming_events(self):
        event = make_event("Harbour Festival")
        make_attendant(event)
        response = self.client.get("/")
        self.assertContains(response, "Harbour Festival")
        self.assertEqual((response.context["event_count"], response.context["attendant_count"]), (1, 1))

    def test_reports_aggregate_assignments_per_event(self):
        festival = make_event("Harbour Festival")
        fair = make_event("Book Fair", day=20)
        make_event("Empty Evening", day=25)
        ada, grace = make_attendant(festival, "Ada"), make_attendant(festival, "Grace")
        make_assignment(ada, at(10, 9), 2)
        make_assignment(ada, at(10, 12), 1.5)
        make_assignment(grace, at(10, 9), 3)
        make_assignment(make_attendant(fair, "Bob"), at(20, 10), 4)

        response = self.client.get("/reports/")
        rows = {row.name: row for row in response.context["rows"]}
        festival_row = rows["Harbour Festival"]
        self.assertEqual((festival_row.attendants_total, festival_row.assignments_total), (2, 3))
        self.assertEqual(festival_row.assigned_time, timedelta(hours=6.5))
        self.assertEqual(rows["Book Fair"].assigned_time, timedelta(hours=4))
        self.assertEqual(rows["Empty Evening"].assignments_total, 0)
        self.assertEqual(response.context["totals"], {"assignments": 4, "hours": 10.5})
        self.assertContains(response, "10.5 h")

    def test_users_page_is_for_staff_only(self):
        self.assertEqual(self.client.get("/users/").status_code, 403)
        staff = ProxiedClient()
        staff.force_login(make_user("chief", staff=True))
        response = staff.get("/users/")
        self.assertContains(response, "chief")
        self.assertContains(response, "planner")

    def test_admin_opens_for_staff_with_permissions(self):
        admin = make_user("root", staff=True)
        admin.is_superuser = True
        admin.save()
        client = ProxiedClient()
        client.force_login(admin)
        self.assertContains(client.get("/admin/events/event/"), "Select event to change")
