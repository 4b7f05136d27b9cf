"""The app's release build, proven the way the deploy uses it.

A release is built (or reused from .cache/app-release/ when the app's source has not
changed), copied the way the app role copies it, installed into a fresh virtualenv
with --no-index and no network, and then runs the app's own test suite,
`check --deploy` and gunicorn with two workers sharing their metrics.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import importlib.util
import json
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
CACHE = ROOT / ".cache" / "app-release"
# The containers' interpreter: Debian 12's python3.11. Where this machine has it, the
# release is proven with exactly that; elsewhere with the interpreter running pytest.
DEBIAN_PYTHON = Path("/usr/bin/python3.11")
PINNED_PROJECTS = {"django", "gunicorn", "psycopg", "psycopg_binary", "prometheus_client"}


def load_build_release() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_release", APP / "build_release.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build_release = load_build_release()


def target_python() -> str:
    return str(DEBIAN_PYTHON) if DEBIAN_PYTHON.exists() else sys.executable


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without anything that could steer pip or Django."""
    return build_release.isolated_environment(**extra)


@functools.cache
def without_network() -> tuple[str, ...]:
    """A prefix that runs a command in an empty network namespace, where this machine allows it."""
    if shutil.which("unshare") is None:
        return ()
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    return ("unshare", "--net") if probe.returncode == 0 else ()


def run_build(version: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(APP / "build_release.py"), "--version", version, "--out", str(out),
         "--python", target_python(), *extra],
        capture_output=True, text=True, timeout=600, check=False,
    )


