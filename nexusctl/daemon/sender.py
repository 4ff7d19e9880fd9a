"""The delivery worker's HTTP/1.1 client: one POST, its status, Retry-After and a bounded preview of the answer.

Below aiohttp's ``ClientSession.request``, which cost the worker more CPU per send than a raw aiohttp client's
whole POST (profiles in docs/benchmarks.md): the request's bytes are written in one piece and the answer is
parsed by httptools (llhttp, the C parser uvicorn uses). What a delivery needs of HTTP, and no more:

- Kept-alive connections per endpoint (scheme, host, port): at most ``per_endpoint`` idle ones are kept (the
  worker never has more sends in flight to one webhook) and ``max_idle`` in all, each for at most
  ``http1.IDLE_SECONDS`` (a timer closes them, sends or not): ``http1.IdlePool``, shared with the providers' poster.
- Answers parsed with the leniencies aiohttp allows them (``http1.answer_parser``), and bounded: ``HEAD_LIMIT``
  bytes besides the body, ``MAX_HEADERS`` headers. The first final answer counts; anything after it spoils the
  connection (closed).
- The SSRF guard at connect (``ssrf.connect_addresses``): the host is resolved once, every address checked, and
  the socket connected only to a checked address; TLS with the default context (certificates verified), SNI
  and ``Host`` the URL's host.
- ``timeout`` seconds for the whole send (connect, write, answer up to the preview); redirects are answers like
  any other (never followed); the answer's body is read up to ``BODY_PREVIEW`` bytes, and a connection whose
  answer was not read to its end is closed rather than reused. Once a final answer's headers are in, its status
  is the outcome: a body that stalls or breaks is waited for ``PREVIEW_WAIT`` seconds at most (or until the
  timeout), and the preview is what had come.
- Never a delivery sent twice: a request is written once. A kept-alive connection the receiver has closed is
  known closed before the write (its end arrived while it sat idle) and is never written to; a connection that
  drops after the write is this attempt's error, retried on the schedule like any other failure.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import zlib
from typing import NamedTuple

import httptools
from yarl import URL

from nexusctl import http1, ssrf

BODY_PREVIEW = 4096
# Once a final answer's headers are in, the rest of its preview is waited for this long (or until the send's
# timeout) and no longer: a receiver that answered 2xx and then stalls its body has accepted the delivery, and
# recording a timeout would send it again (aiohttp's read of the preview returned what had come).
PREVIEW_WAIT = 1.0
ENDPOINTS_KEPT = 4096  # parsed webhook URLs kept
# What an answer may hold besides its body (status lines, headers, interim answers, chunk framing, trailers):
# httptools keeps a header's name and value whole until it ends, so a receiver sending one endless header would
# otherwise grow this process without bound. aiohttp allowed 8190 bytes a line and 100 headers (it stopped
# at 32 KiB of one field); this is the bound of the whole, checked after each read (at most 256 KiB more).
HEAD_LIMIT = 64 * 1024
MAX_HEADERS = 100


class SendError(Exception):
    """This attempt's failure, worded for the operator (stored as the attempt's error)."""


class Answer(NamedTuple):
    status: int
    retry_after: str | None
    preview: bytes


class _Endpoint(NamedTuple):
    key: tuple  # (scheme, host, port): the pool
    host: str  # as dialled and checked (no brackets)
    port: int
    tls: bool
    head: bytes  # "POST <target> HTTP/1.1\r\nHost: ...\r\nUser-Agent: ...\r\n"


def _endpoint(url: str, user_agent: str) -> _Endpoint:
    parsed = URL(url)
    host, port = parsed.raw_host or "", parsed.port or (443 if parsed.scheme == "https" else 80)
    target = parsed.raw_path_qs or "/"
    authority = parsed.host_port_subcomponent or host
    if any(c in target + authority for c in "\r\n \t\0"):  # check_url refuses these already: never inject a header
        raise SendError("the URL holds characters that cannot be sent")
    head = f"POST {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {user_agent}\r\n".encode("ascii")
    return _Endpoint((parsed.scheme, host, port), host, port, parsed.scheme == "https", head)


class _Connection(asyncio.Protocol):
    """One kept-alive connection and the answer being read on it (one request at a time)."""

    def __init__(self) -> None:
        self.parser = http1.answer_parser(self)  # refused, a lenient answer would be an error and sent again
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.answer: asyncio.Future | None = None
        self.idle_since = 0.0
        # A second answer to one request (or one to none) began: the stream cannot be trusted for the next request.
        # Its callbacks are ignored (the first final answer is the one recorded), the connection closed.
        self.unusable = False
        self._reset()
        self._count_from_zero()

    def _count_from_zero(self) -> None:
        """The bounds are of one exchange: every byte fed and header seen since the request was written."""
        self.fed = 0  # bytes fed to the parser
        self.body_fed = 0  # of them, the body's
        self.headers = 0

    def _reset(self) -> None:
        self.status = 0
        self.retry_after: str | None = None
        self.encoding: bytes | None = None
        self.body = bytearray()
        self.complete = False
        self.keep_alive = False
        self.waiting: asyncio.TimerHandle | None = None  # the PREVIEW_WAIT of a final answer's body

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
        except httptools.HttpParserUpgrade:  # 101 Switching Protocols: an answer, not one we read further
            self.on_message_complete()
        except httptools.HttpParserError as exc:
            if self.unusable:
                pass  # what followed the answer is not HTTP either: closed all the same
            elif self.status >= 200:  # the body is broken, not the answer: its status stands (closed, never reused)
                self._answered()
            else:
                self._fail(SendError(f"the receiver's answer is not valid HTTP ({exc})"))
            self.close()
            return
        if self.unusable:
            self.close()
        elif self.fed - self.body_fed > HEAD_LIMIT or self.headers > MAX_HEADERS:
            self._fail(SendError(self._too_large()))
            self.close()
        elif self.status >= 200 and self.waiting is None and not self.answer.done():  # headers in, body short
            self.waiting = asyncio.get_running_loop().call_later(PREVIEW_WAIT, self._answered)

    def _too_large(self) -> str:
        if self.headers > MAX_HEADERS:
            return f"the receiver's answer headers were too large (more than {MAX_HEADERS} headers)"
        return f"the receiver's answer headers were too large (over {HEAD_LIMIT // 1024} KiB)"

    def eof_received(self):
        # Never handed out again from here: over TLS, connection_lost may come only after the TLS shutdown, and
        # the transport need not say it is closing meanwhile.
        self.closed = True
        return False  # close our end too

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.status >= 200:
            # A final answer's headers are in: what came of its body is its preview, whether the connection's end
            # is its end (no length given) or cuts it short (httptools has no feed_eof to tell them apart).
            self._answered()
            return
        self._fail(SendError("the receiver closed the connection before answering"))

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete or self.answer is None:
            self.unusable = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.unusable:
            return
        self.headers += 1
        if self.headers > MAX_HEADERS:  # failed before the answer can complete (closed after this read)
            self._fail(SendError(self._too_large()))
        name = name.lower()
        if name == b"retry-after":
            if self.retry_after is None:  # the first of two, as aiohttp's headers.get gave it
                self.retry_after = value.decode("latin-1")
        elif name == b"content-encoding":
            self.encoding = value.strip().lower()

    def on_headers_complete(self) -> None:
        if self.unusable:
            return
        status = self.parser.get_status_code()
        if not 100 <= status <= 599:  # httptools takes any three digits: "HTTP/1.1 000" was recorded as status 0
            self._fail(SendError(f"the receiver's answer is not valid HTTP (status {status:03d})"))
            self.unusable = True  # closed after this read, never reused
            return
        self.status = status

    def on_body(self, body: bytes) -> None:
        if self.unusable:
            return
        self.body_fed += len(body)
        room = BODY_PREVIEW - len(self.body)
        if room > 0:
            self.body += body[:room]
        if len(self.body) >= BODY_PREVIEW and self.answer is not None and not self.answer.done():
            # The preview is full: the answer is ours now. Whatever more arrives in this same read may still
            # complete the message (the connection is then kept); otherwise the rest is never read and the
            # connection is closed.
            self._answered()

    def on_message_complete(self) -> None:
        if self.unusable:
            return
        if 100 <= self.status < 200 and self.status != 101:  # an interim answer (103 Early Hints): the real follows
            self._reset()
            return
        self.complete = True
        # Asked here: the parser forgets the answer's Connection/HTTP version once it moves past it.
        self.keep_alive = self.status != 101 and self.parser.should_keep_alive()
        self._answered()

    def _answered(self) -> None:
        """The answer is ours (whole, its preview full, or its body no longer waited for)."""
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(None)

    def _stop_waiting(self) -> None:
        if self.waiting is not None:
            self.waiting.cancel()
            self.waiting = None

    def _fail(self, exc: Exception) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        self._stop_waiting()
        if self.transport is not None:
            self.transport.abort()


class Sender:
    """POSTs of delivery bodies over kept-alive connections (see the module's docstring)."""

    def __init__(
        self,
        *,
        allowed_networks=(),
        timeout: float,
        per_endpoint: int,
        max_idle: int = 100,
        user_agent: str = "nexusctl-webhooks",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.allowed = allowed_networks
        self.timeout = timeout
        # At most per_endpoint idle connections an endpoint, max_idle in all (a worker sending to many receivers).
        self.pool = http1.IdlePool(per_key=per_endpoint, max_idle=max_idle)
        self.user_agent = user_agent
        self.endpoints: dict[str, _Endpoint] = {}
        self.busy: set[_Connection] = set()
        self.closing = False  # close() was called: no connection is kept from then on
        self._tls = tls  # None: the default context (the system's CAs, hostnames checked), made when first needed

    @property
    def tls(self) -> ssl.SSLContext:
        if self._tls is None:  # loading the CA store takes a while: only once an https receiver is met
            self._tls = ssl.create_default_context()
            self._tls.set_alpn_protocols(["http/1.1"])
        return self._tls

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Answer:
        """POST ``body`` to ``url`` with ``headers`` (Content-Type among them; no CR/LF in them: ours, not a
        user's). Raises SendError, ssrf.BlockedAddress or TimeoutError (after ``timeout`` seconds)."""
        endpoint = self.endpoints.get(url)
        if endpoint is None:
            if len(self.endpoints) >= ENDPOINTS_KEPT:
                self.endpoints.clear()
            endpoint = self.endpoints[url] = _endpoint(url, self.user_agent)
        request = b"".join(
            (
                endpoint.head,
                "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1"),
                b"Content-Length: %d\r\n\r\n" % len(body),
                body,
            )
        )
        conn = None
        try:
            async with asyncio.timeout(self.timeout):
                conn = self.pool.take(endpoint.key) or await self._connect(endpoint)
                self.busy.add(conn)
                conn.answer = answer = asyncio.get_running_loop().create_future()
                conn.transport.write(request)
                await answer
        except TimeoutError:
            if conn is None or conn.status < 200:
                raise
            # A final answer's headers are in, its body slower than the send's time: the receiver has answered.
        finally:
            if conn is not None:
                self.busy.discard(conn)
                conn.answer = None
                conn._stop_waiting()
                if not (conn.complete and conn.keep_alive and not conn.closed):
                    conn.close()
        result = Answer(conn.status, conn.retry_after, _decoded(conn.encoding, bytes(conn.body)))
        if not conn.closed:
            self._release(endpoint.key, conn)
        return result

    def _release(self, key: tuple, conn: _Connection) -> None:
        if self.closing:  # a send that began (or connected) while the daemon shuts down: nothing to keep it for
            conn.close()
            return
        conn._reset()
        conn._count_from_zero()
        self.pool.give(key, conn)

    async def _connect(self, endpoint: _Endpoint) -> _Connection:
        """A new connection to the first checked address of the endpoint's host that accepts it."""
        loop = asyncio.get_running_loop()
        try:
            addresses = await ssrf.connect_addresses(endpoint.host, endpoint.port, self.allowed)
        except (socket.gaierror, UnicodeError) as exc:
            raise SendError(f"{endpoint.host} does not resolve ({getattr(exc, 'strerror', None) or exc})") from None
        failure: OSError | None = None
        for address in addresses:
            try:
                _, conn = await loop.create_connection(
                    _Connection,
                    address,
                    endpoint.port,
                    ssl=self.tls if endpoint.tls else None,
                    server_hostname=endpoint.host if endpoint.tls else None,
                )
                return conn
            except ssl.SSLError as exc:
                why = getattr(exc, "verify_message", None) or exc.reason or exc
                raise SendError(f"TLS with {endpoint.host} failed: {why}") from None
            except OSError as exc:
                failure = exc  # the next checked address, if there is one
        why = os.strerror(failure.errno) if failure is not None and failure.errno else str(failure)
        raise SendError(f"cannot connect to {endpoint.host}:{endpoint.port}: {why}")

    async def close(self) -> None:
        """Close every connection. Sends still under way end: with their status if a final answer's headers
        are in, else with an error saying the daemon is shutting down (not that the receiver closed it)."""
        self.closing = True
        self.pool.close()
        for conn in self.busy:
            if conn.status >= 200:
                conn._answered()
            else:
                conn._fail(SendError("not answered: the daemon is shutting down"))
            conn.close()
        self.busy.clear()


def _decoded(encoding: bytes | None, preview: bytes) -> bytes:
    """The preview as the receiver meant it: a gzip/deflate answer (none is asked for) decoded, as far as it goes."""
    if not encoding or encoding == b"identity" or not preview:
        return preview
    if encoding in (b"gzip", b"x-gzip", b"deflate"):
        try:
            return zlib.decompressobj(wbits=47).decompress(preview, BODY_PREVIEW)  # gzip or zlib, told apart
        except zlib.error:
            return preview
    return preview
