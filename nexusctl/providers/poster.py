"""Form POSTs to operator-configured provider hosts (token requests) over kept-alive HTTP/1.1 connections.

Why: the refresh sweep is bound by the daemon's loop thread, and aiohttp's ``ClientSession.request`` was its
largest part (a third of its GIL samples: docs/benchmarks.md, bench/token_refresh.py). A token request needs
little of HTTP: one POST of a small form, its status, headers and body. Here the request's bytes are written in
one piece and the answer is parsed by httptools (llhttp, the C parser uvicorn uses), as the delivery worker's
sender does (nexusctl/daemon/sender.py: the same parser leniencies, idle pool (nexusctl/http1.py) and header
bounds).

What it keeps of the aiohttp session it stands in for (``providers.http.session_options``):

- the request: ``User-Agent: nexusctl``, ``Accept: */*`` unless the caller says, ``Accept-Encoding: gzip,
  deflate`` (the answer is decoded), the caller's headers, ``Content-Length``; no proxy from the environment,
  no cookies, redirects not followed (an answer like any other);
- the whole call within ``total`` seconds, its connect within ``connect`` (a ``ClientTimeout``'s two);
- TLS with the default context (certificates and hostnames verified), SNI and ``Host`` the URL's host;
- the answer: its status, its headers as a dict (the first of repeated names, as ``dict(response.headers)``
  gave), its body whole up to ``limit`` bytes (a longer one is cut there and its connection closed: the caller
  refuses it); a body cut short by the connection's end (where a length or chunks were announced) is a failure;
- never a request written twice: a kept-alive connection is written to only if its end has not arrived while
  it sat idle, and a failure after the write says so (``PostError.sent``), as a timeout or a drop after
  aiohttp's write did.

Hosts a user named never come here: they go through the SSRF-guarded aiohttp session.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from typing import NamedTuple

import httptools
from yarl import URL

from nexusctl import http1

IDLE_PER_HOST = 16  # idle connections kept a host: the sweep's concurrency and a few more
MAX_IDLE = 64  # and in all (Salesforce's calls go to each org's own host)
ENDPOINTS_KEPT = 256  # parsed token URLs kept (a deployment has a few dozen)
# What an answer may hold besides its body (status line, headers, chunk framing): httptools keeps a header whole
# until it ends, so an endless header would grow the process without bound. As the delivery sender's bounds.
HEAD_LIMIT = 64 * 1024
MAX_HEADERS = 100


class PostError(Exception):
    """The call failed; ``reason`` names how (a word for the operator), ``sent`` whether the request was written
    (the provider may have acted on it)."""

    def __init__(self, reason: str, *, sent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent


class Answer(NamedTuple):
    status: int
    headers: dict
    body: bytes


class _Endpoint(NamedTuple):
    key: tuple  # (scheme, host, port): the pool
    host: str
    port: int
    tls: bool
    head: bytes  # "POST <target> HTTP/1.1\r\nHost: ...\r\n"


def _endpoint(url: str) -> _Endpoint:
    try:  # a port out of range, an empty label: yarl raises ValueError / UnicodeError, never a traceback for us
        parsed = URL(url)
        host, port = parsed.raw_host, parsed.port or (443 if parsed.scheme == "https" else 80)
    except (ValueError, UnicodeError):
        raise PostError("InvalidURL", sent=False) from None
    if parsed.scheme not in ("http", "https") or not host:
        raise PostError("InvalidURL", sent=False)
    target = parsed.raw_path_qs or "/"
    authority = parsed.host_port_subcomponent or host
    if any(c in target + authority for c in "\r\n \t\0"):  # never a header injected through the URL
        raise PostError("InvalidURL", sent=False)
    head = f"POST {target} HTTP/1.1\r\nHost: {authority}\r\n".encode("ascii")
    return _Endpoint((parsed.scheme, host, port), host, port, parsed.scheme == "https", head)


class _Connection(asyncio.Protocol):
    """One kept-alive connection and the answer being read on it (one request at a time)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parser = http1.answer_parser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.answer: asyncio.Future | None = None
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.seen = 0  # headers seen, repeated ones too
        self.fed = 0  # bytes fed to the parser since the request was written
        self.body = bytearray()
        self.body_fed = 0
        self.framed = False  # a Content-Length or chunks announced: the connection's end is not the body's
        self.headed = False  # the answer's headers are in: what on_header sees from now on are trailers (dropped)
        self.complete = False
        self.keep_alive = False
        self.unusable = False  # a second answer began: the stream cannot be trusted (closed)

    # asyncio.Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.answer is None:  # nothing was asked (an idle connection): not a stream we can trust any more
            self.close()
            return
        self.fed += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.on_message_complete()
        except httptools.HttpParserError:
            if not self.unusable:
                self._fail("InvalidAnswer")
            self.close()
            return
        if self.unusable:
            self.close()
        elif self.fed - self.body_fed > HEAD_LIMIT or self.seen > MAX_HEADERS:
            self._fail("HeadersTooLarge")
            self.close()

    def eof_received(self):
        self.closed = True  # never handed out again (over TLS, connection_lost may come only later)
        return False

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.status >= 200 and not self.framed:
            self._answered()  # no length given: the connection's end is the body's
        self._fail("ServerDisconnectedError")

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete or self.answer is None:
            self.unusable = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.unusable:
            return
        self.seen += 1
        if self.headed:  # a chunked answer's trailer: aiohttp dropped them (a trailing Retry-After is not one)
            return
        key = name.decode("utf-8", "surrogateescape")
        if key not in self.headers:
            self.headers[key] = value.decode("utf-8", "surrogateescape")
        lower = name.lower()
        if lower == b"content-length" or (lower == b"transfer-encoding" and b"chunked" in value.lower()):
            self.framed = True

    def on_headers_complete(self) -> None:
        if self.unusable:
            return
        self.headed = True
        status = self.parser.get_status_code()
        if not 100 <= status <= 599:
            self._fail("InvalidAnswer")
            self.unusable = True
            return
        self.status = status

    def on_body(self, body: bytes) -> None:
        if self.unusable:
            return
        self.body_fed += len(body)
        room = self.limit - len(self.body)
        if room > 0:
            self.body += body[:room]
        if len(self.body) >= self.limit:  # as far as the caller reads: the rest is never read (closed)
            self._answered()

    def on_message_complete(self) -> None:
        if self.unusable:
            return
        if 100 <= self.status < 200 and self.status != 101:  # an interim answer: the real one follows
            fed, body_fed = self.fed, self.body_fed
            self._reset()
            self.fed, self.body_fed = fed, body_fed
            return
        self.complete = True
        self.keep_alive = self.status != 101 and self.parser.should_keep_alive()
        self._answered()

    def _answered(self) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(None)

    def _fail(self, reason: str) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(PostError(reason, sent=True))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _expire(answer: asyncio.Future) -> None:
    if not answer.done():
        answer.set_exception(TimeoutError())


