"""What the base role promises, seen the way an operator meets it: logging in over SSH,
sudo, the clock, the journal, the accounts and files they would inspect."""

from __future__ import annotations

import subprocess

import pytest
from conftest import ADDRESS


def _ssh(user: str, *options: str, command: str = "true") -> subprocess.CompletedProcess[str]:
    """Log in from the controller like an operator would (no agent, no config file)."""
    argv = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
            "-o", "IdentityAgent=none", *options, f"{user}@{ADDRESS}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_admin_logs_in_with_key_and_gets_root_through_sudo(lab_key):
    result = _ssh("deploy", "-i", lab_key, "-o", "IdentitiesOnly=yes", command="sudo -n id -u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_non_sudo_account_logs_in_but_gets_no_sudo(lab_key):
    result = _ssh("auditor", "-i", lab_key, "-o", "IdentitiesOnly=yes", command="sudo -n true")
    assert result.returncode != 0
    assert "password is required" in result.stderr or "may not run sudo" in result.stderr


@pytest.mark.parametrize("user", ["root", "deploy"])
def test_ssh_refuses_password_logins(user):
    result = _ssh(user, "-o", "PubkeyAuthentication=no",
                  "-o", "PreferredAuthentications=password,keyboard-interactive")
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr


def test_root_still_logs_in_with_its_key(lab_key):
    result = _ssh("root", "-i", lab_key, "-o", "IdentitiesOnly=yes", command="id -un")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "root"


def test_sshd_effective_settings(host):
    settings = set(host.check_output("sshd -T").splitlines())
    assert {"passwordauthentication no", "kbdinteractiveauthentication no",
            "permitemptypasswords no", "permitrootlogin without-password",
            "authenticationmethods publickey", "x11forwarding no", "maxauthtries 3"} <= settings
    assert host.service("ssh").is_enabled
    assert host.service("ssh").is_running


def test_sshd_listens_on_port_22_only(host):
    listening = host.check_output("ss -H -ltn | awk '{print $4}'").split()
    assert sorted({addr.rsplit(":", 1)[1] for addr in listening}) == ["22"]


def test_accounts_have_locked_passwords_and_exactly_their_keys(host):
    for user in ("deploy", "auditor"):
        assert host.user(user).exists
        assert host.user(user).password.startswith(("!", "*"))
        keys = host.file(f"/home/{user}/.ssh/authorized_keys")
        assert keys.user == user
        assert keys.mode == 0o600
        assert len(keys.content_string.strip().splitlines()) == 1
    assert host.file("/home/deploy/.ssh").mode == 0o700
    assert {"adm", "systemd-journal"} <= set(host.user("deploy").groups)
    assert not host.user("retired").exists


def test_sudoers_drop_in_is_valid_and_private(host):
    sudoers = host.file("/etc/sudoers.d/base-admins")
    assert sudoers.user == "root"
    assert sudoers.group == "root"
    assert sudoers.mode == 0o440
    assert "deploy ALL=(ALL:ALL) NOPASSWD: ALL" in sudoers.content_string
    assert "auditor" not in sudoers.content_string
    assert host.run("visudo -c").rc == 0


def test_time_zone(host):
    assert host.check_output("timedatectl show -p Timezone --value") == "Europe/Berlin"
    assert host.check_output("date +%Z") in {"CET", "CEST"}


def test_no_time_sync_daemon_in_a_container(host):
    assert host.check_output("systemd-detect-virt") == "lxc"
    for unit in ("systemd-timesyncd", "chrony"):
        assert not host.service(unit).is_running


def test_journal_is_persistent_and_capped(host):
    journald = host.service("systemd-journald")
    assert journald.is_running
    assert host.file("/var/log/journal").is_directory
    # journald reports the cap it applies when it opens the system journal.
    opened = host.check_output("journalctl -b -u systemd-journald -o cat --grep 'System Journal' | tail -n1")
    assert "max 96.0M" in opened


def test_login_session_gets_the_locale(lab_key):
    # pam_env reads /etc/default/locale at login; the client sends no LANG of its own.
    result = _ssh("deploy", "-i", lab_key, "-o", "IdentitiesOnly=yes", command="locale")
    assert result.returncode == 0, result.stderr
    assert "LANG=C.UTF-8" in result.stdout.splitlines()


def test_motd_names_the_host(host):
    motd = host.file("/etc/motd")
    assert motd.mode == 0o644
    assert "mol-base - attendant scheduler" in motd.content_string


def test_apt_does_not_update_by_itself(host):
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        assert host.check_output(f"systemctl is-enabled {timer} || true") == "masked"
        assert not host.service(timer).is_running
    periodic = host.check_output("apt-config dump APT::Periodic")
    assert 'APT::Periodic::Update-Package-Lists "0";' in periodic
    assert 'APT::Periodic::Unattended-Upgrade "0";' in periodic


def test_boot_is_clean(host):
    assert host.check_output("systemctl is-system-running || true") == "running"
