"""The public endpoints through the proxy, as a user and a probe see them."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from verify.html import parse_page
from verify.results import CheckResult


@dataclass
class EndpointSettings:
    base_url: str
    http_url: str
    health_path: str = "/health/"
    login_path: str = "/accounts/login/"
    expected_version: str = ""
    restricted_paths: list[str] = field(default_factory=list)
    timeout: float = 10.0
    verify: bool | str = True


def _get(session: requests.Session, url: str, settings: EndpointSettings,
         **kwargs: object) -> requests.Response | str:
    try:
        return session.get(url, timeout=settings.timeout, **kwargs)  # type: ignore[arg-type]
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"


def _health(result: CheckResult, session: requests.Session, settings: EndpointSettings) -> None:
    url = settings.base_url + settings.health_path
    answer = _get(session, url, settings)
    if isinstance(answer, str) or answer.status_code != 200:
        detail = (answer if isinstance(answer, str)
                  else f"HTTP {answer.status_code}: {' '.join(answer.text.split())[:200]}")
        result.case("health", False, detail)
        result.finding(url, f"health endpoint failed: {detail}", kind="endpoint")
        return
    try:
        body = answer.json()
    except ValueError:
        body = {}
    problems = []
    if body.get("database") != "ok":
        problems.append(f"database is {body.get('database')!r}, expected 'ok'")
    if settings.expected_version and body.get("version") != settings.expected_version:
        problems.append(f"version is {body.get('version')!r}, expected {settings.expected_version!r}")
    result.measurements["version"] = body.get("version")
    if problems:
        result.finding(url, "; ".join(problems), status=200, kind="endpoint")
    result.case("health", not problems,
                "; ".join(problems) or f"200, database ok, version {body.get('version')}")


def _login_page(result: CheckResult, session: requests.Session, settings: EndpointSettings) -> None:
    url = settings.base_url + settings.login_path
    answer = _get(session, url, settings)
    if isinstance(answer, str) or answer.status_code != 200:
        detail = answer if isinstance(answer, str) else f"HTTP {answer.status_code}"
        result.case("login page", False, detail)
        result.finding(url, f"login page failed: {detail}", kind="endpoint")
        return
    has_password = any(f.kind == "password" for form in parse_page(answer.text, answer.url).forms
                       for f in form.fields)
    if not has_password:
        result.finding(url, "login page has no password field", status=200, kind="endpoint")
    result.case("login page", has_password, "200 with a login form" if has_password else "no login form")


def _redirect(result: CheckResult, session: requests.Session, settings: EndpointSettings) -> None:
    url = settings.http_url + settings.login_path
    answer = _get(session, url, settings, allow_redirects=False)
    expected = settings.base_url + settings.login_path
    if isinstance(answer, str):
        ok, detail = False, answer
    else:
        location = answer.headers.get("Location", "")
        ok = answer.status_code in (301, 308) and urlsplit(location).scheme == "https"
        detail = f"HTTP {answer.status_code} to {location or '(no Location)'}"
        ok = ok and location.rstrip("/") == expected.rstrip("/")
    if not ok:
        result.finding(url, f"plain HTTP does not redirect permanently to {expected}: {detail}",
                       kind="endpoint")
    result.case("HTTP to HTTPS redirect", ok, detail)


def _restricted(result: CheckResult, session: requests.Session, settings: EndpointSettings) -> None:
    for path in settings.restricted_paths:
        url = settings.base_url + path
        answer = _get(session, url, settings, allow_redirects=False)
        status = answer if isinstance(answer, str) else answer.status_code
        ok = status == 403
        if not ok:
            result.finding(url, f"restricted path is not closed to this client: {status}, expected 403",
                           kind="endpoint")
        result.case(f"restricted {path}", ok, f"{status}")


def check_endpoints(settings: EndpointSettings) -> CheckResult:
    result = CheckResult(name="endpoints", title="Endpoints through the proxy")
    session = requests.Session()
    session.trust_env = False
    session.verify = settings.verify
    _health(result, session, settings)
    _login_page(result, session, settings)
    _redirect(result, session, settings)
    _restricted(result, session, settings)
    return result.finish()
