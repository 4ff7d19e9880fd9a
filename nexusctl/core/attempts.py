"""What happened when a delivery was sent: the attempt log and the next state.

2xx is DELIVERED. 410 ends the delivery FAILED at once and disables the
webhook. Anything else (3xx included: redirects are never followed) is retried
on the schedule with ±20% jitter, RETRYING in between, until the schedule runs
out: FAILED. Every FAILED delivery emits ``webhook.failed``. A throttled
answer (429, 503) counts against the schedule like any failure; it only
shapes the wait (``wait_after``). A webhook that keeps failing for 5 days
without one success is disabled with an ``integration.error`` event.

Every write is fenced by the claim's lease token: a worker whose lease ran out
(it hung, another worker re-sent) cannot overwrite the newer outcome.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import os
import uuid
from dataclasses import dataclass
from typing import NamedTuple

import peewee

from nexusctl.core import deliveries, events
from nexusctl.core.deliveries import DISABLE_AFTER, RESPONSE_MAX, retry_delay
from nexusctl.db import statements
from nexusctl.db.database import database_proxy, is_postgres, retry_deadlocks
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration, OutboxEvent, Webhook, WebhookAttempt, WebhookDelivery
from nexusctl.enums import DeliveryStatus

log = logging.getLogger(__name__)

THROTTLED = (429, 503)
# The error of a send a daemon's own stop cut (``DeliveryWorker._cut_sends``): retried on the schedule like any
# failure, but not the receiver's: it neither starts nor extends the webhook's failure window (the 5-day disable),
# and `nexusctl top` does not count it against the endpoint.
STOPPED = "the daemon stopped before the receiver answered"


@dataclass
class Result:
    started_at: dt.datetime
    duration_ms: int
    status_code: int | None = None
    body: str | None = None
    error: str | None = None  # network failure, timeout, refused address
    retry_after: int | None = None


def record_many(batch: list, schedule: tuple[int, ...]) -> list[str]:
    """Record a batch of attempts (``_record_batch``): the outcomes, in the batch's order.

    A NUL in an answer's body or an error text is stored as U+FFFD (PostgreSQL refuses it in text and
    ``\\u0000`` in jsonb). Should the batch's statements still fail on one row's values, the batch is recorded
    one delivery at a time, so one bad row never holds the others' outcomes (which would all be sent again once
    their leases expire); a delivery whose outcome cannot be stored at all is recorded without the answer's
    body and error text, or else released (its lease given back: sent again at once). A lost connection or a
    lock conflict fails the batch as before (the leases bring its deliveries back); a deadlock victim runs again.
    """
    batch = [(claimed, _storable(result)) for claimed, result in batch]
    # Run again when PostgreSQL aborts it to break a deadlock: the batch's delivery rows are also updated by this
    # daemon's lease renewal (deliveries.renew moves on every held lease, those whose outcome is being recorded
    # too), in its own transaction. When the two took the rows in no fixed order they deadlocked under load; both
    # lock them in id order now (_PG_RECORD), and this stays as the safety net.
    # A record aborted so left its deliveries sent and unrecorded, and they were sent again once their leases ran
    # out (34 of 2,000 twice in tests/webhooks/test_delivery_proofs.py's two daemons). The victim is rolled back
    # whole.
    once = functools.partial(retry_deadlocks, lambda: _record_batch(batch, schedule))
    try:
        try:
            return once()
        except statements.PreparedLost:  # behind a pooler, once: the same batch again, as text
            return once()
    except (peewee.OperationalError, peewee.InterfaceError):
        raise
    except Exception as exc:  # noqa: BLE001 - a value the database refused: one at a time
        if len(batch) == 1:
            return [_record_alone(*batch[0], schedule, exc)]
        log.warning("recording %d delivery outcomes failed (%s); recording them one at a time", len(batch), _named(exc))
    outcomes = []
    for claimed, result in batch:
        try:
            outcomes.extend(_record_batch([(claimed, result)], schedule))
        except (peewee.OperationalError, peewee.InterfaceError):
            raise
        except Exception as exc:  # noqa: BLE001 - this one's values: recorded bare, or released
            outcomes.append(_record_alone(claimed, result, schedule, exc))
    return outcomes


def _storable(result: Result) -> Result:
    """The result with any NUL in its body or error text replaced by U+FFFD."""
    body, error = result.body, result.error
    if (body is None or "\x00" not in body) and (error is None or "\x00" not in error):
        return result
    return dataclasses.replace(
        result,
        body=None if body is None else body.replace("\x00", "\ufffd"),
        error=None if error is None else error.replace("\x00", "\ufffd"),
    )


def _named(exc: BaseException) -> str:
    """An error's type and first line, short (no values of the rows: a receiver's answer is not logged)."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def _record_alone(claimed, result: Result, schedule, exc: Exception) -> str:
    """One delivery whose outcome the database refused: recorded with its status code only (no body, no error
    text, a plain duration), else released. Never left unrecorded and held."""
    log.warning(
        "delivery %s: its outcome could not be stored (%s); recorded without the answer", claimed.id, _named(exc)
    )
    code = result.status_code if isinstance(result.status_code, int) and 100 <= result.status_code <= 999 else None
    bare = Result(
        started_at=result.started_at,
        duration_ms=min(max(int(result.duration_ms or 0), 0), 2**31 - 1),
        status_code=code,
        error=None if code is not None else f"the outcome could not be stored ({type(exc).__name__})",
    )
    try:
        return _record_batch([(claimed, bare)], schedule)[0]
    except (peewee.OperationalError, peewee.InterfaceError):
        raise
    except Exception as again:  # noqa: BLE001 - given back, to be sent again
        log.error("delivery %s: cannot be recorded (%s); released to be sent again", claimed.id, _named(again))
    deliveries.release([claimed])
    return "released"


