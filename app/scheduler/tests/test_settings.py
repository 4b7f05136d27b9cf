import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase

from scheduler.env import env_bool, env_int, env_list, env_str

APP_DIR = Path(__file__).resolve().parents[2]


def production_environment(**overrides: str) -> dict[str, str]:
    """What the deploy's environment file holds, with made-up values."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DB_", "APP_"))}
    base.update({
        "DJANGO_SETTINGS_MODULE": "scheduler.settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "scheduler.example.test,10.92.3.11",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://scheduler.example.test",
        "DB_NAME": "scheduler",
        "DB_USER": "scheduler",
        "DB_PASSWORD": secrets.token_urlsafe(24),
        "DB_HOST": "db.example.test",
        "DJANGO_STATIC_ROOT": "/srv/scheduler/shared/static",
        "DJANGO_MEDIA_ROOT": "/srv/scheduler/shared/media",
        "APP_VERSION": "2031.05.1",
    })
    base.update(overrides)
    return base


def manage(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=APP_DIR, env=environ,
        capture_output=True, text=True, timeout=120, check=False,
    )


def settings_in_fresh_process(environ: dict[str, str]) -> dict[str, object]:
    code = (
        "import json; from django.conf import settings as s; db = s.DATABASES['default']; print(json.dumps({"
        "'DEBUG': s.DEBUG, 'ENGINE': db['ENGINE'], 'NAME': str(db['NAME']), 'HOST': db.get('HOST'),"
        "'ALLOWED_HOSTS': s.ALLOWED_HOSTS, 'VERSION': s.APP_VERSION}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=APP_DIR, env=environ, capture_output=True, text=True, timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(result.stderr)
    return json.loads(result.stdout)


class EnvironmentReaderTests(SimpleTestCase):
    def test_booleans(self):
        for raw, expected in [("1", True), ("TRUE", True), (" yes ", True), ("on", True),
                              ("0", False), ("false", False), ("No", False), ("", False)]:
            self.assertIs(env_bool("FLAG", default=not expected, environ={"FLAG": raw}), expected, raw)
        self.assertIs(env_bool("FLAG", default=True, environ={}), True)

    def test_a_bad_boolean_names_the_variable_and_the_value(self):
        with self.assertRaisesMessage(ImproperlyConfigured, "DJANGO_DEBUG must be a boolean") as caught:
            env_bool("DJANGO_DEBUG", default=False, environ={"DJANGO_DEBUG": "maybe"})
        self.assertIn("'maybe'", str(caught.exception))

    def test_lists_drop_blanks(self):
        self.assertEqual(env_list("HOSTS", [], environ={"HOSTS": " a.test, ,b.test,"}), ["a.test", "b.test"])
        self.assertEqual(env_list("HOSTS", ["x"], environ={}), ["x"])
        self.assertEqual(env_list("HOSTS", ["x"], environ={"HOSTS": ""}), [])

    def test_integers(self):
        self.assertEqual(env_int("PORT", 1, environ={"PORT": " 5432 "}), 5432)
        self.assertEqual(env_int("PORT", 1, environ={"PORT": ""}), 1)
        with self.assertRaisesMessage(ImproperlyConfigured, "PORT must be a whole number, found 'five'"):
            env_int("PORT", 1, environ={"PORT": "five"})
        with self.assertRaisesMessage(ImproperlyConfigured, "TIMEOUT must be at least 1, found 0"):
            env_int("TIMEOUT", 5, environ={"TIMEOUT": "0"}, minimum=1)

    def test_strings_are_stripped(self):
        self.assertEqual(env_str("NAME", environ={"NAME": "  scheduler\n"}), "scheduler")
        self.assertEqual(env_str("NAME", "d", environ={}), "d")


class SettingsFromEnvironmentTests(SimpleTestCase):
    def test_without_database_variables_sqlite_and_debug_off(self):
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DB_", "APP_"))}
        environ["DJANGO_SETTINGS_MODULE"] = "scheduler.settings"
        found = settings_in_fresh_process(environ)
        self.assertIs(found["DEBUG"], False)
        self.assertEqual(found["ENGINE"], "django.db.backends.sqlite3")
        # Without APP_VERSION, the version the source ships in its VERSION file.
        self.assertEqual(found["VERSION"], (APP_DIR / "VERSION").read_text().strip())

    def test_database_variables_select_postgresql(self):
        found = settings_in_fresh_process(production_environment())
        self.assertEqual(found["ENGINE"], "scheduler.postgresql")
        self.assertEqual((found["NAME"], found["HOST"]), ("scheduler", "db.example.test"))
        self.assertEqual(found["ALLOWED_HOSTS"], ["scheduler.example.test", "10.92.3.11"])
        self.assertEqual(found["VERSION"], "2031.05.1")


class DeployCheckTests(SimpleTestCase):
    def test_production_environment_passes_check_deploy_with_no_warning(self):
        result = manage(production_environment(), "check", "--deploy", "--fail-level", "WARNING")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("System check identified no issues (1 silenced).", result.stdout)

    def test_forgotten_secret_key_and_debug_fail_check_deploy(self):
        environ = production_environment(DJANGO_DEBUG="1")
        del environ["DJANGO_SECRET_KEY"]
        result = manage(environ, "check", "--deploy", "--fail-level", "WARNING")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("security.W009", result.stderr)
        self.assertIn("security.W018", result.stderr)

    def test_hsts_preload_unsilences_its_check(self):
        result = manage(production_environment(DJANGO_SECURE_HSTS_PRELOAD="1"), "check", "--deploy",
                        "--fail-level", "WARNING")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("System check identified no issues (0 silenced).", result.stdout)
