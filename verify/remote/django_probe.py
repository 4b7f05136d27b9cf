"""Django checks of the original process that Django has no command for, run on an app host.

playbooks/verify.yml feeds this file to `manage.py shell` on standard input, as the app user
with the service's environment, so it sees exactly the settings the service runs with. It
prints one line: VERIFY-DJANGO-PROBE <json>. It reads, never writes (the media check creates
and removes one empty file, as the service would). Only standard library and Django.
"""

import json
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.template import TemplateSyntaxError, engines
from django.template.loaders.app_directories import get_app_template_dirs

MARKER = "VERIFY-DJANGO-PROBE "


def database():
    problems = []
    for alias in connections:
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            problems.append(f"{alias}: {type(exc).__name__}")
    return problems


def unapplied_migrations():
    executor = MigrationExecutor(connections["default"])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def missing_static_files():
    root = settings.STATIC_ROOT
    if not root:
        return ["STATIC_ROOT is not set"]
    manifest = Path(root) / "staticfiles.json"
    if not manifest.is_file():
        return [f"{manifest} is missing (collectstatic did not run for this release)"]
    paths = json.loads(manifest.read_text()).get("paths", {})
    return [f"{name} -> {hashed}" for name, hashed in sorted(paths.items())
            if not (Path(root) / hashed).is_file()]


def template_errors():
    errors = []
    for engine in engines.all():
        dirs = list(engine.dirs) + (list(get_app_template_dirs("templates")) if engine.app_dirs else [])
        for directory in dirs:
            for path in sorted(Path(directory).rglob("*.html")):
                name = str(path.relative_to(directory))
                try:
                    engine.get_template(name)
                except TemplateSyntaxError as exc:
                    errors.append(f"{name}: {exc}")
                except Exception as exc:  # noqa: BLE001 - reported, not raised
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
    return errors


def directory_permissions():
    problems = []
    media = settings.MEDIA_ROOT
    if media:
        if not os.access(media, os.W_OK | os.X_OK):
            problems.append(f"MEDIA_ROOT {media} is not writable by the app user")
        else:
            try:
                tempfile.NamedTemporaryFile(dir=media, prefix=".verify-").close()
            except OSError as exc:
                problems.append(f"MEDIA_ROOT {media}: cannot create a file: {exc.strerror}")
    static = settings.STATIC_ROOT
    if static:
        if not os.access(static, os.R_OK | os.X_OK):
            problems.append(f"STATIC_ROOT {static} is not readable by the app user")
        if os.access(static, os.W_OK):
            problems.append(f"STATIC_ROOT {static} is writable by the app user (releases must be read-only)")
    return problems


def main():
    report = {}
    for name, probe in (("database", database), ("migrations", unapplied_migrations),
                        ("static", missing_static_files), ("templates", template_errors),
                        ("permissions", directory_permissions)):
        try:
            report[name] = probe()
        except Exception as exc:  # noqa: BLE001 - a probe that crashes is a finding
            report[name] = [f"probe failed: {type(exc).__name__}: {exc}"]
    print(MARKER + json.dumps(report))


main()
