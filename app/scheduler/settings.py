"""Settings of the attendant scheduler, read from the environment.

The deploy writes the variables into an environment file that systemd hands to
gunicorn; app/README.md lists the contract. Defaults are the production ones
(DEBUG off, secure cookies, HSTS, HTTPS redirect) except where a development
machine or the test suite has nothing to give: without DB_NAME the database is
SQLite in the system's temporary directory, and without DJANGO_SECRET_KEY a
fixed development key is used that `manage.py check --deploy` reports
(security.W009), so a deploy that forgets the key fails its own check.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from scheduler.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

def _release_version() -> str:
    """APP_VERSION from the environment file, else the source's VERSION file, else "dev"."""
    version_file = BASE_DIR / "VERSION"
    shipped = version_file.read_text().strip() if version_file.is_file() else ""
    return env_str("APP_VERSION") or shipped or "dev"


APP_VERSION = _release_version()

DEBUG = env_bool("DJANGO_DEBUG", default=False)

# The "django-insecure-" prefix is what security.W009 looks for: `check --deploy`
# fails on it, so this key can never pass a production check by accident.
_DEVELOPMENT_SECRET_KEY = "django-insecure-development-only-set-DJANGO_SECRET_KEY-in-production"  # noqa: S105 - see above
SECRET_KEY = env_str("DJANGO_SECRET_KEY") or _DEVELOPMENT_SECRET_KEY

# Include the container's own address: health checks and Prometheus reach
# gunicorn directly, with that address in the Host header.
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "scheduler",
    "accounts",
    "events",
]

MIDDLEWARE = [
    # First, so the latency it measures includes every other middleware.
    "scheduler.metrics.PrometheusMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every view needs a login unless it is decorated with @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so process_exception sees a view's database error before any other.
    "scheduler.middleware.RetrySafeRequestMiddleware",
]

ROOT_URLCONF = "scheduler.urls"
WSGI_APPLICATION = "scheduler.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "scheduler.context_processors.release",
            ],
        },
    },
]


def _database() -> dict[str, object]:
    """PostgreSQL when DB_NAME is set, else SQLite in a temporary directory."""
    name = env_str("DB_NAME")
    if not name:
        sqlite_path = env_str("DJANGO_SQLITE_PATH") or str(
            Path(tempfile.gettempdir()) / "attendant-scheduler.sqlite3"
        )
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": sqlite_path}
    return {
        # Django's backend with a short retry on a refused connection (scheduler/postgresql).
        "ENGINE": "scheduler.postgresql",
        "NAME": name,
        "USER": env_str("DB_USER"),
        "PASSWORD": env_str("DB_PASSWORD"),
        # Empty host means the local Unix socket.
        "HOST": env_str("DB_HOST"),
        "PORT": env_str("DB_PORT", "5432"),
        "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
        "CONNECT_RETRY_SECONDS": env_int("DB_CONNECT_RETRY_SECONDS", 3),
        "OPTIONS": {
            # A dead database must fail /health/ quickly, not hang the worker.
            "connect_timeout": env_int("DB_CONNECT_TIMEOUT", 5, minimum=1),
            "sslmode": env_str("DB_SSLMODE", "prefer"),
            "application_name": "attendant-scheduler",
        },
    }


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "events:dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "UTC") or "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = env_str("DJANGO_STATIC_URL", "/static/") or "/static/"
STATIC_ROOT = env_str("DJANGO_STATIC_ROOT") or None
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = env_str("DJANGO_MEDIA_URL", "/media/") or "/media/"
MEDIA_ROOT = env_str("DJANGO_MEDIA_ROOT")

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Content-hashed names: during a rolling deploy the old and the new release's
    # files live side by side in one static directory, and nginx can cache them forever.
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}

# --- HTTPS behind the reverse proxy -------------------------------------------
# nginx terminates TLS and must always set (overwrite) X-Forwarded-Proto. gunicorn
# must only be reachable from the proxy, or a client could claim HTTPS itself.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Probes (proxy upstream checks, deploy health gate, Prometheus) talk plain HTTP
# to gunicorn; these paths answer them instead of redirecting.
SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^metrics$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
# Django sends HSTS only on HTTPS requests. The proxy may send it too; it should
# then drop this copy (proxy_hide_header Strict-Transport-Security).
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# security.W021 (HSTS preload off) is silenced while preload is off on purpose:
# preloading is a one-way submission of the operator's domain to the browsers'
# built-in lists, a decision for the operator (DJANGO_SECURE_HSTS_PRELOAD=1), not
# a default. Nothing else is silenced.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

TEST_RUNNER = "scheduler.test_runner.SchedulerTestRunner"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    # stderr ends up in the journal under gunicorn's systemd unit.
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO") or "INFO"},
}
