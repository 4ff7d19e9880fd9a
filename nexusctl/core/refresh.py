"""Refreshing an integration's tokens: one provider call, however many ask.

Rotating providers (X, TikTok, Discord, Shopify, Slack with rotation) treat
a second use of a refresh token as replay and may kill the whole grant, so
two refreshes of one integration must never both reach the provider. Each
refresher first takes a **lease** on the row with one conditional UPDATE
(``... WHERE refresh_lease_until IS NULL OR refresh_lease_until < now``):
PostgreSQL's row lock and SQLite's single writer make exactly one of them
win, across threads, CLI processes and daemons. No transaction stays open
across the provider call. The winner writes the new access token and the
rotated refresh token in one UPDATE fenced by its lease token; the losers
wait for the lease to go and then re-read the fresh token instead of
refreshing again. A crashed winner's lease simply expires.

``invalid_grant`` and kin deactivate the integration with ``lastError`` and
an ``integration.error`` event in the same transaction.

A token the provider does not renew yet (Instagram's, under 24 h old) is not a
failure: the refresh is skipped with the reason, ``refresh_retry_at`` is set to
when it becomes refreshable (the sweep leaves it alone until then), and
nothing about its health changes.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import datetime as dt
import functools
import logging
import math
import random
import time
import uuid
from dataclasses import dataclass

from nexusctl import logrecords, telemetry, tracing
from nexusctl.core import connections, events, health_checks, integrations, key_usage, proxy_cache
from nexusctl.db import statements
from nexusctl.db.database import database_proxy, is_postgres
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration
from nexusctl.errors import KeyNotConfigured, NexusError, ProviderError, RefreshFailed, UsageProblem
from nexusctl.providers.registry import SPECS
from nexusctl.providers.spec import NotYetRefreshable, RefreshStyle

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=60)  # longer than a provider call can take (20 s timeout)
MAX_ROUNDS = 3
# The longest a refresh can hold its lease: two provider calls (Salesforce's refresh makes two, 20 s timeout
# each) and its store. A row the sweep claimed ahead starts its refresh only while at least this much of its
# lease is left; otherwise it gives the lease back and is claimed again with a fresh one.
LONGEST_REFRESH = dt.timedelta(seconds=2 * 20 + 10)
# A provider whose token calls answer faster than this, on average, has four rows or more in hand per place of the
# sweep (claimed ahead, each waiting a round of answers per row ahead of it), as many as wait within a third of the
# lease's margin (LEASE - LONGEST_REFRESH) at its pace, up to MAX_DEPTH; a slower one two (one round), so no row
# waits past that margin for its place (one that would is given back: ``sweep``'s ``start``).
FAST_ANSWER = 1.0
# Rows in hand a place at most: a claim costs about half a millisecond a row on the database thread, so a provider
# answering in milliseconds empties four a place (claims of ten at concurrency 5) before the next claim is back,
# and places stood empty (a quarter of a pass waiting on a claim with nothing in hand, bench/token_refresh.py).
MAX_DEPTH = 16
CALL_GRACE = 5.0  # seconds a stopping sweep lets provider calls under way answer before it cancels them
STOP_WAIT = 8.0  # seconds a stopping sweep then waits for the stores of refreshes whose provider answered


def _free(now):
    return Integration.refresh_lease_until.is_null() | (Integration.refresh_lease_until < now)


def _claim(row_id: uuid.UUID, lease: uuid.UUID) -> bool:
    now = utcnow()
    free = _free(now)
    return (
        Integration.update(refresh_lease_until=now + LEASE, refresh_lease_token=lease)
        .where((Integration.id == row_id) & free)
        .execute()
        == 1
    )


def _lease_of(row_id: uuid.UUID):
    row = (
        Integration.select(
            Integration.refresh_lease_until,
            Integration.access_token,
            Integration.is_active,
            Integration.refresh_lease_token,
        )
        .where(Integration.id == row_id)
        .tuples()
        .first()
    )
    if row is None:
        return None
    until, token, active, holder = row
    return (None if holder is None else until), token, active


def _release(
    row_id: uuid.UUID,
    lease: uuid.UUID,
    error: str | None = None,
    *,
    back_off: bool = False,
    retry_after: int | None = None,
) -> None:
    """Give the lease back; ``back_off`` (the sweep's failures) also counts the failure and sets the next try."""
    changes = {Integration.refresh_lease_until: None, Integration.refresh_lease_token: None}
    if error is not None:
        now = utcnow()
        changes.update(
            {Integration.last_error: error, Integration.refresh_failed_at: now, Integration.health_due_at: now}
        )  # the health check looks again at once
    fenced = (Integration.id == row_id) & (Integration.refresh_lease_token == lease)
    with database_proxy.atomic():
        if back_off:
            # Only the lease holder writes the count, so reading it here is safe.
            failures = Integration.select(Integration.refresh_failures).where(fenced).scalar()
            if failures is None:
                return  # the lease is gone: someone else owns the row now
            changes.update(_failure_changes(failures + 1, retry_after))
        Integration.update(changes).where(fenced).execute()


def _not_yet(row_id: uuid.UUID, lease: uuid.UUID, refreshable_at: dt.datetime) -> None:
    """Give the lease back and come back when the token becomes refreshable: no error, no failure counted,
    health untouched."""
    Integration.update(refresh_lease_until=None, refresh_lease_token=None, refresh_retry_at=refreshable_at).where(
        (Integration.id == row_id) & (Integration.refresh_lease_token == lease)
    ).execute()


def _deactivate(row: Integration, lease: uuid.UUID, error: str) -> None:
    with database_proxy.atomic():
        Integration.update(
            is_active=False,
            last_error=error,
            updated_at=utcnow(),
            refresh_lease_until=None,
            refresh_lease_token=None,
            refresh_failed_at=utcnow(),
            health_due_at=utcnow(),
        ).where(Integration.id == row.id).execute()
        events.record(events.ERROR, row, code="REFRESH_FAILED", message=error)


def check_refreshable(row: Integration, has_refresh_token: bool) -> None:
    spec = SPECS[row.provider]
    if spec.refresh is RefreshStyle.NONE or (
        spec.refresh in (RefreshStyle.STANDARD, RefreshStyle.ROTATING)
        and not has_refresh_token
        and row.expires_at is None
    ):
        raise UsageProblem(f"{row.provider.value} tokens of this connection do not expire: nothing to refresh")
    if not row.is_active:
        raise RefreshFailed(
            f"integration {row.id} is inactive ({row.last_error or 'disconnected'}): connect it again", id=str(row.id)
        )


async def refresh(svc, integration_id, *, owner_id=None, seen: str | None = None) -> Integration:
    """Refresh now; returns the row with its new expiry (or the one a concurrent refresher stored).

    ``seen``: the access token ciphertext the caller's refused call was made with (the API proxy); when the
    stored one differs, someone refreshed since, and that token is used instead of refreshing again."""
    row, tokens = await _load(svc, integration_id, owner_id=owner_id)
    check_refreshable(row, bool(tokens.refresh_token))
    seen = seen or row.access_token  # ciphertext: changes only when tokens are written
    for round_ in range(MAX_ROUNDS):
        lease = uuid.uuid4()
        if await svc.run(_claim, row.id, lease):
            return await _refresh_holding(svc, row.id, lease, seen)
        if round_ == 0:  # says why this refresh takes as long as another one's provider call
            log.info(
                "refresh of %s %s: another refresh is under way; waiting for its result", row.provider.value, row.id
            )
        state = await _wait_for_lease(svc, row.id)
        if state is None:
            break
        if state[1] != seen or not state[2]:  # someone refreshed (or the grant died) meanwhile
            fresh, _ = await svc.run(connections.load, svc.keyring, row.id)
            if not fresh.is_active:
                raise RefreshFailed(f"the refresh failed: {fresh.last_error}", id=str(row.id))
            return fresh
    raise ProviderError("another refresh of this integration kept failing; try again later", id=str(row.id))


@dataclass
class Outcome:
    """What `POST /integrations/{id}/refresh` and `integrations refresh ID` report."""

    row: Integration
    refreshed: bool
    message: str | None = None
    refreshable_at: dt.datetime | None = None

    def to_dict(self) -> dict:
        when = self.refreshable_at
        return {
            "refreshed": self.refreshed,
            "message": self.message,
            "refreshableAt": when.isoformat().replace("+00:00", "Z") if when else None,
        }


async def refresh_now(svc, integration_id, *, owner_id=None) -> Outcome:
    """``refresh``, except that a token the provider does not renew yet is an outcome, not an error."""
    try:
        return Outcome(await refresh(svc, integration_id, owner_id=owner_id), True)
    except NotYetRefreshable as exc:
        row = await svc.run(integrations.get, integration_id, owner_id=owner_id)
        return Outcome(row, False, exc.message, exc.refreshable_at)


async def _load(svc, integration_id, *, owner_id=None):
    """``connections.load``; tokens under a key this process lacks (a rotation under way) are said once per key."""
    try:
        return await svc.run(connections.load, svc.keyring, integration_id, owner_id=owner_id)
    except KeyNotConfigured as exc:
        key_usage.warn_once(exc.details["keyId"], f"refresh of integration {integration_id}")
        raise


async def _wait_for_lease(svc, row_id: uuid.UUID):
    """Poll (50 ms, backing off to 250 ms) until no lease is held; returns (until, access_token, is_active)."""
    delay, deadline = 0.05, time.monotonic() + LEASE.total_seconds() + 5
    while time.monotonic() < deadline:
        await asyncio.sleep(delay)
        state = await svc.run(_lease_of, row_id)
        if state is None or state[0] is None or state[0] < utcnow():
            return state
        delay = min(delay * 1.5, 0.25)
    return await svc.run(_lease_of, row_id)


async def _refresh_holding(
    svc,
    row_id: uuid.UUID,
    lease: uuid.UUID,
    seen: str | None,
    *,
    renew_by: dt.datetime | None = None,
    loaded=None,
    store=None,
) -> Integration:
    if not tracing.enabled():
        return await _refresh_leased(svc, row_id, lease, seen, renew_by=renew_by, loaded=loaded, store=store)
    trigger = "sweep" if renew_by is not None else "request"
    with tracing.span("token refresh", {"nexus.integration.id": str(row_id), "nexus.refresh.trigger": trigger}):
        return await _refresh_leased(svc, row_id, lease, seen, renew_by=renew_by, loaded=loaded, store=store)


async def _store_one(svc, *args) -> bool:
    return await svc.run(connections.store_refreshed, svc.keyring, *args)


async def _refresh_leased(
    svc,
    row_id: uuid.UUID,
    lease: uuid.UUID,
    seen: str | None,
    *,
    renew_by: dt.datetime | None = None,
    loaded=None,
    store=None,
) -> Integration:
    """Refresh while holding ``lease``. ``renew_by`` (the sweep's): failures back off, and a long-lived
    token whose renewal still expires before ``renew_by`` counts as a failure too; the sweep's claim
    hands over the row and tokens it read (``loaded``), and it gets back the row as read (nothing reloaded).
    ``store(svc, row, tokens, lease, also, health)``: how the new tokens are stored (the sweep's
    ``_Stores`` batches them; alone by default)."""
    sweeping = renew_by is not None
    try:
        row, tokens = loaded or await _load(svc, row_id)
    except KeyNotConfigured:  # not the grant's fault nor the provider's: no error, no back-off, no health change
        await svc.run(_release, row_id, lease)
        raise
    if seen is not None and row.access_token != seen:  # a refresh finished between our read and our claim
        await svc.run(_release, row_id, lease)
        return row
    adapter = svc.adapter_of(row)
    tenant = tokens.metadata.get("tenant")
    started = time.monotonic()
    try:
        fresh = await adapter.refresh(tokens, tenant)
    except NotYetRefreshable as exc:
        telemetry.refresh(row.provider.value, "not_yet")
        await svc.run(_not_yet, row_id, lease, exc.refreshable_at)
        log.info("refresh of %s %s skipped: %s", row.provider.value, row_id, exc.message)
        raise
    except RefreshFailed as exc:
        telemetry.refresh(row.provider.value, "revoked" if exc.details.get("dead") else "failed")
        if exc.details.get("dead"):
            await svc.run(_deactivate, row, lease, exc.message)
            log.warning("refresh of %s %s: grant is gone, integration deactivated", row.provider.value, row.id)
        else:
            await svc.run(_release, row_id, lease, exc.message, back_off=sweeping)
        raise
    except NexusError as exc:
        telemetry.refresh(row.provider.value, "error")
        await svc.run(
            _release, row_id, lease, exc.message, back_off=sweeping, retry_after=getattr(exc, "retry_after", None)
        )
        raise
    except BaseException:
        await asyncio.shield(svc.run(_release, row_id, lease))
        raise
    stale = (
        sweeping
        and SPECS[row.provider].refresh in LONG_LIVED
        and fresh.expires_at is not None
        and fresh.expires_at <= renew_by
    )
    # The failure bookkeeping goes in the same fenced UPDATE as the tokens (one transaction with the event),
    # and so does the health a successful refresh leaves (no separate check; a stale one is checked).
    health = None if stale else _health_after(svc.settings)
    if not await (store or _store_one)(svc, row, fresh, lease, _settled(row, stale), health):
        raise ProviderError("the refresh took longer than its lease; another refresher took over", id=str(row_id))
    proxy_cache.forget(row_id)  # the API proxy of this process uses the new token from its next call
    telemetry.refresh(row.provider.value, "not_extended" if stale else "refreshed")
    if stale:
        await svc.run(_note_error, row_id, NOT_EXTENDED)
        raise ProviderError(f"{row.provider.value}: {NOT_EXTENDED}", id=str(row_id))
    # A line per refresh: its record made as the access line's is (nexusctl.logrecords).
    logrecords.info(
        log, "refreshed %s integration %s in %.0f ms", row.provider.value, row_id, (time.monotonic() - started) * 1000
    )
    if sweeping:
        return row  # the sweep only counts it: no second full load
    fresh_row, _ = await svc.run(connections.load, svc.keyring, row_id)
    return fresh_row


def _health_after(settings):
    """health_checks.after_refresh with this process's windows (TOKEN_EXPIRY_WARNING, HEALTH_RECHECK)."""
    return functools.partial(
        health_checks.after_refresh,
        lead=dt.timedelta(seconds=settings.token_expiry_warning),
        recheck=dt.timedelta(seconds=settings.health_recheck_seconds),
    )


# --- the sweep: refresh before expiry ------------------------------------------
#
# Access tokens with a refresh token are refreshed within TOKEN_REFRESH_WINDOW of expiry. Long-lived
# tokens without one (Facebook and Meta Ads: fb_exchange_token; Instagram: ig_refresh_token) die for
# good once expired, so they are renewed TOKEN_EXPIRY_WARNING ahead (7 days), which leaves days of
# retries. A failure backs that integration off exponentially (5 min doubling to 6 h, +-10%): a
# provider that is down sees about a dozen calls a day per integration, not one a minute. A token
# that cannot be renewed gets one integration.error TOKEN_EXPIRING per expiry time.

BACKOFF_FIRST = dt.timedelta(minutes=5)
BACKOFF_CAP = dt.timedelta(hours=6)
BACKOFF_JITTER = 0.1
WARN_AFTER_FAILURES = 3  # consecutive sweep failures before "cannot be renewed"
LONG_LIVED = (RefreshStyle.FB_EXCHANGE, RefreshStyle.IG_REFRESH)
NOT_EXTENDED = "the provider renewed the token without extending its expiry"

_WITH_REFRESH_TOKEN = [p for p, spec in SPECS.items() if spec.refresh in (RefreshStyle.STANDARD, RefreshStyle.ROTATING)]
_LONG_LIVED = [p for p, spec in SPECS.items() if spec.refresh in LONG_LIVED]
_NOT_RENEWABLE = [p for p, spec in SPECS.items() if spec.refresh is RefreshStyle.NONE]


def back_off_delay(failures: int, rand=random.random) -> dt.timedelta:
    """How long the sweep leaves an integration alone after ``failures`` failures in a row."""
    base = min(BACKOFF_FIRST * 2 ** max(failures - 1, 0), BACKOFF_CAP)
    return base * (1 + BACKOFF_JITTER * (2 * rand() - 1))


def _failure_changes(failures: int, retry_after: int | None = None) -> dict:
    delay = back_off_delay(failures)
    if retry_after:  # the provider said when (rate limits): never sooner than that
        delay = max(delay, dt.timedelta(seconds=retry_after))
    return {Integration.refresh_failures: failures, Integration.refresh_retry_at: utcnow() + delay}


def _settled(row: Integration, failed: bool) -> dict:
    """The failure bookkeeping of a finished refresh, as column values for its fenced UPDATE. The row was
    read under the lease, and only the lease holder writes the count, so its count is current."""
    if failed:
        return {field.name: value for field, value in _failure_changes((row.refresh_failures or 0) + 1).items()}
    return {"refresh_failures": 0, "refresh_retry_at": None}


def _note_error(row_id: uuid.UUID, error: str) -> None:
    Integration.update(last_error=error).where((Integration.id == row_id) & Integration.last_error.is_null()).execute()


def _due(now: dt.datetime, window: dt.timedelta, lead: dt.timedelta, since: dt.datetime | None = None):
    """Active, renewable, expiring within its style's lead, not backing off (and not refreshed ``since``)."""
    # A bare is_active (so SQLite can match the partial index (expires_at) WHERE is_active) and the outer
    # bound on expires_at that both branches imply. SQLite's planner still prefers the provider index here.
    due = (
        Integration.is_active
        & (Integration.expires_at <= now + max(window, lead))
        & (Integration.refresh_retry_at.is_null() | (Integration.refresh_retry_at <= now))
        & (
            (
                Integration.provider.in_(_WITH_REFRESH_TOKEN)
                & Integration.refresh_token.is_null(False)
                & (Integration.expires_at <= now + window)
            )
            | (Integration.provider.in_(_LONG_LIVED) & (Integration.expires_at <= now + max(window, lead)))
        )
    )
    if since is not None:
        due &= Integration.refreshed_at.is_null() | (Integration.refreshed_at < since)
    return due


def expiring(
    window: dt.timedelta, limit: int, lead: dt.timedelta = dt.timedelta(0), since: dt.datetime | None = None
) -> list[uuid.UUID]:
    """Integrations due for a refresh (see ``_due``) that nobody is refreshing, soonest first."""
    now = utcnow()
    query = (
        Integration.select(Integration.id)
        .where(_due(now, window, lead, since) & _free(now))
        .order_by(Integration.expires_at)
        .limit(limit)
    )
    return [row_id for (row_id,) in query.tuples()]


def _claim_expiring(
    keyring,
    row_id: uuid.UUID,
    lease: uuid.UUID,
    window: dt.timedelta,
    lead: dt.timedelta,
    since: dt.datetime | None = None,
):
    """Lease the integration and read it (row and tokens) in one statement; None if it is no longer due.
    Tokens under a key this process lacks: the lease is given back and KeyNotConfigured raised."""
    # Claimed only while still due: another daemon that just refreshed it moved expires_at on
    # (or backed it off). The statement is ``_due`` & ``_free`` written out once (peewee rebuilt
    # that expression on every claim: most of the sweep's own CPU per refresh).
    now = utcnow()
    stamp = Integration.expires_at.db_value
    postgres = is_postgres(database_proxy)
    params = [
        stamp(now + LEASE),
        Integration.refresh_lease_token.db_value(lease),
        Integration.id.db_value(row_id),
        stamp(now + max(window, lead)),
        stamp(now),
        stamp(now + window),
        stamp(now + max(window, lead)),
    ]
    if since is not None:
        params.append(stamp(since))
    sql = _claim_sql(postgres, since is not None)
    cursor = statements.run(f"nexus_claim_{int(since is not None)}", sql, [*params, stamp(now)])
    found = cursor.fetchone()
    if found is None:
        return None
    row = Integration(__no_default__=1)  # every column is set: no defaults, no setattr per field
    row.__data__ = {name: convert(value) for (name, convert), value in zip(_COLUMNS, found)}
    try:
        return row, connections.tokens_of(keyring, row)
    except KeyNotConfigured as exc:
        _release(row_id, lease)
        key_usage.warn_once(exc.details["keyId"], f"refresh of integration {row_id}")
        raise


_COLUMNS = [(field.name, field.python_value) for field in Integration._meta.sorted_fields]


def _claim_expiring_many(
    keyring,
    row_ids: list[uuid.UUID],
    lease: uuid.UUID,
    window: dt.timedelta,
    lead: dt.timedelta,
    since: dt.datetime | None = None,
) -> dict:
    """``_claim_expiring`` for many integrations in one statement (``... WHERE id = ANY(...) ... RETURNING``), all
    under ``lease`` (each row is fenced by its own id and the lease: a takeover of one leaves the others).
    {id: (row, tokens)} for those claimed, {id: KeyNotConfigured} for those under a key this process lacks
    (their lease given back, said once); those no longer due are absent."""
    now = utcnow()
    stamp = Integration.expires_at.db_value
    postgres = is_postgres(database_proxy)
    convert_id = Integration.id.db_value
    ids = [convert_id(row_id) for row_id in row_ids]
    params = [
        stamp(now + LEASE),
        Integration.refresh_lease_token.db_value(lease),
        *([ids] if postgres else ids),
        stamp(now + max(window, lead)),
        stamp(now),
        stamp(now + window),
        stamp(now + max(window, lead)),
    ]
    if since is not None:
        params.append(stamp(since))
    sql = _claim_sql(postgres, since is not None, 0 if postgres else len(ids))
    cursor = statements.run(f"nexus_claim_many_{int(since is not None)}", sql, [*params, stamp(now)])
    claimed: dict = {}
    for found in cursor.fetchall():
        row = Integration(__no_default__=1)  # every column is set: no defaults, no setattr per field
        row.__data__ = {name: convert(value) for (name, convert), value in zip(_COLUMNS, found)}
        try:
            claimed[row.id] = row, connections.tokens_of(keyring, row)
        except KeyNotConfigured as exc:
            _release(row.id, lease)
            key_usage.warn_once(exc.details["keyId"], f"refresh of integration {row.id}")
            claimed[row.id] = exc
    return claimed


@functools.lru_cache(maxsize=64)
def _claim_sql(postgres: bool, since: bool, many: int | None = None) -> str:
    """``_claim_expiring``'s UPDATE ... RETURNING: ``_due(now, window, lead, since) & _free(now)``; ``many``
    (``_claim_expiring_many``): for a list of ids (0: one array parameter, PostgreSQL; n: n placeholders)."""
    mark = "%s" if postgres else "?"
    if many is None:
        ids = f'"id" = {mark}'
    elif many == 0:
        ids = '"id" = ANY(%s::text[]::uuid[])'  # text: EXECUTE's parameters are not cast to uuid[]
    else:
        ids = f'"id" IN ({", ".join([mark] * many)})'

    def providers(names) -> str:
        return ", ".join(f"'{p.value}'" for p in names)

    return (
        f'UPDATE "integrations" SET "refresh_lease_until" = {mark}, "refresh_lease_token" = {mark} '
        f'WHERE {ids} AND "is_active" AND "expires_at" <= {mark} '
        f'AND ("refresh_retry_at" IS NULL OR "refresh_retry_at" <= {mark}) '
        f'AND (("provider" IN ({providers(_WITH_REFRESH_TOKEN)}) AND "refresh_token" IS NOT NULL '
        f'AND "expires_at" <= {mark}) OR ("provider" IN ({providers(_LONG_LIVED)}) AND "expires_at" <= {mark})) '
        + (f'AND ("refreshed_at" IS NULL OR "refreshed_at" < {mark}) ' if since else "")
        + f'AND ("refresh_lease_until" IS NULL OR "refresh_lease_until" < {mark}) '
        "RETURNING " + ", ".join(chr(34) + field.column_name + chr(34) for field in Integration._meta.sorted_fields)
    )


class _Stores:
    """The sweep's stores, batched: a refresh's store waits while the previous batch is being stored, then all
    that finished meanwhile are stored by one ``connections.store_refreshed_many`` (one thread hop, one
    statement on PostgreSQL); each refresh gets its own outcome (its lease held or not, or its error)."""

    def __init__(self, svc) -> None:
        self.svc = svc
        self.queue: list = []
        self.storing: asyncio.Task | None = None

    async def store(self, svc, *args) -> bool:
        future = asyncio.get_running_loop().create_future()
        if tracing.enabled():  # the event carries this refresh's span, not the one the batch is stored under
            args = (*args, tracing.current_traceparent())
        self.queue.append((args, future))
        if self.storing is None:
            self.storing = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.queue:
                batch, self.queue = self.queue, []
                try:
                    outcomes = await self.svc.run(
                        connections.store_refreshed_many, self.svc.keyring, [args for args, _ in batch]
                    )
                except Exception as exc:  # noqa: BLE001 - every refresh of the batch meets it, as alone
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes):
                    if future.done():  # its refresh was cancelled meanwhile
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self.storing = None


