"""The transactional outbox: events recorded with the change that caused them.

``record`` must run inside the caller's transaction, so an event exists if and
only if its change committed: one outbox row (published to the Redis Stream by
nexusctl/daemon/relay.py) and one delivery per matching active webhook.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from contextlib import nullcontext
from typing import NamedTuple

import peewee

from nexusctl import tracing
from nexusctl.core import deliveries
from nexusctl.core.ids import parse_uuid
from nexusctl.db import statements
from nexusctl.db.database import database_proxy, is_postgres, retry_deadlocks
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration, OutboxEvent, Webhook, WebhookDelivery
from nexusctl.errors import IntegrationInactive, IntegrationNotFound, NexusError, PayloadTooLarge, UsageProblem

CONNECTED = "integration.connected"
DISCONNECTED = "integration.disconnected"
ERROR = "integration.error"
REFRESHED = "integration.refreshed"
SLACK_COMMAND = "slack.command"  # a slash command typed in a connected workspace (nexusctl.core.slack_commands)
# Events that come from a provider through a verified route: nobody may emit them in a provider's name.
FROM_PROVIDERS = (SLACK_COMMAND,)
# The platform's events this service consumes (nexusctl.core.inbound handles them): nobody emits them here.
USER_DELETED = "user.deleted"
CONTENT_PUBLISHED = "content.published"
PLATFORM_EVENTS = (USER_DELETED, CONTENT_PUBLISHED)
# The families of events only this service writes: its own (integration.*, webhook.*, sync.*) and what its syncs
# report of a provider's resources (<resource>.created/.updated/.deleted, analytics.fetched): the resources of the
# sync actions (providers.sync.registry; tests/core/test_event_types.py keeps the two the same). Nobody emits
# them: a subscriber to media.* or comment.* trusts that they are what a sync saw at the provider.
OWN_FAMILIES = ("integration", "webhook", "sync")
SYNC_RESOURCES = (
    "analytics",
    "campaign",
    "channel",
    "charge",
    "comment",
    "contact",
    "guild",
    "inventory_item",
    "list",
    "media",
    "order",
    "product",
    "transaction",
    "zap",
)


class Subject(NamedTuple):
    """What an emitted event needs of its integration (fan-out and the envelope; whether it may be emitted to): no
    tokens, no full row."""

    id: uuid.UUID
    user_id: uuid.UUID
    provider: object
    is_active: bool = True
    last_error: str | None = None


def outbox_row(event_type: str, integration: Integration, **data) -> OutboxEvent:
    """``record``'s outbox row, not yet written (for a caller that writes it in a statement of its own)."""
    # The subject comes last: ``data`` (which emit takes from a caller) cannot name another user or
    # integration, so nobody can publish an event about someone else's integration onto the bus.
    payload = {
        **data,
        "integrationId": str(integration.id),
        "userId": str(integration.user_id),
        "provider": integration.provider.value if integration.provider else None,
    }
    return OutboxEvent(
        type=event_type,
        user_id=integration.user_id,
        integration_id=integration.id,
        data=payload,
        trace_parent=tracing.current_traceparent(),
    )


def record(event_type: str, integration: Integration, **data) -> OutboxEvent:
    """Write one event about ``integration`` (outbox + its webhooks); ``data`` must hold no secret."""
    event = outbox_row(event_type, integration, **data)
    statements.insert(event)  # written out: peewee's Model.create built the INSERT anew each time
    # Not integration.disconnected: its webhooks go with it.
    event.deliveries_queued = deliveries.fan_out(integration, event_type, data) if event_type != DISCONNECTED else 0
    return event


EVENT_TYPE_PATTERN = r"[a-z0-9_]+(\.[a-z0-9_]+)+"  # the API document states it too
EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)
EVENT_TYPE_MAX = 64  # outbox_events.type is varchar(64): a longer one was a 500 on PostgreSQL
DATA_MAX_BYTES = 256 * 1024


BATCH_MAX = 500  # events per emit_many (the batch route and `events emit --file` send at most this many a call)