def must(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def release() -> Path:
    """A release of the current source, cached by its source hash across runs."""
    source_sha256 = build_release.tree_sha256(APP)
    version = f"test-{source_sha256[:16]}"
    out = CACHE / "releases"
    if out.is_dir():
        for stale in out.iterdir():
            if stale.name in (version, f".{version}.lock"):
                continue
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
    result = must(run_build(version, out))
    assert result.stdout.startswith(("built release", "reusing release")), result.stdout
    return out / version


@pytest.fixture(scope="module")
def deployed(release: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The release copied as the app role does (wheelhouse + src), its venv installed offline."""
    home = tmp_path_factory.mktemp("deploy") / "releases" / release.name
    home.mkdir(parents=True)
    shutil.copytree(release / "wheelhouse", home / "wheelhouse")
    shutil.copytree(release / "src", home / "src")
    must(subprocess.run([target_python(), "-m", "venv", str(home / "venv")], capture_output=True, text=True,
                        timeout=300, check=False))
    python = home / "venv" / "bin" / "python"
    must(subprocess.run(
        [*without_network(), str(python), "-m", "pip", "install", "--no-index", "--find-links",
         str(home / "wheelhouse"), "--requirement", str(home / "src" / "requirements.txt")],
        capture_output=True, text=True, env=clean_environment(), timeout=300, check=False,
    ))
    return home, python


def production_environment(**extra: str) -> dict[str, str]:
    return clean_environment(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="scheduler.example.test,10.92.3.11",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://scheduler.example.test",
        DB_NAME="scheduler", DB_USER="scheduler", DB_PASSWORD=secrets.token_urlsafe(24),
        DB_HOST="db1.invalid",
        DJANGO_STATIC_ROOT="/srv/scheduler/shared/static", DJANGO_MEDIA_ROOT="/srv/scheduler/shared/media",
        APP_VERSION="2031.05.1", **extra,
    )


# --- the build -------------------------------------------------------------------

def test_release_holds_wheels_source_static_and_manifest(release: Path) -> None:
    manifest = json.loads((release / "release.json").read_text())
    assert manifest["version"] == release.name
    assert manifest["source_sha256"] == build_release.tree_sha256(APP)
    assert len(manifest["git_commit"] or "0" * 40) == 40

    wheels = sorted(path.name for path in (release / "wheelhouse").iterdir())
    assert wheels == sorted(wheel["file"] for wheel in manifest["wheels"])
    assert {name.split("-")[0].lower() for name in wheels} >= PINNED_PROJECTS
    for name in wheels:
        assert name.endswith(("-py3-none-any.whl", "x86_64.whl")), name
        assert "cp3" not in name or "-cp311-" in name, name

    assert (release / "requirements.txt").read_bytes() == (APP / "requirements.txt").read_bytes()
    assert (release / "src" / "manage.py").is_file()
    assert (release / "src" / "events" / "migrations" / "0002_event_slug.py").is_file()
    assert not (release / "src" / "build_release.py").exists()
    assert not [p for p in (release / "src").rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"]

    static_manifest = json.loads((release / "static" / "staticfiles.json").read_text())
    hashed_css = static_manifest["paths"]["scheduler/site.css"]
    assert hashed_css != "scheduler/site.css"
    assert (release / "static" / hashed_css).read_bytes() == (APP / "static/scheduler/site.css").read_bytes()


def test_a_rebuild_of_the_same_source_reuses_the_build(release: Path) -> None:
    before = (release / "release.json").read_text()
    wheelhouse_inode = (release / "wheelhouse").stat().st_ino
    result = must(run_build(release.name, release.parent))
    assert result.stdout.startswith(f"reusing release {release.name} at {release}")
    assert (release / "release.json").read_text() == before
    assert (release / "wheelhouse").stat().st_ino == wheelhouse_inode


@pytest.mark.parametrize(
    "version", ["", "-1", ".hidden", "_x", "a/b", "../etc", "x" * 65, "1.0 ", "v1\n", "ü1"]
)
def test_invalid_versions_are_refused(version: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid version"):
        build_release.release_version(version)


def test_the_command_line_refuses_an_invalid_version_before_touching_anything(tmp_path: Path) -> None:
    out = tmp_path / "releases"
    result = run_build("../escape", out)
    assert result.returncode == 2
    assert "argument --version: invalid version '../escape'" in result.stderr
    assert "letters, digits" in result.stderr
    assert not out.exists()


def test_longest_valid_version_is_accepted() -> None:
    assert build_release.release_version("A" + "b._-9" * 12 + "xyz") == "A" + "b._-9" * 12 + "xyz"


def copy_release(release: Path, out: Path) -> Path:
    copy = out / release.name
    shutil.copytree(release, copy)
    return copy


def test_the_same_version_from_another_source_is_refused(release: Path, tmp_path: Path) -> None:
    copy = copy_release(release, tmp_path)
    (copy / "src" / "static" / "scheduler" / "site.css").write_text("/* another source */\n")
    manifest = json.loads((copy / "release.json").read_text())
    manifest["source_sha256"] = build_release.tree_sha256(copy / "src")
    (copy / "release.json").write_text(json.dumps(manifest))

    result = run_build(release.name, tmp_path)
    assert result.returncode == 1
    assert f"release {release.name} in {copy} was built from another source" in result.stderr
    assert "choose a new version, or pass --force" in result.stderr
    assert (copy / "src" / "static" / "scheduler" / "site.css").read_text() == "/* another source */\n"


@pytest.mark.slow
def test_a_partial_build_is_replaced(release: Path, tmp_path: Path) -> None:
    copy = copy_release(release, tmp_path)
    (copy / "release.json").unlink()
    shutil.rmtree(copy / "static")

    result = must(run_build(release.name, tmp_path))
    assert f"replacing {copy}: no release.json" in result.stderr
    assert result.stdout.startswith(f"built release {release.name}")
    manifest = json.loads((copy / "release.json").read_text())
    assert manifest["source_sha256"] == build_release.tree_sha256(APP)
    assert (copy / "static" / "staticfiles.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []


# --- the installed release ---------------------------------------------------------

@pytest.mark.slow
def test_the_apps_own_suite_passes_in_the_offline_venv(deployed: tuple[Path, Path]) -> None:
    home, python = deployed
    result = subprocess.run(
        [*without_network(), str(python), "manage.py", "test", "--noinput"],
        cwd=home / "src", capture_output=True, text=True, env=clean_environment(), timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    ran = [line for line in result.stderr.splitlines() if line.startswith("Ran ")]
    assert len(ran) == 1, result.stderr[-2000:]
    assert int(ran[0].split()[1]) >= 50, ran[0]


@pytest.mark.slow
def test_check_deploy_is_clean_with_a_production_environment(deployed: tuple[Path, Path]) -> None:
    home, python = deployed
    result = subprocess.run(
        [str(python), "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=home / "src", env=production_environment(), capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (1 silenced)." in result.stdout


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over gunicorn's Unix socket: no port to pick, no race for one."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=10)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self.socket_path))
        self.sock = sock


def get(socket_path: Path, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    connection = UnixHTTPConnection(socket_path)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("Location", "")
    finally:
        connection.close()


@pytest.fixture
def gunicorn(deployed: tuple[Path, Path], tmp_path: Path) -> Iterator[Path]:
    home, python = deployed
    environ = clean_environment(
        DJANGO_SQLITE_PATH=str(tmp_path / "db.sqlite3"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        DJANGO_STATIC_ROOT=str(tmp_path / "static"),
        APP_VERSION="2031.05.1",
    )
    # As the app role does before it starts gunicorn.
    for step in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        must(subprocess.run(
            [str(python), "manage.py", *step], cwd=home / "src", env=environ,
            capture_output=True, text=True, timeout=120, check=False,
        ))
    socket_path = tmp_path / "gunicorn.sock"
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [str(home / "venv" / "bin" / "gunicorn"), "--config", str(home / "src" / "gunicorn.conf.py"),
         "--bind", f"unix:{socket_path}", "--workers", "2"],
        cwd=tmp_path, env=environ, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        # Ready when both workers have loaded the app: each then has its own metric files.
        deadline = time.monotonic() + 30
        while not socket_path.exists() or len(list((tmp_path / "metrics").glob("gauge_livemax_*.db"))) < 2:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{(tmp_path / 'gunicorn.log').read_text()}")
            time.sleep(0.1)
        yield socket_path
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_gunicorn_workers_add_up_their_metrics(gunicorn: Path, tmp_path: Path) -> None:
    for _ in range(12):
        status, body, _ = get(gunicorn, "/health/")
        assert status == 200
        assert json.loads(body) == {"status": "ok", "database": "ok", "version": "2031.05.1"}
    # Through the proxy (X-Forwarded-Proto: https), the dashboard asks for a login.
    status, _, location = get(gunicorn, "/", {"X-Forwarded-Proto": "https"})
    assert (status, location) == (302, "/accounts/login/?next=/")
    status, body, _ = get(gunicorn, location, {"X-Forwarded-Proto": "https"})
    assert status == 200
    assert re.search(rb'href="/static/scheduler/site\.[0-9a-f]{12}\.css"', body), body[:600]

    status, body, _ = get(gunicorn, "/metrics")
    assert status == 200
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    health = sum(
        sample.value for sample in families["scheduler_http_requests"].samples
        if sample.name == "scheduler_http_requests_total" and sample.labels["view"] == "health"
    )
    # Whichever worker answered, the scrape adds up both workers' files.
    assert health == 12
    assert {s.labels["version"] for s in families["scheduler_build_info"].samples} == {"2031.05.1"}
