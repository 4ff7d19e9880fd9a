"""`nexusctl sync ...`: run provider syncs, cancel them, read their logs."""

import sys
from typing import Annotated

import typer

from nexusctl.cli.context import out, state
from nexusctl.cli.options import Cursor, Json, Limit, ProviderFilter, SyncStatusFilter
from nexusctl.cli.output import printable
from nexusctl.core import sync_logs
from nexusctl.core.paging import DEFAULT_LIMIT
from nexusctl.core.serializers import sync_log_to_dict

app = typer.Typer(
    help="Provider data syncs and their logs.\n\nExample:  nexusctl sync list "
    "0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10 --status FAILED",
    no_args_is_help=True,
)

COLUMNS = [
    ("id", "ID"),
    ("action", "ACTION"),
    ("status", "STATUS"),
    ("itemsProcessed", "ITEMS"),
    ("itemsFailed", "FAILED"),
    ("startedAt", "STARTED"),
    ("completedAt", "COMPLETED"),
    ("error", "ERROR"),
]


def list_cmd(
    ctx: typer.Context,
    integration_id: Annotated[str, typer.Argument(help="Integration id (UUID).", show_default=False)],
    status: SyncStatusFilter = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    as_json: Json = False,
) -> None:
    """List an integration's sync logs (its sync history), newest first.

    Example:  nexusctl sync list 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10 --status FAILED --limit 20
    """
    state(ctx).database()
    page = sync_logs.list_view(integration_id, status=status, limit=limit, cursor=cursor)
    rows = page.items
    out(ctx).json(rows) if as_json else out(ctx).table(rows, COLUMNS)
    if page.next_cursor:
        out(ctx).info(f"more: add --cursor {page.next_cursor}")


app.command("list")(list_cmd)
app.command("logs", hidden=True)(list_cmd)  # the name before `list`; kept so scripts keep working


LogId = Annotated[str, typer.Argument(help="Sync log id (from sync list or sync run --json).", show_default=False)]


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    log_id: LogId,
    as_json: Json = False,
) -> None:
    """Show one sync log: status, counts, timings, error.

    Example:  nexusctl sync show 5d0c2e7a-1f3b-4c8d-9e6f-7a8b9c0d1e2f --json
    """
    state(ctx).database()
    data = sync_log_to_dict(sync_logs.get(log_id))
    out(ctx).json(data) if as_json else out(ctx).record(data)


RUN_COLUMNS = [
    ("status", "STATUS"),
    ("integrationId", "INTEGRATION"),
    ("action", "ACTION"),
    ("itemsProcessed", "ITEMS"),
    ("error", "ERROR"),
]


def _summary(row: dict) -> str:
    meta = row["metadata"]
    counts = (
        f"{row['itemsProcessed']} items ({meta.get('created', 0)} new, {meta.get('updated', 0)} changed, "
        f"{meta.get('deleted', 0)} gone) in {meta.get('pages', 0)} pages"
    )
    took = f", {meta['durationMs'] / 1000:.1f} s" if "durationMs" in meta else ""
    line = f"{row['status']:<10} {row['integrationId']}  {row['action']:<16} {counts}{took}"
    if row["status"] == "PENDING" and meta.get("rateLimitedUntil"):  # deferred (core.sync_runs), not failed
        return f"{line}  deferred until {meta['rateLimitedUntil']}: {meta.get('rateLimitReason', 'rate limited')}"
    return line + (f"  {row['error']}" if row["error"] else "")


def _run_logs(ctx, logs, *, show_progress: bool) -> list[dict]:
    # start-up: only this command needs it
    from nexusctl.cli.flows import run_flow
    from nexusctl.core import sync_runs

    output = out(ctx)

    async def flow(svc):
        done = []
        for log in logs:
            if show_progress:
                # start-up: rich loads only for terminal output
                from rich.progress import Progress, SpinnerColumn, TextColumn

                with Progress(
                    SpinnerColumn(), TextColumn("{task.description}"), console=output.err, transient=True
                ) as bar:
                    task = bar.add_task(f"{log.action}: starting", total=None)
                    seen = {"items": 0, "pages": 0}

                    def progress(items, counts, bar=bar, task=task, seen=seen, action=log.action):
                        seen["items"] += items
                        seen["pages"] += 1
                        bar.update(task, description=f"{action}: {seen['items']} items, {seen['pages']} pages")

                    done.append(await sync_runs.run(svc, log.id, progress=progress))
            else:
                done.append(await sync_runs.run(svc, log.id))
        return done

    return [
        {**sync_log_to_dict(row), TAKEN: True} if sync_runs.taken_elsewhere(row) else sync_log_to_dict(row)
        for row in run_flow(ctx, flow)
    ]


# Marks a run another process started first (sync_runs.taken_elsewhere): its log's status is that process's.
TAKEN = "_takenElsewhere"


def _taken(row: dict) -> str:
    """What to say of a run another process started between this one's planning it and starting it (the daemon's
    sync runner or another `sync run` taking the same due deferred run): not a status of ours to report."""
    return (
        f"another process took sync {row['id']} ({row['action']} of integration {row['integrationId']}) before this "
        f"one could start it, so it did not run here; it is {row['status']} there: `nexusctl sync show {row['id']}`"
    )


