"""What the proxy role promises, seen by its users: clients on the lab network, the
monitoring host, the app servers behind it and the rolling deploy that drains them.

The verifier runs these against mol-proxy (CT 206); mol-proxy-app-1 and -2 (CT 207, 208)
run the stand-in app from prepare.yml, and mol-proxy-app-2 is also the monitoring proxy.
Requests go to the lab addresses only. Tests that run playbooks do so the way operators
and the rolling deploy do (the stage playbook, the role's `upstream` entry point).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import testinfra
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

PROXY_IP = "10.92.3.206"
APP1_IP, APP2_IP = "10.92.3.207", "10.92.3.208"
APP1, APP2 = "mol-proxy-app-1", "mol-proxy-app-2"
HTTPS = f"https://{PROXY_IP}"
INVENTORY = str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)
PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
SCENARIO = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
NGINX_FILES = ["/etc/nginx/nginx.conf", "/etc/nginx/scheduler-upstream.conf"]


def get(path: str, **kwargs) -> requests.Response:
    """One request from the controller (10.92.3.1), on a new connection."""
    # The proxy's certificate is self-signed: test_certificate_names_the_proxy_and_verifies
    # checks it; the other tests are about what comes over the connection.
    return requests.get(HTTPS + path, verify=False, timeout=10, **kwargs)  # noqa: S501


def backends(count: int = 10) -> Counter:
    """Which app servers answered `count` requests to the app."""
    answers = [get("/who") for _ in range(count)]
    assert all(r.status_code == 200 for r in answers), [r.status_code for r in answers]
    return Counter(r.json()["backend"] for r in answers)


@dataclass
class Run:
    returncode: int
    output: str  # stdout and stderr (where failed tasks go), whitespace collapsed


def playbook(path: Path, *args: str) -> Run:
    """ansible-playbook on the scenario's inventory, in the verifier's environment."""
    proc = subprocess.run(["ansible-playbook", "-i", INVENTORY, str(path), *args],
                          cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False)
    return Run(proc.returncode, " ".join((proc.stdout + proc.stderr).split()))


def set_drained(servers: list[str]) -> Run:
    """Run the role's `upstream` entry point like the rolling deploy (see upstream.yml)."""
    return playbook(SCENARIO / "upstream.yml", "-e", json.dumps({"drain": servers}))


def curl_status(client, url: str) -> str:
    """HTTP status of a request made from inside a lab container."""
    return client.check_output(f"curl -sk -o /dev/null -w '%{{http_code}}' --max-time 10 {url}")


@pytest.fixture(scope="module")
def container(tmp_path_factory):
    """Open a lab container over SSH with the lab's key, one multiplexed connection each.
    (testinfra's ansible backend does not template the inventory's
    `{{ _lab.ssh_private_key }}`: it only gets in while an Ansible ControlPersist
    connection to the host happens to be open.)"""
    key = json.loads((PROJECT / ".lab" / "credentials.json").read_text())["ssh_private_key"]
    sockets = tmp_path_factory.mktemp("ssh")

    def open_host(address: str):
        return testinfra.get_host(
            f"ssh://root@{address}", ssh_identity_file=key, controlpath=str(sockets / address),
            ssh_extra_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
                           " -o LogLevel=ERROR")

    return open_host


@pytest.fixture(scope="module")
def proxy(container):
    return container(PROXY_IP)


@pytest.fixture(scope="module")
def app1(container):
    return container(APP1_IP)


@pytest.fixture(scope="module")
def app2(container):
    return container(APP2_IP)


def test_nginx_enabled_running_and_configuration_valid(proxy):
    nginx = proxy.service("nginx")
    assert nginx.is_enabled
    assert nginx.is_running
    assert proxy.run("nginx -t").rc == 0


def test_nginx_listens_on_80_443_and_status_on_the_proxy_address_only(proxy):
    listening = {line.split()[3] for line in
                 proxy.check_output("ss -ltnpH | grep '\"nginx\"'").splitlines()}
    assert listening == {"0.0.0.0:80", "0.0.0.0:443", f"{PROXY_IP}:8080"}


def test_files_owners_and_modes(proxy):
    for path in NGINX_FILES:
        config = proxy.file(path)
        assert (config.user, config.group, config.mode) == ("root", "root", 0o644), path
    key = proxy.file("/etc/nginx/tls/scheduler.key")
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600)
    assert proxy.file("/etc/nginx/tls").mode == 0o750
    assert not proxy.file("/etc/nginx/sites-enabled/default").exists


def test_http_redirects_to_https(proxy):
    answer = requests.get(f"http://{PROXY_IP}/event/7/report?week=3", allow_redirects=False,
                          timeout=10)
    assert answer.status_code == 301
    assert answer.headers["Location"] == f"{HTTPS}/event/7/report?week=3"


