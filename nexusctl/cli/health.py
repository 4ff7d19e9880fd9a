"""`nexusctl integrations health`: which connections are failing or about to, and why."""

from typing import Annotated

import typer

from nexusctl.cli.context import out, state
from nexusctl.cli.options import Cursor, Json, Limit, complete_health_statuses
from nexusctl.core.paging import DEFAULT_LIMIT
from nexusctl.errors import RefreshFailed, UsageProblem

COLUMNS = [
    ("status", "STATUS"),
    ("provider", "PROVIDER"),
    ("name", "NAME"),
    ("integrationId", "ID"),
    ("userId", "USER"),
    ("why", "REASONS"),
    ("checkedAt", "CHECKED"),
]
# REFRESH_FAILED's exit code, as `integrations refresh --expiring-within` uses it: a connection needs a look.
EXIT_BROKEN = RefreshFailed.exit_code


def health_cmd(
    ctx: typer.Context,
    integration_id: Annotated[
        str | None, typer.Argument(help="One integration (UUID); without it, a list.", show_default=False)
    ] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's integrations (UUID).")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            "-s",
            help="Only these statuses, comma-separated: healthy, degraded, broken.",
            autocompletion=complete_health_statuses,
        ),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    as_json: Json = False,
) -> None:
    """Check integrations' health: healthy, degraded (needs attention) or broken (cannot call the provider).

    With an ID: checked now, and a status change is announced once
    (integration.error, or integration.recovered). Without: the statuses the
    last checks stored (the daemon's integration-health job, or `nexusctl jobs
    run integration-health`), worst first, up to 100 a page; CHECKED says when,
    and `unknown` is not checked yet. Exit code 22 when any listed integration
    is broken, for cron and monitoring checks.

    Example:  nexusctl integrations health --status degraded,broken --json
    """
    # start-up: only this command needs it
    from nexusctl.core import health_checks

    if integration_id is not None and (user is not None or status is not None or cursor is not None):
        raise UsageProblem("an integration id goes alone (without --user, --status or --cursor)")
    state(ctx).database()
    if integration_id is not None:
        record = health_checks.check(integration_id, **health_checks.windows(state(ctx).settings))
        if as_json:
            out(ctx).json(record)
        else:
            out(ctx).record(_flat(record))
        if record["status"] == "broken":
            raise typer.Exit(EXIT_BROKEN)
        return
    page = health_checks.list_page(user_id=user, statuses=status, limit=limit, cursor=cursor)
    if as_json:
        out(ctx).json(page.items)
    else:
        out(ctx).table(
            [{**r, "why": "; ".join(x["message"] for x in r["reasons"]) or "-"} for r in page.items], COLUMNS
        )
    if page.next_cursor:
        out(ctx).info(f"more: add --cursor {page.next_cursor}")
    broken = sum(1 for r in page.items if r["status"] == "broken")
    if broken:
        out(ctx).info(f"{broken} broken integration(s) listed")
        raise typer.Exit(EXIT_BROKEN)


def _flat(record: dict) -> dict:
    """One record as `key value` lines: the reasons one per line, the parts as compact JSON."""
    flat = {k: v for k, v in record.items() if k != "reasons"}
    for number, reason in enumerate(record["reasons"], 1):
        flat[f"reason {number}"] = f"[{reason['severity']}] {reason['code']}: {reason['message']}"
    return flat


def register(app: typer.Typer) -> None:
    app.command("health")(health_cmd)