def _record_batch(batch: list, schedule: tuple[int, ...]) -> list[str]:
    """Record a batch of attempts set-based: a handful of statements and one commit for the lot.

    Fencing first: the deliveries are updated only where the claim's lease token still
    holds (on PostgreSQL in the record's one statement, ``_PG_RECORD``, which takes the row
    locks, so the check and the write are one step); attempts, events and the webhooks'
    state are then written for exactly those rows. A delivery whose lease was lost gets
    nothing written ("lost").
    """
    now = utcnow()
    outcomes = {claimed.id: "lost" for claimed, _ in batch}
    if not batch:
        return []
    with database_proxy.atomic():
        hooks = _hooks({c.webhook_id for c, _ in batch})
        planned = []
        for claimed, result in batch:
            hook = hooks.get(claimed.webhook_id)
            if hook is None:  # webhook deleted: its deliveries went with it (cascade)
                continue
            planned.append(_plan(claimed, result, hook, schedule, now))
        if is_postgres(database_proxy):
            held = _pg_record(planned, hooks, now)
        else:
            held = _write(planned, hooks, now)
        disable = {}
        for plan in planned:
            if plan.claimed.id in held:
                outcomes[plan.claimed.id] = plan.outcome
                if plan.disable is not None:
                    disable.setdefault(plan.claimed.webhook_id, (plan.disable, plan.claimed.id))
        succeeded = {p.claimed.webhook_id for p in planned if p.claimed.id in held and p.outcome == "delivered"}
        for hook_id, (reason, delivery_id) in disable.items():
            if hook_id not in succeeded:
                _disable(hooks[hook_id], reason, delivery_id)
    return [outcomes[c.id] for c, _ in batch]


class _Plan(NamedTuple):
    """One delivery's outcome as decided before it is written (``_plan``)."""

    claimed: object
    result: Result
    outcome: str  # delivered, retrying, failed, disabled
    status: DeliveryStatus
    number: int  # this attempt's number
    error: str | None  # the delivery's error (the attempt keeps the result's own)
    next_at: dt.datetime | None
    event: str | None  # the outbox event it emits: webhook.delivered or webhook.failed
    # How it counts for the webhook's failure window: "ok" (a success: cleared), "fail" (started if not yet), None
    # (a send our own stop cut: neither).
    touch: str | None
    disable: str | None  # why the webhook is to be disabled, if it is


