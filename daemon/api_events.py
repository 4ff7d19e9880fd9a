"""`POST /integrations/events/ingest`: other services hand this one an event without Redis.

Runs the same idempotent handlers as the consumer group (nexusctl.core.inbound);
only a service (or admin) token may call it: a user cannot delete users.
"""

from __future__ import annotations

from aiohttp import web

from daemon.routing import Route, ok, read_body
from daemon.schema import Body, Obj, Str
from nexusctl.core import inbound

INGEST = Body({"type": Str(enum=inbound.HANDLED, description="The platform events this service handles"), "data": Obj(),
               "id": Str(min_length=1, max_length=128, description="Your id for the event: sending it again is a no-op")},
              required=("type", "data"))
OUTCOME = {"type": "object", "properties": {"type": {"type": "string"}, "key": {"type": "string"},
                                            "duplicate": {"type": "boolean"}}, "additionalProperties": True}


async def ingest(request: web.Request) -> web.Response:
    from daemon.app import SERVICES

    body = await read_body(request, INGEST)
    event = inbound.make(body["type"], body["data"], event_id=body.get("id"))
    return ok(await inbound.handle(request.app[SERVICES], event))


ROUTES = [
    Route("POST", "/integrations/events/ingest", ingest,
          "Handle a platform event (user.deleted, content.published) once; service role", "events",
          roles=("service", "admin"), body=INGEST, data=OUTCOME,
          errors=("VALIDATION_ERROR", "FORBIDDEN", "PAYLOAD_TOO_LARGE")),
]
