import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

from django.db import OperationalError
from django.test import Client, override_settings
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from scheduler.testing import SchedulerTestCase, make_event

APP_DIR = Path(__file__).resolve().parents[2]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client: Client) -> dict[str, list]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.status_code
    families = text_string_to_metric_families(response.content.decode())
    return {family.name: family.samples for family in families}


class MetricsTests(SchedulerTestCase):
    def test_exposition_without_login_in_prometheus_format(self):
        response = Client().get("/metrics")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response["Content-Type"].startswith("text/plain; version="))

    def test_latency_is_labelled_by_view_name_not_by_path(self):
        before = sample("scheduler_http_request_duration_seconds_count", view="events:event-detail")
        for event in (make_event("Gala"), make_event("Fair", day=12)):
            self.assertEqual(self.client.get(f"/event/{event.pk}/").status_code, 200)
        after = sample("scheduler_http_request_duration_seconds_count", view="events:event-detail")
        self.assertEqual(after - before, 2)

        samples = scrape(self.client)["scheduler_http_request_duration_seconds"]
        views = {s.labels["view"] for s in samples}
        self.assertIn("events:event-detail", views)
        self.assertFalse([view for view in views if "/" in view], views)
        bucket_edges = {
            s.labels["le"] for s in samples
            if s.name.endswith("_bucket") and s.labels["view"] == "events:event-detail"
        }
        self.assertIn("0.3", bucket_edges)

    def test_requests_are_counted_by_view_method_and_status(self):
        labels = {"view": "events:event-detail", "method": "GET", "status": "404"}
        before = sample("scheduler_http_requests_total", **labels)
        self.assertEqual(self.client.get("/event/999999/").status_code, 404)
        self.assertEqual(sample("scheduler_http_requests_total", **labels) - before, 1)

    def test_paths_that_match_no_view_share_one_label(self):
        before = sample("scheduler_http_requests_total", view="unmatched", method="GET", status="404")
        self.client.get("/no/such/page/")
        self.client.get("/another/unknown/")
        after = sample("scheduler_http_requests_total", view="unmatched", method="GET", status="404")
        self.assertEqual(after - before, 2)

    def test_a_503_from_health_counts_as_server_error(self):
        before = sample("scheduler_http_server_errors_total", view="health")
        with mock.patch("scheduler.views.connection.cursor", side_effect=OperationalError("down")), \
                self.assertLogs("scheduler.views", "WARNING"):
            self.assertEqual(Client().get("/health/").status_code, 503)
        self.assertEqual(sample("scheduler_http_server_errors_total", view="health") - before, 1)

    @override_settings(ROOT_URLCONF="scheduler.tests.urls")
    def test_an_exception_counts_as_server_error(self):
        client = self.client_class(raise_request_exception=False)
        client.force_login(self.user)
        before = sample("scheduler_http_server_errors_total", view="boom")
        with self.assertLogs("django.request", "ERROR"):
            self.assertEqual(client.get("/boom/").status_code, 500)
        self.assertEqual(sample("scheduler_http_server_errors_total", view="boom") - before, 1)
        self.assertEqual(
            sample("scheduler_http_requests_total", view="boom", method="GET", status="500") - before, 1
        )

    def test_database_time_is_measured_per_request(self):
        make_event()
        view = "events:dashboard"
        queries_before = sample("scheduler_db_queries_total", view=view)
        requests_before = sample("scheduler_db_duration_seconds_count", view=view)
        self.assertEqual(self.client.get("/").status_code, 200)
        # Session, user, then the dashboard's own counts and lists.
        self.assertGreaterEqual(sample("scheduler_db_queries_total", view=view) - queries_before, 5)
        self.assertEqual(sample("scheduler_db_duration_seconds_count", view=view) - requests_before, 1)
        self.assertGreater(sample("scheduler_db_duration_seconds_sum", view=view), 0)

    def test_build_info_names_the_release(self):
        self.assertIn("scheduler_build_info", scrape(self.client))


class MultiProcessMetricsTests(SchedulerTestCase):
    """Two processes sharing PROMETHEUS_MULTIPROC_DIR, as gunicorn workers do."""

    WORKER = (
        "import django, sys; django.setup()\n"
        "from django.test import Client\n"
        "client = Client(HTTP_HOST='localhost')\n"
        "for _ in range(int(sys.argv[1])):\n"
        "    assert client.get('/health/').status_code == 200\n"
        "if sys.argv[2] == 'scrape':\n"
        "    sys.stdout.write(client.get('/metrics').content.decode())\n"
    )

    def run_worker(self, environ: dict[str, str], requests: int, scrape_after: bool) -> str:
        result = subprocess.run(
            [sys.executable, "-c", self.WORKER, str(requests), "scrape" if scrape_after else "-"],
            cwd=APP_DIR, env=environ, capture_output=True, text=True, timeout=60, check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def test_the_scrape_adds_up_every_process(self):
        with tempfile.TemporaryDirectory() as multiproc_dir, tempfile.TemporaryDirectory() as db_dir:
            environ = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DB_", "PROMETHEUS"))},
                "DJANGO_SETTINGS_MODULE": "scheduler.settings",
                "PROMETHEUS_MULTIPROC_DIR": multiproc_dir,
                "DJANGO_SQLITE_PATH": str(Path(db_dir) / "db.sqlite3"),
            }
            self.run_worker(environ, 3, scrape_after=False)
            exposition = self.run_worker(environ, 2, scrape_after=True)
        families = {f.name: f for f in text_string_to_metric_families(exposition)}
        counts = [
            s.value for s in families["scheduler_http_requests"].samples
            if s.name == "scheduler_http_requests_total" and s.labels.get("view") == "health"
        ]
        self.assertEqual(sum(counts), 5)
