"""What the app role promises, seen by an operator on each app container (the service,
where it listens, owners and modes of the release layout, retention) and by the
service's users (health, pages, static files and login through the proxy).

molecule.yml: mol-app-db (CT 209), mol-app-1 and mol-app-2 (CT 210, 211), mol-app-proxy
(CT 212). converge deploys app/VERSION through the stage playbooks, side_effect.yml rolls
out two newer releases with app_keep_releases 2. Requests go to the lab addresses only.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex

import pytest
import requests
from conftest import APP_ADDRESSES, DB_ADDRESS, EPHEMERAL, KEEP_RELEASES, PROJECT, PROXY_ADDRESS

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

APP_ROOT = "/srv/scheduler"
APP_USER = APP_GROUP = "scheduler"
ENV_FILE = f"{APP_ROOT}/shared/app.env"
CURRENT = f"{APP_ROOT}/current"
SECRETS = PROJECT / ".lab" / "secrets"
PROXY = f"https://{PROXY_ADDRESS}"


def manage(app, *args: str):
    """manage.py of the current release, as the service runs it: the app user, the shared
    environment file and the release's own."""
    script = (f"set -a && . {ENV_FILE} && . {CURRENT}/release.env && set +a && "
              f"exec {CURRENT}/venv/bin/python {CURRENT}/src/manage.py {shlex.join(args)}")
    return app.run("cd / && runuser -u %s -- bash -c %s", APP_USER, script)


def as_app_user(app, command: str):
    return app.run("cd / && runuser -u %s -- sh -c %s", APP_USER, command)


def env_file_values(app) -> dict[str, str]:
    lines = app.check_output("cat %s", ENV_FILE).splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def digest(text: str) -> str:
    """Secrets are compared by digest, so a failing assertion cannot print one."""
    return hashlib.sha256(text.strip().encode()).hexdigest()


def proxy_get(session: requests.Session, path: str, **kwargs) -> requests.Response:
    # The proxy's certificate is self-signed (the proxy scenario verifies it).
    return session.get(PROXY + path, verify=False, timeout=10, **kwargs)


# --- the service ------------------------------------------------------------------------


def test_service_enabled_and_running_as_the_unprivileged_app_user(app):
    service = app.service("scheduler")
    assert service.is_enabled
    assert service.is_running
    main_pid = app.check_output("systemctl show -p MainPID --value scheduler")
    users = app.check_output("ps -o user= -p %s --ppid %s", main_pid, main_pid).split()
    assert len(users) == 4  # the gunicorn master and app_gunicorn_workers (3)
    assert set(users) == {APP_USER}
    account = app.user(APP_USER)
    assert 0 < account.uid < 1000  # a system account
    assert account.shell == "/usr/sbin/nologin"
    assert account.home == APP_ROOT


def test_gunicorn_listens_on_the_container_address_only(app, app_address):
    listening = app.check_output("ss -H -ltnp").splitlines()
    local = {line.split()[3] for line in listening}
    assert {address.rsplit(":", 1)[1] for address in local} == {"22", "8000"}, listening
    app_sockets = [line for line in listening if line.split()[3].endswith(":8000")]
    assert [line.split()[3] for line in app_sockets] == [f"{app_address}:8000"]
    assert '"gunicorn"' in app_sockets[0]
    # Not on loopback either: only the proxy (and monitoring) reach gunicorn.
    assert app.run("curl -s -o /dev/null --max-time 5 http://127.0.0.1:8000/health/").rc == 7


def test_health_answers_with_the_database_ok_and_the_deployed_version(app_address, versions):
    response = requests.get(f"http://{app_address}:8000/health/", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "database": "ok", "version": versions[-1]}


# --- the release layout -----------------------------------------------------------------


