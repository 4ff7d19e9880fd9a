"""Deliveries: fan-out on emit, claiming with leases, recording each attempt.

Emit writes one ``webhook_deliveries`` row per matching active webhook in the
caller's transaction (on PostgreSQL it also NOTIFYs, which is delivered at
commit, so workers wake at once). Workers claim due rows in batches under a
lease: one UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) on
PostgreSQL, so several daemons never claim the same row (an emit in the daemon
may instead lease rows to that daemon's worker in the INSERT itself: ``hand``); an expired lease
(a crashed worker) makes the row due again, and the retry keeps its
``webhook-id``. Every write after a send is fenced by the lease token.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import json
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, NamedTuple

from peewee import SQL, Tuple, Value

from nexusctl import tracing
from nexusctl.core import lean, webhook_rows
from nexusctl.core.ids import parse_uuid
from nexusctl.core.paging import LOAD_ROWS, Bulky, Page, bounded_page, check_limit
from nexusctl.core.serializers import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    attempt_row,
    delivery_row,
    delivery_to_dict,
)
from nexusctl.core.webhook_rows import matches
from nexusctl.db import statements
from nexusctl.db.database import database_proxy, is_postgres, retry_deadlocks
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration, Webhook, WebhookAttempt, WebhookDelivery
from nexusctl.db.secrets import unseal
from nexusctl.enums import DeliveryStatus
from nexusctl.errors import DeliveryInFlight, DeliveryNotFound, KeyNotConfigured, UsageProblem, WebhookInactive

NOTIFY_CHANNEL = "nexus_deliveries"
JITTER = 0.2
DISABLE_AFTER = dt.timedelta(days=5)
RESPONSE_MAX = 4096
DUE = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
# Called after rows are queued in this process (the daemon's worker wakes on it).
LISTENERS: list = []


def payload_of(integration: Integration, event_type: str, data: dict, now: dt.datetime | None = None) -> dict:
    envelope = {
        **(data or {}),
        # The subject last: data (an emitter's) cannot name another integration or user, as in the outbox's copy.
        "integrationId": str(integration.id),
        "userId": str(integration.user_id),
        "provider": integration.provider.value if integration.provider else None,
    }
    return {"type": event_type, "timestamp": (now or utcnow()).isoformat().replace("+00:00", "Z"), "data": envelope}


def fan_out(integration: Integration, event_type: str, data: dict) -> int:
    """Queue one delivery per matching active webhook; run inside the caller's transaction."""
    # Written out (peewee built this SELECT anew on every event: a tenth of a refresh's CPU in the sweep).
    rows = database_proxy.execute_sql(
        f'SELECT "id", "events" FROM "webhooks" WHERE "integration_id" = {database_proxy.param} AND "is_active"',
        [Webhook.integration.db_value(integration.id)],
    ).fetchall()
    hooks = [_Hook(_uuid(i)) for i, events in rows if matches(Webhook.events.python_value(events), event_type)]
    return len(queue(integration, event_type, data, hooks))


class _Hook(NamedTuple):
    id: uuid.UUID


def fan_out_many(events, times, trace_parents=None, hooks: dict | None = None) -> list[int]:
    """``fan_out`` for many events ((integration, type, data) each, queued at ``times``) with one webhook
    query and one insert; how many deliveries each queued. Inside the caller's transaction.
    ``trace_parents``: each event's emitter's trace context (None: the current one's, if traces are on).
    ``hooks``: each integration's active webhooks as (id, event patterns), when the caller read them already."""
    if trace_parents is None:
        trace_parents = [tracing.current_traceparent()] * len(events)
    if hooks is None:
        hooks = {}
        # Written out (peewee built this SELECT anew on every batch).
        ids = list({integration.id for integration, _, _ in events})
        where, params = statements.in_list(Webhook.integration, ids)
        for hook_id, integration_id, patterns in database_proxy.execute_sql(
            f'SELECT "id", "integration_id", "events" FROM "webhooks" WHERE {where} AND "is_active"', params
        ).fetchall():
            hooks.setdefault(_uuid(integration_id), []).append((hook_id, Webhook.events.python_value(patterns)))
    rows, counts = fan_out_rows(events, times, trace_parents, hooks)
    if rows:
        statements.insert_many(WebhookDelivery, PENDING_COLUMNS, rows)
        _notify()
    return counts


def fan_out_rows(events, times, trace_parents, hooks: dict) -> tuple[list, list[int]]:
    """``fan_out_many``'s delivery rows (PENDING_COLUMNS), not yet written, and how many each event queues; for a
    caller that writes them with its own rows (then ``queued()``)."""
    rows, counts = [], []
    for (integration, event_type, data), now, parent in zip(events, times, trace_parents, strict=True):
        targets = [hook_id for hook_id, patterns in hooks.get(integration.id, ()) if matches(patterns, event_type)]
        payload = payload_of(integration, event_type, data, now) if targets else None
        rows += [_pending(hook_id, event_type, payload, now, parent) for hook_id in targets]
        counts.append(len(targets))
    return rows, counts


# A new delivery's row (``_pending``), due at once.
PENDING_COLUMNS = (
    "id",
    "webhook",
    "event",
    "payload",
    "next_attempt_at",
    "status",
    "attempts",
    "created_at",
    "updated_at",
    "trace_parent",
)


def _pending(webhook_id, event_type: str, payload: dict, now: dt.datetime, trace_parent: str | None) -> tuple:
    """A new delivery's row (PENDING_COLUMNS), due at once."""
    return (uuid.uuid4(), webhook_id, event_type, payload, now, DeliveryStatus.PENDING, 0, now, now, trace_parent)


def queue(integration: Integration, event_type: str, data: dict, hooks) -> list[uuid.UUID]:
    """One PENDING delivery of the event to each of ``hooks``; their ids. Inside the caller's transaction."""
    if not hooks:
        return []
    now = utcnow()
    payload = payload_of(integration, event_type, data, now)
    parent = tracing.current_traceparent()
    rows = [_pending(h.id, event_type, payload, now, parent) for h in hooks]
    statements.insert_many(WebhookDelivery, PENDING_COLUMNS, rows)
    _notify()
    return [row[0] for row in rows]


# --- handed at emit -------------------------------------------------------------
#
# An emit in the daemon can lease its deliveries to that daemon's own worker in the INSERT that queues them, as
# far as the worker has room (``Offer``): the worker then sends them without a claim (one statement and a NOTIFY
# wake-up less per batch: the claim was the largest of PostgreSQL's statements per emitted event, issue 19). The
# rest are queued unleased and NOTIFYed, as always. A leased row is what a claim makes of it (lease_until,
# lease_token): renewed, fenced and, should the daemon die, claimed by another once its lease runs out.

