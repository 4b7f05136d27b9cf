from django.test import TestCase

from events.forms import AssignmentForm, AttendantForm, EventForm
from events.models import Attendant
from scheduler.testing import at, make_assignment, make_attendant, make_event


def assignment_data(attendant, start="2031-05-10T10:00", end="2031-05-10T12:00", post="Gate"):
    return {"attendant": attendant.pk, "post": post, "starts_at": start, "ends_at": end, "notes": ""}


class EventFormTests(TestCase):
    def test_end_must_follow_start(self):
        form = EventForm({"name": "Gala", "starts_at": "2031-05-10T18:00", "ends_at": "2031-05-10T09:00"})
        self.assertFalse(form.is_valid())
        self.assertEqual(form.errors["ends_at"], ["The end must be after the start."])

    def test_name_and_times_are_required(self):
        form = EventForm({})
        self.assertFalse(form.is_valid())
        self.assertEqual(set(form.errors), {"name", "starts_at", "ends_at"})


class AttendantFormTests(TestCase):
    def setUp(self):
        self.event = make_event()
        make_attendant(self.event, "Ada", "ada@example.test")

    def test_same_email_twice_on_one_event_is_refused_whatever_the_case(self):
        form = AttendantForm(
            {"name": "Ada again", "email": "ADA@example.test"}, instance=Attendant(event=self.event)
        )
        self.assertFalse(form.is_valid())
        self.assertIn("already on this event", form.errors["email"][0])

    def test_same_email_on_another_event_is_fine(self):
        other = make_event("Fair", day=20)
        form = AttendantForm({"name": "Ada", "email": "ada@example.test"}, instance=Attendant(event=other))
        self.assertTrue(form.is_valid(), form.errors)

    def test_several_attendants_without_email(self):
        for name in ("Bob", "Carol"):
            form = AttendantForm({"name": name, "email": ""}, instance=Attendant(event=self.event))
            self.assertTrue(form.is_valid(), form.errors)
            form.save()


class AssignmentFormTests(TestCase):
    def setUp(self):
        self.event = make_event()  # 2031-05-10 09:00 to 17:00
        self.ada = make_attendant(self.event, "Ada")

    def form(self, data):
        return AssignmentForm(data, event=self.event)

    def test_a_valid_assignment(self):
        form = self.form(assignment_data(self.ada))
        self.assertTrue(form.is_valid(), form.errors)
        self.assertEqual(form.save().attendant, self.ada)

    def test_end_must_follow_start(self):
        form = self.form(assignment_data(self.ada, start="2031-05-10T12:00", end="2031-05-10T11:00"))
        self.assertEqual(form.errors["ends_at"], ["The end must be after the start."])

    def test_must_lie_within_the_event(self):
        form = self.form(assignment_data(self.ada, start="2031-05-10T16:00", end="2031-05-10T18:00"))
        self.assertEqual(
            form.errors["starts_at"], ["The assignment must lie within the event's start and end."]
        )

    def test_an_attendant_is_not_double_booked(self):
        make_assignment(self.ada, at(10, 11), 2, post="Entrance A")
        form = self.form(assignment_data(self.ada, start="2031-05-10T12:30", end="2031-05-10T14:00"))
        self.assertEqual(form.errors["attendant"], ["Ada is already assigned to Entrance A at that time."])

    def test_back_to_back_assignments_are_fine(self):
        make_assignment(self.ada, at(10, 10), 2)
        form = self.form(assignment_data(self.ada, start="2031-05-10T12:00", end="2031-05-10T13:00"))
        self.assertTrue(form.is_valid(), form.errors)

    def test_only_the_events_attendants_are_offered(self):
        stranger = make_attendant(make_event("Fair", day=20), "Stranger")
        choices = {pk for pk, _ in self.form(None).fields["attendant"].choices if pk}
        self.assertEqual({int(str(pk)) for pk in choices}, {self.ada.pk})
        self.assertNotIn(stranger.pk, choices)