class Poster:
    """Form POSTs over kept-alive connections (see the module's docstring). One per process, on its loop."""

    def __init__(self, *, limit: int, user_agent: str = "nexusctl", tls: ssl.SSLContext | None = None) -> None:
        self.limit = limit
        self.user_agent = user_agent
        self.pool = http1.IdlePool(per_key=IDLE_PER_HOST, max_idle=MAX_IDLE)
        self.endpoints: dict[str, _Endpoint] = {}
        self.busy: set[_Connection] = set()
        self.closing = False
        self._tls = tls

    @property
    def tls(self) -> ssl.SSLContext:
        if self._tls is None:  # the CA store loads only once an https provider is met
            self._tls = ssl.create_default_context()
            self._tls.set_alpn_protocols(["http/1.1"])
        return self._tls

    async def post(self, url: str, headers: dict, body: bytes, *, total: float | None, connect: float | None) -> Answer:
        """POST ``body`` to ``url``. Raises PostError (``sent`` says whether the request was written)."""
        endpoint = self.endpoints.get(url)
        if endpoint is None:
            if len(self.endpoints) >= ENDPOINTS_KEPT:
                self.endpoints.clear()
            endpoint = self.endpoints[url] = _endpoint(url)
        request = self._request(endpoint, headers, body)
        conn, written, kept, timer = None, False, False, None
        loop = asyncio.get_running_loop()
        deadline = None if total is None else loop.time() + total
        try:
            conn = self.pool.take(endpoint.key)
            if conn is None:
                async with asyncio.timeout_at(deadline):  # the total covers the connect too
                    conn = await self._connect(endpoint, connect)
            self.busy.add(conn)
            conn.answer = answer = loop.create_future()
            if deadline is not None:
                # A timer that fails the answer, not asyncio.timeout (a context manager, a task cancel and its
                # uncancel: 3.6% of the refresh sweep's CPU in py-spy): the same TimeoutError at the same time.
                timer = loop.call_at(deadline, _expire, answer)
            conn.transport.write(request)
            written = True
            await answer
            raw = bytes(conn.body)
            # A body cut at the bound stays as it came (longer than the bound: refused by the caller); decoded, its
            # part could come out shorter than the bound and pass for the whole answer.
            result = Answer(
                conn.status, conn.headers, raw if len(raw) >= self.limit else _decoded(conn.headers, raw, self.limit)
            )
            if conn.complete and conn.keep_alive and not conn.closed:
                self._release(endpoint.key, conn)
                kept = True
            return result
        except TimeoutError:
            raise PostError("TimeoutError", sent=written) from None
        finally:
            if timer is not None:
                timer.cancel()
            if conn is not None:
                self.busy.discard(conn)
                conn.answer = None
                if not kept:  # any way out but a whole answer on a connection the provider keeps: closed, not leaked
                    conn.close()

    def _request(self, endpoint: _Endpoint, headers: dict, body: bytes) -> bytes:
        lines = [endpoint.head]
        named = {name.lower() for name in headers}
        if "user-agent" not in named:
            lines.append(b"User-Agent: %s\r\n" % self.user_agent.encode("latin-1"))
        if "accept" not in named:
            lines.append(b"Accept: */*\r\n")
        if "content-type" not in named:
            lines.append(b"Content-Type: application/octet-stream\r\n")  # what aiohttp says of bytes
        if "accept-encoding" not in named:
            lines.append(b"Accept-Encoding: gzip, deflate\r\n")
        for name, value in headers.items():
            if name.lower() in ("content-length", "host", "transfer-encoding", "connection"):
                continue  # ours to write
            text = f"{name}: {value}"
            if any(
                c in text for c in "\r\n\0"
            ):  # a value from a provider's answer or a setting: never a header injected
                raise PostError("InvalidHeader", sent=False)
            lines.append(text.encode("utf-8") + b"\r\n")
        lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
        lines.append(body)
        return b"".join(lines)

    def _release(self, key: tuple, conn: _Connection) -> None:
        if self.closing:
            conn.close()
            return
        conn._reset()
        self.pool.give(key, conn)

    async def _connect(self, endpoint: _Endpoint, connect: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self.limit),
                    endpoint.host,
                    endpoint.port,
                    ssl=self.tls if endpoint.tls else None,
                    server_hostname=endpoint.host if endpoint.tls else None,
                    # As aiohttp's connector: the next address is tried after 250 ms (RFC 8305), so a host whose
                    # first address drops packets (a broken IPv6 route) still connects.
                    happy_eyeballs_delay=0.25,
                    interleave=1,
                )
        except TimeoutError:
            raise PostError("ConnectionTimeoutError", sent=False) from None
        except ssl.SSLError:
            raise PostError("SSLError", sent=False) from None
        except OSError as exc:  # refused, unreachable, does not resolve (socket.gaierror)
            raise PostError(type(exc).__name__, sent=False) from None
        except UnicodeError:  # a host name IDNA cannot encode (an empty or over-long label)
            raise PostError("InvalidURL", sent=False) from None
        return conn

    async def close(self) -> None:
        """Close every connection; calls still under way end with an error (not answered)."""
        self.closing = True
        self.pool.close()
        for conn in self.busy:
            conn._fail("ServerDisconnectedError")
            conn.close()
        self.busy.clear()


def _decoded(headers: dict, body: bytes, limit: int) -> bytes:
    """The body as the provider meant it: a gzip or deflate answer (asked for) decoded, up to ``limit`` bytes (the
    caller refuses an answer that long)."""
    encoding = next((value for name, value in headers.items() if name.lower() == "content-encoding"), "")
    encoding = encoding.strip().lower()
    if not body or encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip", "deflate"):
        # gzip or zlib told apart by their headers; a "deflate" without zlib's header (some servers) raw.
        for wbits in (47, -15) if encoding == "deflate" else (47,):
            try:
                return zlib.decompressobj(wbits=wbits).decompress(body, limit)
            except zlib.error:
                pass
        raise PostError("ContentEncodingError", sent=True)
    return body