LEASED_COLUMNS = PENDING_COLUMNS + ("lease_until", "lease_token")


@dataclass
class Offer:
    """What a daemon's worker can take of an emit's deliveries now: at most ``total``, of a webhook named in
    ``rooms`` at most its room and of another at most ``cap``, none of ``exclude`` (locked or at its most), under
    ``lease`` for ``lease_seconds``; signed with ``keyring`` (a webhook whose secret it cannot open is not handed,
    and is named in ``Handed.locked``)."""

    keyring: object
    lease: uuid.UUID
    lease_seconds: float
    total: int
    cap: int
    rooms: dict
    exclude: frozenset = frozenset()


class Handed(NamedTuple):
    """The deliveries an emit leased to the worker (as a claim returns them), their webhooks' URLs and secrets,
    and {webhook id: key id} of the webhooks left unleased because ``Offer.keyring`` lacks their key."""

    claimed: list
    signing: dict
    locked: dict


NOTHING_HANDED = Handed([], {}, {})


def hand(rows: list, offer: Offer, hook_rows: dict) -> tuple[list, list, Handed]:
    """Split an emit's delivery rows (PENDING_COLUMNS, in order) into those queued unleased and those leased to the
    worker (LEASED_COLUMNS), within ``offer``. ``hook_rows``: {webhook id: (id, url, secret, previous_secret,
    previous_secret_expires_at)} of their webhooks (read with them). Inside the emit's transaction."""
    if offer.total <= 0 or not rows:
        return rows, [], NOTHING_HANDED
    candidates = {_uuid(row[1]): row[1] for row in rows}
    signing, locked = _signing(
        offer.keyring, [hook_rows[raw] for w, raw in candidates.items() if w not in offer.exclude and raw in hook_rows]
    )
    room, total = dict(offer.rooms), offer.total
    until = utcnow() + dt.timedelta(seconds=offer.lease_seconds)
    expires = until.timestamp()
    unleased, leased, claimed = [], [], []
    for row in rows:
        webhook_id = _uuid(row[1])
        left = room.get(webhook_id, offer.cap)
        if total <= 0 or left <= 0 or webhook_id not in signing or webhook_id in offer.exclude:
            unleased.append(row)
            continue
        room[webhook_id], total = left - 1, total - 1
        leased.append((*row, until, offer.lease))
        # As ``_claim`` makes them: the first attempt, created (and stamped for emit-to-attempt) as the row.
        claimed.append(Claimed(row[0], webhook_id, row[2], row[3], 0, offer.lease, row[7], row[9], expires))
    if not claimed:
        return rows, [], Handed([], {}, locked)
    return unleased, leased, Handed(claimed, {w: signing[w] for w in {c.webhook_id for c in claimed}}, locked)


# --- reading --------------------------------------------------------------


def get(delivery_id, *, owner_id=None) -> WebhookDelivery:
    row_id = parse_uuid(delivery_id, "deliveryId")
    row = (
        WebhookDelivery.select(
            WebhookDelivery, Webhook.id, Webhook.is_active, Webhook.disabled_reason, Integration.id, Integration.user_id
        )
        .join(Webhook)
        .join(Integration)
        .where(WebhookDelivery.id == row_id)
        .first()
    )
    if row is None or (owner_id is not None and row.webhook.integration.user_id != owner_id):
        raise DeliveryNotFound(f"delivery {row_id} not found", id=str(row_id))
    return row


def page_with_attempts(webhook_id, *, status=None, limit=None, cursor=None, owner_id=None) -> tuple[Page, list]:
    """A page of a webhook's deliveries as dicts, each with its attempt log, bounded in bytes
    (paging.bounded_page: a payload over FIELD_BYTES is left out; ``get`` shows it).

    Read lean (nexusctl.core.lean: the shown columns as tuples, one statement per shape of filters, the page's
    attempts in one more); a page of more than LOAD_ROWS goes the general way, which loads attempts in chunks."""
    hook_id = webhook_rows.owner_of(webhook_id, owner_id=owner_id)
    where = {'t."webhook_id" = ?': [WebhookDelivery.webhook.db_value(hook_id)]}
    if status is not None:
        where['t."status" = ?'] = [WebhookDelivery.status.db_value(_status(status))]

    def general() -> Page:
        query = WebhookDelivery.select().where(WebhookDelivery.webhook == hook_id)
        if status is not None:
            query = query.where(WebhookDelivery.status == _status(status))

        def serialize(rows):
            log = attempts_of(rows)
            return [delivery_to_dict(d, log[d.id]) for d in rows]

        bulky = Bulky(WebhookDelivery.payload, "payload")
        return bounded_page(query, WebhookDelivery, limit, cursor, bulky=bulky, serialize=serialize)

    if check_limit(limit) > LOAD_ROWS:
        page = general()
    else:
        page = lean.newest_first(
            _LISTED, WebhookDelivery, where, limit, cursor, serialize=_with_attempts, general=general
        )
    return page, page.items


_LISTED = lean.Listing(
    "webhook_deliveries", DELIVERY_COLUMNS, bulky="payload", bulky_key="payload", nested="attemptLog"
)
_ATTEMPTS = lean.Listing("webhook_attempts", ATTEMPT_COLUMNS)


def _with_attempts(rows: list[list]) -> list[dict]:
    """Deliveries read lean, each with its attempts oldest first, read in one statement for the page."""
    found: dict = {values[0]: [] for values in rows}
    if found:
        postgres = is_postgres(database_proxy)
        ids = list(found) if postgres else json.dumps([i.replace("-", "") for i in found])
        attempts = database_proxy.execute_sql(_attempts_sql(postgres), [ids]).fetchall()
        for values in lean.converted(_ATTEMPTS, attempts, postgres):
            found[values[0]].append(attempt_row(values))
    return [delivery_row(values, found[values[0]]) for values in rows]


@functools.lru_cache(maxsize=2)
def _attempts_sql(postgres: bool) -> str:
    # One parameter whatever the page's size: an array on PostgreSQL, a JSON array on SQLite.
    ids = "= ANY(CAST(? AS uuid[]))" if postgres else "IN (SELECT value FROM json_each(?))"
    columns = ", ".join(lean.columns_sql(_ATTEMPTS, postgres))
    sql = f'SELECT {columns} FROM "webhook_attempts" AS t WHERE t."delivery_id" {ids} ORDER BY t."number"'
    return lean.placeholders(sql, postgres)