def _plan(claimed, result: Result, hook, schedule: tuple[int, ...], now) -> _Plan:
    number, code = claimed.attempts + 1, result.status_code
    next_at = error = disable = None
    if code is not None and 200 <= code < 300:
        return _Plan(claimed, result, "delivered", DeliveryStatus.DELIVERED, number, None, None, DELIVERED, "ok", None)
    error = (result.error or f"HTTP {code}")[:1000]
    # 410 Gone: the receiver asks to be left alone, so no retry (and the webhook goes below).
    delay = None if code == 410 else wait_after(schedule, number, code, result.retry_after)
    if delay is None:
        status, outcome, event = DeliveryStatus.FAILED, "failed", FAILED
    else:
        status, outcome, event = DeliveryStatus.RETRYING, "retrying", None
        # Unless its row was parked meanwhile (its webhook switched off while it was being sent: deliveries.park):
        # the record writes this time only over a due time, not over a parked row's none (_PG_RECORD, _sqlite_update).
        next_at = now + dt.timedelta(seconds=delay)
    stopped = result.error == STOPPED and code is None  # cut by our own stop: not the receiver's
    if code == 410:
        disable, outcome = "the receiver answered 410 Gone", "disabled"
    elif hook.failing_since is not None and now - hook.failing_since >= DISABLE_AFTER and not stopped:
        disable, outcome = "failing for 5 days without a successful delivery", "disabled"
    return _Plan(claimed, result, outcome, status, number, error, next_at, event, None if stopped else "fail", disable)


DELIVERED, FAILED = "webhook.delivered", "webhook.failed"


def _event_data(plan: _Plan) -> dict:
    """An outcome's event's data (_PG_RECORD builds the same in SQL)."""
    data = {
        "webhookId": str(plan.claimed.webhook_id),
        "deliveryId": str(plan.claimed.id),
        "event": plan.claimed.event,
        "attempts": plan.number,
    }
    if plan.event == FAILED:
        data["error"] = plan.error[:300]
    return data


def _write(planned: list, hooks: dict, now) -> set:
    """SQLite's record of the planned outcomes (its transaction holds the write lock): the ids written."""
    updates = [
        (
            p.status,
            p.number,
            None if p.result.status_code is None else _response(p.result),
            p.error,
            now if p.status == DeliveryStatus.DELIVERED else None,
            p.next_at,
            now,
            p.claimed.id,
            p.claimed.lease,
        )
        for p in planned
    ]
    held = _update_deliveries(updates)  # fencing: only leases still ours
    planned = [p for p in planned if p.claimed.id in held]
    if not planned:
        return held
    fresh = iter(new_ids(2 * len(planned)))  # an event and an attempt per delivery at most
    attempt_rows, events = [], []
    for p in planned:
        result = p.result
        attempt_rows.append(
            (
                next(fresh),
                p.claimed.id,
                p.number,
                result.started_at,
                result.status_code,
                result.duration_ms,
                result.error,
                (result.body or "")[:RESPONSE_MAX] or None,
                now,
                now,
            )
        )
        if p.event is not None:
            hook = hooks[p.claimed.webhook_id]
            events.append(_outbox(p.event, hook, {hook.integration_id: hook.user_id}, _event_data(p), now, next(fresh)))
    statements.insert_many_text(WebhookAttempt, ATTEMPT_COLUMNS, attempt_rows)
    statements.insert_many_text(OutboxEvent, EVENT_COLUMNS, events)
    # The webhooks' rows last and in one statement: two writers' batches for one webhook
    # wait on each other's row lock here, so it is held for the shortest time before the
    # commit, and one statement locks its rows in one (index) order, so they never deadlock.
    succeeded = {p.claimed.webhook_id for p in planned if p.touch == "ok"}
    failing = {p.claimed.webhook_id for p in planned if p.touch == "fail"}
    _touch_webhooks(succeeded, failing, now)
    return held


