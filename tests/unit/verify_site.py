"""A small logged-in site on 127.0.0.1 for the link checker's tests (no Django needed).

Every request is recorded in `Site.requests` as (method, path), so tests can assert what the
checker never touched (logout, a destructive form, an external site).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PASSWORD = "correct horse battery staple"
SESSION = "sessionid=s3cr3t-session"

LOGIN = """<html><body><form method="post" action="/accounts/login/">
<input type="hidden" name="csrfmiddlewaretoken" value="tok">
<input type="text" name="username" required><input type="password" name="password" required>
<button type="submit">Log in</button></form></body></html>"""

HOME = """<html><head><link rel="stylesheet" href="/static/site.css">
<link rel="stylesheet" href="/static/missing.css"></head><body>
<a href="/events/">Events</a> <a href="/reports/#top">Reports</a> <a href="/broken/">Broken</a>
<a href="/boom/">Boom</a> <a href="https://example.invalid/elsewhere">External</a>
<a href="/accounts/logout/">Log out link</a> <a href="mailto:x@example.invalid">mail</a>
<a href="/deep/1/">Deep</a>
<form method="get" action="/search/"><input name="q" value="x"><select name="kind">
<option value="">any</option><option value="a">a</option></select></form>
<form method="post" action="/accounts/logout/"><input type="hidden" name="csrfmiddlewaretoken" value="tok">
<button>Log out</button></form>
<form method="post" action="/danger/"><input type="hidden" name="csrfmiddlewaretoken" value="tok">
<button>Delete everything</button></form>
</body></html>"""

EVENTS = """<html><body><a href="/">Home</a>
<form method="post"><input type="hidden" name="csrfmiddlewaretoken" value="tok">
<input name="name" required><textarea name="notes"></textarea><button>Create</button></form>
<form method="post" action="/lax/"><input type="hidden" name="csrfmiddlewaretoken" value="tok">
<input name="title" required><button>Create, badly</button></form>
<form method="post" action="/forbidden-form/"><input type="hidden" name="csrfmiddlewaretoken" value="tok">
<input name="title" required><button>Create, CSRF broken</button></form>
</body></html>"""


class Site(ThreadingHTTPServer):
    requests: list[tuple[str, str]]


class _Handler(BaseHTTPRequestHandler):
    server: Site

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: str = "", content_type: str = "text/html",
              headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _logged_in(self) -> bool:
        return SESSION in self.headers.get("Cookie", "")

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.requests.append(("GET", path))
        if path == "/accounts/login/":
            return self._send(200, LOGIN)
        if not self._logged_in():
            return self._send(302, headers={"Location": f"/accounts/login/?next={path}"})
        pages = {"/": HOME, "/events/": EVENTS, "/reports/": "<p>reports</p>", "/search/": "<p>found</p>"}
        if path in pages:
            return self._send(200, pages[path])
        if path == "/static/site.css":
            return self._send(200, "body{}", "text/css")
        if path == "/boom/":
            return self._send(500, "<h1>Server Error</h1>")
        if path.startswith("/deep/"):
            level = int(path.split("/")[2])
            return self._send(200, f'<a href="/deep/{level + 1}/">deeper</a>')
        return self._send(404, "<h1>Not Found</h1>")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        self.server.requests.append(("POST", path))
        length = int(self.headers.get("Content-Length", "0"))
        form = {key: values[0] for key, values in parse_qs(self.rfile.read(length).decode(),
                                                         keep_blank_values=True).items()}
        if path == "/accounts/login/":
            if form.get("username") == "admin" and form.get("password") == PASSWORD:
                return self._send(302, headers={"Location": "/", "Set-Cookie": f"{SESSION}; Path=/"})
            return self._send(200, LOGIN)
        if not self._logged_in():
            return self._send(403, "<h1>Forbidden</h1>")
        if path == "/events/":
            ok = bool(form.get("name"))
            return self._send(302, headers={"Location": "/events/"}) if ok else self._send(200, "errors")
        if path == "/lax/":
            return self._send(302, headers={"Location": "/events/"})
        if path == "/forbidden-form/":
            return self._send(403, "CSRF verification failed")
        return self._send(200, "done")


@contextmanager
def running_site() -> Iterator[tuple[str, Site]]:
    server = Site(("127.0.0.1", 0), _Handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
