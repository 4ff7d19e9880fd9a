"""Options shared by many commands, defined once so a flag means one thing everywhere."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from nexusctl.core.paging import DEFAULT_LIMIT, MAX_LIMIT
from nexusctl.core.storable import check_storable
from nexusctl.enums import Provider, SyncStatus
from nexusctl.errors import UsageProblem


def _complete_provider(incomplete: str):
    return [p.value for p in Provider if p.value.startswith(incomplete.upper())]


def _complete_sync_status(incomplete: str):
    return [s.value for s in SyncStatus if s.value.startswith(incomplete.upper())]


Json = Annotated[bool, typer.Option("--json", help="Print JSON (the API's data shape) on stdout.")]
Limit = Annotated[
    int,
    typer.Option("--limit", "-n", min=1, max=MAX_LIMIT, help=f"Rows per page (1-{MAX_LIMIT})."),
]
Cursor = Annotated[
    str | None, typer.Option("--cursor", help="Continue after the page that printed this cursor.")
]
ProviderFilter = Annotated[
    str | None,
    typer.Option("--provider", "-p", help="Only this provider (e.g. INSTAGRAM).",
                 autocompletion=_complete_provider),
]
SyncStatusFilter = Annotated[
    str | None,
    typer.Option("--status", "-s", help="Only this status (PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED).",
                 autocompletion=_complete_sync_status),
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Say what would change, change nothing.")]

DEFAULT_PAGE = DEFAULT_LIMIT


def parse_json_object(text: str, field: str) -> dict:
    """A JSON object from a flag value; anything else is a usage error naming the flag."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageProblem(f"{field} is not valid JSON ({exc.msg} at position {exc.pos})", field=field) from None
    except RecursionError:
        raise UsageProblem(f"{field} is nested too deeply", field=field) from None
    if not isinstance(value, dict):
        raise UsageProblem(f"{field} must be a JSON object", field=field)
    check_storable(value, field)
    return value