async def sweep(
    svc,
    window: dt.timedelta,
    *,
    lead: dt.timedelta | None = None,
    concurrency: int = 5,
    limit: int = 500,
    progress=None,
    since: dt.datetime | None = None,
    refill_until: float | None = None,
) -> dict:
    """One pass: refresh what is due (each integration once, across daemons), then warn about what cannot be.

    ``refill_until`` (a time of the running loop; ``drain``'s): while batches of ``limit`` come back full and before
    then, the next batch is read once every due row of the pass is claimed, beside the refreshes still running, and
    joins the pass: a drain's batches follow each other with their places full (a pass of its own each, the last
    refreshes of one ran with places empty, then the next read its batch and claimed its first rows with none busy).

    ``lead`` (default TOKEN_EXPIRY_WARNING) is how far ahead long-lived tokens are renewed and
    unrenewable ones warned about. ``progress(done, total)`` is called once the due ones are
    known and after each one (the CLI's progress bar).
    """
    if lead is None:
        lead = dt.timedelta(seconds=svc.settings.token_expiry_warning)
    # skipped: refreshed elsewhere meanwhile; notYet: the provider renews it only later (not a failure)
    counts = {"refreshed": 0, "failed": 0, "skipped": 0, "notYet": 0, "warned": 0}

    due = await svc.run(expiring, window, limit, lead, since)
    done, total = 0, len(due)
    seen = set(due)  # every row of the pass: a batch read again may hold rows a claim under way is taking
    more = refill_until is not None and len(due) == limit  # a full batch: more may be due

    def finished(key: str) -> None:
        nonlocal done
        counts[key] += 1
        done += 1
        if progress:
            progress(done, total)

    stores = _Stores(svc)

    async def one(row_id, lease, loaded):
        try:
            await _refresh_holding(
                svc, row_id, lease, None, renew_by=utcnow() + max(window, lead), loaded=loaded, store=store
            )
            finished("refreshed")
        except NotYetRefreshable:
            finished("notYet")
        except KeyNotConfigured:  # said once (key_usage); a daemon that has the key refreshes it
            finished("skipped")
        except NexusError as exc:
            state = await svc.run(_back_off_state, row_id)
            log.warning("refresh sweep: integration %s failed (%s); %s", row_id, exc.code, state)
            finished("failed")

    if progress:
        progress(0, len(due))
    pending = collections.deque(due)
    slots = min(concurrency, len(due))
    ready: collections.deque = collections.deque()  # claimed (leased), waiting for a free place
    running: set[asyncio.Task] = set()  # refreshes under way
    calling: set[asyncio.Task] = set()  # of those, the ones whose provider call is not done: the places taken
    freed = asyncio.Event()
    errors: list[BaseException] = []
    requeued: set = set()  # given back once for a fresh lease (waited too long for a place)
    claiming: asyncio.Task | None = None  # a claim under way: its rows join ``ready`` once it is back
    refilling: asyncio.Task | None = None  # the next batch being read (``refill_until``)

    def refill_due() -> bool:
        """Whether to read the next batch now: more may be due, every row in hand claimed (so the read skips them:
        leased), none being read, and time left."""
        return (
            more
            and refilling is None
            and claiming is None
            and not pending
            and not errors
            and asyncio.get_running_loop().time() < refill_until
        )

    def refilled(task: asyncio.Task) -> None:
        nonlocal more, total
        batch = task.result()  # a read that failed fails the pass, as a claim's does
        fresh = [row_id for row_id in batch if row_id not in seen]
        # Full, and news in it: a batch of rows this pass has seen (refused and due again, given back twice, under a
        # key this process lacks) would be read again at once, again and again; the drain's next pass takes them.
        more = len(batch) == limit and bool(fresh)
        seen.update(fresh)
        pending.extend(fresh)
        total += len(fresh)
        if progress:
            progress(done, total)

    async def claim(wanted: list) -> tuple:
        lease = uuid.uuid4()  # one per claim: each row is fenced by its id and this
        claimed_at = utcnow()  # no later than the claim's own now: its lease ends LEASE after that or later
        claimed = await svc.run(_claim_expiring_many, svc.keyring, wanted, lease, window, lead, since)
        return wanted, lease, claimed_at, claimed

    def landed(task: asyncio.Task) -> None:
        wanted, lease, claimed_at, claimed = task.result()  # a claim that failed fails the pass, as before
        for row_id in wanted:
            loaded = claimed.get(row_id)
            if loaded is None or isinstance(loaded, KeyNotConfigured):
                finished("skipped")  # refreshed elsewhere meanwhile, or a key this process lacks
            else:
                ready.append((row_id, lease, loaded, claimed_at))

    answer_seconds: float | None = None  # the provider calls' mean answer time (a moving mean), once one answered

    def depth() -> int:
        """Rows in hand a place, at most: while the provider answers within FAST_ANSWER, as many as wait (a round of
        its mean answer time per row ahead) within a third of the lease's margin, four to MAX_DEPTH; else two (one
        round), as while its pace is unknown."""
        if answer_seconds is None or answer_seconds >= FAST_ANSWER:
            return 2
        rounds = (LEASE - LONGEST_REFRESH).total_seconds() / 3 / max(answer_seconds, 1e-3)
        return max(4, min(MAX_DEPTH, int(rounds) + 1))

    def claim_due() -> bool:
        """Whether to claim now: none under way, more due, and at most half the depth in hand."""
        return claiming is None and bool(pending) and not errors and len(ready) <= depth() // 2 * slots

    def answered(task: asyncio.Task) -> None:
        """The provider call of ``task`` is over: its place is free, and its time joins the moving mean."""
        nonlocal answer_seconds
        calling.discard(task)
        took = asyncio.get_running_loop().time() - task.started
        answer_seconds = took if answer_seconds is None else answer_seconds + (took - answer_seconds) / 8

    async def store(_svc, *args) -> bool:
        answered(asyncio.current_task())  # the provider answered: its place is free while it is stored
        # The place takes the next row in hand at once, not after a trip through the pass's loop below (a loop
        # iteration more between an answer and the next call, on a busy loop).
        if not (errors or stopping or me.cancelling()):  # cancelling: the stop is asked, its handler not yet run
            start()
        freed.set()
        return await stores.store(_svc, *args)

    def free(task: asyncio.Task) -> None:
        running.discard(task)
        if task in calling and not task.cancelled():
            # Ended without a store: a refusal, an error or a timeout. Its time counts too, so a provider that was fast
            # and now hangs shrinks the rows claimed ahead (its stores no longer come to say so).
            answered(task)
        calling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            errors.append(task.exception())  # not a refresh's failure (those are counted): the pass's, raised
        freed.set()

    stale: list = []  # rows whose lease no longer covers a refresh: the pass's loop gives them back
    me = asyncio.current_task()
    context = contextvars.copy_context()
    stopping = False  # the pass is ending (stopped or done): what answers starts nothing more

    def start() -> None:
        """Start what fits."""
        while ready and len(calling) < slots:
            row_id, lease, loaded, claimed_at = ready.popleft()
            if utcnow() - claimed_at > LEASE - LONGEST_REFRESH:
                stale.append((row_id, lease))
                continue
            # In the pass's own context, not that of the refresh whose answer freed the place (store() starts it):
            # its span would be the new refresh's parent, and a place's refreshes one trace nested row by row.
            task = asyncio.create_task(one(row_id, lease, loaded), context=context.copy())
            task.started = asyncio.get_running_loop().time()
            running.add(task)
            calling.add(task)
            task.add_done_callback(free)

    # ``concurrency`` provider calls at a time. One claim (one statement, one thread hop) leases due integrations
    # ahead, up to ``depth`` places' worth in hand, so each claim takes at least half that; it runs
    # beside the provider calls (a place freed meanwhile takes the next row in hand: awaited in the loop, the claim
    # left the places it freed empty for its trip, and the sweep ran at 0.15 of raw token POSTs), and a refresh's
    # place is free again once its provider answered: all that answered while the previous store ran are stored
    # together (``_Stores``). The database work is paid per batch. A claimed row waits a round or two for its
    # place; one that waited so long that its lease would not cover the longest refresh is given back and claimed
    # again (``start``).
    try:
        while pending or ready or running or claiming is not None or refilling is not None:
            if errors:  # the pass failed (not a refresh: those are counted): no more claims, the running finish
                pending.clear()
                while ready:
                    row_id, lease, *_ = ready.popleft()
                    await svc.run(_release, row_id, lease)
            if claiming is not None and claiming.done():
                task, claiming = claiming, None
                landed(task)
            if refilling is not None and refilling.done():
                task, refilling = refilling, None
                if not errors:
                    refilled(task)
                elif not task.cancelled():
                    task.exception()  # the pass failed already (its error is raised): this batch is not wanted
            if refill_due():
                refilling = asyncio.create_task(svc.run(expiring, window, limit, lead, since))
                refilling.add_done_callback(lambda _task: freed.set())
            if claim_due():
                wanted = [pending.popleft() for _ in range(min(depth() * slots - len(ready), len(pending)))]
                claiming = asyncio.create_task(claim(wanted))
                claiming.add_done_callback(lambda _task: freed.set())
            start()
            if stale:
                # Waited too long for a place: its provider call could outlast the lease, and another refresher
                # would then use the same refresh token. Give the leases back (fenced: only if still ours) and
                # claim them again with fresh ones; a row that waits too long twice is left to the next pass.
                while stale:
                    row_id, lease = stale.pop(0)
                    await svc.run(_release, row_id, lease)
                    if row_id in requeued:
                        finished("skipped")
                    else:
                        requeued.add(row_id)
                        pending.appendleft(row_id)
                continue
            if claim_due() or not (running or claiming is not None or refilling is not None):
                continue
            freed.clear()
            await freed.wait()
    except asyncio.CancelledError:
        # The daemon is stopping. Provider calls under way get a moment to answer (a rotating provider that
        # answered after we hung up has killed the refresh token we hold); those still at the provider then give
        # their lease back. Not those whose provider answered: their (maybe rotated) tokens are being stored.
        stopping = True  # and no row in hand is started any more
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CALL_GRACE
        if calling:  # said as the wait begins (like the requests' grace): an operator sees why the stop waits
            log.info("stopping: %d refresh(es) at the provider get up to %.0f s to answer", len(calling), CALL_GRACE)
        while calling and deadline > loop.time():
            freed.clear()
            waiter = asyncio.ensure_future(freed.wait())
            await asyncio.wait([waiter], timeout=deadline - loop.time())
            waiter.cancel()
        for task in calling:
            task.cancel()
        raise
    finally:
        # A refresh whose provider answered is stored even when the pass stops (its rotated token): wait for the
        # running ones and the batch being stored, bounded (the daemon waits for this pass before it closes the
        # database). asyncio.wait does not cancel what it waits for.
        stopping = True
        if refilling is not None:  # a read of the next batch: nothing of it is leased yet
            if refilling.done() and not refilling.cancelled():
                refilling.exception()  # read, so a failed read is not reported as never retrieved; the pass ends
            refilling.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_WAIT
        if running:
            await asyncio.wait(list(running), timeout=STOP_WAIT)
        if stores.storing is not None and deadline > loop.time():
            await asyncio.wait([stores.storing], timeout=deadline - loop.time())
        if claiming is not None:  # a claim still under way (the pass stopped or failed): its rows are given back
            await asyncio.wait([claiming], timeout=max(deadline - loop.time(), 1.0))
            if claiming.done() and not claiming.cancelled() and claiming.exception() is None:
                landed(claiming)
        # Claimed ahead but not started (the pass stopped), or waited too long for a place: the leases go back.
        for row_id, lease, *_ in [*ready, *stale]:
            await asyncio.shield(svc.run(_release, row_id, lease))
    if errors:
        raise errors[0]
    counts["warned"] = await svc.run(warn_expiring, lead, limit)
    return counts


