"""Running the app until SIGTERM/SIGINT, then shutting down within a bound."""

from __future__ import annotations

import logging

from aiohttp import web

from daemon.app import create_app

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 10.0  # seconds in-flight requests get after SIGTERM


def serve(settings, *, host: str, port: int, output) -> None:
    _configure_logging(settings, quiet=output.quiet)
    app = create_app(settings)
    output.info(
        f"nexusctl daemon listening on http://{host}:{port} "
        f"({settings.database_kind}, redis {'on' if settings.redis_url else 'off'}, {settings.node_env})"
    )
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        handle_signals=True,
    )
    output.info("nexusctl daemon stopped")


def _configure_logging(settings, *, quiet: bool) -> None:
    """The daemon logs every request at INFO (unless -q), as JSON with LOG_FORMAT=json."""
    from daemon.observe import JsonFormatter

    root = logging.getLogger()
    if not quiet and root.level > logging.INFO:
        root.setLevel(logging.INFO)
    if settings.log_format == "json":
        for handler in root.handlers:
            handler.setFormatter(JsonFormatter())
