"""`nexusctl jobs list | run`: the daemon's scheduled jobs, their last runs, and one run now."""

import datetime as dt
from typing import Annotated

import typer

from nexusctl import clock
from nexusctl.cli.context import out, state
from nexusctl.cli.options import Json, complete_job

app = typer.Typer(
    help="The daemon's scheduled jobs: what they last did, or run one now.\n\nExample:  nexusctl jobs list",
    no_args_is_help=True,
)
COLUMNS = [
    ("name", "JOB"),
    ("schedule", "SCHEDULE"),
    ("lastRun", "LAST RUN"),
    ("result", "OUTCOME"),
    ("nextRun", "NEXT RUN"),
    ("ranBy", "RAN BY"),
]


@app.command("list")
def list_cmd(ctx: typer.Context, as_json: Json = False) -> None:
    """Show each scheduled job: its schedule, last run and outcome, and next run.

    The daemons record every run (several daemons share one row per job: the
    last to write shows); `nexusctl jobs run` records its runs too.

    Example:  nexusctl jobs list --json
    """
    # start-up: only this command needs it
    from nexusctl.core import job_runs

    st = state(ctx)
    st.database()
    now = clock.now()
    jobs = job_runs.listing(st.settings, now)
    if as_json:
        out(ctx).json(jobs)
        return
    out(ctx).table([_row(job, now) for job in jobs], COLUMNS)
    if all(job["daemon"] != "scheduled" for job in jobs):
        out(ctx).info(
            "No daemon is running these jobs: start `nexusctl daemon`, or run them with `nexusctl jobs run` from cron."
        )


# The jobs named by hand, so loading this module does not load the database layer.
JobName = Annotated[
    str,
    typer.Argument(
        help="One of: token-refresh, housekeeping, integration-health.", show_default=False, autocompletion=complete_job
    ),
]


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    job: JobName,
    as_json: Json = False,
) -> None:
    """Show one scheduled job: schedule, last run with its counts or error, next run, who ran it.

    Example:  nexusctl jobs show token-refresh --json
    """
    # start-up: only this command needs it
    from nexusctl.core import job_runs, job_work

    job_work.require(job)
    st = state(ctx)
    st.database()
    now = clock.now()
    data = next(j for j in job_runs.listing(st.settings, now) if j["name"] == job)
    out(ctx).json(data) if as_json else out(ctx).record(data)


def _row(job: dict, now: dt.datetime) -> dict:
    if job["state"] == "running":
        last, result = f"started {_ago(job['lastStartedAt'], now)}", "running"
    elif job["lastFinishedAt"] is None:
        last, result = "never", None
    else:
        last = _ago(job["lastFinishedAt"], now)
        result = f"failed: {job['message']}" if job["outcome"] == "failed" else _counts(job["counts"])
    if job["daemon"] == "not running":
        upcoming = "daemon not running"
    elif job["daemon"] == "overdue":
        upcoming = f"overdue since {_ago(job['nextRunAt'], now)} (daemon not running?)"
    else:
        upcoming = _ago(job["nextRunAt"], now)
    return {
        "name": job["name"],
        "schedule": job["schedule"],
        "lastRun": last,
        "result": result,
        "nextRun": upcoming,
        "ranBy": job["ranBy"],
    }


def _counts(counts) -> str:
    if not counts:
        return "ok"
    return "ok: " + ", ".join(
        f"{value} {key}"
        for key, value in sorted(counts.items())
        if isinstance(value, int) and not isinstance(value, bool) and key != "retentionDays"
    )


def _ago(stamp: str, now: dt.datetime) -> str:
    """'2026-05-01T10:00:00Z (3m ago)' or '(in 40s)'."""
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    seconds = int((when - now).total_seconds())
    span = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if span >= size:
            text = f"{span // size}{unit}"
            break
    else:
        text = f"{span}s"
    if seconds == 0:
        return f"{stamp} (now)"
    return f"{stamp} ({'in ' + text if seconds > 0 else text + ' ago'})"


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    job: JobName,
    as_json: Json = False,
) -> None:
    """Run one job now, doing what the daemon's run does: token-refresh, housekeeping or integration-health.

    token-refresh refreshes the tokens due (passes back to back, for at most
    REFRESH_SWEEP_INTERVAL); housekeeping drops expired OAuth states, ended
    rate-limit waits and history past RETENTION_DAYS, and makes parked deliveries of webhooks that are on due;
    integration-health checks a batch of integrations whose
    check is due. The run is recorded, so `nexusctl jobs list` shows it.

    Example:  nexusctl jobs run housekeeping --json
    """
    # start-up: only this command needs it
    from nexusctl.cli.flows import run_flow
    from nexusctl.core import job_runs, job_work, refresh_window

    job_work.require(job)
    st = state(ctx)
    st.database()
    # What the daemon logs at start and doctor warns about: from cron, this command is where an operator looks.
    if job == job_runs.TOKEN_REFRESH and (wide := refresh_window.too_wide(st.settings)) is not None:
        out(ctx).warn(f"{wide.message}; {wide.hint}")
    me = f"{job_runs.process_name()} (nexusctl jobs run)"
    job_runs.started(job, me)
    try:
        counts = run_flow(ctx, job_work.WORK[job])
    except BaseException as exc:
        job_runs.finished(job, me, error=exc)
        raise
    job_runs.finished(job, me, counts=counts)
    if job == "housekeeping":
        out(ctx).success(
            f"Removed {counts['expiredStates']} expired OAuth states, {counts['endedRateWaits']} ended rate-limit "
            f"waits, {counts['deliveries']} deliveries "
            f"and {counts['syncLogs']} sync logs older than {counts['retentionDays']} days"
        )
    elif job == job_runs.INTEGRATION_HEALTH:
        out(ctx).success(
            f"Checked {counts['checked']} integration(s) due a check: {counts['changed']} changed "
            f"status; {counts['healthy']} healthy, {counts['degraded']} degraded, "
            f"{counts['broken']} broken"
        )
    else:
        out(ctx).success(
            f"Refreshed {counts['refreshed']}, failed {counts['failed']}, skipped {counts['skipped']}; "
            f"{counts['warned']} expiry warnings sent"
        )
    if as_json:
        out(ctx).json(counts)
