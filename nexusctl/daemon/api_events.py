"""`POST /integrations/events/ingest`: other services hand this one an event without Redis;
`POST /integrations/events`: many events emitted to webhooks at once.

Ingest runs the same idempotent handlers as the consumer group (nexusctl.core.inbound);
only a service (or admin) token may call it: a user cannot delete users. The batch
emit is for producers with volume: one transaction for the whole list, each event
checked on its own (a refused one is answered with its error, the others go).
"""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, with_config
from typing_extensions import Required, TypedDict

from nexusctl.core import events, inbound
from nexusctl.core.storable import check_storable
from nexusctl.daemon import responses as out
from nexusctl.daemon.fields import BODY, Id, Matching, OneOf, Text
from nexusctl.daemon.keys import SERVICES, SETTINGS
from nexusctl.daemon.routing import Route, ok, owner_filter, read_body, run_db, validate
from nexusctl.errors import NexusError


@with_config(BODY)
class Ingest(TypedDict, total=False):
    type: Required[OneOf(inbound.HANDLED, "The platform events this service handles")]
    data: Required[dict[str, Any]]
    id: Text(min_length=1, max_length=128, description="Your id for the event: sending it again is a no-op")


async def ingest(request: web.Request) -> web.Response:

    body = await read_body(request, Ingest)
    event = inbound.make(body["type"], body["data"], event_id=body.get("id"))
    return ok(await inbound.handle(request.app[SERVICES], event))


@with_config(BODY)
class EmitItem(TypedDict, total=False):
    integrationId: Required[Id]
    type: Required[Matching(events.EVENT_TYPE_PATTERN, events.EMITTABLE, max_length=events.EVENT_TYPE_MAX)]
    data: dict[str, Any]


# Items are documented as objects only: one that breaks EmitItem's rules is answered in the batch's results
# (its error), not with a 400 for the whole request.
_ITEM = "checked on its own against: integrationId (required), type (required), data (optional)"


@with_config(BODY)
class EmitBatch(TypedDict):
    events: Annotated[
        list[Annotated[dict[str, Any], Field(description=_ITEM)]],
        Field(
            min_length=1,
            max_length=events.BATCH_MAX,
            description=f"1-{events.BATCH_MAX} events; the body at most 1 MiB",
        ),
    ]


async def emit_batch(request: web.Request) -> web.Response:
    body = await read_body(request, EmitBatch, each_later=("events",))
    owner = owner_filter(request)
    items, refused = [], {}
    for index, item in enumerate(body["events"]):
        try:
            item = validate(EmitItem, item)
            check_storable(item, "data")  # a NUL in one item's data is that item's refusal, not the batch's
        except NexusError as exc:
            refused[index] = exc
            continue
        items.append((index, (item["integrationId"], item["type"], item.get("data", {}), owner)))
    # One request queues at most EMIT_DELIVERIES_MAX deliveries, whatever its integrations' webhooks: more is
    # refused whole (413), nothing written.
    limit = request.app[SETTINGS].emit_deliveries_max
    outcomes = (
        await run_db(request, events.emit_many, [item for _, item in items], deliveries_max=limit) if items else []
    )
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
        body=EmitBatch,
        data=out.EmittedBatch,
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
        body=Ingest,
        data=out.Outcome,
        errors=("VALIDATION_ERROR", "FORBIDDEN", "PAYLOAD_TOO_LARGE"),
    ),
]
