"""`nexusctl daemon`: run the HTTP API, OAuth callback, worker and jobs."""

import os
from typing import Annotated

import typer

from nexusctl.cli.context import out, state


def daemon_cmd(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="Port (default: PORT, else 3008).")
    ] = None,
) -> None:
    """Run the service: HTTP API on PORT, until SIGTERM or Ctrl-C.

    Refuses to start against a database whose schema is behind, and with
    NODE_ENV=production without DATABASE_URL and FRONTEND_URL set.

    Example:  nexusctl daemon --host 0.0.0.0 --port 3008
    """
    # start-up: only this command needs it
    from nexusctl import config
    from nexusctl.daemon.server import serve

    st = state(ctx)
    settings = st.settings  # refuse early: an invalid configuration,
    config.require_production_settings(os.environ)  # a production one left to development defaults,
    st.database()  # an unreachable database or pending migrations
    st.close()  # the daemon opens its own pool
    serve(settings, host=host, port=port or settings.port, output=out(ctx))


def register(app: typer.Typer) -> None:
    app.command("daemon")(daemon_cmd)
