"""The link checker against a local site: what it reports, and what it never touches."""

from __future__ import annotations

import pytest
from verify_site import PASSWORD, running_site

from verify.crawl import CrawlSettings, LinkChecker
from verify.html import parse_page


@pytest.fixture(scope="module")
def crawl():
    with running_site() as (url, site):
        settings = CrawlSettings(base_url=url, username="admin", password=PASSWORD, max_depth=3,
                                 exclude=[r"/logout/?$"])
        result = LinkChecker(settings).run()
        yield url, result, list(site.requests)


def _by_kind(result, kind: str) -> dict[str, object]:
    return {finding.target: finding for finding in result.findings if finding.kind == kind}


def test_broken_links_and_server_errors_are_reported_with_the_page_linking_them(crawl):
    url, result, _ = crawl
    broken = _by_kind(result, "broken-link")
    assert broken[f"{url}/broken/"].status == 404
    assert broken[f"{url}/broken/"].source == f"{url}/"
    assert broken[f"{url}/static/missing.css"].status == 404
    assert _by_kind(result, "server-error")[f"{url}/boom/"].status == 500
    assert not result.passed


def test_every_internal_page_and_resource_is_visited_once(crawl):
    url, result, requests = crawl
    gets = [path for method, path in requests if method == "GET"]
    for path in ("/", "/events/", "/reports/", "/static/site.css", "/search/"):
        assert gets.count(path) == 1, path
    assert f"{url}/reports/" not in _by_kind(result, "broken-link")  # the #fragment was dropped


def test_logout_external_sites_and_destructive_forms_are_never_touched(crawl):
    _, result, requests = crawl
    assert not [r for r in requests if r[1] == "/accounts/logout/"]
    assert ("POST", "/danger/") not in requests
    skipped = {f.target.split(" ", 1)[1].rsplit("/", 2)[-2]
               for f in result.findings if f.kind == "form-skipped"}
    assert skipped == {"logout", "danger"}
    assert result.measurements["external_links"] == 1


def test_depth_is_bounded(crawl):
    _, _, requests = crawl
    deep = sorted(path for _, path in requests if path.startswith("/deep/"))
    # "/" is depth 0, /deep/1/ depth 1: max_depth 3 visits up to /deep/3/ and follows no further.
    assert deep == ["/deep/1/", "/deep/2/", "/deep/3/"]


def test_post_forms_with_required_fields_are_submitted_empty_and_judged(crawl):
    url, result, requests = crawl
    errors = _by_kind(result, "form-error")
    assert "empty submission was accepted" in errors[f"POST {url}/lax/"].message
    assert "403" in errors[f"POST {url}/forbidden-form/"].message
    ok = _by_kind(result, "form-ok")
    assert ok[f"POST {url}/events/"].status == 200  # validation errors shown, nothing created
    assert ok[f"GET {url}/search/"].status == 200
    assert ("POST", "/events/") in requests


def test_a_clean_site_passes():
    with running_site() as (url, _):
        settings = CrawlSettings(base_url=url, username="admin", password=PASSWORD, start_path="/reports/")
        result = LinkChecker(settings).run()
    assert result.passed, result.findings
    assert result.measurements["pages"] == 1


def test_max_pages_stops_the_crawl_with_a_warning():
    with running_site() as (url, _):
        settings = CrawlSettings(base_url=url, username="admin", password=PASSWORD, max_pages=2)
        result = LinkChecker(settings).run()
    assert result.measurements["pages"] == 2
    assert [f.severity for f in result.findings if f.kind == "limit"] == ["warning"]


def test_a_wrong_password_fails_the_login_without_showing_it():
    with running_site() as (url, site):
        result = LinkChecker(CrawlSettings(base_url=url, username="admin", password="wrong-pass-123")).run()
    assert not result.passed
    assert [case.name for case in result.cases if not case.passed] == ["login"]
    assert [finding.kind for finding in result.findings] == ["login"]  # the summary says why
    assert "wrong-pass-123" not in repr(result.to_dict())
    assert [path for _, path in site.requests] == ["/accounts/login/", "/accounts/login/"]


def test_forms_are_read_as_a_browser_submits_them():
    page = parse_page("""<form method="POST" action="../save/"><input type="hidden" name="t" value="1">
        <input name="a" required><input type="checkbox" name="c">
        <input type="checkbox" name="d" checked value="on">
        <select name="s"><option value="">-</option><option value="x" selected>x</option></select>
        <textarea name="n">hi</textarea><input type="submit" name="go" value="Go"></form>""",
                      "https://site.example/a/b/")
    form = page.forms[0]
    assert (form.method, form.action) == ("post", "https://site.example/a/save/")
    assert form.defaults() == {"t": "1", "a": "", "d": "on", "s": "x", "n": "hi"}
    assert form.empty_submission() == {"t": "1", "a": "", "d": "", "s": "", "n": ""}
    assert form.has_required_input
