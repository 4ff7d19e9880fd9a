"""`nexusctl sync ...`: sync history (runs arrive with the sync issue)."""

from __future__ import annotations

from typing import Annotated

import typer

from nexusctl.cli.context import out, state
from nexusctl.cli.options import Cursor, Json, Limit, SyncStatusFilter
from nexusctl.core import sync_logs
from nexusctl.core.paging import DEFAULT_LIMIT
from nexusctl.core.serializers import sync_log_to_dict

app = typer.Typer(help="Provider data syncs and their logs.", no_args_is_help=True)

COLUMNS = [
    ("id", "ID"), ("action", "ACTION"), ("status", "STATUS"), ("itemsProcessed", "ITEMS"),
    ("itemsFailed", "FAILED"), ("startedAt", "STARTED"), ("completedAt", "COMPLETED"), ("error", "ERROR"),
]


@app.command("logs")
def logs_cmd(
    ctx: typer.Context,
    integration_id: Annotated[str, typer.Argument(help="Integration id (UUID).", show_default=False)],
    status: SyncStatusFilter = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    as_json: Json = False,
) -> None:
    """Show an integration's sync history, newest first.

    Example:  nexusctl sync logs 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10 --status FAILED --limit 20
    """
    state(ctx).database()
    page = sync_logs.list_page(integration_id, status=status, limit=limit, cursor=cursor)
    rows = [sync_log_to_dict(row) for row in page.items]
    out(ctx).json(rows) if as_json else out(ctx).table(rows, COLUMNS)
    if page.next_cursor:
        out(ctx).info(f"more: add --cursor {page.next_cursor}")
