"""The daemon's HTTP connections: JSON error answers, a header deadline and a connection cap.

Every connection is a file descriptor. A client that connects and sends half a
request held one for aiohttp's keep-alive timeout (75 s): some 1,100 such
sockets used up systemd's default limit of 1,024 files, ``/health`` stopped
answering and asyncio logged a failed accept tens of thousands of times. So:

- a request's line and headers must arrive within ``HTTP_HEADER_TIMEOUT``
  seconds of the connection (or of the first byte of the next request on a
  kept-alive one), else the connection is closed;
- at most ``connection_cap()`` connections are open, below RLIMIT_NOFILE with a
  reserve for the database, Redis and outbound sockets; at the cap, a new
  connection closes the one idle the longest (not handling a request), as
  nginx reuses keep-alive connections, so a new ``/health`` still gets in;
- a failed accept (out of files) is logged at most once a minute.
"""

from __future__ import annotations

import logging
import resource
import time

from aiohttp import web_protocol

from nexusctl.daemon.answers import error_body, json_response

log = logging.getLogger(__name__)

LOG_EVERY = 60.0  # seconds between two log lines about the same resource problem
ACCEPT_BACKLOG = 128  # run_app's listen backlog: one accept burst may take this many sockets at once


def connection_cap(backlog: int = ACCEPT_BACKLOG) -> int | None:
    """How many connections the daemon keeps open at once; None if the file limit is unlimited.

    The reserve is one accept burst (``backlog`` sockets taken before any is looked at) plus an
    eighth of the limit (at least 64) for the database pool, Redis, webhook and provider calls, logs.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(8, soft - backlog - max(64, soft // 8))


class Throttled:
    """Calls ``emit(count)`` at most once per ``every`` seconds; count: occurrences since the last one."""

    def __init__(self, every: float = LOG_EVERY) -> None:
        self.every = every
        self.last = float("-inf")
        self.count = 0

    def __call__(self, emit) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last, count, self.count = now, self.count, 0
            emit(count)


def install_accept_error_log(loop) -> None:
    """The loop's exception handler, with asyncio's "socket.accept() out of system resource" throttled.

    asyncio reports it once per failed accept, up to the backlog per tick, each with a traceback
    (85,000 times in 25 s under load): here it is one warning a minute with how many were seen.
    """
    throttle = Throttled()
    previous = loop.get_exception_handler()

    def handler(the_loop, context):
        if context.get("message") == "socket.accept() out of system resource":
            error = context.get("exception")
            throttle(
                lambda count: log.warning(
                    "cannot accept connections: %s (%d time(s) since the last such line; the file limit is %d: "
                    "raise LimitNOFILE)",
                    getattr(error, "strerror", None) or type(error).__name__,
                    count,
                    resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                )
            )
            return
        if previous is not None:
            previous(the_loop, context)
        else:
            the_loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


_CAP_REACHED = Throttled()


class GuardedRequestHandler(web_protocol.RequestHandler):
    """aiohttp's protocol handler with the header deadline, the connection cap and JSON error answers."""

    def __init__(
        self, manager, *, header_timeout: float | None = None, max_connections: int | None = None, **kwargs
    ) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._max_connections = max_connections
        self._deadline = None  # asyncio.TimerHandle while a request is awaited
        self._requests_at_deadline = 0
        self.last_active = 0.0
        self._stopping = False  # the daemon is stopping: aiohttp's _close and _force_close mean "no next request"

    # --- the header deadline --------------------------------------------------------------

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.last_active = self._loop.time()
        self._arm_deadline()
        if self._max_connections is not None:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count
        if self._stopping and self._request_in_progress and self.transport is not None:
            # On a stop aiohttp's close() (pre_shutdown) and shutdown() set _close and _force_close, and
            # data_received then drops every byte: a request whose body was still arriving at SIGTERM waited for it
            # out its grace, then got 503. Its body is read on; what else comes (a pipelined request) is parsed
            # but never handled, as start() ends after this request all the same.
            flags = self._close, self._force_close
            self._close = self._force_close = False
            try:
                super().data_received(data)
            finally:
                self._close, self._force_close = flags
        else:
            super().data_received(data)
        if data:
            self.last_active = self._loop.time()
        if self._request_count > parsed:
            self._disarm_deadline()  # a whole request line and headers arrived
        elif data and self._deadline is None and self.idle:
            self._arm_deadline()  # the first bytes of the next request on a kept-alive connection

    def connection_lost(self, exc) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)

    def close(self) -> None:
        # During a request only the server's pre_shutdown calls it, the first step of a stop (aiohttp's own calls
        # come after a handler, or for an upgraded connection, which the daemon has none of).
        if self._request_in_progress:
            self._stopping = True
        super().close()

    async def shutdown(self, timeout: float | None = 15.0) -> None:
        self._stopping = True
        await super().shutdown(timeout)

    def _arm_deadline(self) -> None:
        if self._header_timeout:
            self._requests_at_deadline = self._request_count
            self._deadline = self._loop.call_later(self._header_timeout, self._deadline_passed)

    def _disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self._request_count == self._requests_at_deadline and not self._request_in_progress:
            self.force_close()

    # --- the connection cap ---------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Open and not handling a request (waiting for its first or next one)."""
        return self.transport is not None and not self._request_in_progress and not self._messages

    def _make_room(self) -> None:
        connections = self._manager._connections  # aiohttp's Server: every open handler (no public count)
        if len(connections) <= self._max_connections:
            return
        open_ones = [c for c in connections if c.transport is not None]
        if len(open_ones) <= self._max_connections:
            return  # the rest are closing already
        idle = [c for c in open_ones if c is not self and isinstance(c, GuardedRequestHandler) and c.idle]
        victim = min(idle, key=lambda c: c.last_active) if idle else self  # all busy: refuse the newcomer
        _CAP_REACHED(
            lambda count: log.warning(
                "%d connections open, the cap under the file limit: closing the longest-idle ones to admit new ones "
                "(%d time(s) since the last such line)",
                self._max_connections,
                count,
            )
        )
        victim.force_close()

    # --- JSON error answers ---------------------------------------------------------------

    def handle_error(self, request, status: int = 500, exc=None, message=None):
        """What aiohttp answers itself (a request line over 8190 bytes, a NUL in a header) in the API's
        JSON error body, as from every route, not text/plain."""
        plain = super().handle_error(request, status, exc, message)  # logs; raises if a response went out
        code, text = (
            ("INTERNAL_ERROR", "internal error")
            if plain.status >= 500
            else ("VALIDATION_ERROR", "malformed HTTP request (a line too long, or bytes HTTP does not allow)")
        )
        answer = json_response(error_body(code, text), status=plain.status)
        answer.force_close()
        return answer
