"""`nexusctl top`: a live view of what the service is doing, read from the database.

Only typer is imported here: the root builds this command on every start, and rich's Live, the key
reader and the queries load when it runs (tests/test_startup.py).
"""

from typing import Annotated

import typer

from nexusctl.cli.context import out, state
from nexusctl.cli.options import Json
from nexusctl.errors import UsageProblem

Once = Annotated[bool, typer.Option("--once", help="Print one frame and exit (for scripts and pipes).")]
Interval = Annotated[
    float, typer.Option("--interval", min=0.2, max=60.0, help="Seconds between refreshes of the live view.")
]


def top_cmd(ctx: typer.Context, once: Once = False, as_json: Json = False, interval: Interval = 1.0) -> None:
    """Watch deliveries, the queue, failing endpoints, integration health, syncs and jobs, live.

    Refreshes every second from the database (any daemon's work shows); q
    quits. Plain keys and no mouse, so it works over SSH; the terminal is
    restored on q and on Ctrl-C. Every figure comes from a bounded, indexed
    query: counts stop at a cap and show as "N+".

    Example:  nexusctl top --once
    """
    # start-up: only this command needs it
    from nexusctl.core import activity

    st = state(ctx)
    st.database()
    if as_json:
        out(ctx).json(activity.snapshot(st.settings))
        return
    # start-up: only this command needs it
    from nexusctl.cli import top_view

    output = out(ctx)
    if once:
        top_view.print_frame(output.out, activity.snapshot(st.settings))
        return
    if not (output.stdout_is_terminal and top_view.stdin_is_terminal()):
        raise UsageProblem("the live view needs a terminal: use `nexusctl top --once` or `--json` in scripts")
    top_view.run_live(output.out, lambda: activity.snapshot(st.settings), interval)


def register(app: typer.Typer) -> None:
    app.command("top")(top_cmd)
