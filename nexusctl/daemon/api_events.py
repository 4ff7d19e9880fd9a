"""`POST /integrations/events/ingest`: other services hand this one an event without Redis;
`POST /integrations/events`: many events emitted to webhooks at once.

Ingest runs the same idempotent handlers as the consumer group (nexusctl.core.inbound);
only a service (or admin) token may call it: a user cannot delete users. The batch
emit is for producers with volume: one transaction for the whole list, each event
checked on its own (a refused one is answered with its error, the others go).
"""

from __future__ import annotations

from aiohttp import web

from nexusctl.core import events, inbound
from nexusctl.daemon import models_schema as out
from nexusctl.daemon.keys import SERVICES
from nexusctl.daemon.routing import Route, ok, owner_filter, read_body, run_db
from nexusctl.daemon.schema import Body, Obj, ObjList, Str
from nexusctl.errors import NexusError

INGEST = Body(
    {
        "type": Str(enum=inbound.HANDLED, description="The platform events this service handles"),
        "data": Obj(),
        "id": Str(min_length=1, max_length=128, description="Your id for the event: sending it again is a no-op"),
    },
    required=("type", "data"),
)
OUTCOME = {
    "type": "object",
    "properties": {"type": {"type": "string"}, "key": {"type": "string"}, "duplicate": {"type": "boolean"}},
    "additionalProperties": True,
}


async def ingest(request: web.Request) -> web.Response:

    body = await read_body(request, INGEST)
    event = inbound.make(body["type"], body["data"], event_id=body.get("id"))
    return ok(await inbound.handle(request.app[SERVICES], event))


EMIT_ITEM = Body(
    {
        "integrationId": Str(format="uuid"),
        "type": Str(
            max_length=events.EVENT_TYPE_MAX, pattern=events.EVENT_TYPE_PATTERN, hint="an event name like media.created"
        ),
        "data": Obj(),
    },
    required=("integrationId", "type"),
)
EMIT_BATCH = Body(
    {"events": ObjList(events.BATCH_MAX, EMIT_ITEM, f"1-{events.BATCH_MAX} events; the body at most 1 MiB")},
    required=("events",),
)


async def emit_batch(request: web.Request) -> web.Response:
    body = await read_body(request, EMIT_BATCH)
    owner = owner_filter(request)
    items, refused = [], {}
    for index, item in enumerate(body["events"]):
        try:
            item = EMIT_ITEM.validate(item)
        except NexusError as exc:
            refused[index] = exc
            continue
        items.append((index, (item["integrationId"], item["type"], item.get("data", {}), owner)))
    outcomes = await run_db(request, events.emit_many, [item for _, item in items]) if items else []
    answered = {**refused, **{index: outcome for (index, _), outcome in zip(items, outcomes, strict=True)}}
    results = [
        {"index": index, **(_error(answered[index]) if isinstance(answered[index], Exception) else answered[index])}
        for index in range(len(body["events"]))
    ]
    accepted = sum(1 for r in results if "error" not in r)
    return ok({"accepted": accepted, "refused": len(results) - accepted, "results": results}, status=202)


def _error(exc: NexusError) -> dict:
    # Not found says which by the item's index alone: the answer echoes no integration id.
    message = "the item's integration was not found" if exc.code == "INTEGRATION_NOT_FOUND" else exc.message
    return {"error": {"code": exc.code, "message": message}}


ROUTES = [
    Route(
        "POST",
        "/integrations/events",
        emit_batch,
        f"Emit up to {events.BATCH_MAX} events to their integrations' webhooks in one transaction; each is "
        "answered in order, a refused one with its error",
        "events",
        body=EMIT_BATCH,
        data=out.EMITTED_BATCH,
        status=202,
        errors=("VALIDATION_ERROR", "PAYLOAD_TOO_LARGE"),
    ),
    Route(
        "POST",
        "/integrations/events/ingest",
        ingest,
        "Handle a platform event (user.deleted, content.published) once; service role",
        "events",
        roles=("service", "admin"),
        body=INGEST,
        data=OUTCOME,
        errors=("VALIDATION_ERROR", "FORBIDDEN", "PAYLOAD_TOO_LARGE"),
    ),
]