def _response(result: Result) -> dict:
    return {"status": result.status_code, "body": (result.body or "")[:RESPONSE_MAX]}


def new_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs as hex, from one read of the system's random source: uuid.uuid4() reads
    it once per id (a system call each, two per recorded outcome)."""
    raw = os.urandom(16 * count)
    ids = []
    for start in range(0, 16 * count, 16):
        value = int.from_bytes(raw[start : start + 16], "big")
        value = (value & _V4_CLEAR) | _V4_SET  # the version (4) and the variant (RFC 4122), as uuid.UUID does
        ids.append(f"{value:032x}")
    return ids


_V4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_V4_SET = (0x8000 << 48) | (4 << 76)


def wait_after(schedule: tuple[int, ...], attempts: int, code: int | None, retry_after: int | None) -> float | None:
    """Seconds until the next try after ``attempts`` tries, or None when the schedule has run out.

    A throttled answer (429, 503) counts as an attempt like any failure, so a receiver that
    keeps answering 429 ends FAILED after the schedule's last attempt instead of being retried
    for days. It waits at least the schedule's own step (never the early side of the jitter),
    longer when its ``Retry-After`` asks, but at most twice the step: Svix's bounds, so
    ``Retry-After: 0`` cannot turn the schedule into a busy loop and ``Retry-After: 86400``
    cannot park a delivery for a day.
    """
    scheduled = retry_delay(schedule, attempts)
    if scheduled is None or code not in THROTTLED:
        return scheduled
    step = schedule[attempts - 1]
    return float(min(max(scheduled, step, retry_after or 0), 2 * step))


EVENT_COLUMNS = ("id", "created_at", "updated_at", "type", "user_id", "integration_id", "data")
ATTEMPT_COLUMNS = (
    "id",
    "delivery",
    "number",
    "started_at",
    "status_code",
    "duration_ms",
    "error",
    "response_body",
    "created_at",
    "updated_at",
)


def _outbox(event_type: str, hook, users: dict, data: dict, now, new_id: str) -> tuple:
    """An outbox row (EVENT_COLUMNS). Outbox only (for the bus): fanning webhook.* out to webhooks could loop
    forever."""
    return (new_id, now, now, event_type, users.get(hook.integration_id), hook.integration_id, data)


class _Hook(NamedTuple):
    """What recording needs of a webhook (and of its integration: the user its events are about)."""

    id: uuid.UUID
    integration_id: uuid.UUID
    failing_since: dt.datetime | None
    user_id: uuid.UUID


# The record's statements are prepared on PostgreSQL (``statements``: planning them was about as much CPU as
# running them). A generic plan is made without the arrays' sizes: for the delivery UPDATE's join with
# ``unnest(...)`` it chose to read the whole table (5 ms a batch against 0.4 ms planned with the values, in
# pg_stat_statements over bench/real_paths.py). A batch touches a few rows, each by primary key: the record's
# transaction turns off the plans that read a whole table or index (its first statement carries the settings),
# and has its statements use their generic plans at once (PostgreSQL would plan the first five runs of each anew
# on every connection, and keep planning some, such as the webhooks' SELECT, 130 µs a batch).
_RECORD_PLAN = (
    "SET LOCAL jit = off; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; "
    "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; "
    "SET LOCAL plan_cache_mode = force_generic_plan; "
)


def _hooks(ids: set) -> dict:
    """The webhooks of a batch by id, with their integrations' user ids: one written-out SELECT (peewee built
    two anew on every batch). The record transaction's first statement: it carries ``_RECORD_PLAN``."""
    where, params = statements.in_list(Webhook.id, list(ids))
    rows = statements.run_anywhere(
        "nexus_record_hooks",
        'SELECT w."id", w."integration_id", w."failing_since", i."user_id" FROM "webhooks" AS w '
        f'JOIN "integrations" AS i ON i."id" = w."integration_id" WHERE w.{where}',
        params,
        settings=_RECORD_PLAN,
    ).fetchall()
    found = (
        _Hook(
            Webhook.id.python_value(w),
            Webhook.id.python_value(n),
            Webhook.failing_since.python_value(f),
            Integration.user_id.python_value(u),
        )
        for w, n, f, u in rows
    )
    return {hook.id: hook for hook in found}