def test_https_answers_with_the_security_headers():
    answer = get("/dashboard/")
    assert answer.status_code == 200
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    # the app sends its own X-Frame-Options: the proxy's replaces it, nothing is doubled
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    csp = answer.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert answer.headers["Server"] == "nginx"  # server_tokens off: no version


def test_certificate_names_the_proxy_and_verifies(proxy, tmp_path):
    pem = proxy.file("/etc/nginx/tls/scheduler.crt").content_string
    names = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert "mol-proxy" in names.get_values_for_type(x509.DNSName)
    assert PROXY_IP in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    anchor = tmp_path / "proxy.pem"
    anchor.write_text(pem)
    assert requests.get(HTTPS + "/", verify=str(anchor), timeout=10).status_code == 200


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_old_tls_versions_are_refused_by_the_server():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    with (socket.create_connection((PROXY_IP, 443), timeout=10) as raw,
          pytest.raises(ssl.SSLError, match=r"(?i)alert protocol version")):
        context.wrap_socket(raw)  # the server's alert: the client offered TLSv1.1
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    with (socket.create_connection((PROXY_IP, 443), timeout=10) as raw,
          context.wrap_socket(raw) as tls):
        assert tls.version() == "TLSv1.2"


def test_the_app_receives_the_client_scheme_and_request_id():
    answer = get("/event/3/", headers={"X-Forwarded-For": "203.0.113.9"})
    seen = answer.json()["headers"]
    assert seen["X-Forwarded-Proto"] == "https"
    assert seen["X-Forwarded-For"] == "10.92.3.1"  # a client's own value is not trusted
    assert seen["Host"] == PROXY_IP
    assert seen["X-Request-ID"] == answer.headers["X-Request-ID"]
    assert len(answer.headers["X-Request-ID"]) == 32


def test_access_log_records_upstream_timing(proxy):
    request_id = get("/event/4/").headers["X-Request-ID"]
    # nginx writes the line just after the response: look a few times
    line = proxy.check_output(
        f"for i in $(seq 50); do grep {request_id} /var/log/nginx/scheduler-access.log && break;"
        " sleep 0.1; done")
    assert "upstream=10.92.3.20" in line
    assert "upstream_response_time=" in line


def test_requests_are_balanced_over_both_app_servers():
    assert set(backends()) == {APP1, APP2}


def test_static_files_served_by_nginx_with_cache_headers():
    answer = get("/static/css/site.css")
    assert answer.status_code == 200
    assert answer.text == "body { color: #222; }\n"
    assert answer.headers["Cache-Control"] == "max-age=2592000"
    assert "Expires" in answer.headers
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_static_file_missing_on_the_proxy_is_asked_from_the_app():
    answer = get("/static/js/new-release.js")
    assert answer.status_code == 200
    assert answer.json()["path"] == "/static/js/new-release.js"


def test_metrics_and_admin_refused_to_clients_not_allowed(app1, app2):
    for path in ("/metrics", "/metrics/django", "/admin/", "/admin/login/?next=/admin/"):
        assert get(path).status_code == 403, path
        assert curl_status(app1, f"'{HTTPS}{path}'") == "403", path
    # the monitoring host reaches /metrics, not the admin
    assert curl_status(app2, f"{HTTPS}/metrics") == "200"
    assert curl_status(app2, f"{HTTPS}/admin/") == "403"


def test_stub_status_only_for_monitoring_and_the_proxy(proxy, app1, app2):
    status_url = f"http://{PROXY_IP}:8080/stub_status"
    assert "Active connections" in app2.check_output(f"curl -s --max-time 10 {status_url}")
    assert "Active connections" in proxy.check_output(f"curl -s --max-time 10 {status_url}")
    assert curl_status(app1, status_url) == "403"
    assert requests.get(status_url, timeout=10).status_code == 403
    assert proxy.run("curl -s --max-time 5 http://127.0.0.1:8080/stub_status").rc == 7  # not bound


def test_rate_limit_answers_429_beyond_the_burst(proxy):
    # 60 requests in a row on one keep-alive connection, from the proxy itself (client
    # 127.0.0.1, not exempt): the first 1 + burst (20) pass at once, then the 10 r/s rate
    # lets only a few through and the rest are refused with 429.
    codes = proxy.check_output(
        "curl -sk -w '%{http_code}\\n'" + " -o /dev/null https://127.0.0.1/" * 60).split()
    assert len(codes) == 60
    assert codes[:21] == ["200"] * 21, codes
    assert set(codes[21:]) <= {"200", "429"}, codes
    assert codes.count("429") >= 20, codes


def test_rate_limit_exempt_client_is_never_limited():
    # the controller is in proxy_rate_limit_exempt_clients in this scenario
    codes = Counter(get("/").status_code for _ in range(60))
    assert codes == Counter({200: 60})