def get_with_attempts(delivery_id, *, owner_id=None) -> dict:
    """One delivery as a dict with its whole payload and attempt log (the list may leave the payload out)."""
    row = get(delivery_id, owner_id=owner_id)
    return delivery_to_dict(row, attempts_of([row])[row.id])


def attempts_of(deliveries) -> dict:
    """Each delivery's attempts, oldest first, in one query for the page."""
    ids = [d.id for d in deliveries]
    found: dict = {i: [] for i in ids}
    if ids:
        for attempt in WebhookAttempt.select().where(WebhookAttempt.delivery.in_(ids)).order_by(WebhookAttempt.number):
            found[attempt.delivery_id].append(attempt)
    return found


def _status(value) -> DeliveryStatus:
    try:
        return DeliveryStatus(str(value).upper())
    except ValueError:
        raise UsageProblem(
            f"status must be one of: {', '.join(s.value for s in DeliveryStatus)}", field="status"
        ) from None


# --- operator actions ---------------------------------------------------------


def refuse_inactive(hook: Webhook, what: str) -> None:
    """WebhookInactive for a disabled webhook: the worker never sends to one, so a test, redelivery or
    replay queued to it would wait silently until someone enables it (Svix and Stripe refuse these too)."""
    if not hook.is_active:
        why = f" ({hook.disabled_reason})" if hook.disabled_reason else ""
        raise WebhookInactive(
            f"webhook {hook.id} is inactive{why}: enable it before {what} "
            f"(nexusctl webhooks update {hook.id} --active, or PATCH isActive: true)",
            id=str(hook.id),
        )


def not_leased(now: dt.datetime):
    """Rows no worker holds: no lease, or one run out. A live lease means a daemon holds the delivery (its send
    waiting for a slot, in flight, or its outcome waiting for its commit) and renews it while it does."""
    return WebhookDelivery.lease_until.is_null() | (WebhookDelivery.lease_until < now)


def redeliver(delivery_id, *, owner_id=None) -> WebhookDelivery:
    """Send again now, with the same webhook-id (receivers that saw it may skip it).

    Refused (DeliveryInFlight) while a daemon holds the delivery under a live lease: clearing that lease sent the
    same webhook-id again beside the send under way, and the daemon could not record the attempt it made (its
    fence had gone). The lease is tested in the UPDATE itself, so a claim that lands meanwhile is never undone."""
    row = get(delivery_id, owner_id=owner_id)
    refuse_inactive(row.webhook, "a redelivery")
    now = utcnow()
    changed = (
        WebhookDelivery.update(
            status=DeliveryStatus.PENDING, next_attempt_at=now, lease_until=None, lease_token=None, updated_at=now
        )
        .where((WebhookDelivery.id == row.id) & not_leased(now))
        .execute()
    )
    if not changed:
        now_row = WebhookDelivery.get_or_none(WebhookDelivery.id == row.id)
        if now_row is None:  # deleted meanwhile
            raise DeliveryNotFound(f"delivery {row.id} not found", id=str(row.id))
        # Held: a daemon is sending it, or claimed it to send next; or one that stopped hard (a second SIGTERM, a
        # crash) held it and its lease has not run out yet. Which one cannot be told from here: the lease's end
        # can (a running daemon moves it on while it holds the delivery).
        until = now_row.lease_until
        when = until.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if until else "soon"
        raise DeliveryInFlight(
            f"delivery {row.id} is held by a daemon (sending it, or about to) until its lease runs out at {when} "
            f"(a running daemon renews it while it holds it); try again after that, or once its attempt is "
            f"recorded (nexusctl webhooks deliveries {row.webhook.id} shows its attempt log)",
            id=str(row.id),
        )
    _notify()
    return get(row.id)


class Replayed(NamedTuple):
    """What a replay queued again, and how many of its deliveries it left alone because a daemon was sending them
    (under a live lease: each is sent and recorded by that daemon; replay it again once it is recorded)."""

    queued: int
    skipped: int


