"""Running the app until SIGTERM/SIGINT, then shutting down within a bound."""

from __future__ import annotations

import asyncio
import errno
import logging

from aiohttp import web

from daemon.app import LISTENING, create_app
from nexusctl.errors import ListenFailed

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 10.0  # seconds in-flight requests get after SIGTERM


def serve(settings, *, host: str, port: int, output) -> None:
    _configure_logging(settings, quiet=output.quiet)
    app = create_app(settings)
    listening = asyncio.Event()
    app[LISTENING] = listening

    def bound(_message):
        output.info(f"nexusctl daemon listening on http://{host}:{port} {summary}")
        listening.set()  # now the worker and the scheduler may start
    summary = f"({settings.database_kind}, redis {'on' if settings.redis_url else 'off'}, {settings.node_env})"
    try:
        web.run_app(
            app,
            host=host,
            port=port,
            # run_app calls this once the socket is bound, not before.
            print=bound,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            handle_signals=True,
        )
    except OSError as exc:
        reason = "address already in use (is another daemon running?)" if exc.errno == errno.EADDRINUSE else (
            exc.strerror or type(exc).__name__)
        raise ListenFailed(f"cannot listen on {host}:{port}: {reason}") from None
    output.info("nexusctl daemon stopped")


def _configure_logging(settings, *, quiet: bool) -> None:
    """The daemon logs every request at INFO (unless -q), as JSON with LOG_FORMAT=json."""
    from daemon.observe import JsonFormatter

    root = logging.getLogger()
    if not quiet and root.level > logging.INFO:
        root.setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not "Added job ..." on every start
    if settings.log_format == "json":
        for handler in root.handlers:
            handler.setFormatter(JsonFormatter())
