from unittest import mock

from django.db import OperationalError
from django.test import Client, TestCase, override_settings


class HealthTests(TestCase):
    @override_settings(APP_VERSION="2031.05.1")
    def test_ok_without_login_over_plain_http(self):
        # Plain HTTP, no login: the proxy's and the deploy's probes look like this.
        response = Client().get("/health/")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "application/json")
        self.assertEqual(response.json(), {"status": "ok", "database": "ok", "version": "2031.05.1"})
        self.assertIn("no-cache", response["Cache-Control"])

    def test_head_is_answered_and_post_refused(self):
        self.assertEqual(Client().head("/health/").status_code, 200)
        self.assertEqual(Client().post("/health/").status_code, 405)

    def test_503_with_a_short_reason_when_the_database_fails(self):
        secret_detail = 'password authentication failed for user "scheduler" at 10.92.3.13'
        broken = mock.patch(
            "scheduler.views.connection.cursor", side_effect=OperationalError(secret_detail)
        )
        with broken, self.assertLogs("scheduler.views", "WARNING") as logs:
            response = Client().get("/health/")
        self.assertEqual(response.status_code, 503)
        body = response.json()
        self.assertEqual(body["status"], "error")
        self.assertEqual(body["database"], "error: OperationalError")
        # The driver's message names users and hosts: it goes to the log, not to the client.
        self.assertNotIn("10.92.3.13", response.content.decode())
        self.assertIn(secret_detail, "\n".join(logs.output))