def _touch_webhooks(succeeded: set, failing: set, now) -> None:
    """last_triggered_at = now on every webhook of the batch; failing_since cleared on those with a success,
    set (if not set yet) on the others. One statement, written out."""
    touched, touched_params = statements.in_list(Webhook.id, list(succeeded | failing))
    cleared, cleared_params = statements.in_list(Webhook.id, list(succeeded))
    mark = database_proxy.param
    stamp = Webhook.last_triggered_at.db_value(now)
    statements.run_anywhere(
        "nexus_record_touch",
        f'UPDATE "webhooks" SET "last_triggered_at" = {mark}, "failing_since" = CASE WHEN {cleared} THEN NULL '
        f'ELSE COALESCE("failing_since", {mark}) END WHERE {touched}',
        [stamp, *cleared_params, stamp, *touched_params],
    )


# On PostgreSQL the record is one statement (data-modifying WITHs): the fenced update of the deliveries, their
# attempts, their events and the webhooks' state, one round trip. Its rows go in as ONE json document
# (``json_to_recordset``), written by orjson from the outcomes' own values (UUIDs, datetimes, ints), not as a text
# array per column built value by value in Python: that building (str() of every id and time, json of every
# response and event) held the GIL the daemon's event loop waits for. What PostgreSQL has at hand is made there:
# the attempts' and events' ids (gen_random_uuid(): nothing reads them back), a response's and an event's JSON
# (jsonb_build_object, from the delivery row's own webhook and event), a delivery's delivered_at (the batch's time).
#
# The batch's rows are locked first, in id order, as the lease renewal locks them (deliveries._PG_RENEW: the two
# update the same held rows, and in different orders they deadlocked), then updated by primary key from the
# locked rows, which carry their outcomes. Fencing is in the lock step: a row whose lease token is not the
# pair's is not locked, nor written (nor its attempt, event or webhook state); one taken over while we waited for
# it is re-checked when locked. The webhooks' rows are locked after the deliveries' (every other step reads
# ``held``, which is evaluated first), in id order (``hooks``, as a give-back takes them FOR SHARE:
# deliveries._PG_RELEASE), then updated: two writers' batches for one webhook wait on each other, never deadlock.
# (The UPDATE alone locked them in its plan's order, a sequential scan's on a small table: a give-back waiting in
# id order deadlocked with it, review of 2026-12-07.) The statement returns the places in the batch of the rows
# written (ints: no UUID made of each id read back). Its shape is the same whatever the batch,
# so it is prepared once.
_PG_RECORD = """WITH held AS MATERIALIZED (
    SELECT d."id", d."webhook_id", d."event", v.o, v.s, v.n, v.c, v.b, v.e, v.ae, v.x, v.t, v.ms, v.ev, v.f
    FROM "webhook_deliveries" AS d
    JOIN json_to_recordset(%s::json) AS v(o int, i uuid, l uuid, s varchar, n int, c int, b text, e text, ae text,
                                          x timestamptz, t timestamptz, ms int, ev varchar, f text)
      ON d."id" = v.i AND d."lease_token" = v.l
    ORDER BY d."id" FOR NO KEY UPDATE OF d
), u AS (
    UPDATE "webhook_deliveries" AS d SET "status" = h.s, "attempts" = h.n,
     "response" = CASE WHEN h.c IS NOT NULL THEN jsonb_build_object('status', h.c, 'body', COALESCE(h.b, '')) END,
     "error" = h.e, "delivered_at" = CASE WHEN h.s = 'DELIVERED' THEN %s::timestamptz END,
     "next_attempt_at" = CASE WHEN d."next_attempt_at" IS NOT NULL THEN h.x END,
     "updated_at" = %s::timestamptz, "lease_until" = NULL, "lease_token" = NULL
    FROM held AS h WHERE d."id" = h.id
), a AS (
    INSERT INTO "webhook_attempts" ("id", "delivery_id", "number", "started_at", "status_code", "duration_ms",
                                    "error", "response_body", "created_at", "updated_at")
    SELECT gen_random_uuid(), h.id, h.n, h.t, h.c, h.ms, h.ae, h.b, %s::timestamptz, %s::timestamptz FROM held AS h
), e AS (
    INSERT INTO "outbox_events" ("id", "created_at", "updated_at", "type", "user_id", "integration_id", "data")
    SELECT gen_random_uuid(), %s::timestamptz, %s::timestamptz, h.ev, k.u, k.ig,
           jsonb_build_object('webhookId', h.webhook_id, 'deliveryId', h.id, 'event', h.event, 'attempts', h.n)
           || CASE WHEN h.ev = 'webhook.failed' THEN jsonb_build_object('error', left(h.e, 300)) ELSE '{}' END
    FROM held AS h JOIN json_to_recordset(%s::json) AS k(w uuid, ig uuid, u uuid) ON k.w = h.webhook_id
    WHERE h.ev IS NOT NULL
), hooks AS MATERIALIZED (
    SELECT w."id" FROM "webhooks" AS w
    WHERE w."id" = ANY(ARRAY(SELECT h.webhook_id FROM held AS h WHERE h.f IS NOT NULL))
    ORDER BY w."id" FOR NO KEY UPDATE OF w
), t AS (
    UPDATE "webhooks" AS w SET "last_triggered_at" = %s::timestamptz, "failing_since" = CASE
      WHEN w."id" = ANY(ARRAY(SELECT h.webhook_id FROM held AS h WHERE h.f = 'ok')) THEN NULL
      ELSE COALESCE(w."failing_since", %s::timestamptz) END
    FROM hooks AS k WHERE w."id" = k."id"
)
SELECT h.o FROM held AS h"""


