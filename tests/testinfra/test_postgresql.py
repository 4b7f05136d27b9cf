"""The postgresql role on the db group: the server up on its addresses only, strict files,
backups scheduled into a private directory."""

from __future__ import annotations

from conftest import assert_enabled_and_running, assert_owned, hosts_of, listening

testinfra_hosts = hosts_of("db")


def _cluster(expect) -> str:
    return f"{expect['postgresql_version']}-{expect['postgresql_cluster']}"


def test_server_enabled_and_running(host, expect):
    assert host.service("postgresql").is_enabled
    assert host.service(f"postgresql@{_cluster(expect)}").is_running


def test_listens_on_loopback_and_the_container_address_only(host, expect, address):
    port = expect["postgresql_port"]
    sockets = {s for s in listening(host) if s.endswith(f":{port}")}
    assert sockets == {f"127.0.0.1:{port}", f"{address}:{port}"}


def test_configuration_files_are_private_to_postgres(host, expect):
    directory = f"/etc/postgresql/{expect['postgresql_version']}/{expect['postgresql_cluster']}"
    assert_owned(host, f"{directory}/pg_hba.conf", "postgres", "postgres", 0o640)
    errors = host.check_output(
        "cd / && runuser -u postgres -- psql -p %s -Atc %s", str(expect["postgresql_port"]),
        "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL")
    assert errors == "0", "pg_hba.conf has rules PostgreSQL rejects"


def test_backups_scheduled_into_a_private_directory(host, expect):
    assert_enabled_and_running(host, "scheduler-db-backup.timer")
    assert_owned(host, expect["postgresql_backup_dir"], "postgres", "postgres", 0o700)
