"""Running the app until SIGTERM/SIGINT, then shutting down within a bound."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import sys

from aiohttp import web, web_server
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_runner import GracefulExit

from nexusctl import clock
from nexusctl.daemon import traces
from nexusctl.daemon.app import LISTENING, create_app
from nexusctl.daemon.loop import kind, new_event_loop
from nexusctl.daemon.observe import JsonFormatter
from nexusctl.daemon.protocol import ACCEPT_BACKLOG, GuardedRequestHandler, connection_cap, install_accept_error_log
from nexusctl.daemon.stopping import GRACE, REQUESTS
from nexusctl.errors import ListenFailed
from nexusctl.logtext import TextFormatter

log = logging.getLogger(__name__)

# aiohttp's own wait for the requests in flight after SIGTERM, which then cancels them without an answer (and waits
# as long again): only a backstop. Each request gets GRACE and is then answered 503 (daemon.stopping); the margin
# covers writing those answers and aiohttp rounding its deadline up to a whole second.
SHUTDOWN_TIMEOUT = GRACE + 2


def serve(settings, *, host: str, port: int, output) -> None:
    _configure_logging(settings, quiet=output.quiet)
    stop_traces = traces.setup()  # None unless OTEL_EXPORTER_OTLP_ENDPOINT is set
    app = create_app(settings)
    listening = asyncio.Event()
    app[LISTENING] = listening

    def bound(_message):
        output.info(f"nexusctl daemon listening on http://{host}:{port} {summary}")
        if (moved := clock.describe(always=True)) is not None:  # a test facility: never silent
            log.warning("%s", moved)
        listening.set()  # now the worker and the scheduler may start

    loop = new_event_loop(settings.event_loop)
    summary = (
        f"({settings.database_kind}, redis {'on' if settings.redis_url else 'off'}, {settings.node_env}, {kind(loop)})"
    )
    # Our protocol handler (daemon.protocol): JSON error answers for what aiohttp cannot parse, the header
    # deadline and the connection cap under the file limit. aiohttp's Server makes its handlers from this name.
    web_server.RequestHandler = GuardedRequestHandler
    install_accept_error_log(loop)
    own_signals = _StopSignals(app).install(loop)
    try:
        web.run_app(
            app,
            host=host,
            port=port,
            # run_app calls this once the socket is bound, not before.
            print=bound,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            handle_signals=not own_signals,  # aiohttp's: only where the loop takes no signal handlers (Windows)
            loop=loop,
            backlog=ACCEPT_BACKLOG,
            header_timeout=settings.http_header_timeout,  # passed on to each GuardedRequestHandler
            # An unread rest of a body (a 408, a 401 before reading) is drained this long before the connection
            # closes; aiohttp's 10 s would let a trickling client hold it that much longer.
            lingering_time=min(10.0, settings.http_body_timeout),
            max_connections=connection_cap(ACCEPT_BACKLOG),
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ListenFailed(
                f"port {port} on {host} is already in use (another daemon?); pick another with --port N or PORT=N"
            ) from None
        raise ListenFailed(f"cannot listen on {host}:{port}: {exc.strerror or type(exc).__name__}") from None
    finally:
        if stop_traces is not None:
            stop_traces()  # the spans still queued are exported before the process leaves
    output.info("nexusctl daemon stopped")


class _StopSignals:
    """SIGTERM and Ctrl-C: the first stops the daemon cleanly (aiohttp's GracefulExit, exit 0); a second one while
    it stops means "stop now", as uvicorn, Celery's cold shutdown or docker compose take it. aiohttp's own handler
    raised GracefulExit again, whose status is 1 (a bug, README), with nothing said: here the process says what it
    abandons and exits as interrupted, 130 for Ctrl-C and 143 (128 + 15, as a shell reports it) for SIGTERM.

    It leaves at once (os._exit) rather than raising through aiohttp's teardown, which would cancel the clean
    stop half-way (the pools, the worker's own stop) and log the tracebacks of what it broke off; nothing
    needs it: a database transaction not committed is rolled back, and the deliveries this daemon held come due
    again when their lease expires, as after a crash."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.stopping = False

    def install(self, loop: asyncio.AbstractEventLoop) -> bool:
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self._received, signum)
        except NotImplementedError:  # Windows' loops: aiohttp's handling, as before
            return False
        return True

    def _received(self, signum: int) -> None:
        if not self.stopping:
            self.stopping = True
            raise GracefulExit()
        name = signal.Signals(signum).name
        running = len(self.app[REQUESTS].running)
        log.warning(
            "second %s while stopping: stopping now, abandoning %d request(s) in flight (no answer) and the work "
            "under way (webhook deliveries being sent go again once their lease expires)",
            name,
            running,
        )
        logging.shutdown()  # the line above written out, whatever the handler
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(128 + signum)


class MalformedRequestFilter(logging.Filter):
    """One WARNING line, no traceback and no request text, for HTTP that aiohttp cannot even parse.

    aiohttp answers such a request (a NUL in a header, a broken request line) with a 400 itself, before
    any middleware, and logs it at ERROR with a traceback whose message quotes the offending header
    line: an ``Authorization: Bearer ...`` line would put the caller's token into our log. It is the
    client's fault, so the log says who and what kind of error, nothing it sent.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = (
                "malformed HTTP request from %s refused with 400 (%s)",
                (remote, type(error).__name__),
            )
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
            record.exc_info, record.exc_text = None, None
        return True


def _configure_logging(settings, *, quiet: bool) -> None:
    """The daemon logs every request at INFO (unless -q), as JSON with LOG_FORMAT=json.

    In text, control characters in logged values are escaped (nexusctl.logtext): a request path is logged
    percent-decoded, and ``%0a`` in it would otherwise start a forged line.
    """
    root = logging.getLogger()
    if not quiet and root.level > logging.INFO:
        root.setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not "Added job ..." on every start
    # No formatter of the daemon's writes a record's thread or process, which every record would otherwise look
    # up as it is made (two records per proxied call: its request line and its provider call).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # Nor its source file and line: without this each record walks the stack for them (findCaller: 2% of the
    # daemon's CPU with a line per delivery). The logging HOWTO's "Optimization" section names this switch.
    logging._srcfile = None
    logging.getLogger("aiohttp.server").addFilter(MalformedRequestFilter())
    for handler in root.handlers:
        if settings.log_format == "json":
            handler.setFormatter(JsonFormatter())
        elif not isinstance(handler.formatter, TextFormatter):  # the CLI's handler already escapes
            handler.setFormatter(TextFormatter(handler.formatter._fmt if handler.formatter else None))