def _pg_record(planned: list, hooks: dict, now) -> set:
    """PostgreSQL's record of the planned outcomes (``_PG_RECORD``): the ids written."""
    import orjson  # here for start-up speed: a SQLite process never loads it

    if not planned:
        return set()
    rows = [
        {
            "o": number,  # its place in ``planned``: what the statement returns of the rows it wrote
            "i": p.claimed.id,
            "l": p.claimed.lease,
            "s": p.status.value,
            "n": p.number,
            "c": p.result.status_code,
            # The response's body, the attempt's and the delivery's (both cut at RESPONSE_MAX; none for an empty one).
            "b": (p.result.body or "")[:RESPONSE_MAX] or None,
            "e": p.error,
            "ae": p.result.error,
            "x": p.next_at,
            "t": p.result.started_at,
            "ms": p.result.duration_ms,
            "ev": p.event,
            "f": p.touch,
        }
        for number, p in enumerate(planned)
    ]
    webhooks = [{"w": h.id, "ig": h.integration_id, "u": h.user_id} for h in hooks.values()]
    cursor = statements.run_anywhere(
        "nexus_record",
        _PG_RECORD,
        # A naive time (none of ours is) read as UTC, as UTCDateTimeField does, not in the session's time zone.
        [
            orjson.dumps(rows, option=orjson.OPT_NAIVE_UTC).decode(),
            now,
            now,
            now,
            now,
            now,
            now,
            orjson.dumps(webhooks).decode(),
            now,
            now,
        ],
    )
    return {planned[number].claimed.id for (number,) in cursor.fetchall()}


