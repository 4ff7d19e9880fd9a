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
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid

from db.database import database_proxy
from db.fields import utcnow
from db.models import Integration
from nexusctl.core import connections, events
from nexusctl.errors import NexusError, ProviderError, RefreshFailed, UsageProblem
from providers.registry import SPECS
from providers.spec import RefreshStyle

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=60)  # longer than a provider call can take (20 s timeout)
MAX_ROUNDS = 3


def _free(now):
    # A lease without a token is the sweep's back-off after a failure: it keeps the sweep away,
    # not someone who asks for a refresh.
    return (Integration.refresh_lease_until.is_null() | (Integration.refresh_lease_until < now)
            | Integration.refresh_lease_token.is_null())


def _claim(row_id: uuid.UUID, lease: uuid.UUID) -> bool:
    now = utcnow()
    free = _free(now)
    return Integration.update(refresh_lease_until=now + LEASE, refresh_lease_token=lease).where(
        (Integration.id == row_id) & free).execute() == 1


def _lease_of(row_id: uuid.UUID):
    row = (Integration.select(Integration.refresh_lease_until, Integration.access_token, Integration.is_active,
                              Integration.refresh_lease_token).where(Integration.id == row_id).tuples().first())
    if row is None:
        return None
    until, token, active, holder = row
    return (None if holder is None else until), token, active


def _release(row_id: uuid.UUID, lease: uuid.UUID, error: str | None = None) -> None:
    changes = {Integration.refresh_lease_until: None, Integration.refresh_lease_token: None}
    if error is not None:
        changes[Integration.last_error] = error
    Integration.update(changes).where((Integration.id == row_id) & (Integration.refresh_lease_token == lease)).execute()


def _deactivate(row: Integration, lease: uuid.UUID, error: str) -> None:
    with database_proxy.atomic():
        Integration.update(is_active=False, last_error=error, updated_at=utcnow(), refresh_lease_until=None,
                           refresh_lease_token=None).where(Integration.id == row.id).execute()
        events.record(events.ERROR, row, code="REFRESH_FAILED", message=error)


def check_refreshable(row: Integration, has_refresh_token: bool) -> None:
    spec = SPECS[row.provider]
    if spec.refresh is RefreshStyle.NONE or (
            spec.refresh in (RefreshStyle.STANDARD, RefreshStyle.ROTATING) and not has_refresh_token
            and row.expires_at is None):
        raise UsageProblem(f"{row.provider.value} tokens of this connection do not expire: nothing to refresh")
    if not row.is_active:
        raise RefreshFailed(f"integration {row.id} is inactive ({row.last_error or 'disconnected'}): connect it "
                            "again", id=str(row.id))


async def refresh(svc, integration_id, *, owner_id=None) -> Integration:
    """Refresh now; returns the row with its new expiry (or the one a concurrent refresher stored)."""
    row, tokens = await svc.run(connections.load, svc.keyring, integration_id, owner_id=owner_id)
    check_refreshable(row, bool(tokens.refresh_token))
    seen = row.access_token  # ciphertext: changes only when tokens are written
    for _ in range(MAX_ROUNDS):
        lease = uuid.uuid4()
        if await svc.run(_claim, row.id, lease):
            return await _refresh_holding(svc, row.id, lease, seen)
        state = await _wait_for_lease(svc, row.id)
        if state is None:
            break
        if state[1] != seen or not state[2]:  # someone refreshed (or the grant died) meanwhile
            fresh, _ = await svc.run(connections.load, svc.keyring, row.id)
            if not fresh.is_active:
                raise RefreshFailed(f"the refresh failed: {fresh.last_error}", id=str(row.id))
            return fresh
    raise ProviderError("another refresh of this integration kept failing; try again later", id=str(row.id))


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


