"""Plain-urllib helpers for driving the emulators in tests (no product code).

``call`` never follows redirects and never raises on HTTP errors: it returns
``Resp(status, headers, body)``. ``CallbackSink`` is a tiny HTTP server that
records POSTs (for WooCommerce's key delivery) and answers a chosen status.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Self

from .base import APP_REDIRECT as REDIRECT  # noqa: F401 - registered for every emulated app


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


@dataclass
class Resp:
    status: int
    headers: object
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    def redirect_params(self) -> dict[str, str]:
        """The query of the Location header, first value of each name."""
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.location).query, keep_blank_values=True))


def basic(client_id: str, secret: str) -> str:
    raw = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def call(
    method: str,
    url: str,
    *,
    params: dict | None = None,
    form: dict | None = None,
    json_body=None,
    headers: dict | None = None,
    auth: tuple[str, str] | None = None,
    bearer: str | None = None,
    data: bytes | None = None,
) -> Resp:
    if params:
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
    hdrs = dict(headers or {})
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
    if json_body is not None:
        data = json.dumps(json_body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    if auth is not None:
        hdrs["Authorization"] = basic(*auth)
    if bearer is not None:
        hdrs["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with _OPENER.open(request, timeout=30) as response:
            return Resp(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return Resp(exc.code, exc.headers, exc.read())


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def consent(url: str, params: dict) -> dict[str, str]:
    """Hit an authorize URL; assert the 302 back to REDIRECT carries our state; return its query."""
    resp = call("GET", url, params=params)
    assert resp.status == 302, (resp.status, resp.body[:300])
    assert resp.location.startswith(params.get("redirect_uri", REDIRECT)), resp.location
    query = resp.redirect_params()
    assert query.get("state") == params.get("state"), query
    return query


class CallbackSink:
    """A local HTTP server recording POSTed bodies; answers ``status`` (default 200)."""

    def __init__(self, status: int = 200):
        self.status = status
        self.received: list[tuple[dict, bytes]] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                sink.received.append((dict(self.headers), self.rfile.read(length)))
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/woo/keys"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
