"""Locust users for the SLA load test (run by verify.load, never imported by it).

Settings come from the environment the driver sets: VERIFY_LOAD_PATHS (JSON list of paths),
VERIFY_LOAD_WAIT_MIN/MAX (seconds a user thinks between two pages), VERIFY_LOAD_CA (a CA
file, or "true"/"false"), VERIFY_LOAD_COOKIES (JSON: the logged-in session, a secret: it
never appears on a command line or in a report), VERIFY_LOAD_LOGIN_PATH.
"""

from __future__ import annotations

import json
import os
import random
from urllib.parse import urlsplit

from locust import HttpUser, between, task

_PATHS: list[str] = json.loads(os.environ.get("VERIFY_LOAD_PATHS", '["/"]'))
_LOGIN_PATH = os.environ.get("VERIFY_LOAD_LOGIN_PATH", "/accounts/login/")
_CA = os.environ.get("VERIFY_LOAD_CA", "true")


def _verify_setting() -> bool | str:
    return {"true": True, "false": False}.get(_CA.lower(), _CA)


class SiteUser(HttpUser):
    """A logged-in user reading pages with a think time between them."""

    wait_time = between(float(os.environ.get("VERIFY_LOAD_WAIT_MIN", "1")),
                        float(os.environ.get("VERIFY_LOAD_WAIT_MAX", "2")))

    def on_start(self) -> None:
        self.client.trust_env = False
        self.client.verify = _verify_setting()
        for name, value in json.loads(os.environ.get("VERIFY_LOAD_COOKIES", "{}")).items():
            self.client.cookies.set(name, value)

    @task
    def read_a_page(self) -> None:
        path = random.choice(_PATHS)  # noqa: S311 - picking a page, not a secret
        with self.client.get(path, name=path, catch_response=True) as response:
            if response.ok and urlsplit(response.url).path == _LOGIN_PATH and path != _LOGIN_PATH:
                response.failure("sent to the login page: the session was lost")