async def _refresh_holding(svc, row_id: uuid.UUID, lease: uuid.UUID, seen: str | None) -> Integration:
    row, tokens = await svc.run(connections.load, svc.keyring, row_id)
    if seen is not None and row.access_token != seen:  # a refresh finished between our read and our claim
        await svc.run(_release, row_id, lease)
        return row
    adapter = svc.adapter(row.provider)
    tenant = tokens.metadata.get("tenant")
    started = time.monotonic()
    try:
        fresh = await adapter.refresh(tokens, tenant)
    except RefreshFailed as exc:
        if exc.details.get("dead"):
            await svc.run(_deactivate, row, lease, exc.message)
            log.warning("refresh of %s %s: grant is gone, integration deactivated", row.provider.value, row.id)
        else:
            await svc.run(_release, row_id, lease, exc.message)
        raise
    except NexusError as exc:
        await svc.run(_release, row_id, lease, exc.message)
        raise
    except BaseException:
        await asyncio.shield(svc.run(_release, row_id, lease))
        raise
    if not await svc.run(connections.store_refreshed, svc.keyring, row, fresh, lease):
        raise ProviderError("the refresh took longer than its lease; another refresher took over", id=str(row_id))
    log.info("refreshed %s integration %s in %.0f ms", row.provider.value, row_id, (time.monotonic() - started) * 1000)
    fresh_row, _ = await svc.run(connections.load, svc.keyring, row_id)
    return fresh_row


# --- the sweep: refresh before expiry ------------------------------------------

SWEEP_BACKOFF = dt.timedelta(minutes=5)


def expiring(window: dt.timedelta, limit: int) -> list[uuid.UUID]:
    """Active integrations whose token expires within ``window`` and that nobody is refreshing."""
    now = utcnow()
    query = (Integration.select(Integration.id)
             .where((Integration.is_active == True) & Integration.expires_at.is_null(False)  # noqa: E712
                    & (Integration.expires_at <= now + window)
                    & (Integration.refresh_lease_until.is_null() | (Integration.refresh_lease_until < now))
                    & Integration.provider.in_([p for p, spec in SPECS.items() if spec.can_refresh]))
             .order_by(Integration.expires_at).limit(limit))
    return [row_id for (row_id,) in query.tuples()]


def _claim_expiring(row_id: uuid.UUID, lease: uuid.UUID, deadline: dt.datetime) -> bool:
    # Claimed only while still expiring: another daemon that just refreshed it moved expires_at on.
    now = utcnow()
    return Integration.update(refresh_lease_until=now + LEASE, refresh_lease_token=lease).where(
        (Integration.id == row_id) & (Integration.is_active == True)  # noqa: E712
        & (Integration.expires_at <= deadline)
        & (Integration.refresh_lease_until.is_null() | (Integration.refresh_lease_until < now))).execute() == 1


def _back_off(row_id: uuid.UUID, until: dt.datetime) -> None:
    Integration.update(refresh_lease_until=until).where(
        (Integration.id == row_id) & Integration.refresh_lease_token.is_null()).execute()


async def sweep(svc, window: dt.timedelta, *, concurrency: int = 5, limit: int = 500) -> dict:
    """One pass: refresh what expires within ``window`` (each integration once, across daemons)."""
    counts = {"refreshed": 0, "failed": 0, "skipped": 0}
    gate = asyncio.Semaphore(concurrency)

    async def one(row_id):
        async with gate:
            lease = uuid.uuid4()
            if not await svc.run(_claim_expiring, row_id, lease, utcnow() + window):
                counts["skipped"] += 1
                return
            try:
                await _refresh_holding(svc, row_id, lease, None)
                counts["refreshed"] += 1
            except NexusError as exc:
                counts["failed"] += 1
                # Try again later, not every sweep: the provider may be down or throttling.
                await svc.run(_back_off, row_id, utcnow() + SWEEP_BACKOFF)
                log.warning("refresh sweep: integration %s failed (%s); next try in %d min", row_id, exc.code,
                            SWEEP_BACKOFF.total_seconds() // 60)

    await asyncio.gather(*(one(row_id) for row_id in await svc.run(expiring, window, limit)))
    return counts