async def drain(svc, window: dt.timedelta, *, seconds: float | None = None, progress=None) -> dict:
    """Sweep passes of ``REFRESH_SWEEP_BATCH`` back to back while they come back full, for at most
    ``seconds`` (None: until done). One pass a ``REFRESH_SWEEP_INTERVAL`` would refresh only one batch
    a minute: a burst of expiries (10,000 within the 10-minute window, say) would partly lapse. Within a pass the
    next batch is read as soon as the last is claimed (``sweep``'s ``refill_until``), so the batches of a burst
    mostly run as one pass; another follows while one ends with a full count.
    ``progress(done, total)`` counts across passes."""
    batch = svc.settings.refresh_sweep_batch
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    total = dict.fromkeys(("refreshed", "failed", "skipped", "notYet", "warned"), 0)
    start = utcnow()  # each integration once per drain, even when its new token expires within the window too
    while True:
        before = total["refreshed"] + total["failed"] + total["skipped"] + total["notYet"]
        counts = await sweep(
            svc,
            window,
            limit=batch,
            since=start,
            concurrency=svc.settings.refresh_sweep_concurrency,
            refill_until=math.inf if deadline is None else deadline,
            progress=None
            if progress is None
            else (lambda done, due, before=before: progress(before + done, before + due)),
        )
        for key in total:
            total[key] += counts[key]
        if counts["refreshed"] + counts["failed"] + counts["skipped"] + counts["notYet"] < batch:
            return total
        if not (counts["refreshed"] or counts["failed"] or counts["notYet"]):
            # Every row skipped (under a key this process lacks, refreshed elsewhere meanwhile): the next pass would
            # read the same rows again, and the CLI's drain (no deadline) went on forever.
            return total
        if deadline is not None and loop.time() >= deadline:
            return total