def check(event_type, data) -> None:
    """Refuse an event a caller may not emit (UsageProblem naming the field)."""
    if not isinstance(event_type, str) or len(event_type) > EVENT_TYPE_MAX or not EVENT_TYPE.fullmatch(event_type):
        raise UsageProblem(
            f"type must be an event name like post.created, at most {EVENT_TYPE_MAX} characters", field="type"
        )
    if (why := reserved(event_type)) is not None:
        # Emitted events reach the platform's event bus and the webhooks, which this service (user.deleted deletes
        # a user's integrations) and others consume: a caller must not be able to speak for this service, for the
        # platform, nor for a provider (a forged slack.command or comment.created would look like a real one).
        raise UsageProblem(f"type {event_type} is reserved, it cannot be emitted: {why}", field="type")
    if not isinstance(data, dict):
        raise UsageProblem("data must be a JSON object", field="data")
    if len(json.dumps(data)) > DATA_MAX_BYTES:
        raise UsageProblem(f"data is over {DATA_MAX_BYTES // 1024} KiB", field="data")


# What a caller may emit, as the API says it (the reserved families are refused by ``check``, naming them).
EMITTABLE = "an event name like post.created, not of this service's own families (media.*, comment.*, ...)"


def reserved(event_type: str) -> str | None:
    """Why a caller may not emit ``event_type`` (None: it may)."""
    family = event_type.split(".", 1)[0]
    if family in OWN_FAMILIES:
        return f"{family}.* events are this service's own"
    if family in SYNC_RESOURCES:
        return (
            f"{family}.* events are this service's own, written by its syncs from what they read at the provider "
            f"(reserved families: {', '.join(f + '.*' for f in OWN_FAMILIES + SYNC_RESOURCES)})"
        )
    if event_type in PLATFORM_EVENTS:
        return f"{event_type} comes from the platform (POST /integrations/events/ingest or `nexusctl events ingest`)"
    if event_type in FROM_PROVIDERS:
        return f"{event_type} comes from the provider, through a verified route"
    return None


