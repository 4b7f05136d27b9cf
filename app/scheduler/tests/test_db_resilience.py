"""The app rides out a database restore's swap: connects are retried, safe views repeated."""

from unittest import mock

import psycopg
from django.db.backends.postgresql import base as django_postgresql
from django.test import Client, SimpleTestCase, override_settings

from scheduler.postgresql.base import DatabaseWrapper
from scheduler.tests import urls as test_urls

REFUSED = psycopg.OperationalError('database "scheduler" is not currently accepting connections')


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def wrapper(window=3):
    db = DatabaseWrapper({"NAME": "scheduler", "CONNECT_RETRY_SECONDS": window})
    clock = FakeClock()
    db.clock, db.sleep = clock, clock.sleep
    return db, clock


class ConnectRetryTests(SimpleTestCase):
    def test_a_refused_connection_is_retried_until_the_database_takes_it(self):
        db, clock = wrapper()
        opened = object()
        with mock.patch.object(django_postgresql.DatabaseWrapper, "get_new_connection",
                               side_effect=[REFUSED, REFUSED, opened]) as connect, \
                self.assertLogs("scheduler.postgresql.base", "WARNING"):
            self.assertIs(db.get_new_connection({}), opened)
        self.assertEqual(connect.call_count, 3)
        self.assertEqual(clock.sleeps, [0.05, 0.1])

    def test_a_database_that_stays_away_fails_within_the_window(self):
        db, clock = wrapper(window=3)
        with mock.patch.object(django_postgresql.DatabaseWrapper, "get_new_connection",
                               side_effect=REFUSED), \
                self.assertLogs("scheduler.postgresql.base", "WARNING"), \
                self.assertRaises(psycopg.OperationalError):
            db.get_new_connection({})
        self.assertLessEqual(clock.now, 3)
        self.assertGreater(clock.now, 2)

    def test_no_retry_when_the_window_is_zero(self):
        db, clock = wrapper(window=0)
        with mock.patch.object(django_postgresql.DatabaseWrapper, "get_new_connection",
                               side_effect=REFUSED) as connect, \
                self.assertRaises(psycopg.OperationalError):
            db.get_new_connection({})
        self.assertEqual(connect.call_count, 1)
        self.assertEqual(clock.sleeps, [])


@override_settings(ROOT_URLCONF="scheduler.tests.urls")
class RetrySafeRequestTests(SimpleTestCase):
    """Outside a test transaction (SimpleTestCase): inside one, nothing is repeated."""

    def setUp(self):
        test_urls.calls.clear()
        test_urls.failures_left["count"] = 1
        self.client = Client(raise_request_exception=False)

    def test_a_get_whose_connection_was_ended_is_answered(self):
        with self.assertLogs("scheduler.middleware", "WARNING"):
            response = self.client.get("/connection-lost/", secure=True)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, b"served")
        self.assertEqual(test_urls.calls, ["GET", "GET"])

    def test_a_post_is_not_repeated(self):
        response = self.client.post("/connection-lost/", secure=True)
        self.assertEqual(response.status_code, 500)
        self.assertEqual(test_urls.calls, ["POST"])

    def test_a_get_that_fails_twice_is_a_500(self):
        test_urls.failures_left["count"] = 2
        with self.assertLogs("scheduler.middleware", "WARNING"):
            response = self.client.get("/connection-lost/", secure=True)
        self.assertEqual(response.status_code, 500)
        self.assertEqual(test_urls.calls, ["GET", "GET"])

    def test_other_errors_are_not_repeated(self):
        response = self.client.get("/bug/", secure=True)
        self.assertEqual(response.status_code, 500)
        self.assertEqual(test_urls.calls, ["GET"])
