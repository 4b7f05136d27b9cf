"""Test runner: production settings, minus what only a built release has."""

from __future__ import annotations

import logging
from typing import Any

from django.test.runner import DiscoverRunner
from django.test.utils import override_settings


class SchedulerTestRunner(DiscoverRunner):
    """Runs the suite with plain static storage and a fast password hasher.

    The manifest storage needs `collectstatic` output, which exists only in a
    release; the release build checks it instead. Everything else, HTTPS
    redirect and secure cookies included, stays as in production.
    """

    # Tests provoke 403, 404 and 5xx on purpose; Django logs each one. Tests that
    # care about a log line capture it with assertLogs, which bypasses this level.
    QUIET_LOGGERS = ("django.request", "django.security")

    def setup_test_environment(self, **kwargs: Any) -> None:
        super().setup_test_environment(**kwargs)
        self._logger_levels = {name: logging.getLogger(name).level for name in self.QUIET_LOGGERS}
        for name in self.QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self._test_overrides = override_settings(
            STORAGES={
                "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
            },
            PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        )
        self._test_overrides.enable()

    def teardown_test_environment(self, **kwargs: Any) -> None:
        self._test_overrides.disable()
        for name, level in self._logger_levels.items():
            logging.getLogger(name).setLevel(level)
        super().teardown_test_environment(**kwargs)