def emit(integration_id, event_type, data, *, owner_id=None, deliveries_max: int | None = None) -> dict:
    """An event from another service or a script: queued to every matching webhook, in one transaction."""
    outcome = emit_many([(integration_id, event_type, data, owner_id)], deliveries_max=deliveries_max)[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


OUTBOX_COLUMNS = ("id", "type", "user_id", "integration_id", "data", "created_at", "updated_at", "trace_parent")


_SIGNING_COLUMNS = ', w."url", w."secret", w."previous_secret", w."previous_secret_expires_at"'


def _subjects(ids: list, signing: bool = False) -> tuple[dict, dict, dict]:
    """What an event needs of each of these integrations (who owns it, its provider: no tokens, no full row) and
    their active webhooks for the fan-out, in one written-out SELECT: ({id: Subject}, {id: [(webhook id,
    its event patterns)]}, {webhook id: (id, url, secret, previous_secret, previous_secret_expires_at)}); the
    last only when ``signing`` (an emit that may hand its deliveries to the worker, which signs with them)."""
    where, params = statements.in_list(Integration.id, ids)
    rows = statements.run_typed(  # prepared on PostgreSQL (outside a transaction)
        "nexus_subjects",
        'SELECT i."id", i."user_id", i."provider", i."is_active", i."last_error", w."id", w."events"'
        + (_SIGNING_COLUMNS if signing else "")
        + ' FROM "integrations" AS i '
        'LEFT JOIN "webhooks" AS w ON w."integration_id" = i."id" AND w."is_active" '
        f"WHERE i.{where}",
        params,
    ).fetchall()
    subjects: dict = {}
    hooks: dict = {}
    hook_rows: dict = {}
    for integration_id, user_id, provider, active, last_error, hook_id, patterns, *secrets in rows:
        subject = subjects.get(integration_id)
        if subject is None:
            subject = subjects[integration_id] = Subject(
                Integration.id.python_value(integration_id),
                Integration.user_id.python_value(user_id),
                Integration.provider.python_value(provider),
                bool(Integration.is_active.python_value(active)),
                last_error,
            )
            hooks[subject.id] = []
        if hook_id is not None:
            hooks[subject.id].append((hook_id, Webhook.events.python_value(patterns)))
            if signing:
                hook_rows[hook_id] = (hook_id, *secrets)
    if is_postgres(database_proxy) and database_proxy.in_transaction():
        _hold(hooks)
    return {subject.id: subject for subject in subjects.values()}, hooks, hook_rows


def _hold(hooks: dict) -> None:
    """Inside a transaction on PostgreSQL: lock the webhooks just read (FOR KEY SHARE, as the deliveries' foreign
    key would) and leave out those deleted since, so no delete can break the INSERT before this commits."""
    ids = [hook_id for found in hooks.values() for hook_id, _ in found]
    if not ids:
        return
    where, params = statements.in_list(Webhook.id, ids)
    sql = f'SELECT "id" FROM "webhooks" WHERE {where} FOR KEY SHARE'
    kept = {row[0] for row in database_proxy.execute_sql(sql, params).fetchall()}
    for found in hooks.values():
        found[:] = [hook for hook in found if hook[0] in kept]


def _write(items, wanted: dict, outcomes: list, deliveries_max: int | None, offer) -> deliveries.Handed:
    """emit_many's part inside its transaction: fills ``outcomes`` for the events that ``wanted`` (integration
    id: indexes of ``items``) names; what it leased to the worker of ``offer`` (``deliveries.hand``)."""
    found, hooks, hook_rows = _subjects(list(wanted), signing=offer is not None)
    events = []
    for integration_id, indexes in wanted.items():
        row = found.get(integration_id)
        for index in indexes:
            owner = items[index][3]
            if row is None or (owner is not None and row.user_id != owner):
                outcomes[index] = IntegrationNotFound(f"integration {integration_id} not found", id=str(integration_id))
                continue
            if not row.is_active:
                outcomes[index] = inactive(row)
                continue
            _, event_type, data, *_ = items[index]
            events.append((index, row, event_type, data))
    if not events:
        return deliveries.NOTHING_HANDED
    # One microsecond apart: readers that go by (created_at, id), the relay among them, keep the given order.
    start = utcnow()
    times = [start + dt.timedelta(microseconds=k) for k in range(len(events))]
    here = tracing.current_traceparent()
    parents = [items[index][4] if len(items[index]) > 4 else here for index, *_ in events]
    # The subject comes last: ``data`` (which a caller gives) cannot name another user or integration.
    rows = [
        (
            uuid.uuid4(),
            event_type,
            subject.user_id,
            subject.id,
            {
                **data,
                "integrationId": str(subject.id),
                "userId": str(subject.user_id),
                "provider": subject.provider.value if subject.provider else None,
            },
            at,
            at,
            parent,
        )
        for (_, subject, event_type, data), at, parent in zip(events, times, parents)
    ]
    pending, queued = deliveries.fan_out_rows(
        [(subject, event_type, data) for _, subject, event_type, data in events], times, parents, hooks
    )
    if deliveries_max is not None and len(pending) > deliveries_max:
        # Before anything is written: 500 events to 100 webhooks each were 50,000 deliveries in one transaction
        # (4.9 s on SQLite, 6.8 s on PostgreSQL, the write lock held all along on SQLite).
        raise _too_many(len(events), len(pending), deliveries_max)
    # Those the daemon's worker has room for are leased to it in the same INSERT (it sends them without a claim);
    # the others are queued unleased, for the workers' claims.
    handed, leased = deliveries.NOTHING_HANDED, []
    if offer is not None:
        pending, leased, handed = deliveries.hand(pending, offer, hook_rows)
    # The outbox rows and the deliveries in one statement on PostgreSQL (prepared; it NOTIFYs the workers too,
    # when something unleased was queued), an INSERT each on SQLite.
    statements.insert_together(
        "nexus_emit",
        [
            (OutboxEvent, OUTBOX_COLUMNS, rows),
            (WebhookDelivery, deliveries.PENDING_COLUMNS, pending),
            (WebhookDelivery, deliveries.LEASED_COLUMNS, leased),
        ],
        notify=deliveries.NOTIFY_CHANNEL if pending else None,
    )
    if pending:
        deliveries.queued()
    for (index, subject, event_type, _), row, count in zip(events, rows, queued, strict=True):
        outcomes[index] = {
            "id": str(row[0]),
            "type": event_type,
            "integrationId": str(subject.id),
            "deliveriesQueued": count,
        }
    return handed


def inactive(subject: Subject) -> IntegrationInactive:
    """The refusal of an event emitted to an inactive integration (deactivated by its owner, or its grant gone).

    Its proxy calls and syncs are refused as well: an event accepted about an integration its owner switched off
    would reach the webhooks as the others do, and the emitter would not learn that it is off. No id in the message:
    the batch route answers by the item's index and echoes no integration id (the error's ``id`` names it)."""
    why = (subject.last_error or "deactivated")[:200]  # as the proxy's refusal says it
    return IntegrationInactive(
        f"the integration is inactive ({why}), no event is emitted to it: switch it on (PATCH isActive: true, "
        "`nexusctl integrations update ID --active`) or connect it again",
        id=str(subject.id),
    )


class TooManyDeliveries(PayloadTooLarge):
    """The events of one emit would queue more deliveries than EMIT_DELIVERIES_MAX."""


def _too_many(events: int, pending: int, limit: int) -> TooManyDeliveries:
    if events == 1:  # fewer events at a time cannot help: its integration has that many matching webhooks
        why = (
            f"this event would go to {pending} matching webhooks ({pending} deliveries), more than one emit may "
            f"queue ({limit}, EMIT_DELIVERIES_MAX)"
        )
    else:
        why = (
            f"these {events} events would queue {pending} deliveries (each to every matching webhook), more than "
            f"one emit may queue ({limit}, EMIT_DELIVERIES_MAX): send fewer events at a time"
        )
    return TooManyDeliveries(why, deliveries=pending, limit=limit)


def emit_many(items, *, deliveries_max: int | None = None) -> list:
    """Several events in one transaction and one commit: ``items`` are (integration id, type, data, owner id
    or None[, the emitter's W3C traceparent]). Each one's answer, in order: the dict ``emit`` returns, or the
    NexusError that refused it (bad input, an integration that is not there or not the owner's); a refused
    one writes nothing and does not stop the others. A database error fails them all (nothing was committed).
    ``deliveries_max``: the most deliveries the call may queue in all (EMIT_DELIVERIES_MAX, one request's bound);
    more raises TooManyDeliveries (PAYLOAD_TOO_LARGE) and nothing is written."""
    return _emit(items, deliveries_max, None)[0]


def emit_handing(
    items, offer: deliveries.Offer, *, deliveries_max: int | None = None
) -> tuple[list, deliveries.Handed]:
    """``emit_many``, leasing the deliveries that ``offer`` has room for to the worker that made it (in the INSERT
    that queues them: no claim needed); and which it leased (none when the call raised: nothing was written)."""
    return _emit(items, deliveries_max, offer)


def _emit(items, deliveries_max: int | None, offer) -> tuple[list, deliveries.Handed]:
    if len(items) > BATCH_MAX:
        raise UsageProblem(f"at most {BATCH_MAX} events at a time", field="events")
    outcomes: list = [None] * len(items)
    wanted: dict = {}
    for index, (integration_id, event_type, data, *_) in enumerate(items):
        try:
            check(event_type, data)
            wanted.setdefault(parse_uuid(integration_id, "integrationId"), []).append(index)
        except NexusError as exc:
            outcomes[index] = exc
    if not wanted:
        return outcomes, deliveries.NOTHING_HANDED
    # On SQLite the integrations and their webhooks are read in the transaction that writes the events (it
    # holds the write lock from its start: a webhook cannot go between the read and the delivery INSERT). On
    # PostgreSQL the writes are one statement, atomic by itself (statements.one_write): no BEGIN and COMMIT,
    # and the read before it sees what it would see as a transaction's first statement (READ COMMITTED takes a
    # snapshot per statement, and the read locks nothing); should a webhook read be deleted before the write, the
    # write fails on the foreign key, writes nothing, and goes again with the webhooks locked (``_write_safely``).
    handed = _write_safely(items, wanted, outcomes, deliveries_max, offer)
    return outcomes, handed  # after the commit: a transaction that failed hands nothing


FOREIGN_KEY_VIOLATION = "23503"


def _write_safely(items, wanted: dict, outcomes: list, deliveries_max: int | None, offer) -> deliveries.Handed:
    """``_write`` as emit_many says. On PostgreSQL a webhook (or its integration) deleted between the read and the
    one-statement write failed it on the deliveries' foreign key (a 500 for the emitter): nothing was written, so
    it goes again in a transaction that reads and locks the webhooks (``_hold``), which a delete cannot break."""
    alone = statements.one_write()
    try:
        with nullcontext() if alone else database_proxy.atomic():
            return _write(items, wanted, outcomes, deliveries_max, offer)
    except peewee.IntegrityError as exc:
        if not alone or not _foreign_key_violated(exc):
            raise

        def locked() -> deliveries.Handed:
            with database_proxy.atomic():
                return _write(items, wanted, outcomes, deliveries_max, offer)

        return retry_deadlocks(locked)  # its locks against an integration's delete, which takes its webhooks in turn


def _foreign_key_violated(exc: peewee.IntegrityError) -> bool:
    causes = (exc, *exc.args[:1], exc.__context__, exc.__cause__)
    return any(getattr(cause, "pgcode", None) == FOREIGN_KEY_VIOLATION for cause in causes)
