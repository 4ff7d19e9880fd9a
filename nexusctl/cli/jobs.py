"""`nexusctl jobs run ...`: the daemon's scheduled jobs, once, for cron-style use."""

from __future__ import annotations

from typing import Annotated

import typer

from nexusctl.cli.context import out, state
from nexusctl.cli.options import Json

app = typer.Typer(help="The daemon's scheduled jobs, run once from the shell.", no_args_is_help=True)
JOBS = ("housekeeping", "token-refresh")


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help=f"One of: {', '.join(JOBS)}.", show_default=False)],
    as_json: Json = False,
) -> None:
    """Run one job now: housekeeping (expired OAuth states, history past RETENTION_DAYS) or token-refresh.

    Example:  nexusctl jobs run housekeeping --json
    """
    import datetime as dt

    from nexusctl.errors import UsageProblem

    st = state(ctx)
    if job == "housekeeping":
        from nexusctl.core import housekeeping

        st.database()
        counts = housekeeping.run(st.settings.retention_days)
        out(ctx).success(f"Removed {counts['expiredStates']} expired OAuth states, {counts['deliveries']} deliveries "
                         f"and {counts['syncLogs']} sync logs older than {counts['retentionDays']} days")
    elif job == "token-refresh":
        from nexusctl.cli.flows import run_flow
        from nexusctl.core import refresh

        window = dt.timedelta(seconds=st.settings.token_refresh_window)
        counts = run_flow(ctx, lambda svc: refresh.sweep(svc, window))
        out(ctx).success(f"Refreshed {counts['refreshed']}, failed {counts['failed']}, skipped {counts['skipped']}")
    else:
        raise UsageProblem(f"unknown job {job!r}; expected one of: {', '.join(JOBS)}", field="job")
    if as_json:
        out(ctx).json(counts)