def _back_off_state(row_id: uuid.UUID) -> str:
    row = (
        Integration.select(Integration.refresh_failures, Integration.refresh_retry_at, Integration.is_active)
        .where(Integration.id == row_id)
        .tuples()
        .first()
    )
    if row is None or not row[2]:
        return "no further tries (deactivated)"
    failures, retry_at, _ = row
    if retry_at is None:
        return f"{failures} failure(s) in a row"
    minutes = max(0, round((retry_at - utcnow()).total_seconds() / 60))
    return f"{failures} failure(s) in a row, next try in {minutes} min"


# --- warnings: tokens that will lapse -----------------------------------------


def _unrenewable(now: dt.datetime, lead: dt.timedelta):
    """Active, expiring within ``lead``, not yet warned about for this expiry, and not renewable."""
    return (
        Integration.is_active
        & Integration.expires_at.is_null(False)  # bare: SQLite then uses the partial index
        & (Integration.expires_at <= now + lead)
        & (Integration.expiry_warned_for.is_null() | (Integration.expiry_warned_for != Integration.expires_at))
        & (
            Integration.provider.in_(_NOT_RENEWABLE)
            | (Integration.provider.in_(_WITH_REFRESH_TOKEN) & Integration.refresh_token.is_null())
            | (Integration.refresh_failures >= WARN_AFTER_FAILURES)
        )
    )