def test_current_is_a_symlink_to_the_newest_release(app, versions):
    current = app.file(CURRENT)
    assert current.is_symlink
    assert current.linked_to == f"{APP_ROOT}/releases/{versions[-1]}"
    assert app.file(f"{CURRENT}/release.env").content_string.splitlines()[0] == f"APP_VERSION={versions[-1]}"
    # The running gunicorn was started from it.
    main_pid = app.check_output("systemctl show -p MainPID --value scheduler")
    interpreter = app.check_output("ps -o args= -p %s", main_pid).split()[0]
    assert interpreter == f"{APP_ROOT}/releases/{versions[-1]}/venv/bin/python3"


def test_releases_are_owned_by_root_and_read_only_for_the_app_user(app, versions):
    for version in versions[-KEEP_RELEASES:]:
        release = f"{APP_ROOT}/releases/{version}"
        directory = app.file(release)
        assert (directory.user, directory.group, directory.mode) == ("root", APP_GROUP, 0o755)
        assert app.check_output("find %s ! -user root -printf '%%p\\n'", release) == ""
        # Nothing in a release (code, venv, static files) can be changed by the service.
        writable = as_app_user(app, f"find {release} -writable -printf '%p\\n'")
        assert writable.rc == 0, writable.stderr
        assert writable.stdout == ""
        assert app.file(f"{release}/.installed").exists
    layout = {path: app.file(f"{APP_ROOT}{path}") for path in ("", "/releases")}
    for path, directory in layout.items():
        assert (directory.user, directory.group, directory.mode) == ("root", APP_GROUP, 0o755), path


def test_only_the_newest_releases_are_kept(app, versions):
    kept = app.check_output("ls -A %s/releases", APP_ROOT).split()
    assert sorted(kept) == sorted(versions[-KEEP_RELEASES:])
    assert not app.check_output("find %s -maxdepth 1 -name '*.partial*' -o -maxdepth 1 -name 'current.*'",
                                APP_ROOT)


def test_shared_environment_file_is_private_to_root_and_the_app(app):
    shared = app.file(f"{APP_ROOT}/shared")
    assert (shared.user, shared.group, shared.mode) == ("root", APP_GROUP, 0o750)
    env_file = app.file(ENV_FILE)
    assert (env_file.user, env_file.group, env_file.mode) == ("root", APP_GROUP, 0o640)
    assert as_app_user(app, f"test -r {ENV_FILE}").rc == 0
    assert as_app_user(app, f"test -w {ENV_FILE}").rc != 0
    assert app.run("cd / && runuser -u nobody -- cat %s", ENV_FILE).rc != 0


def test_environment_carries_the_lab_secrets_and_the_container_binding(app, app_address):
    values = env_file_values(app)
    assert digest(values["DB_PASSWORD"]) == digest((SECRETS / "postgresql_app_password").read_text())
    assert digest(values["DJANGO_SECRET_KEY"]) == digest((SECRETS / "django_secret_key").read_text())
    assert values["GUNICORN_BIND"] == f"{app_address}:8000"
    assert values["DB_HOST"] == DB_ADDRESS
    assert values["DJANGO_CSRF_TRUSTED_ORIGINS"] == PROXY


def test_media_directory_is_writable_by_the_app_user_inside_the_service(app):
    media = app.file(f"{APP_ROOT}/shared/media")
    assert (media.user, media.group, media.mode) == ("scheduler", APP_GROUP, 0o750)
    # In the unit's own mount namespace (ProtectSystem=full, ReadWritePaths) and as its user.
    main_pid = app.check_output("systemctl show -p MainPID --value scheduler")
    account = app.user(APP_USER)
    in_service = (f"nsenter -t {main_pid} -m --setuid={account.uid} --setgid={account.gid} ")
    probe = f"{APP_ROOT}/shared/media/.molecule-probe"
    assert app.run(in_service + "touch %s", probe).rc == 0
    try:
        assert app.file(probe).user == APP_USER
    finally:
        app.run("rm -f %s", probe)
    assert app.run(in_service + "touch %s/src/.molecule-probe", CURRENT).rc != 0


