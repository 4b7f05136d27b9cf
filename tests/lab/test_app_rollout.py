"""Issue 4 acceptance: rolling deploys of new releases on the lab, good and bad.

Each release is a copy of app/ changed the way a developer would change it (a migration,
a broken deploy check, a broken WSGI entry point), built and rolled out by site.yml with
`-e app_source_dir=... -e app_version=...`, exactly as an operator ships the real app.
The lab ends where it started: the module's last step redeploys app/VERSION. The release
with the migration goes out through site.yml, the failing ones through the app stage alone.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import threading
import time
from collections import Counter
from http.client import RemoteDisconnected
from pathlib import Path

import pytest
import requests
import urllib3
from labtools import REPO, copy_lab_inventory, failures, run_playbook, ssh, task_ok

pytestmark = pytest.mark.slow
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

PROXY = "https://10.92.3.110"
APP_HOSTS = {"app1": "10.92.3.121", "app2": "10.92.3.122"}
APP_ROOT = "/srv/scheduler"
BASE_VERSION = (REPO / "app" / "VERSION").read_text().strip()
# Fixed names: the same source builds the same release again ("reusing"), so reruns are cheap.
MIGRATION_VERSION = f"{BASE_VERSION}-test-migration"
BROKEN_CHECK_VERSION = f"{BASE_VERSION}-test-broken-check"
BROKEN_WSGI_VERSION = f"{BASE_VERSION}-test-broken-wsgi"
BROKEN_PAGE_VERSION = f"{BASE_VERSION}-test-broken-page"
REPAIR_VERSION = f"{BASE_VERSION}-test-repair"
SNAPSHOT_VERSION = f"{BASE_VERSION}-test-snapshot"

MIGRATION = '''from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("events", "0002_event_slug")]
    operations = [
        migrations.AddField(
            model_name="event", name="briefing", field=models.TextField(blank=True, db_default="")
        ),
    ]
'''
# A row written before the deploy that a rollback's database restore must keep.
ROW_BEFORE_DEPLOY = (
    "import datetime as d; from django.utils import timezone as tz; from events.models import Event; "
    "now = tz.now(); Event.objects.get_or_create(name='written before the deploy', "
    "defaults={'starts_at': now, 'ends_at': now + d.timedelta(hours=1)})"
)
COUNT_ROWS = ("from events.models import Event; "
              "print(Event.objects.filter(name='written before the deploy').count())")
BROKEN_DEPLOY_CHECK = '''

from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def deliberately_broken(app_configs, **kwargs):
    return [checks.Warning("this test release fails its deploy checks", id="scheduler.W900")]
'''


def app_copy(tmp: Path, name: str) -> Path:
    source = tmp / name
    shutil.copytree(REPO / "app", source, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "*.sqlite3", ".venv", "staticfiles", "media"))
    return source


def deploy(source: Path, version: str, playbook: str = "playbooks/app.yml",
           *args: str) -> tuple[int, dict, str]:
    """Ship a release; the failure cases run the app stage alone (the rest is converged)."""
    return run_playbook(playbook, None, "-e", f"app_source_dir={source}", "-e", f"app_version={version}",
                        *args)


# How an operator ships and verifies a release on a converged stack: site.yml's snapshot,
# promotion, app and verify stages (with the automatic rollback), nothing else.
SHIP_AND_VERIFY = ("--tags", "app,verify")


def on_app(creds: dict, host: str, command: str) -> str:
    done = ssh(creds, APP_HOSTS[host], command)
    assert done.returncode == 0, f"{host}: {command}: {done.stderr}"
    return done.stdout.strip()


def current_release(creds: dict, host: str) -> str:
    return Path(on_app(creds, host, f"readlink {APP_ROOT}/current")).name


def releases_on(creds: dict, host: str) -> set[str]:
    return set(on_app(creds, host, f"ls {APP_ROOT}/releases").split())


def session() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    http.verify = False  # the proxy's self-signed certificate (no operator certificate in the lab)
    return http


def served_versions(count: int = 6) -> set[str]:
    """Versions /health/ reports through the proxy over a few requests (both upstreams)."""
    http = session()
    versions = set()
    for _ in range(count):
        resp = http.get(f"{PROXY}/health/", timeout=10)
        assert resp.status_code == 200, resp.text
        versions.add(resp.json()["version"])
    return versions


def manage(creds: dict, host: str, version: str, args: str) -> str:
    release = f"{APP_ROOT}/releases/{version}"
    return on_app(creds, host, (
        f"set -a && . {APP_ROOT}/shared/app.env && . {release}/release.env && set +a && "
        f"runuser -u scheduler -- {release}/venv/bin/python {release}/src/manage.py {args}"))


@pytest.fixture(scope="module")
def base(creds, site_converged):
    """The stack converged on app/VERSION; afterwards put back there, schema included."""
    yield
    if MIGRATION_VERSION in releases_on(creds, "app1"):
        applied = manage(creds, "app1", MIGRATION_VERSION, "showmigrations events")
        if "[X] 0003_event_briefing" in applied:
            manage(creds, "app1", MIGRATION_VERSION, "migrate events 0002 --no-input")
    code, result, stderr = run_playbook("playbooks/app.yml")
    assert code == 0, failures(result, stderr)


def test_release_failing_before_the_switch_leaves_the_old_one_serving(base, creds, tmp_path):
    source = app_copy(tmp_path, "broken-check")
    with (source / "scheduler" / "apps.py").open("a") as apps:
        apps.write(BROKEN_DEPLOY_CHECK)

    code, result, stderr = deploy(source, BROKEN_CHECK_VERSION)

    assert code != 0
    report = failures(result, stderr)
    assert "could not be installed on app1" in report, report
    assert "Nothing was switched" in report, report
    assert "scheduler.W900" in report, report
    assert BROKEN_CHECK_VERSION not in releases_on(creds, "app1")  # the half-built one is gone
    assert current_release(creds, "app1") == BASE_VERSION
    assert BROKEN_CHECK_VERSION not in releases_on(creds, "app2")  # the rollout stopped at app1
    assert served_versions() == {BASE_VERSION}


def test_release_failing_health_after_the_switch_is_switched_back(base, creds, tmp_path):
    source = app_copy(tmp_path, "broken-wsgi")
    with (source / "scheduler" / "wsgi.py").open("a") as wsgi:
        wsgi.write('\nraise RuntimeError("this test release cannot serve")\n')

    code, result, stderr = deploy(source, BROKEN_WSGI_VERSION)

    assert code != 0
    report = failures(result, stderr)
    assert f"release {BROKEN_WSGI_VERSION} failed after the switch on app1" in report, report
    assert f"app1 was switched back to {BASE_VERSION}" in report, report
    assert "the rollout stopped here" in report, report
    assert current_release(creds, "app1") == BASE_VERSION
    assert BROKEN_WSGI_VERSION not in releases_on(creds, "app2")
    # app1 is back in the proxy's rotation: both upstreams answer, on the old release.
    proxy_state = ssh(creds, "10.92.3.110", "cat /etc/ansible/facts.d/proxy.fact").stdout
    assert json.loads(proxy_state)["drained"] == [], proxy_state
    assert served_versions() == {BASE_VERSION}


def closed_while_idle(exc: requests.RequestException) -> bool:
    """The server closed a kept-alive connection just as the request went out on it.

    nginx closes its idle keep-alive connections when a reload retires the old workers;
    a request sent in that instant meets a closed socket before any byte of a response.
    HTTP lets a client retry an idempotent request then (RFC 9112, 9.3.1) and browsers do,
    so users never see it. A refused or timed-out connection is a real failure.
    """
    cause = exc.__context__
    while cause is not None:
        if isinstance(cause, RemoteDisconnected | ConnectionResetError | BrokenPipeError):
            return True
        cause = cause.__context__
    return False


class Load(threading.Thread):
    """About `rate` requests per second through the proxy until stopped (at most `limit` s).

    Like a browser, it retries a GET once when a kept-alive connection was closed under it
    (closed_while_idle); those retries are counted in `retried`, not hidden.
    """

    def __init__(self, password: str, rate: float = 20.0, limit: float = 900.0,
                 paths: list[str] | None = None) -> None:
        super().__init__(daemon=True)
        self.password, self.interval, self.limit, self.paths = password, 1.0 / rate, limit, paths
        self.stop = threading.Event()
        self.outcomes: Counter[str] = Counter()
        self.failed: list[str] = []
        self.retried = 0

    def login(self, http: requests.Session) -> list[str]:
        """Log in; the pages to cycle through (the given ones, or a mix with a static file)."""
        page = http.get(f"{PROXY}/accounts/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        http.post(f"{PROXY}/accounts/login/", timeout=10,
                  data={"username": "admin", "password": self.password, "csrfmiddlewaretoken": token},
                  headers={"Referer": f"{PROXY}/accounts/login/"})
        stylesheet = re.search(r'href="(/static/[^"]+\.css)"', page.text).group(1)
        return self.paths or ["/", "/health/", "/events/", "/reports/", stylesheet]

    def get(self, http: requests.Session, path: str) -> requests.Response:
        try:
            return http.get(f"{PROXY}{path}", timeout=10, allow_redirects=False)
        except requests.ConnectionError as exc:
            if not closed_while_idle(exc):
                raise
            self.retried += 1
            return http.get(f"{PROXY}{path}", timeout=10, allow_redirects=False)

    def run(self) -> None:
        http = session()
        paths = self.login(http)
        started, sent = time.monotonic(), 0
        while not self.stop.is_set() and time.monotonic() - started < self.limit:
            path = paths[sent % len(paths)]
            try:
                outcome = str(self.get(http, path).status_code)
                detail = outcome
            except requests.RequestException as exc:
                outcome, detail = type(exc).__name__, repr(exc)[:300]
            self.outcomes[outcome] += 1
            if outcome != "200":
                self.failed.append(f"{time.monotonic() - started:.1f}s {path}: {detail}")
            sent += 1
            self.stop.wait(max(0.0, started + sent * self.interval - time.monotonic()))


def test_new_version_with_a_migration_rolls_out_under_load_without_a_failed_request(base, creds, tmp_path):
    source = app_copy(tmp_path, "migration")
    models = source / "events" / "models.py"
    models.write_text(models.read_text().replace(
        '    description = models.TextField(blank=True)\n',
        '    description = models.TextField(blank=True)\n'
        '    briefing = models.TextField(blank=True, db_default="")\n', 1))
    (source / "events" / "migrations" / "0003_event_briefing.py").write_text(MIGRATION)
    password = (REPO / ".lab" / "secrets" / "app_admin_password").read_text().split()[0]

    manage(creds, "app1", BASE_VERSION, "shell -c " + shlex.quote(ROW_BEFORE_DEPLOY))

    load = Load(password)
    load.start()
    try:
        code, result, stderr = deploy(source, MIGRATION_VERSION, "site.yml", *SHIP_AND_VERIFY)
    finally:
        load.stop.set()
        load.join(timeout=30)

    assert code == 0, failures(result, stderr)
    assert sum(load.outcomes.values()) >= 200, load.outcomes  # the load ran through the rollout
    assert load.failed == [], (load.outcomes, f"retried: {load.retried}", load.failed[:20])
    assert {host: current_release(creds, host) for host in APP_HOSTS} == dict.fromkeys(APP_HOSTS,
                                                                                       MIGRATION_VERSION)
    assert "[X] 0003_event_briefing" in manage(creds, "app2", MIGRATION_VERSION, "showmigrations events")
    assert served_versions() == {MIGRATION_VERSION}


def test_rollback_returns_to_the_previous_release_and_restores_its_schema(base, creds):
    """Runs after the migration test: rollback.yml undoes that release and its migration."""
    assert current_release(creds, "app1") == MIGRATION_VERSION, "needs the release of the test above"

    code, result, stderr = run_playbook("rollback.yml")

    assert code == 0, failures(result, stderr)
    assert {host: current_release(creds, host) for host in APP_HOSTS} == dict.fromkeys(APP_HOSTS,
                                                                                       BASE_VERSION)
    assert served_versions() == {BASE_VERSION}
    # The release that migrated is undone with its migration (pre-migration backup restored);
    # rows written before the deploy are still there; the undone release is kept on disk.
    migrations = manage(creds, "app1", MIGRATION_VERSION, "showmigrations events")
    assert "[ ] 0003_event_briefing" in migrations, migrations
    assert manage(creds, "app2", BASE_VERSION, "shell -c " + shlex.quote(COUNT_ROWS)).splitlines()[-1] == "1"
    assert MIGRATION_VERSION in releases_on(creds, "app1")


def test_rollback_with_nothing_to_roll_back_to_refuses_and_changes_nothing(creds, tmp_path):
    # The same containers under another inventory name, which has no release record yet.
    inventory = copy_lab_inventory(tmp_path).rename(tmp_path / "project" / "inventories" / "lab-fresh")
    before = {host: current_release(creds, host) for host in APP_HOSTS}

    code, result, stderr = run_playbook("rollback.yml", inventory)

    assert code != 0
    assert "nothing to roll back to: no release has been deployed" in failures(result, stderr)
    assert {host: current_release(creds, host) for host in APP_HOSTS} == before


def test_release_failing_verification_is_rolled_back_automatically_without_a_failed_request(base, creds,
                                                                                            tmp_path):
    """A release with a migration whose reports page answers 500: the deploy itself succeeds
    (health is fine), site.yml's verification finds the 5xx, and the automatic rollback puts
    the previous release and the database back while users keep being served."""
    source = app_copy(tmp_path, "broken-page")
    models = source / "events" / "models.py"
    models.write_text(models.read_text().replace(
        '    description = models.TextField(blank=True)\n',
        '    description = models.TextField(blank=True)\n'
        '    briefing = models.TextField(blank=True, db_default="")\n', 1))
    (source / "events" / "migrations" / "0003_event_briefing.py").write_text(MIGRATION)
    with (source / "events" / "views.py").open("a") as views:
        views.write('\n\ndef reports(request):\n    raise RuntimeError("this release breaks one page")\n')
    password = (REPO / ".lab" / "secrets" / "app_admin_password").read_text().split()[0]
    manage(creds, "app1", BASE_VERSION, "shell -c " + shlex.quote(ROW_BEFORE_DEPLOY))

    load = Load(password, paths=["/", "/health/", "/events/"])  # users who never open the broken page
    load.start()
    try:
        code, result, stderr = deploy(source, BROKEN_PAGE_VERSION, "site.yml", *SHIP_AND_VERIFY)
    finally:
        load.stop.set()
        load.join(timeout=30)

    report = failures(result, stderr)
    assert code != 0
    assert f"release {BROKEN_PAGE_VERSION} failed verification and was rolled back automatically" \
        in report, report
    assert "/reports/" in report, report  # what failed
    assert f"What was restored: release {BASE_VERSION}" in report, report
    assert "the database from" in report, report
    assert f"Verification of {BASE_VERSION} after the rollback:\npassed" in report, report
    assert {host: current_release(creds, host) for host in APP_HOSTS} == dict.fromkeys(APP_HOSTS,
                                                                                       BASE_VERSION)
    assert served_versions() == {BASE_VERSION}
    assert "[ ] 0003_event_briefing" in manage(creds, "app1", BROKEN_PAGE_VERSION, "showmigrations events")
    assert manage(creds, "app2", BASE_VERSION, "shell -c " + shlex.quote(COUNT_ROWS)).splitlines()[-1] == "1"
    assert sum(load.outcomes.values()) >= 200, load.outcomes
    assert load.failed == [], (load.outcomes, f"retried: {load.retried}", load.failed[:20])


def test_down_host_behind_a_healthy_one_is_rolled_out_first_and_repaired(base, creds, tmp_path):
    """app2 down, app1 serving. In inventory order the rollout would start with app1, and
    its drain must refuse (app2 is no healthy server to leave in rotation), so site.yml could
    never repair app2. The rollout takes the down host first instead."""
    # Paused, app2's QoS daemon does not repair it before the rollout does.
    on_app(creds, "app2", "/usr/local/bin/qosd pause --for 300 --reason test && systemctl stop scheduler")
    try:
        code, result, stderr = deploy(app_copy(tmp_path, "repair"), REPAIR_VERSION)
    finally:
        ssh(creds, APP_HOSTS["app2"], "/usr/local/bin/qosd resume; systemctl start scheduler")

    assert code == 0, failures(result, stderr)
    assert "rolled out first: app2" in json.dumps(result)
    assert {host: current_release(creds, host) for host in APP_HOSTS} == dict.fromkeys(APP_HOSTS,
                                                                                       REPAIR_VERSION)
    assert served_versions() == {REPAIR_VERSION}


def test_snapshot_rollback_restores_a_container_file_changed_after_the_deploy(base, creds, pve, tmp_path):
    """rollback.yml -e rollback_mode=snapshot: the app and db containers go back to the PVE
    snapshot the snapshot stage took before the release, files and all. A snapshot of the
    same name from an earlier deploy of that version is replaced, not restored."""
    before = current_release(creds, "app1")
    snapname = ("predeploy-" + re.sub(r"[^A-Za-z0-9_-]", "-", SNAPSHOT_VERSION))[:40]
    if snapname not in {snap["name"] for snap in pve.nodes("pve1").lxc(121).snapshot.get()}:
        task_ok(pve, "pve1", pve.nodes("pve1").lxc(121).snapshot.post(snapname=snapname))
    on_app(creds, "app1", "touch /root/written-before-the-deploy")
    # --tags app: the snapshot stage and the app stage, the rest of the stack is converged.
    code, result, stderr = run_playbook(
        "site.yml", None, "-e", f"app_source_dir={app_copy(tmp_path, 'snapshot')}",
        "-e", f"app_version={SNAPSHOT_VERSION}", "--tags", "app")
    assert code == 0, failures(result, stderr)
    assert current_release(creds, "app1") == SNAPSHOT_VERSION
    motd = on_app(creds, "app1", "cat /etc/motd")
    on_app(creds, "app1", "echo changed after the deploy > /etc/motd && touch /root/written-after-the-deploy")

    code, result, stderr = run_playbook("rollback.yml", None, "-e", "rollback_mode=snapshot")

    assert code == 0, failures(result, stderr)
    assert on_app(creds, "app1", "cat /etc/motd") == motd
    assert on_app(creds, "app1", "ls /root/written-after-the-deploy 2>/dev/null || echo gone") == "gone"
    assert on_app(creds, "app1", "ls /root/written-before-the-deploy 2>/dev/null || echo gone") != "gone"
    on_app(creds, "app1", "rm /root/written-before-the-deploy")
    assert {host: current_release(creds, host) for host in APP_HOSTS} == dict.fromkeys(APP_HOSTS, before)
    assert served_versions() == {before}
