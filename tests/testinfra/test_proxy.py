"""The proxy role on the proxy group: nginx enabled, running, valid configuration, the
listeners, a private TLS key and a world-readable static root."""

from __future__ import annotations

from conftest import assert_enabled_and_running, assert_owned, hosts_of, listening

testinfra_hosts = hosts_of("proxy")


def test_nginx_enabled_running_and_its_configuration_valid(host):
    assert_enabled_and_running(host, "nginx")
    check = host.run("nginx -t")
    assert check.rc == 0, check.stderr


def test_listens_on_http_and_https(host, expect):
    ports = {s.rsplit(":", 1)[1] for s in listening(host)}
    assert {str(expect["proxy_http_port"]), str(expect["proxy_https_port"])} <= ports


def test_tls_key_is_private(host):
    assert_owned(host, "/etc/nginx/tls", "root", "root", 0o750)
    assert_owned(host, "/etc/nginx/tls/scheduler.key", "root", "root", 0o600)


def test_static_root_is_readable_and_holds_a_manifest(host, expect):
    assert_owned(host, expect["proxy_static_root"], "root", "root", 0o755)
    assert host.file(f"{expect['proxy_static_root']}/staticfiles.json").is_file
    # Nothing under it is writable by anyone but root.
    assert host.check_output("find %s -perm /022 -printf '%%p\\n'", expect["proxy_static_root"]) == ""
