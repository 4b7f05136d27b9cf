"""Issue 4 acceptance on the lab: the service answers through the proxy over HTTPS."""

from __future__ import annotations

import re

import pytest
import requests
import urllib3
from labtools import REPO, changed_by_host, failures, run_playbook

pytestmark = pytest.mark.slow
PROXY = "https://10.92.3.110"
# The proxy's certificate is self-signed by the proxy role (no operator certificate in the lab).
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


@pytest.fixture(scope="module")
def converged(site_converged):
    """The session's full site.yml run (conftest.py), verify stage included."""
    return site_converged


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = False
    return session


def test_health_through_the_proxy_reports_the_database(converged):
    resp = _session().get(f"{PROXY}/health/", timeout=10)
    assert resp.status_code == 200
    assert resp.json()["database"] == "ok"
    assert resp.headers["Strict-Transport-Security"]


def test_http_redirects_to_https(converged):
    resp = _session().get("http://10.92.3.110/", timeout=10, allow_redirects=False)
    assert resp.status_code in (301, 308)
    assert resp.headers["Location"].startswith("https://")


def test_login_works(converged):
    password = (REPO / ".lab" / "secrets" / "app_admin_password").read_text().split()[0]
    session = _session()
    page = session.get(f"{PROXY}/accounts/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    resp = session.post(f"{PROXY}/accounts/login/", timeout=10,
                        data={"username": "admin", "password": password,
                              "csrfmiddlewaretoken": token},
                        headers={"Referer": f"{PROXY}/accounts/login/"})
    assert resp.status_code == 200
    assert "/accounts/login/" not in resp.url
    assert session.get(f"{PROXY}/", timeout=10, allow_redirects=False).status_code == 200


def test_second_run_changes_nothing(converged):
    code, result, stderr = run_playbook("site.yml")
    assert code == 0, failures(result, stderr)
    assert set(changed_by_host(result).values()) == {0}, changed_by_host(result)
