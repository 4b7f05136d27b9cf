"""The base role on every container: SSH hardened and running, the admin account, sudo,
time zone, persistent journal, a clean boot."""

from __future__ import annotations

from conftest import assert_enabled_and_running, assert_owned, hosts_of

testinfra_hosts = hosts_of("pve_lxc")


# sshd -T prints the old spelling of some values.
_SSHD_SYNONYMS = {"prohibit-password": "without-password"}


def test_ssh_enabled_running_and_hardened(host, expect):
    assert_enabled_and_running(host, "ssh")
    effective = set(host.check_output("sshd -T").splitlines())
    root_login = expect["base_ssh_permit_root_login"]
    assert {"passwordauthentication no", "kbdinteractiveauthentication no",
            f"permitrootlogin {_SSHD_SYNONYMS.get(root_login, root_login)}"} <= effective


def test_admin_account_logs_in_with_keys_only(host, expect):
    user = expect["base_admin_user"]
    if not user:
        return
    account = host.user(user)
    assert account.exists, f"admin account {user} is missing"
    assert account.password.startswith(("!", "*")), "the account has a usable password"
    assert_owned(host, f"{account.home}/.ssh", user, account.group, 0o700)
    assert_owned(host, f"{account.home}/.ssh/authorized_keys", user, account.group, 0o600)


def test_sudoers_drop_ins_are_valid_and_private(host):
    assert host.run("visudo -c").rc == 0
    for path in host.check_output("find /etc/sudoers.d -type f ! -name README").split():
        assert_owned(host, path, "root", "root", 0o440)


def test_time_zone_and_journal(host, expect):
    assert host.check_output("timedatectl show -p Timezone --value") == expect["base_timezone"]
    if expect["base_journald_storage"] == "persistent":
        assert host.file("/var/log/journal").is_directory
    assert host.service("systemd-journald").is_running


def test_no_failed_units(host):
    failed = host.check_output("systemctl list-units --state=failed --no-legend --plain")
    assert failed == "", f"failed units: {failed}"