def test_operator_certificate_not_matching_its_key_is_refused(tmp_path):
    def key():
        return ec.generate_private_key(ec.SECP256R1())

    cert_key, other_key = key(), key()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "scheduler.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(cert_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=90))
            .sign(cert_key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(other_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    run = playbook(PROJECT / "playbooks/proxy.yml", "--tags", "proxy_preflight",
                   "-e", f"proxy_tls_certificate={tmp_path / 'cert.pem'}",
                   "-e", f"proxy_tls_private_key={tmp_path / 'key.pem'}")
    assert run.returncode != 0
    assert "is expired or does not belong to proxy_tls_private_key" in run.output, run.output[-3000:]


def test_invalid_configuration_never_replaces_the_running_one(proxy):
    before = {path: proxy.file(path).sha256sum for path in NGINX_FILES}
    master = proxy.file("/run/nginx.pid").content_string
    run = playbook(PROJECT / "playbooks/proxy.yml", "--tags", "proxy_configure",
                   "-e", "proxy_client_max_body_size=10zz")
    assert run.returncode != 0
    assert "Test the complete candidate configuration" in run.output
    assert '"client_max_body_size" directive invalid value' in run.output, run.output[-3000:]
    assert {path: proxy.file(path).sha256sum for path in NGINX_FILES} == before
    assert proxy.file("/run/nginx.pid").content_string == master
    assert get("/").status_code == 200


class Load(threading.Thread):
    """Steady requests from the controller, each on a new connection, until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.statuses: Counter = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                self.statuses[get("/load").status_code] += 1
            except requests.RequestException as error:
                self.statuses[type(error).__name__] += 1


def test_drain_sends_everything_to_the_other_server_and_restore_brings_it_back(proxy):
    upstream_before = proxy.file("/etc/nginx/scheduler-upstream.conf").sha256sum
    load = Load()
    load.start()
    slow: list[int] = []
    in_flight = threading.Thread(target=lambda: slow.append(get("/slow/8/").status_code))
    in_flight.start()  # an 8 s request, in flight while nginx reloads
    try:
        drained = set_drained([APP1_IP])
        assert drained.returncode == 0, drained.output[-3000:]
        assert not in_flight.is_alive()  # the entry point returned after it finished
        assert backends() == Counter({APP2: 10})
        fact = json.loads(proxy.file("/etc/ansible/facts.d/proxy.fact").content_string)
        assert fact["drained"] == [f"{APP1_IP}:8000"]  # ansible_local.proxy.drained

        restored = set_drained([])
        assert restored.returncode == 0, restored.output[-3000:]
        assert set(backends()) == {APP1, APP2}
    finally:
        load.stop.set()
        load.join()
        in_flight.join()
    assert slow == [200]
    assert set(load.statuses) == {200}, load.statuses  # no request failed meanwhile
    assert load.statuses[200] >= 20
    assert proxy.file("/etc/nginx/scheduler-upstream.conf").sha256sum == upstream_before


def test_drain_refuses_unknown_servers_and_draining_every_server(proxy):
    before = proxy.file("/etc/nginx/scheduler-upstream.conf").sha256sum
    unknown = set_drained(["10.92.3.209"])
    assert unknown.returncode != 0
    assert "must name servers of the upstream" in unknown.output
    everything = set_drained([APP1_IP, APP2_IP])
    assert everything.returncode != 0
    assert "leave at least one in rotation" in everything.output
    assert proxy.file("/etc/nginx/scheduler-upstream.conf").sha256sum == before


def test_drain_refuses_to_take_the_last_healthy_server_out_of_rotation(proxy, app2):
    before = proxy.file("/etc/nginx/scheduler-upstream.conf").sha256sum
    app2.run("systemctl stop standin-app")
    try:
        run = playbook(SCENARIO / "upstream.yml", "-e",
                       json.dumps({"drain": [APP1_IP], "proxy_upstream_health_retries": 1}))
    finally:
        app2.run("systemctl start standin-app")
    assert run.returncode != 0
    assert "would leave no healthy server in rotation" in run.output
    assert proxy.file("/etc/nginx/scheduler-upstream.conf").sha256sum == before


def wait_until_both_servers_answer(timeout: float = 15) -> None:
    """The stand-in app is a simple unit: `systemctl start` returns before it listens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if set(backends(10)) == {APP1, APP2}:
                return
        except (AssertionError, requests.RequestException):
            pass
        assert time.monotonic() < deadline, f"{APP1} and {APP2} did not both answer within {timeout} s"
        time.sleep(0.5)


# Last: a stopped server stays out of rotation for fail_timeout after it comes back.
def test_requests_fail_over_when_an_app_server_stops(app1):
    # With the other server not listening yet, the request would find no server at all.
    wait_until_both_servers_answer()
    app1.run("systemctl stop standin-app")
    try:
        assert backends(20) == Counter({APP2: 20})  # every request succeeded
    finally:
        app1.run("systemctl start standin-app")