def _why(row: Integration) -> tuple[str, str]:
    style = SPECS[row.provider].refresh
    if style is RefreshStyle.NONE:
        return "NOT_RENEWABLE", f"{row.provider.value} offers no way to renew this token: connect it again"
    if style in (RefreshStyle.STANDARD, RefreshStyle.ROTATING) and row.refresh_token is None:
        return "NO_REFRESH_TOKEN", "the provider issued no refresh token: connect it again"
    last = f" (last: {row.last_error})" if row.last_error else ""
    return "REFRESH_FAILING", (
        f"renewing it has failed {row.refresh_failures} times in a row{last}; it is retried "
        "with back-off, or connect it again"
    )


def warn_expiring(lead: dt.timedelta, limit: int = 500) -> int:
    """One ``integration.error`` TOKEN_EXPIRING per unrenewable token and expiry time; returns how many."""
    now = utcnow()
    candidates = [
        row_id
        for (row_id,) in Integration.select(Integration.id)
        .where(_unrenewable(now, lead))
        .order_by(Integration.expires_at)
        .limit(limit)
        .tuples()
    ]
    warned = 0
    for row_id in candidates:
        with database_proxy.atomic():
            # The UPDATE is the claim: of several daemons, one warns.
            if (
                not Integration.update(expiry_warned_for=Integration.expires_at)
                .where((Integration.id == row_id) & _unrenewable(now, lead))
                .execute()
            ):
                continue
            row = Integration.get_by_id(row_id)
            reason, message = _why(row)
            code = "TOKEN_EXPIRING" if row.expires_at > now else "TOKEN_EXPIRED"
            events.record(
                events.ERROR,
                row,
                code=code,
                expiresAt=row.expires_at.isoformat().replace("+00:00", "Z"),
                reason=reason,
                message=message,
            )
        warned += 1
        log.warning(
            "integration %s (%s): token expires %s and cannot be renewed: %s",
            row_id,
            row.provider.value,
            row.expires_at.isoformat(),
            message,
        )
    return warned
