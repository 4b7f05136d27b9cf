"""Link checker: logs in, then follows every internal link and form of the site, bounded.

What is followed: links (`a`, `area`) to the same origin, breadth first, up to `max_pages`
pages and `max_depth` clicks from the start page, never a URL matching one of `exclude`
(logout, and whatever the inventory adds). Resources pages load (stylesheets, scripts,
images) are fetched once each. External links are counted, never requested.

Forms, chosen so that a crawl of production changes nothing:
- GET forms (search, filters) are submitted as rendered, like a user pressing the button.
- POST forms with at least one required visible field are submitted with every visible
  field empty (hidden fields such as the CSRF token as rendered). A correct form answers
  with its validation errors (200/400/422) and writes nothing; a 5xx, a 403 (CSRF broken)
  or a redirect (the empty submission was accepted: no server-side validation) is a finding.
- POST forms without a required field (logout, delete confirmations, one-button actions)
  are never submitted: an empty submission of those would act. They are reported as skipped.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from verify.html import Form, parse_page
from verify.results import ERROR, INFO, WARNING, CheckResult

_HTML = re.compile(r"^(text/html|application/xhtml\+xml)", re.IGNORECASE)
_CSRF_FIELD = "csrfmiddlewaretoken"


@dataclass
class CrawlSettings:
    base_url: str
    username: str
    password: str
    login_path: str = "/accounts/login/"
    start_path: str = "/"
    max_pages: int = 200
    max_depth: int = 5
    exclude: list[str] = field(default_factory=lambda: [r"/logout"])
    timeout: float = 10.0
    verify: bool | str = True


@dataclass
class _Visit:
    url: str
    depth: int
    source: str


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


class LinkChecker:
    """One crawl of one site; findings land in `result` (check name `crawl`)."""

    def __init__(self, settings: CrawlSettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.session = session or requests.Session()
        self.session.trust_env = False
        self.session.verify = settings.verify
        self.result = CheckResult(name="crawl", title="Link and form checker (logged in)")
        self._exclude = [re.compile(pattern) for pattern in settings.exclude]
        self._origin = _origin(settings.base_url)
        self._seen: set[str] = set()
        self._resources: set[str] = set()
        self._forms: set[tuple[str, str, tuple[str, ...]]] = set()
        self._external: set[str] = set()
        self.pages = 0
        self.checked = 0

    # --- helpers --------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.settings.base_url.rstrip("/") + path

    def _internal(self, url: str) -> bool:
        return _origin(url) == self._origin

    def _excluded(self, url: str) -> bool:
        path = urlsplit(url).path
        return any(pattern.search(path) for pattern in self._exclude)

    def _fetch(self, method: str, url: str, **kwargs: object) -> requests.Response | str:
        """The response, or the connection error as text."""
        self.checked += 1
        try:
            return self.session.request(method, url, timeout=self.settings.timeout, **kwargs)  # type: ignore[arg-type]
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {exc}"

    def _on_login_page(self, response: requests.Response) -> bool:
        return urlsplit(response.url).path == self.settings.login_path

    # --- login ----------------------------------------------------------------------------

    def login(self) -> bool:
        login_url = self._url(self.settings.login_path)
        page = self._fetch("GET", login_url)
        if isinstance(page, str) or page.status_code != 200:
            detail = page if isinstance(page, str) else f"HTTP {page.status_code}"
            return self._login_failed(login_url, f"login page {login_url}: {detail}")
        forms = [form for form in parse_page(page.text, page.url).forms
                 if any(f.kind == "password" for f in form.fields)]
        if not forms:
            return self._login_failed(login_url, f"no form with a password field on {login_url}")
        form = forms[0]
        data = form.defaults()
        for form_field in form.fields:
            if form_field.kind == "password":
                data[form_field.name] = self.settings.password
            elif form_field.visible and form_field.kind in {"text", "email"} and not form_field.value:
                data[form_field.name] = self.settings.username
        # A successful login redirects away from the login page; a failed one shows it again.
        answer = self._fetch("POST", form.action, data=data, headers={"Referer": page.url},
                             allow_redirects=False)
        if isinstance(answer, str) or not answer.is_redirect or (
                urlsplit(answer.headers.get("Location", "")).path == self.settings.login_path):
            detail = (answer if isinstance(answer, str)
                      else f"HTTP {answer.status_code}, not redirected away from the login page")
            # The password is never part of a message: only the user name.
            return self._login_failed(login_url, f"login as '{self.settings.username}' failed: {detail}")
        return self.result.case("login", True, f"logged in as '{self.settings.username}'")

    def _login_failed(self, url: str, detail: str) -> bool:
        self.result.finding(url, f"cannot log in, nothing crawled: {detail}", kind="login")
        return self.result.case("login", False, detail)

    # --- crawl ----------------------------------------------------------------------------

    def run(self) -> CheckResult:
        if self.login():
            self._crawl()
        self.result.measurements.update({
            "pages": self.pages, "requests": self.checked, "forms": len(self._forms),
            "resources": len(self._resources), "external_links": len(self._external),
        })
        return self.result.finish()

    def _crawl(self) -> None:
        start = self._url(self.settings.start_path)
        queue: deque[_Visit] = deque([_Visit(start, 0, "")])
        self._seen.add(start)
        while queue:
            if self.pages >= self.settings.max_pages:
                self.result.finding(start, f"crawl stopped at max_pages={self.settings.max_pages}; "
                                    f"{len(queue)} queued pages not visited", severity=WARNING,
                                    kind="limit")
                break
            visit = queue.popleft()
            for link in self._visit(visit):
                if link not in self._seen:
                    self._seen.add(link)
                    queue.append(_Visit(link, visit.depth + 1, visit.url))
        broken = {"broken-link", "server-error", "logged-out"}
        self.result.case("links", not any(f.kind in broken for f in self.result.findings),
                         f"{self.pages} pages, {len(self._resources)} resources")
        self.result.case("forms", not any(f.kind == "form-error" for f in self.result.findings),
                         f"{len(self._forms)} distinct forms")

    def _visit(self, visit: _Visit) -> list[str]:
        """Fetches one page, checks it; returns the internal links to follow from it."""
        self.pages += 1
        response = self._fetch("GET", visit.url)
        if not self._page_ok(visit.url, response, visit.source) or isinstance(response, str):
            return []
        if not _HTML.match(response.headers.get("Content-Type", "")):
            return []
        page = parse_page(response.text, response.url)
        for resource in page.resources:
            self._check_resource(resource, visit.url)
        for form in page.forms:
            self._check_form(form, visit.url)
        follow = []
        for link in page.links:
            if not self._internal(link):
                self._external.add(link)
            elif not self._excluded(link) and visit.depth < self.settings.max_depth:
                follow.append(link)
        return follow

    def _page_ok(self, url: str, response: requests.Response | str, source: str,
                 kind_prefix: str = "") -> bool:
        if isinstance(response, str):
            self.result.finding(url, f"no answer: {response}", source=source, kind="broken-link")
            return False
        if response.status_code >= 500:
            self.result.finding(url, f"server error HTTP {response.status_code}", status=response.status_code,
                                source=source, kind=kind_prefix or "server-error")
            return False
        if response.status_code >= 400:
            self.result.finding(url, f"broken link: HTTP {response.status_code}", status=response.status_code,
                                source=source, kind=kind_prefix or "broken-link")
            return False
        if self._on_login_page(response) and urlsplit(url).path != self.settings.login_path:
            self.result.finding(url, "sent to the login page although logged in", status=response.status_code,
                                source=source, kind=kind_prefix or "logged-out")
            return False
        return True

    def _check_resource(self, url: str, source: str) -> None:
        if url in self._resources or not self._internal(url):
            return
        self._resources.add(url)
        self._page_ok(url, self._fetch("GET", url), source)

    # --- forms ----------------------------------------------------------------------------

    def _check_form(self, form: Form, page: str) -> None:
        signature = form.signature()
        if signature in self._forms or not self._internal(form.action):
            return
        self._forms.add(signature)
        where = f"{form.method.upper()} {form.action}"
        if self._excluded(form.action):
            self.result.finding(where, "not submitted: action excluded from the crawl", severity=INFO,
                                source=page, kind="form-skipped")
            return
        if form.method == "get":
            self._submit(form, page, form.defaults(), method="GET")
        elif form.has_required_input:
            self._submit(form, page, form.empty_submission(), method="POST")
        else:
            self.result.finding(where, "not submitted: a POST form without a required field would act "
                                "(logout, delete, one-button actions)", severity=INFO, source=page,
                                kind="form-skipped")

    def _submit(self, form: Form, page: str, data: dict[str, str], method: str) -> None:
        where = f"{method} {form.action}"
        if method == "GET":
            answer = self._fetch("GET", form.action, params=data)
        else:
            answer = self._fetch("POST", form.action, data=data, headers={"Referer": page},
                                 allow_redirects=False)
        if isinstance(answer, str):
            self.result.finding(where, f"no answer: {answer}", source=page, kind="form-error")
            return
        status = answer.status_code
        message = ""
        if status >= 500:
            message = f"server error HTTP {status} on submission"
        elif status == 403 and data.get(_CSRF_FIELD) is not None:
            message = "HTTP 403 on submission with the page's CSRF token (CSRF or permission failure)"
        elif method == "POST" and 300 <= status < 400:
            message = (f"an empty submission was accepted (HTTP {status} to "
                       f"{answer.headers.get('Location', '?')}): required fields are not validated")
        elif status >= 400 and status not in {400, 422}:
            message = f"HTTP {status} on submission"
        if message:
            self.result.finding(where, message, status=status, source=page, kind="form-error",
                                severity=ERROR)
        else:
            self.result.finding(where, f"submitted ({'empty' if method == 'POST' else 'as rendered'}): "
                                f"HTTP {status}", status=status, source=page, kind="form-ok", severity=INFO)