def _update_deliveries(rows: list) -> set:
    """SQLite: write each row's outcome where its lease token still holds; the ids written."""
    if not rows:
        return set()
    f = WebhookDelivery
    # The transaction holds the write lock (BEGIN IMMEDIATE), so read-then-write is atomic.
    where, params = statements.in_list(f.id, [r[7] for r in rows])
    held = {
        f.id.python_value(i): f.lease_token.python_value(t)
        for i, t in database_proxy.execute_sql(
            f'SELECT "id", "lease_token" FROM "webhook_deliveries" WHERE {where}', params
        ).fetchall()
    }
    rows = [r for r in rows if held.get(r[7]) == r[8]]
    sql, convert = _sqlite_update()
    params = [tuple(c(v) for c, v in zip(convert, row, strict=True)) for row in rows]
    database_proxy.cursor().executemany(sql, params)
    return {r[7] for r in rows}


@functools.lru_cache(maxsize=1)
def _sqlite_update() -> tuple[str, tuple]:
    """SQLite's fenced UPDATE of one delivery (the rows of _update_deliveries) and each value's conversion."""
    f = WebhookDelivery
    columns = [f.status, f.attempts, f.response, f.error, f.delivered_at, f.next_attempt_at, f.updated_at]
    # A row parked while it was being sent (no next attempt: deliveries.park) stays parked (as _PG_RECORD).
    sets = [
        '"next_attempt_at" = CASE WHEN "next_attempt_at" IS NOT NULL THEN ? END'
        if c is f.next_attempt_at
        else f'"{c.column_name}" = ?'
        for c in columns
    ]
    sql = (
        'UPDATE "webhook_deliveries" SET '
        + ", ".join(sets)
        + ', "lease_until" = NULL, "lease_token" = NULL WHERE "id" = ? AND "lease_token" = ?'
    )
    return sql, tuple(statements.converter(c) for c in [*columns, f.id, f.lease_token])


# Queued deliveries a disabled webhook's ``_disable`` ends FAILED per statement. A webhook failing for 5 days may have
# a large backlog queued (every event of those days): it is failed, each with its ``webhook.failed`` event, this many
# rows at a time, so no statement, parameter list or list of events in memory grows with the backlog. They are all
# in the record's one transaction: a delivery is never FAILED without its event, nor the other way round.
DISABLE_BATCH = 500


def _disable(hook: _Hook, reason: str, delivery_id) -> None:
    """Disable the webhook (``delivery_id``'s outcome did it) and end its queued deliveries FAILED.

    Only the transition announces it: the UPDATE's ``is_active`` condition decides, so of the outcomes that would
    disable one webhook (several 410s in flight at once, in one batch or in several, on one daemon or on several)
    one ``integration.error`` goes out. The queued deliveries are failed by every such outcome all the same: one
    that was held under a lease when the first ran and has been given back since ends FAILED with the others."""
    now = utcnow()
    changed = (
        Webhook.update(is_active=False, disabled_reason=reason, updated_at=now)
        .where((Webhook.id == hook.id) & (Webhook.is_active == True))  # noqa: E712
        .execute()
    )
    # Its other queued deliveries would never be sent (the worker skips inactive webhooks) and would count as
    # RETRYING forever: they end FAILED with the reason, for a replay once the webhook is enabled again, each with
    # its ``webhook.failed`` event as every FAILED delivery has (the same data as a delivery failed by its own
    # attempt). One a worker holds right now (its lease holds) is left to that worker: the one whose record did
    # this fails those it holds unsent (``fail_held``), and a send in flight records its own outcome.
    error = f"webhook disabled: {reason}"[:500]
    queued = (
        (WebhookDelivery.webhook == hook.id)
        & WebhookDelivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRYING])
        & deliveries.not_leased(now)
    )
    _fail(hook, error, queued, now)
    if not changed:
        return
    integration = Integration.get_or_none(Integration.id == hook.integration_id)
    if integration is not None:
        # The envelope every integration event has (integrationId, userId, provider), outbox only (as every
        # webhook.* event: fanned out to webhooks it could loop).
        statements.insert(
            events.outbox_row(
                events.ERROR,
                integration,
                webhookId=str(hook.id),
                code="WEBHOOK_DISABLED",
                message=f"webhook disabled: {reason}",
                deliveryId=str(delivery_id) if delivery_id else None,
            )
        )


