"""The app role on the app group: gunicorn enabled and running as the unprivileged app user
on the container address, the release layout's owners and modes."""

from __future__ import annotations

from conftest import assert_enabled_and_running, assert_owned, hosts_of, listening

testinfra_hosts = hosts_of("app")


def test_service_enabled_and_running_as_the_app_user(host, expect):
    assert_enabled_and_running(host, expect["app_name"])
    main_pid = host.check_output("systemctl show -p MainPID --value %s", expect["app_name"])
    users = set(host.check_output("ps -o user= -p %s --ppid %s", main_pid, main_pid).split())
    assert users == {expect["app_user"]}


def test_gunicorn_listens_on_the_container_address(host, expect, address):
    port = expect["app_port"]
    assert {s for s in listening(host) if s.endswith(f":{port}")} == {f"{address}:{port}"}


def test_current_release_is_a_root_owned_release(host, expect):
    root = expect["app_root"]
    current = host.file(f"{root}/current")
    assert current.is_symlink
    assert current.linked_to.startswith(f"{root}/releases/")
    assert_owned(host, current.linked_to, "root", expect["app_group"], 0o755)


def test_environment_file_is_private(host, expect):
    root = expect["app_root"]
    assert_owned(host, f"{root}/shared", "root", expect["app_group"], 0o750)
    assert_owned(host, f"{root}/shared/app.env", "root", expect["app_group"], 0o640)


def test_media_directory_belongs_to_the_app_user(host, expect):
    assert_owned(host, f"{expect['app_root']}/shared/media", expect["app_user"], expect["app_group"], 0o750)