def replay(
    webhook_id,
    *,
    since: dt.datetime,
    status=None,
    owner_id=None,
    dry_run: bool = False,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Replayed:
    """Queue again every delivery of a webhook created since ``since``, but those a daemon is sending now (under a
    live lease): skipped and counted, never re-queued over the send under way.

    One set-based UPDATE by default. With ``batch_size`` it goes in pages along the
    (webhook, created_at, id) index, one short transaction each, calling ``progress(n)``
    after each, so the daemon starts sending the first ones while the rest are queued.
    ``dry_run`` only counts, after the same refusals as the real run: a dry run predicts it.
    """
    hook = webhook_rows.get(webhook_id, owner_id=owner_id)
    refuse_inactive(hook, "a replay")
    where = (WebhookDelivery.webhook == hook.id) & (WebhookDelivery.created_at >= since)
    if status is not None:
        where &= WebhookDelivery.status == _status(status)
    if dry_run:
        matching = WebhookDelivery.select().where(where).count()
        free = WebhookDelivery.select().where(where & not_leased(utcnow())).count()
        return Replayed(free, matching - free)
    if batch_size is None:
        # The skipped ones are counted by a statement of their own: on PostgreSQL one statement could return both
        # (a data-modifying WITH), on SQLite none can (no UPDATE inside WITH, no aggregate in RETURNING), and the
        # count is a few % of the UPDATE's time (20,000 rows: 2-25 ms against 0.5-2.2 s on SQLite, 16-55 ms
        # against 0.9-1.2 s on PostgreSQL, a loaded machine), once per replay.
        matching = WebhookDelivery.select().where(where).count()
        count = _requeue(where)
        _notify()
        return Replayed(count, max(0, matching - count))  # a row emitted between the two: counted as queued
    count, skipped, after = 0, 0, None
    while True:
        keys = _page(hook.id, where, after, batch_size)
        if not keys:
            return Replayed(count, skipped)
        done = _requeue(where & WebhookDelivery.id.in_([key[1] for key in keys]))
        _notify()
        count += done
        skipped += len(keys) - done
        after = keys[-1]
        if progress:
            progress(len(keys))


def _page(webhook_id, where, after: tuple | None, size: int) -> list[tuple]:
    """The (created_at, id) keys of the next ``size`` deliveries of the webhook ``webhook_id`` matching ``where``, in
    that order, after the key ``after`` (None: from the first): a keyset page along the (webhook, created_at, id)
    index, for replay's and park/unpark's batches. Each page starts in the index where the last one ended: read from
    the start, every page walked again past the rows the earlier ones had done (quadratic for a large backlog; a
    replayed row still matches). The id breaks created_at's ties, so no row is left out or taken twice. The webhook
    leads the key as it leads the index: the page is one range of it (with (created_at, id) alone, PostgreSQL could
    only filter the webhook's rows out of the created_at index, or out of all that match ``where``)."""
    return list(_page_query(webhook_id, where, after, size).tuples())


def _page_query(webhook_id, where, after: tuple | None, size: int):
    where &= WebhookDelivery.webhook == webhook_id
    if after is not None:
        where &= Tuple(WebhookDelivery.webhook, WebhookDelivery.created_at, WebhookDelivery.id) > Tuple(
            Value(webhook_id, converter=WebhookDelivery.webhook.db_value),
            Value(after[0], converter=WebhookDelivery.created_at.db_value),
            Value(after[1], converter=WebhookDelivery.id.db_value),
        )
    return (
        WebhookDelivery.select(WebhookDelivery.created_at, WebhookDelivery.id)
        .where(where)
        .order_by(WebhookDelivery.webhook, WebhookDelivery.created_at, WebhookDelivery.id)
        .limit(size)
    )


def _requeue(where) -> int:
    """Queue the matching rows again now, but those under a live lease (tested in the UPDATE itself, so a claim
    that lands meanwhile is left alone); how many were queued.

    Its UPDATE locks the rows in the order it reads them, not in id order as the daemon's writers of held rows do
    (a row whose lease ran out while its worker still holds it is both theirs and the replay's), so PostgreSQL may
    pick it as a deadlock's victim: it runs again, as those writers do, rather than fail the operator's command."""

    def requeue() -> int:
        now = utcnow()
        with database_proxy.atomic():  # one whole transaction a try (a savepoint inside a caller's)
            return (
                WebhookDelivery.update(
                    status=DeliveryStatus.PENDING,
                    next_attempt_at=now,
                    lease_until=None,
                    lease_token=None,
                    updated_at=now,
                )
                .where(where & not_leased(now))
                .execute()
            )

    return retry_deadlocks(requeue)


# Rows a park or an unpark moves per transaction: a webhook's whole backlog in one transaction held locks the
# record batches of its deliveries in flight wait for, and they hold the rows the lease renewal needs.
PARK_BATCH = 1000
_QUEUED = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
_SWITCH_LOCKS = 0x6E78  # the advisory locks' first key: a webhook's switches (``switch_lock``)


def switch_lock(webhook_id) -> None:
    """Inside a transaction: wait until no other transaction moves this webhook's deliveries (``park``, ``unpark``),
    until this one ends. PostgreSQL: a transaction-scoped advisory lock on the webhook; SQLite: its write lock does.
    The batches of a pause and of a resume that cross run one after the other, each checking the webhook's switch
    under the lock: the later switch's batches run after the earlier's and have the last word (a park batch held
    up by a row lock, that read the webhook as off before a resume committed, parked the rows after the resume's
    unpark had found none to move: parked on a webhook that was on)."""
    if is_postgres(database_proxy):
        key = uuid.UUID(str(webhook_id)).int >> 96
        database_proxy.execute_sql("SELECT pg_advisory_xact_lock(%s, %s)", (_SWITCH_LOCKS, key - (key >> 31 << 32)))


def park(webhook_id) -> int:
    """The queued deliveries of a webhook switched off, taken out of the due index (no ``next_attempt_at``) until it
    is on again (``unpark``), PARK_BATCH a transaction, each while the webhook is still off; how many.

    The worker's claim walks the due index in order and skips a switched-off webhook's rows one by one: a paused
    webhook's backlog was read again by every claim (50,000 due: 13 ms a claim against 1.5; 200,000: 51 ms), so
    that every other webhook's deliveries cost more the longer one stayed off. Parked, they are still queued
    (``nexus_delivery_queue_depth`` counts them) and still shown. Those being sent (under a lease) are parked too:
    their record keeps a parked row parked when it is to be retried (attempts._PG_RECORD)."""
    return _move(webhook_id, parked=False)


def unpark(webhook_id) -> int:
    """A webhook switched on again: its parked deliveries (``park``) due now, PARK_BATCH a transaction, each while
    the webhook is still on, the daemons woken after each; how many."""
    return _move(webhook_id, parked=True)


def _move(webhook_id, *, parked: bool) -> int:
    """Park (``parked`` False: the due rows) or unpark (True: the parked ones) a webhook's queued deliveries, in
    pages along its (created_at, id) index, a page a transaction under ``switch_lock``, while the webhook is still
    switched the way the move is for (a pause and a resume that cross: the later one's batches win)."""
    total, after = 0, None
    switched = Webhook.select(Webhook.id).where((Webhook.id == webhook_id) & (Webhook.is_active == parked))
    due = WebhookDelivery.next_attempt_at.is_null() if parked else WebhookDelivery.next_attempt_at.is_null(False)
    queued = WebhookDelivery.status.in_(_QUEUED)
    while True:

        def one(after=after):
            with database_proxy.atomic():
                switch_lock(webhook_id)
                # The pages walk the webhook's queued rows, due or not (the UPDATE moves those to move): asked for the
                # due ones (or the parked ones) alone, PostgreSQL planned on a stale estimate of them (none parked,
                # while 200,000 just were) a scan of all of them a page, sorted: unparking 200,000 took 30 s.
                keys = _page(webhook_id, queued, after, PARK_BATCH)
                if not keys or not switched.exists():  # none left, or switched back meanwhile
                    return None
                now = utcnow()
                moved = (
                    WebhookDelivery.update(next_attempt_at=now if parked else None, updated_at=now)
                    .where(WebhookDelivery.id.in_([key[1] for key in keys]) & queued & due)
                    .execute()
                )
                return keys[-1], moved

        # Rows are locked in the order the UPDATE reads them, the daemons' writers of held rows lock theirs by id:
        # a deadlock's victim runs again.
        done = retry_deadlocks(one)
        if done is None:
            return total
        after, moved = done
        total += moved
        if parked and moved:
            wake_daemons()


def mend_parking() -> dict:
    """Housekeeping: parked deliveries of webhooks that are on made due, and due ones of webhooks that are off
    parked (PARK_BATCH a transaction); how many of each. A resume's unpark cut by a stop, a webhook switched on by
    a nexusctl older than the parking, left the first (never claimed); an emit or a retry recorded as a webhook was
    switched off left the second (walked past by every claim until it is on again)."""
    counts = {}
    for parked in (True, False):
        hooks = Webhook.select(Webhook.id).where(Webhook.is_active == parked)
        due = WebhookDelivery.next_attempt_at.is_null() if parked else WebhookDelivery.next_attempt_at.is_null(False)
        queued = WebhookDelivery.status.in_(_QUEUED)
        total = 0
        while True:
            # The batch's ids are read first, then updated by id: as one UPDATE ... WHERE id IN (SELECT ... LIMIT),
            # PostgreSQL planning on a stale estimate (one due row, while thousands were due) ran the subquery again
            # for every due row, and housekeeping's pass took minutes under a busy queue.
            batch = [
                row_id
                for (row_id,) in WebhookDelivery.select(WebhookDelivery.id)
                .where(queued & due & WebhookDelivery.webhook.in_(hooks))
                .limit(PARK_BATCH)
                .tuples()
            ]
            if not batch:
                break
            now = utcnow()
            total += retry_deadlocks(
                lambda batch=batch, now=now: (
                    WebhookDelivery.update(next_attempt_at=now if parked else None, updated_at=now)
                    # The webhook's state again: a switch committed since the SELECT keeps its rows as it left them.
                    .where(WebhookDelivery.id.in_(batch) & queued & due & WebhookDelivery.webhook.in_(hooks))
                    .execute()
                )
            )
        if parked and total:
            wake_daemons()
        counts["unparked" if parked else "parked"] = total
    return counts


def wake_daemons() -> None:
    """Deliveries were made due by a committed transaction: every daemon's worker claims now, not at its poll."""
    _notify()


def _notify() -> None:
    if is_postgres(database_proxy):  # delivered at commit, to every listening daemon
        database_proxy.execute_sql("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
    queued()


def queued() -> None:
    """Wake this process's worker: deliveries were queued (a writer that sent its own NOTIFY NOTIFY_CHANNEL)."""
    for listener in LISTENERS:
        listener()


# --- the worker's side --------------------------------------------------------


@dataclass
class Claimed:
    id: uuid.UUID
    webhook_id: uuid.UUID
    event: str
    payload: dict
    attempts: int
    lease: uuid.UUID
    created_at: dt.datetime | None = None  # when the event queued it: /metrics' emit-to-attempt latency
    trace_parent: str | None = None  # the emitting request's trace context: the attempt's span is its child
    # Until when (the product's clock, epoch seconds) this worker's lease holds as far as it knows: set by
    # the claim and moved on by each renewal that finds the lease still its own (``renew``).
    expires: float = 0.0
    lost: bool = False  # a renewal found the lease taken over (expired and claimed by another worker)
    recording: bool = False  # sent; its outcome is queued for the (fenced) record
    # When (monotonic) the worker took it with its webhook's URL and secrets as they were then: one held longer than
    # a moment is given back rather than sent with them (``DeliveryWorker._start_waiting``).
    held_since: float = 0.0


# The due rows at the head of the queue, locked as they are read (the first ``limit`` not being locked by another
# claim), then each endpoint's first ``room`` of them (its free sending slots: ``rooms`` for endpoints with sends
# in flight, ``cap`` for the others) leased. A busy endpoint is claimed only what it can send now: nothing is
# claimed to be handed back; the rows locked beyond its room are unlocked, untouched, at commit. Each step is a
# materialized CTE, evaluated once: a LIMIT inside a sub-select of an UPDATE can be evaluated again by
# PostgreSQL's recheck of a concurrently updated row, and then lease more rows than asked
# (tests/fault/test_proc_kill9.py saw 85 leases from a daemon with 50 slots).
#
# The lock is in the head's walk of the due index (SKIP LOCKED below the LIMIT), not a step after it, and the
# rooms are counted over the rows locked, not over the rows seen: two daemons on one database are woken by the
# same NOTIFY and claim at once, and when the head was read unlocked, both read the same rows, the second's lock
# step found them all being locked by the first and skipped them, and the second daemon, having claimed nothing,
# slept until its next poll (1 s) with plenty due: the other sent all 2,000 (tests/webhooks/test_delivery_proofs.py,
# tests/core/test_claim_contention.py). Now the second walks on past the first's rows. What it cannot do is take
# rows the first locked beyond its rooms (up to ``limit`` of them) before the first commits: a backlog smaller
# than that waits for the next claim. Locking the head also costs less than locking the picked rows again by
# primary key (a prepared claim of 50 from 1,200 due: 1,420 µs against 1,540; of 16 for one endpoint at its
# cap, 660-690 µs against 620-720, in spite of the 34 rows locked for nothing).
#
# Its shape does not depend on the parameters' values (the UPDATE is driven by primary key from the locked
# ids, ``id = ANY(ARRAY(SELECT ...))``). Its cost must not grow with the backlog, whatever the table's
# statistics or the plan cache say. Three plans that read every due row on each claim were caught by
# auto_explain: the lock step (then a step by primary key after the head) and the UPDATE filtering all 8,462 due
# rows by ``id = ANY`` through the due index (20 ms for a claim of 38), and the head read by a bitmap scan of
# every due row, a hash join and a sort (3,045 rows for 14). They came when the statistics were older than the
# backlog (a burst after a quiet spell; the first minute after a TRUNCATE), and from the generic plan of a prepared
# claim, planned without ``now``'s value (1,049 rows filtered out per claim, +40% PostgreSQL CPU per delivery
# with 20 endpoints: branch ``deliverfast`` in docs/benchmarks.md). So:
# - the UPDATE tests the status as ``"status" || '' IN (...)``, which no index serves and no partial index's
#   predicate is proved from: it reaches its rows by primary key only;
# - the claim's transaction turns off the plans that read a whole range (``_PG_CLAIM_PLAN``: sequential and bitmap
#   scans, sorts where an index gives the order, hash joins), so the head walks the due index in order and stops
#   at its LIMIT. Sorting the head's few rows for the window functions is still done (nothing else can). A plan
#   turned off is only priced out (10^10 added to its cost), and a cost that high would have the plan compiled by
#   the JIT (jit_above_cost), 300-400 ms of LLVM on every claim: jit is turned off with them.
# The claimed rows come back joined to their webhooks' URLs and secrets (by primary key, under the same settings):
# the daemon signs with them, and reading them in the claim's statement spares a SELECT after it, a round trip
# of a claim trip that is mostly round trips (``claim_signed``).
# With its plans pinned so, the claim is prepared (``statements.run_in_transaction``): planning it was 330 µs of
# PostgreSQL's CPU per claim, half again its execution (pg_stat_statements, bench/real_paths.py).
#
# Its commit does not wait for the WAL flush (``synchronous_commit = off``, this transaction only): half of a claim's
# trip was that wait (12 -> 5-7 ms on the bench's busy endpoint, whose claims run one at a time and set its rate).
# Nothing is less safe for it. The lease is visible to every other claim at once, as with a flushed commit. What a
# crash of the database can lose is the last moments' leases, and only those whose outcomes were not committed
# yet: a record's commit is synchronous and the WAL is flushed in order, so a delivery with a committed attempt has
# its claim on disk too. Those sends were in flight when the database went, and their records fail while it is
# away, so they are sent again whether the lease survives (once it runs out) or not (once claimed again).
_PG_CLAIM_PLAN = (
    "SET LOCAL synchronous_commit = off; "
    "SET LOCAL jit = off; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; "
    "SET LOCAL enable_sort = off; SET LOCAL enable_hashjoin = off; "
)
_PG_CLAIM = """WITH head AS MATERIALIZED (
    SELECT d."id", d."webhook_id", d."next_attempt_at" FROM "webhook_deliveries" AS d
    JOIN "webhooks" AS w ON w."id" = d."webhook_id"
    WHERE d."status" IN ('PENDING', 'RETRYING') AND d."next_attempt_at" <= %(now)s
      AND (d."lease_until" IS NULL OR d."lease_until" < %(now)s) AND w."is_active"
      AND NOT (d."webhook_id" = ANY(%(exclude)s::uuid[]))
    ORDER BY d."next_attempt_at" LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED
), fits AS MATERIALIZED (
    SELECT head."id",
           row_number() OVER (PARTITION BY head."webhook_id" ORDER BY head."next_attempt_at", head."id") AS n,
           COALESCE(r."room", %(cap)s) AS room
    FROM head LEFT JOIN unnest(%(busy)s::uuid[], %(rooms)s::int[]) AS r("webhook_id", "room")
      ON r."webhook_id" = head."webhook_id"
), claimed AS (
UPDATE "webhook_deliveries" AS t SET "lease_until" = %(until)s, "lease_token" = %(lease)s
WHERE t."id" = ANY(ARRAY(SELECT fits."id" FROM fits WHERE fits.n <= fits.room))
  AND t."status" || '' IN ('PENDING', 'RETRYING') AND t."next_attempt_at" <= %(now)s
  AND (t."lease_until" IS NULL OR t."lease_until" < %(now)s)
RETURNING t.id, t.webhook_id, t.event, t.payload, t.attempts, t.created_at, t.trace_parent
)
SELECT c.id, c.webhook_id, c.event, c.payload, c.attempts, c.created_at, c.trace_parent,
       w."url", w."secret", w."previous_secret", w."previous_secret_expires_at"
FROM claimed AS c LEFT JOIN "webhooks" AS w ON w."id" = c.webhook_id"""


# The claim's text with positional parameters (``statements`` prepares those) and their names in order.
_PG_CLAIM_NAMES = tuple(re.findall(r"%\((\w+)\)s", _PG_CLAIM))
_PG_CLAIM_POSITIONAL = re.sub(r"%\((\w+)\)s", "%s", _PG_CLAIM)


def _pg_claim(params: list) -> list:
    with database_proxy.atomic():
        return statements.run_in_transaction(
            "nexus_claim", _PG_CLAIM_POSITIONAL, params, settings=_PG_CLAIM_PLAN
        ).fetchall()


def claim(
    limit: int, lease_seconds: float, exclude=(), *, rooms: dict | None = None, cap: int | None = None
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries of active webhooks (not of the ``exclude`` ones), at most
    ``rooms[webhook id]`` of a webhook named there and at most ``cap`` of any other (None: no cap)."""
    return _claim(limit, lease_seconds, exclude, rooms, cap)[0]


def claim_signed(
    keyring, limit: int, lease_seconds: float, exclude=(), *, rooms: dict | None = None, cap: int | None = None
) -> tuple[list[Claimed], dict, dict]:
    """``claim``, and ``signing_for`` its webhooks: (the claimed, their webhooks' URLs and secrets, {webhook id:
    key id} of those whose secret is under a key ``keyring`` lacks). On PostgreSQL the webhooks are read by the
    claim's own statement (one round trip less than a SELECT after it); on SQLite by ``signing_for``."""
    claimed, hooks = _claim(limit, lease_seconds, exclude, rooms, cap)
    if not claimed:
        return [], {}, {}
    if hooks is None:
        return (claimed, *signing_for(keyring, [c.webhook_id for c in claimed]))
    return (claimed, *_signing(keyring, hooks.values()))


def _claim(limit, lease_seconds, exclude, rooms, cap) -> tuple[list[Claimed], dict | None]:
    """The claimed, and on PostgreSQL the (id, url, secret, previous_secret, previous_secret_expires_at) row of
    each of their webhooks by id (read by the claim's statement; None on SQLite)."""
    now, lease = utcnow(), uuid.uuid4()
    rooms = {w: n for w, n in (rooms or {}).items() if w not in set(exclude)}
    cap = int(cap) if cap is not None else int(limit)
    if is_postgres(database_proxy):
        # Written out (building it with peewee on every claim cost more of the daemon's CPU than
        # running it). It locks the delivery rows themselves (not the joined webhook): PostgreSQL
        # then re-checks the lease condition on a row another worker just claimed, and skips rows
        # being claimed. The status list is literal so the partial index on next_attempt_at matches.
        until = now + dt.timedelta(seconds=lease_seconds)
        # In a transaction, not autocommitted: a daemon killed while
        # the statement runs leaves it uncommitted (the server rolls it back on the hang-up), where an
        # autocommitted claim would lease rows for a process already gone (tests/fault/test_proc_kill9.py
        # counted them against the next daemon's slots).
        values = {
            "until": until,
            "lease": str(lease),
            "now": now,
            "limit": max(int(limit), 0),
            "cap": cap,
            "exclude": statements.array_text(exclude),
            "busy": statements.array_text(rooms),
            "rooms": statements.array_text([int(n) for n in rooms.values()]),
        }
        params = [values[n] for n in _PG_CLAIM_NAMES]
        try:
            rows = _pg_claim(params)
        except statements.PreparedLost:  # behind a pooler, once: the claim again, as text
            rows = _pg_claim(params)
        hooks = {r[1]: (r[1], *r[7:]) for r in rows if r[7] is not None}  # a webhook deleted meanwhile: none
        claimed = [
            Claimed(
                _uuid(r[0]),
                _uuid(r[1]),
                r[2],
                r[3] if isinstance(r[3], dict) else json.loads(r[3]),
                r[4],
                lease,
                WebhookDelivery.created_at.python_value(r[5]),
                r[6],
                until.timestamp(),
            )
            for r in rows
        ]
        return claimed, hooks
    # The statuses as literals, not parameters: SQLite uses a partial index only when the query's
    # WHERE names its condition's constants, and without it the claim sorted every due row
    # (1.1 s per claim with 100,000 due of 1,000,000; bench/growth.py).
    statuses = [SQL(f"'{status.value}'") for status in DUE]
    claimable = WebhookDelivery.status.in_(statuses) & (WebhookDelivery.next_attempt_at <= now) & not_leased(now)
    if exclude:  # endpoints this worker already sends to at their cap
        claimable &= WebhookDelivery.webhook.not_in(list(exclude))
    head = list(
        WebhookDelivery.select(WebhookDelivery.id, WebhookDelivery.webhook)
        .join(Webhook)
        .where(claimable & (Webhook.is_active == True))  # noqa: E712
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .tuples()
    )
    if not head:
        return [], None  # SQLite: don't take the write lock every poll when nothing is due
    room = collections.Counter({_uuid(w): n for w, n in rooms.items()})
    picked = []
    for delivery_id, webhook_id in head:
        webhook_id = _uuid(webhook_id)
        if room.get(webhook_id, cap) > 0:
            room[webhook_id] = room.get(webhook_id, cap) - 1
            picked.append(delivery_id)
    if not picked:
        return [], None  # every due endpoint is at its cap: no write lock taken
    until = now + dt.timedelta(seconds=lease_seconds)
    with database_proxy.atomic():
        query = (
            WebhookDelivery.update(lease_until=until, lease_token=lease)
            .where(WebhookDelivery.id.in_(picked) & claimable)  # and again on the row as updated
            .returning(
                WebhookDelivery.id,
                WebhookDelivery.webhook,
                WebhookDelivery.event,
                WebhookDelivery.payload,
                WebhookDelivery.attempts,
                WebhookDelivery.created_at,
                WebhookDelivery.trace_parent,
            )
        )
        rows = list(query.tuples().execute())
    claimed = [
        Claimed(
            _uuid(r[0]),
            _uuid(r[1]),
            r[2],
            WebhookDelivery.payload.python_value(r[3]),
            r[4],
            lease,
            WebhookDelivery.created_at.python_value(r[5]),
            r[6],
            until.timestamp(),
        )
        for r in rows
    ]
    return claimed, None


# One statement renews every lease a worker holds: the (id, lease token) pairs come in as two arrays and
# only rows whose token is still the pair's are moved on (fencing: a lease that expired and was claimed by
# another worker carries that worker's token). Driven by primary key, so its cost follows the pairs sent.
#
# The rows are locked first, in id order (``ORDER BY ... FOR NO KEY UPDATE``: PostgreSQL locks the rows as the
# sort hands them over), then updated; the record batch (attempts._PG_RECORD) locks its rows the same way. The two
# update the same rows (a delivery being recorded is still held, so renewed) and took them in whatever order
# their plans read them, so one could hold a row the other wanted while waiting for one the other held: a
# deadlock, which PostgreSQL breaks only after deadlock_timeout (~1 s of a stalled record batch). Taken in one
# order, one of them waits for the other at its first row in common, holding none the other still needs. The
# lock takes the lock an UPDATE would (NO KEY UPDATE: an attempt's insert referencing the row is not blocked).
# A row whose lease was taken over while we waited for it is re-checked when locked and left out. The other
# writers of held rows lock them so too: ``release`` and ``lock_held`` (attempts.fail_held).
_PG_HELD = """WITH held AS MATERIALIZED (
    SELECT d."id" FROM "webhook_deliveries" AS d
    JOIN unnest(%s::uuid[], %s::uuid[]) AS v(id, lease) ON d."id" = v.id AND d."lease_token" = v.lease
    ORDER BY d."id" FOR NO KEY UPDATE OF d
)
"""
_PG_RENEW = (
    _PG_HELD
    + """UPDATE "webhook_deliveries" AS d SET "lease_until" = %s
WHERE d."id" = ANY(ARRAY(SELECT held."id" FROM held))
RETURNING d.id"""
)
# A give-back parks the rows of a webhook that is off (``park``): a webhook switched off by another daemon's record
# (a 410, the 5-day disable), which parks nothing and leaves the rows a worker holds alone, had them back in the due
# index, walked past by every claim until housekeeping parked them. The webhooks are read locked (FOR SHARE, after
# the deliveries, in id order, as the record takes them): a switch under way is waited for and its outcome read, and a
# switch that comes later waits for this commit, so its park or unpark batches see these rows as they are left.
_PG_RELEASE = (
    _PG_HELD
    + """, hooks AS MATERIALIZED (
    SELECT w."id", w."is_active" FROM "webhooks" AS w
    WHERE w."id" IN (
        SELECT d."webhook_id" FROM "webhook_deliveries" AS d WHERE d."id" = ANY(ARRAY(SELECT held."id" FROM held))
    )
    ORDER BY w."id" FOR SHARE OF w
)
UPDATE "webhook_deliveries" AS d SET "lease_until" = NULL, "lease_token" = NULL,
    "next_attempt_at" = CASE WHEN h."is_active" THEN d."next_attempt_at" END
FROM hooks AS h
WHERE h."id" = d."webhook_id" AND d."id" = ANY(ARRAY(SELECT held."id" FROM held))"""
)
# SQLite's: the transaction holds the write lock, so the webhook read is the webhook as it is.
_SQLITE_RELEASE = (
    'UPDATE "webhook_deliveries" SET "lease_until" = NULL, "lease_token" = NULL, "next_attempt_at" = CASE WHEN EXISTS '
    '(SELECT 1 FROM "webhooks" AS w WHERE w."id" = "webhook_deliveries"."webhook_id" AND w."is_active") '
    'THEN "next_attempt_at" END WHERE {ids} AND "lease_token" = ?'
)
RENEW_CHUNK = 400  # pairs per statement on SQLite (its variable limit); a worker holds at most its slots


def renew(held: list[tuple[uuid.UUID, uuid.UUID]], lease_seconds: float) -> tuple[set, float]:
    """Move on the leases of ``held`` ((delivery id, lease token) pairs) to ``lease_seconds`` from now, where
    the token still holds: (the ids renewed, the new expiry in epoch seconds on the product's clock). An id
    left out lost its lease: it expired and another worker claimed it."""
    until = utcnow() + dt.timedelta(seconds=lease_seconds)
    if not held:
        return set(), until.timestamp()
    if is_postgres(database_proxy):

        def moved() -> list:
            # Run again should it be a deadlock's victim: the worker's record batches update the rows of the outcomes
            # they record, held here too. Both lock them in id order, so they wait for each other but do not
            # deadlock; a statement updating several held rows in another order could (see _PG_RENEW).
            with database_proxy.atomic():
                return database_proxy.execute_sql(
                    _PG_RENEW, ([str(i) for i, _ in held], [str(t) for _, t in held], until)
                ).fetchall()

        return {_uuid(r[0]) for r in retry_deadlocks(moved)}, until.timestamp()
    kept: set = set()
    with database_proxy.atomic():
        for start in range(0, len(held), RENEW_CHUNK):
            part = held[start : start + RENEW_CHUNK]
            # id IN ours AND token IN ours is exact: tokens are random per claim and never shared by two
            # workers, so a row matching both still carries a lease this worker took.
            query = (
                WebhookDelivery.update(lease_until=until)
                .where(
                    WebhookDelivery.id.in_([i for i, _ in part])
                    & WebhookDelivery.lease_token.in_(list({t for _, t in part}))
                )
                .returning(WebhookDelivery.id)
            )
            kept |= {_uuid(r[0]) for r in query.tuples().execute()}
    return kept, until.timestamp()


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def retry_delay(schedule: tuple[int, ...], attempts: int) -> float | None:
    """Seconds until the next try after ``attempts`` tries (±20% jitter), or None when exhausted."""
    if attempts > len(schedule):
        return None
    base = schedule[attempts - 1]
    return max(0.0, base * random.uniform(1 - JITTER, 1 + JITTER))


class SecretCache:
    """Webhook secrets opened recently, so a busy endpoint's claims do not decrypt them once per batch.

    Keyed by the webhook's id and its stored ciphertexts (a rotation writes new ones, so a changed secret
    is never served from here); entries live ``ttl`` seconds and at most ``size`` are kept. Database
    threads share it."""

    def __init__(self, size: int = 1024, ttl: float = 60.0) -> None:
        self.size, self.ttl = size, ttl
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] < time.monotonic():
                return None
            return found[1]

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + self.ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


SECRETS = SecretCache()


def signing_for(keyring, webhook_ids) -> tuple[dict, dict]:
    """(url and signing secrets of each webhook, {webhook id: key id} of those whose secret is under a key
    ``keyring`` lacks), in one query (once per claimed batch)."""
    # Written out (peewee built this SELECT anew on every claim); a model row is made only to open a secret.
    where, params = statements.in_list(Webhook.id, list(set(webhook_ids)))
    rows = statements.run_anywhere(
        "nexus_signing",
        f'SELECT "id", "url", "secret", "previous_secret", "previous_secret_expires_at" FROM "webhooks" WHERE {where}',
        params,
    ).fetchall()
    return _signing(keyring, rows)


def _signing(keyring, rows) -> tuple[dict, dict]:
    """``signing_for`` of webhook rows (id, url, secret, previous_secret, previous_secret_expires_at)."""
    signing, locked = {}, {}
    now = utcnow()
    for hook_id, url, secret, previous, previous_until in rows:
        hook_id, previous_until = (
            Webhook.id.python_value(hook_id),
            Webhook.previous_secret_expires_at.python_value(previous_until),
        )
        # As webhooks.signing_secrets: the previous secret signs too while the rotation's overlap lasts.
        overlap = bool(previous and previous_until and previous_until > now)
        key = (keyring, hook_id, secret, previous if overlap else None)
        secrets = SECRETS.get(key)
        if secrets is None:
            row = Webhook(id=hook_id, url=url, secret=secret, previous_secret=previous)
            try:
                secrets = [unseal(keyring, row, "secret")] + (
                    [unseal(keyring, row, "previous_secret")] if overlap else []
                )
            except KeyNotConfigured as exc:  # a rotation this process was not restarted for
                locked[hook_id] = exc.details["keyId"]
                continue
            secrets = [s for s in secrets if s]
            SECRETS.put(key, secrets)
        signing[hook_id] = (url, secrets)
    return signing, locked


def _pairs(items: list[Claimed]) -> tuple[list, list]:
    """The (id, lease) pairs of ``items`` as _PG_HELD's two arrays."""
    return [str(c.id) for c in items], [str(c.lease) for c in items]


def lock_held(items: list[Claimed]) -> None:
    """Lock the rows of ``items`` still under their claims' leases, in id order, for the caller's transaction, before
    it writes them in several statements (PostgreSQL; SQLite's transaction holds the whole database): the renewal
    locks them in the same order, and a transaction that took them statement by statement could deadlock with it."""
    if items and is_postgres(database_proxy):
        database_proxy.execute_sql(_PG_HELD + "SELECT count(*) FROM held", _pairs(items))


def release(items: list[Claimed]) -> None:
    """Give claimed deliveries back unsent, no attempt counted: due as they were, or parked (``park``) when their
    webhook is off by now (decided in the same statement, on the webhook as it is: ``_PG_RELEASE``)."""
    if not items:
        return
    if is_postgres(database_proxy):
        # One statement, fenced by each claim's token, the rows locked in id order (_PG_HELD): a renewal under way
        # may hold them too. Run again should it be a deadlock's victim (a disable's ``_fail`` of the webhook's rows,
        # its webhook's row taken first, meeting one whose lease ran out); inside a caller's transaction
        # (attempts.fail_held) the caller runs again.
        def give_back() -> None:
            database_proxy.execute_sql(_PG_RELEASE, _pairs(items))

        if database_proxy.in_transaction():
            give_back()
        else:
            retry_deadlocks(give_back)
        return
    lease_token = statements.converter(WebhookDelivery.lease_token)
    with database_proxy.atomic():
        for lease in {c.lease for c in items}:
            ids, params = statements.in_list(WebhookDelivery.id, [c.id for c in items if c.lease == lease])
            database_proxy.execute_sql(_SQLITE_RELEASE.format(ids=ids), [*params, lease_token(lease)])
