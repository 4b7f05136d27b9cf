import os
import secrets
from io import StringIO
from unittest import mock

from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import TestCase

from scheduler.testing import ProxiedClient


def ensure_admin(password: str | None, *args: str) -> str:
    """Run the command with DJANGO_ADMIN_PASSWORD set to `password` (None: unset)."""
    out = StringIO()
    with mock.patch.dict(os.environ):
        os.environ.pop("DJANGO_ADMIN_PASSWORD", None)
        if password is not None:
            os.environ["DJANGO_ADMIN_PASSWORD"] = password
        call_command("ensure_admin", *args, stdout=out, stderr=out)
    return out.getvalue()


class EnsureAdminTests(TestCase):
    def setUp(self):
        self.password = secrets.token_urlsafe(18)

    def test_creates_then_leaves_unchanged(self):
        first = ensure_admin(self.password, "--username", "operator", "--email", "ops@example.test")
        self.assertEqual(first, "created administrator 'operator'\n")
        user = get_user_model().objects.get(username="operator")
        self.assertTrue(user.is_superuser and user.is_staff and user.is_active)
        self.assertTrue(user.check_password(self.password))
        self.assertEqual(user.email, "ops@example.test")

        second = ensure_admin(self.password, "--username", "operator", "--email", "ops@example.test")
        self.assertEqual(second, "unchanged administrator 'operator'\n")

    def test_password_and_flags_are_brought_back(self):
        ensure_admin(self.password, "--username", "operator")
        get_user_model().objects.filter(username="operator").update(is_superuser=False, is_active=False)
        new_password = secrets.token_urlsafe(18)
        out = ensure_admin(new_password, "--username", "operator")
        self.assertEqual(out, "updated administrator 'operator'\n")
        user = get_user_model().objects.get(username="operator")
        self.assertTrue(user.is_superuser and user.is_active)
        self.assertTrue(user.check_password(new_password))

    def test_the_password_is_never_printed(self):
        out = ensure_admin(self.password, "--username", "operator")
        out += ensure_admin(self.password, "--username", "operator")
        self.assertNotIn(self.password, out)

    def test_missing_password_is_a_clear_error(self):
        with self.assertRaisesMessage(CommandError, "DJANGO_ADMIN_PASSWORD is unset or empty"):
            ensure_admin(None, "--username", "operator")
        self.assertFalse(get_user_model().objects.exists())

    def test_weak_password_is_refused_without_echoing_it(self):
        with self.assertRaises(CommandError) as caught:
            ensure_admin("12345678", "--username", "operator")
        self.assertIn("too short", str(caught.exception))
        self.assertNotIn("12345678", str(caught.exception))
        self.assertFalse(get_user_model().objects.exists())

    def test_the_admin_can_log_in(self):
        ensure_admin(self.password, "--username", "operator")
        client = ProxiedClient()
        response = client.post("/accounts/login/", {"username": "operator", "password": self.password})
        self.assertEqual(response.status_code, 302)
        self.assertEqual(client.get("/users/").status_code, 200)
