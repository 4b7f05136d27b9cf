"""What the postgresql role promises, seen by the application (logging in from its
container), by an attacker (logging in from anywhere else) and by an operator (backups
that restore, metrics monitoring can alert on)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from conftest import CLIENT_ADDRESS, DB_ADDRESS
from prometheus_client.parser import text_string_to_metric_families

DATABASE = "scheduler"
APP_USER = "scheduler"
BACKUP_DIR = "/var/backups/postgresql"
PROM_FILE = "/var/lib/prometheus/node-exporter/scheduler_backup.prom"
PASSWORD_FILE = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"], ".lab", "secrets", "postgresql_app_password")
DUMP_NAME = re.compile(rf"^{BACKUP_DIR}/{DATABASE}-(pre-[A-Za-z0-9._-]+-)?[0-9]{{8}}T[0-9]{{6}}Z\.dump$")


@pytest.fixture(scope="module")
def password() -> str:
    return PASSWORD_FILE.read_text().strip()


def _psql(machine, conninfo: str, password: str, sql: str = "SELECT current_user"):
    """psql as the application would connect: a libpq connection string and a password."""
    return machine.run("PGPASSWORD=%s PGCONNECT_TIMEOUT=10 psql %s -XAtc %s", password, conninfo, sql)


def _admin_sql(host, sql: str, database: str = "postgres") -> str:
    return host.check_output("cd / && runuser -u postgres -- psql -XAt -d %s -c %s", database, sql)


# --- the server -------------------------------------------------------------------------


def test_server_enabled_and_running(host):
    assert host.service("postgresql").is_enabled
    assert host.service("postgresql@15-main").is_running
    assert _admin_sql(host, "SHOW server_version").startswith("15.")


def test_listens_on_loopback_and_the_container_address_only(host):
    sockets = host.check_output("ss -H -ltn | awk '{print $4}'").split()
    assert sorted(s for s in sockets if s.endswith(":5432")) == [f"{DB_ADDRESS}:5432", "127.0.0.1:5432"]
    assert {s.rsplit(":", 1)[1] for s in sockets} == {"22", "5432"}


def test_configuration_files(host):
    hba = host.file("/etc/postgresql/15/main/pg_hba.conf")
    assert (hba.user, hba.group, hba.mode) == ("postgres", "postgres", 0o640)
    settings = host.file("/etc/postgresql/15/main/conf.d/50-ansible.conf")
    assert (settings.user, settings.mode) == ("postgres", 0o644)
    assert _admin_sql(host, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL") == "0"
    assert _admin_sql(host, "SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL") == "0"
    assert _admin_sql(host, "SHOW password_encryption") == "scram-sha-256"
    # No leftover of the check-then-restore dance next to pg_hba.conf.
    assert host.check_output("ls /etc/postgresql/15/main").split() == [
        "conf.d", "environment", "pg_ctl.conf", "pg_hba.conf", "pg_ident.conf", "postgresql.conf",
        "start.conf"]


# --- who may log in ---------------------------------------------------------------------


def test_app_logs_in_from_the_app_container_over_tls(client, password):
    result = _psql(client, f"host={DB_ADDRESS} dbname={DATABASE} user={APP_USER} sslmode=require", password,
                   "SELECT current_user || ' ' || ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == f"{APP_USER} true"


def test_app_can_create_tables_in_its_database(client, password):
    result = _psql(client, f"host={DB_ADDRESS} dbname={DATABASE} user={APP_USER}", password,
                   "CREATE TABLE verify_probe (id int); DROP TABLE verify_probe; SELECT 'ok'")
    assert result.rc == 0, result.stderr
    assert result.stdout.split()[-1] == "ok"


def test_wrong_password_is_refused(client):
    result = _psql(client, f"host={DB_ADDRESS} dbname={DATABASE} user={APP_USER}", "not-the-password")
    assert result.rc != 0
    assert f'password authentication failed for user "{APP_USER}"' in result.stderr


def test_plaintext_connection_is_refused(client, password):
    result = _psql(client, f"host={DB_ADDRESS} dbname={DATABASE} user={APP_USER} sslmode=disable", password)
    assert result.rc != 0
    assert f'pg_hba.conf rejects connection for host "{CLIENT_ADDRESS}"' in result.stderr


@pytest.mark.parametrize(("dbname", "user"), [("postgres", APP_USER), (DATABASE, "postgres")])
def test_app_container_reaches_only_the_app_database_as_the_app_user(client, password, dbname, user):
    result = _psql(client, f"host={DB_ADDRESS} dbname={dbname} user={user} sslmode=require", password)
    assert result.rc != 0
    assert "pg_hba.conf rejects connection" in result.stderr


@pytest.mark.parametrize("address", [DB_ADDRESS, "127.0.0.1"])
def test_other_source_addresses_are_refused_even_with_the_password(host, password, address):
    # From the database container itself: the source address is not an app container's.
    result = _psql(host, f"host={address} dbname={DATABASE} user={APP_USER} sslmode=require", password)
    assert result.rc != 0
    assert f'pg_hba.conf rejects connection for host "{address}"' in result.stderr


def test_local_socket_only_for_the_postgres_superuser(host, password):
    result = _psql(host, f"host=/var/run/postgresql dbname={DATABASE} user={APP_USER}", password)
    assert result.rc != 0
    assert 'pg_hba.conf rejects connection for host "[local]"' in result.stderr


def test_public_cannot_connect_to_the_app_database(host):
    acl = _admin_sql(host, "SELECT datacl::text FROM pg_database WHERE datname = 'scheduler'")
    assert "=c" not in acl.replace(f"{APP_USER}=", "")  # no CONNECT for PUBLIC ("=c/...")


def test_lab_password_file_is_private():
    assert PASSWORD_FILE.stat().st_mode & 0o077 == 0
    assert len(PASSWORD_FILE.read_text().strip()) == 32


# --- backups ----------------------------------------------------------------------------


def test_backup_timer_enabled_and_scheduled(host):
    timer = host.service("scheduler-db-backup.timer")
    assert timer.is_enabled
    assert timer.is_running
    assert host.check_output("systemctl show -p NextElapseUSecRealtime --value scheduler-db-backup.timer")


def test_backup_directory_is_private(host):
    backups = host.file(BACKUP_DIR)
    assert (backups.user, backups.group, backups.mode) == ("postgres", "postgres", 0o700)


def test_backup_command_writes_a_restorable_private_dump(host):
    before = int(time.time())
    path = host.check_output("/usr/local/sbin/scheduler-db-backup")
    assert DUMP_NAME.match(path), path
    dump = host.file(path)
    assert (dump.user, dump.group, dump.mode) == ("postgres", "postgres", 0o600)
    listing = host.check_output("pg_restore --list %s", path)
    assert "TABLE DATA public molecule_marker" in listing
    assert not host.check_output("find %s -name '*.partial'", BACKUP_DIR)
    metrics = _metrics(host)
    assert metrics[("scheduler_db_backup_last_success_timestamp_seconds", "scheduled")] >= before - 5


def test_scheduled_run_through_systemd(host):
    count = len(_dumps(host, scheduled=True))
    # Two dumps must not share a second (names carry the time); the unit is oneshot, so
    # `systemctl start` returns when the dump is done.
    time.sleep(1.1)
    host.check_output("systemctl start scheduler-db-backup.service")
    assert host.check_output("systemctl show -p Result --value scheduler-db-backup.service") == "success"
    assert len(_dumps(host, scheduled=True)) in {count + 1, 2}  # retention keeps >= keep_min (2)


def test_retention_removes_old_scheduled_dumps_and_keeps_the_newest(host):
    old = [f"{BACKUP_DIR}/{DATABASE}-20200101T000000Z.dump", f"{BACKUP_DIR}/{DATABASE}-20200102T000000Z.dump"]
    for path in old:
        host.check_output("install -o postgres -g postgres -m 0600 /dev/null %s", path)
    time.sleep(1.1)
    newest = host.check_output("/usr/local/sbin/scheduler-db-backup")
    remaining = _dumps(host, scheduled=True)
    assert not set(old) & set(remaining)
    assert newest in remaining
    assert len(remaining) >= 2


def test_pre_migration_dumps_kept_by_count(host):
    # side_effect took three (molecule-0.1..0.3) with postgresql_backup_pre_keep: 2.
    pre = [Path(p).name.rsplit("-", 1)[0] for p in _dumps(host, scheduled=False)]
    assert pre == [f"{DATABASE}-pre-molecule-0.2", f"{DATABASE}-pre-molecule-0.3"]


def test_backup_refuses_a_bad_label(host):
    result = host.run("/usr/local/sbin/scheduler-db-backup %s", "../../etc/passwd")
    assert result.rc == 2
    assert "invalid label" in result.stderr


def test_metrics_file_for_the_node_exporter(host):
    prom = host.file(PROM_FILE)
    assert (prom.user, prom.mode) == ("root", 0o644)
    metrics = _metrics(host)
    now = time.time()
    for kind in ("scheduled", "pre_migration"):
        assert now - 3600 < metrics[("scheduler_db_backup_last_success_timestamp_seconds", kind)] <= now + 5
    assert metrics[("scheduler_db_backup_files", "pre_migration")] == 2


# --- restore (driven by side_effect.yml through tasks_from: backup / restore) ------------


def test_restore_brought_back_the_data_before_the_migration(host):
    notes = _admin_sql(host, "SELECT string_agg(note, ',') FROM molecule_marker", DATABASE)
    assert notes == "before-migration"
    assert _admin_sql(host, "SELECT to_regclass('molecule_added_by_migration') IS NULL", DATABASE) == "t"
    assert _admin_sql(host, "SELECT tableowner FROM pg_tables WHERE tablename = 'molecule_marker'",
                      DATABASE) == APP_USER


def test_restore_kept_the_replaced_data_closed(host):
    row = _admin_sql(host, "SELECT datallowconn, pg_get_userbyid(datdba) FROM pg_database "
                           "WHERE datname = 'scheduler_replaced'")
    assert row == f"f|{APP_USER}"
    leftover = _admin_sql(host, "SELECT count(*) FROM pg_database WHERE datname = 'scheduler_restoring'")
    assert leftover == "0"


# --- helpers ----------------------------------------------------------------------------


def _dumps(host, *, scheduled: bool) -> list[str]:
    pattern = f"{DATABASE}-[0-9]*.dump" if scheduled else f"{DATABASE}-pre-*.dump"
    listing = host.check_output("find %s -maxdepth 1 -name %s | sort", BACKUP_DIR, pattern)
    return listing.split()


def _metrics(host) -> dict[tuple[str, str], float]:
    text = host.file(PROM_FILE).content_string
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, sample.labels.get("kind", ""))] = sample.value
            assert sample.labels["database"] == DATABASE
    return samples