def _fail(hook: _Hook, error: str, queued, now) -> int:
    """End the deliveries ``queued`` selects FAILED with ``error``, each with its ``webhook.failed`` event,
    DISABLE_BATCH at a time. How many."""
    total = 0
    users = {hook.integration_id: hook.user_id}
    # One statement a batch: UPDATE ... WHERE id IN (SELECT id ... LIMIT n) RETURNING. The lease condition is on
    # the UPDATE itself too (``queued``), not only in the subquery: on PostgreSQL a row a claim leases after the
    # subquery's snapshot is re-checked against its new version when locked, and left to that worker. Such a row
    # is not picked again, so the loop ends once a statement fails nothing (SQLite: the record's transaction holds
    # the write lock, nothing changes in between).
    batch = WebhookDelivery.select(WebhookDelivery.id).where(queued)
    while True:
        failed = list(
            WebhookDelivery.update(
                status=DeliveryStatus.FAILED,
                error=error,
                next_attempt_at=None,
                lease_until=None,
                lease_token=None,
                updated_at=now,
            )
            .where(WebhookDelivery.id.in_(batch.limit(DISABLE_BATCH)) & queued)
            .returning(WebhookDelivery.id, WebhookDelivery.event, WebhookDelivery.attempts)
            .tuples()
            .execute()
        )
        if not failed:
            break
        fresh = iter(new_ids(len(failed)))
        total += len(failed)
        statements.insert_many_text(
            OutboxEvent,
            EVENT_COLUMNS,
            [
                _outbox(
                    "webhook.failed",
                    hook,
                    users,
                    {
                        "webhookId": str(hook.id),
                        "deliveryId": str(WebhookDelivery.id.python_value(i)),
                        "event": event,
                        "attempts": n,
                        "error": error[:300],
                    },
                    now,
                    next(fresh),
                )
                for i, event, n in failed
            ],
        )
    return total


def fail_held(items: list) -> int:
    """Deliveries a worker claimed and holds unsent (waiting for a sending slot) when a record of its own disabled
    their webhook: ended FAILED with the disable's reason, each with its ``webhook.failed`` event, as the disable
    ends the queued ones (it leaves those under a live lease alone). Fenced by each claim's lease token; those
    whose webhook is active again (enabled meanwhile) are given back untouched, to be sent. How many failed. Run
    again when it is a deadlock's victim (the disable's own ``_fail`` of the other queued rows may meet a renewal),
    as the record and the renewal are."""
    if not items:
        return 0
    now = utcnow()

    def transaction() -> int:
        with database_proxy.atomic():
            hooks = _hooks({item.webhook_id for item in items})
            # The held rows locked at once, in id order: the statements below fail some and give the others back,
            # and taking them statement by statement they deadlocked with the renewal, which moves on the same
            # leases.
            deliveries.lock_held(items)
            inactive = dict(
                Webhook.select(Webhook.id, Webhook.disabled_reason)
                .where(Webhook.id.in_(list(hooks)) & (Webhook.is_active == False))  # noqa: E712
                .tuples()
            )
            failed = 0
            for hook_id, reason in inactive.items():
                mine = [item for item in items if item.webhook_id == hook_id]
                for lease in {item.lease for item in mine}:
                    held = (
                        WebhookDelivery.id.in_([item.id for item in mine if item.lease == lease])
                        & (WebhookDelivery.lease_token == lease)
                        & WebhookDelivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRYING])
                    )
                    failed += _fail(hooks[hook_id], f"webhook disabled: {reason or 'disabled'}"[:500], held, now)
            deliveries.release([item for item in items if item.webhook_id not in inactive])
        return failed

    return retry_deadlocks(transaction)