def _finish(ctx, rows: list[dict], as_json: bool, *, skip_taken: bool = False, one_action: bool = False) -> None:
    """The runs' lines (or JSON). A run another process took is said on stderr and left out: with --all it is
    skipped like a run still going at planning time (exit 0); for one integration it is SYNC_NOT_STARTED (27),
    as when that run was already going when this one planned.

    A failed run is exit 24 (SYNC_FAILED), whatever it failed with, so that a script (the README's cron entry)
    reads one code for "some run failed"; only ``one_action`` (one integration's one action: one run) ends
    with its failure's own MISSING_SCOPES (28), which tells that one caller to connect again."""
    # start-up: only this command needs it
    from nexusctl.errors import MissingScopes, SyncFailed, SyncNotStarted

    output = out(ctx)
    taken = [row for row in rows if row.get(TAKEN)]
    rows = [row for row in rows if not row.get(TAKEN)]
    if as_json:
        output.json(rows)
    else:
        for row in rows:
            output.value(printable(_summary(row)))  # its error quotes the provider's answer
    failed = [row for row in rows if row["status"] == "FAILED"]
    if skip_taken:
        for row in taken:
            sys.stderr.write(f"skipped: {printable(_taken(row))}\n")
    elif taken and not failed:
        first = taken[0]
        for row in taken[1:]:
            output.error(_taken(row))
        raise SyncNotStarted(_taken(first), syncLogId=first["id"])
    else:
        for row in taken:
            output.error(_taken(row))
    if failed:
        output.error(f"{len(failed)} of {len(rows)} sync runs failed")
        scopes = one_action and (failed[0]["metadata"] or {}).get("errorCode") == MissingScopes.code
        raise typer.Exit(MissingScopes.exit_code if scopes else SyncFailed.exit_code)


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    integration_id: Annotated[
        str | None, typer.Argument(help="Integration id (UUID); or --all.", show_default=False)
    ] = None,
    action: Annotated[
        str | None,
        typer.Option("--action", "-a", help="One action (e.g. fetch_posts); default: every action of the provider."),
    ] = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="Read everything again; items no longer there become <resource>.deleted events."),
    ] = False,
    all_: Annotated[
        bool, typer.Option("--all", help="Every active integration with sync actions (the cron entry).")
    ] = False,
    provider: ProviderFilter = None,
    as_json: Json = False,
) -> None:
    """Sync now: read the provider's data, record a sync log, emit change events.

    Exit code 24 when any run failed (one line per run; --json for scripts); one integration's one action
    (--action) exits 28 instead when it failed for a missing scope. A run deferred by a provider's wait
    (longer than SYNC_RATE_LIMIT_BUDGET) is PENDING, says until when, and is not a failure: the daemon's
    sync runner takes it when the wait ends. A run another process (the
    daemon's sync runner, another `sync run`) started first is not run here, and says so with its id: skipped with
    --all, else exit code 27 (SYNC_NOT_STARTED), as when it was already running.

    Example:  nexusctl sync run --all --provider SLACK --json
    """
    # start-up: only this command needs it
    from nexusctl.core import sync_runs
    from nexusctl.errors import UsageProblem

    if all_ == (integration_id is not None):
        raise UsageProblem("give an integration id or --all (not both)", field="integration")
    if provider is not None and not all_:
        raise UsageProblem("--provider goes with --all", field="provider")
    state(ctx).database()
    if all_:
        logs = _plan_all(provider, action, full)
        if not logs:
            out(ctx).info("nothing to sync")
    else:
        logs = sync_runs.plan(integration_id, action, full=full, trigger="cli")
    rows = _run_logs(ctx, logs, show_progress=out(ctx).shows_progress)
    _finish(ctx, rows, as_json, skip_taken=all_, one_action=not all_ and action is not None)


def _plan_all(provider: str | None, action: str | None, full: bool):
    # start-up: only this command needs it
    from nexusctl.core import sync_queue

    def skipped(_integration_id, why: str) -> None:  # already running: say so, go on with the others
        sys.stderr.write(f"skipped: {why}\n")

    logs = []
    for ids in sync_queue.active_with_actions(provider, action):
        logs += sync_queue.plan_each(ids, action, full=full, trigger="cron", skipped=skipped)
    return logs


@app.command("cancel")
def cancel_cmd(
    ctx: typer.Context,
    log_id: LogId,
    as_json: Json = False,
) -> None:
    """Stop a pending or running sync (a running one stops after its current page).

    Example:  nexusctl sync cancel 5d0c2e7a-1f3b-4c8d-9e6f-7a8b9c0d1e2f
    """
    # start-up: only this command needs it
    from nexusctl.core import sync_state

    state(ctx).database()
    row = sync_log_to_dict(sync_state.cancel(log_id))
    out(ctx).success(f"Cancelled sync {row['id']} ({row['action']})")
    if as_json:
        out(ctx).json(row)