# --- Django -----------------------------------------------------------------------------


def test_deploy_checks_pass_with_the_environment_file(app):
    check = manage(app, "check", "--deploy", "--fail-level", "WARNING")
    assert check.rc == 0, check.stdout + check.stderr
    assert "System check identified no issues" in check.stdout


def test_database_schema_is_migrated(app):
    pending = manage(app, "migrate", "--check", "--noinput")
    assert pending.rc == 0, pending.stdout + pending.stderr


def test_the_first_migration_was_preceded_by_a_database_backup(db, versions):
    record = json.loads((EPHEMERAL / "deploy" / f"backup-{versions[0]}.json").read_text())
    assert record["host"] == "mol-app-db"
    dump_name = rf"scheduler-pre-{re.escape(versions[0])}-\d{{8}}T\d{{6}}Z\.dump"
    assert re.fullmatch(rf"/var/backups/postgresql/{dump_name}", record["path"])
    listing = db.check_output("pg_restore --list %s", record["path"])
    assert ";     dbname: scheduler" in listing
    # Taken before the first migration: the dump has none of the app's tables yet.
    assert "events_event" not in listing
    # Later releases had nothing to migrate, so nothing was backed up for them.
    assert not [v for v in versions[1:] if (EPHEMERAL / "deploy" / f"backup-{v}.json").exists()]


def test_static_files_are_collected_into_the_release(app, versions):
    static = f"{APP_ROOT}/releases/{versions[-1]}/static"
    manifest = json.loads(app.file(f"{static}/staticfiles.json").content_string)
    hashed = manifest["paths"]["scheduler/site.css"]
    assert re.fullmatch(r"scheduler/site\.[0-9a-f]{12}\.css", hashed)
    stylesheet = app.file(f"{static}/{hashed}")
    assert stylesheet.is_file
    assert stylesheet.user == "root"


def test_pages_render_with_the_hashed_static_files(app_address):
    # As the proxy forwards an HTTPS request: a page needs the release's static manifest.
    response = requests.get(f"http://{app_address}:8000/accounts/login/", timeout=10,
                            headers={"X-Forwarded-Proto": "https"}, allow_redirects=False)
    assert response.status_code == 200
    assert re.search(r'href="/static/scheduler/site\.[0-9a-f]{12}\.css"', response.text)


# --- through the proxy ------------------------------------------------------------------


def test_proxy_serves_the_releases_static_files(app, versions):
    static = f"{APP_ROOT}/releases/{versions[-1]}/static"
    hashed = json.loads(app.file(f"{static}/staticfiles.json").content_string)["paths"]["scheduler/site.css"]
    response = proxy_get(requests.Session(), f"/static/{hashed}")
    assert response.status_code == 200
    assert response.content == app.file(f"{static}/{hashed}").content


def test_administrator_logs_in_through_the_proxy():
    session = requests.Session()
    form = proxy_get(session, "/accounts/login/")
    assert form.status_code == 200
    login = session.post(
        f"{PROXY}/accounts/login/", verify=False, timeout=10, allow_redirects=False,
        headers={"Referer": f"{PROXY}/accounts/login/"},
        data={"csrfmiddlewaretoken": session.cookies["csrftoken"], "username": "admin",
              "password": (SECRETS / "app_admin_password").read_text().strip()})
    assert login.status_code == 302, login.text[-2000:]
    assert login.headers["Location"] == "/"
    dashboard = proxy_get(session, "/", allow_redirects=False)
    assert dashboard.status_code == 200
    assert "Log out admin" in dashboard.text


def test_every_app_container_is_back_in_rotation_after_the_rollouts(proxy):
    state = json.loads(proxy.file("/etc/ansible/facts.d/proxy.fact").content_string)
    assert sorted(state["upstream"]["servers"]) == sorted(f"{a}:8000" for a in APP_ADDRESSES.values())
    assert state.get("drained", []) == []
