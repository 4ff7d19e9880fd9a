"""`POST /integrations/{id}/sync`: start a sync in the daemon (202 with the log id)."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field, with_config
from typing_extensions import TypedDict

from nexusctl.core import sync_runs
from nexusctl.core.serializers import sync_log_to_dict
from nexusctl.daemon import responses as out
from nexusctl.daemon.fields import BODY, Text
from nexusctl.daemon.keys import SERVICES, SYNCS
from nexusctl.daemon.routing import Route, ok, owner_filter, read_body, run_db


@with_config(BODY)
class Start(TypedDict, total=False):
    action: Text(max_length=64, min_length=1, description="One action (fetch_posts ...); default: every action")
    full: Annotated[bool, Field(description="Read everything again; vanished items become .deleted events")]


async def start_sync(request: web.Request) -> web.Response:

    body = await read_body(request, Start) if request.can_read_body else {}
    logs = await run_db(
        request,
        sync_runs.plan,
        request.match_info["id"],
        body.get("action"),
        full=bool(body.get("full")),
        trigger="api",
        owner_id=owner_filter(request),
        keyring=request.app[SERVICES].keyring,
    )
    request.app[SYNCS].submit([row.id for row in logs])
    return ok({"id": str(logs[0].id), "syncLogs": [sync_log_to_dict(row) for row in logs]}, status=202)


ROUTES = [
    Route(
        "POST",
        "/integrations/{id}/sync",
        start_sync,
        "Start a sync (202 with the sync log id); poll GET /integrations/{id}/sync-logs",
        "sync",
        body=Start,
        body_required=False,
        data=out.SyncStarted,
        status=202,
        errors=("VALIDATION_ERROR", "INTEGRATION_NOT_FOUND", "SYNC_NOT_STARTED", "ENCRYPTION_KEY_MISSING"),
    ),
]
