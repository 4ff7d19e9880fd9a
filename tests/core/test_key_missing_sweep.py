"""The refresh sweep in a process left on the old key by a rotation: the integration is skipped, not failed.

Its tokens are under a key the process lacks; that is neither the grant's fault nor the provider's, so no
lastError, no failure counted, no back-off, no lease left behind: a daemon with the key refreshes it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os

import aiohttp

from nexusctl.core import refresh
from nexusctl.core.runtime import Runtime, direct
from nexusctl.crypto import Keyring, key_id
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration
from nexusctl.db.secrets import seal
from nexusctl.enums import Provider


def _expiring_under_a_key_it_lacks(make_integration, key: bytes) -> list:
    """Two Slack integrations expiring in two minutes, their tokens sealed under ``key`` (not this process's)."""
    rows = [make_integration(provider=Provider.SLACK, expires_at=utcnow() + dt.timedelta(minutes=2)) for _ in range(2)]
    rotated = Keyring(key, [bytes(range(32))])
    for row in rows:
        seal(rotated, row, "access_token", "at")
        seal(rotated, row, "refresh_token", "rt")
        row.save()
    return rows


def test_a_sweep_without_the_new_key_skips_the_integration_and_says_so_once(
    settings, keyring, make_integration, caplog
):
    new = os.urandom(32)  # a key id no earlier test of this process has been warned about
    rows = _expiring_under_a_key_it_lacks(make_integration, new)

    async def sweep():
        async with aiohttp.ClientSession(trust_env=False) as session:
            return await refresh.sweep(Runtime(settings, keyring, session, direct, None), dt.timedelta(minutes=10))

    with caplog.at_level(logging.WARNING):
        first, second = asyncio.run(sweep()), asyncio.run(sweep())
    for counts in (first, second):
        assert (counts["skipped"], counts["failed"], counts["refreshed"]) == (2, 0, 0)
    for row in rows:
        after = Integration.get_by_id(row.id)
        assert (
            after.is_active,
            after.last_error,
            after.refresh_failures,
            after.refresh_retry_at,
            after.refresh_lease_until,
        ) == (True, None, 0, None, None)
    warnings = [r.getMessage() for r in caplog.records if key_id(new) in r.getMessage()]
    assert len(warnings) == 1 and "ENCRYPTION_OLD_KEYS" in warnings[0]  # one, for four meetings
    assert not any(r.exc_info for r in caplog.records)


def test_a_full_batch_of_rows_it_cannot_refresh_ends_the_pass_instead_of_being_read_again_and_again(
    settings, keyring, make_integration
):
    """A pass reads its next batch once every row is claimed (``refill_until``). A batch of rows the pass has met
    already (here under a key this process lacks: given back, still due) must end it, not be read again at once,
    forever (the CLI's drain has no deadline)."""
    _expiring_under_a_key_it_lacks(make_integration, os.urandom(32))

    async def sweep():
        async with aiohttp.ClientSession(trust_env=False) as session:
            svc = Runtime(settings, keyring, session, direct, None)
            return await asyncio.wait_for(
                refresh.sweep(svc, dt.timedelta(minutes=10), limit=2, refill_until=float("inf")), 20
            )

    counts = asyncio.run(sweep())
    assert (counts["skipped"], counts["failed"], counts["refreshed"]) == (2, 0, 0)


def test_a_drain_of_rows_it_can_only_skip_ends(settings, keyring, make_integration):
    """The CLI's drain has no deadline: a full batch of rows under a key this process lacks (skipped, still due)
    ends it, instead of a next pass reading the same rows again, forever."""
    _expiring_under_a_key_it_lacks(make_integration, os.urandom(32))

    async def drain():
        async with aiohttp.ClientSession(trust_env=False) as session:
            svc = Runtime(settings._replace(refresh_sweep_batch=2), keyring, session, direct, None)
            return await asyncio.wait_for(refresh.drain(svc, dt.timedelta(minutes=10)), 20)

    counts = asyncio.run(drain())
    assert (counts["skipped"], counts["failed"], counts["refreshed"]) == (2, 0, 0)
