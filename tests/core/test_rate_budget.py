"""The per-integration rate budget (nexusctl.core.rate_budget): kept in the process, and shared through the
database (no Redis: SQLite and PostgreSQL) or through Redis."""

from __future__ import annotations

import asyncio
import types
import uuid

from nexusctl.core import rate_budget
from nexusctl.core.runtime import direct
from nexusctl.db.models import RateWait
from nexusctl.providers.http import exhausted_wait


def _forget_process_state() -> None:
    """What another process knows: nothing of this one's waits."""
    rate_budget._local.clear()
    rate_budget._checked.clear()


def test_a_wait_is_kept_extended_never_shortened_and_per_integration(database):
    svc = types.SimpleNamespace(redis=None, run=direct)
    one, two = uuid.uuid4(), uuid.uuid4()

    async def go():
        assert await rate_budget.wait_for(svc, one) is None
        await rate_budget.note(svc, one, 30)
        assert 29 <= await rate_budget.wait_for(svc, one) <= 30
        await rate_budget.note(svc, one, 5)  # a shorter wait told later does not shorten it
        assert await rate_budget.wait_for(svc, one) >= 29
        await rate_budget.note(svc, one, 120)
        assert await rate_budget.wait_for(svc, one) > 100
        assert await rate_budget.wait_for(svc, two) is None

    asyncio.run(go())


def test_through_redis_another_process_sees_the_wait(redis_url):
    from nexusctl.redisconn import open_client

    one = uuid.uuid4()

    async def go():
        client = open_client(redis_url)
        try:
            svc = types.SimpleNamespace(redis=client)
            assert await rate_budget.wait_for(svc, one) is None  # read from Redis: none
            _forget_process_state()
            await rate_budget.note(svc, one, 60)
            _forget_process_state()  # as seen from another daemon
            assert 59 <= await rate_budget.wait_for(svc, one) <= 60
            await rate_budget.note(svc, one, 10)  # shorter: Redis keeps the later end
            _forget_process_state()
            assert await rate_budget.wait_for(svc, one) >= 59
            ttl = await client.ttl(rate_budget.PREFIX + str(one))
            assert 0 < ttl <= 60  # the key goes away with the wait
        finally:
            await client.aclose()

    asyncio.run(go())


def test_an_answer_with_no_call_left_asks_to_wait_until_the_reset():
    assert exhausted_wait({"X-RateLimit-Remaining": "0", "Retry-After": "12"}) == 12
    assert exhausted_wait({"x-ratelimit-remaining": "0", "X-RateLimit-Reset-After": "1.5"}) == 2  # Discord's
    assert exhausted_wait({"X-RateLimit-Remaining": "3", "Retry-After": "12"}) is None
    assert exhausted_wait({"X-RateLimit-Remaining": "0"}) is None  # no reset given: nothing to keep
    assert exhausted_wait({}) is None


def test_the_process_keeps_a_bounded_number_of_waits_the_longest_first(monkeypatch, database):
    """Throttled integrations beyond the bound: memory stays bounded, and the waits dropped are the soonest to
    end (a call made after one is dropped meets the provider's own refusal, and the wait is noted again)."""
    monkeypatch.setattr(rate_budget, "_LOCAL_MAX", 10)
    _forget_process_state()
    svc = types.SimpleNamespace(redis=None, run=direct)
    ids = [uuid.uuid4() for _ in range(25)]

    async def go():
        for seconds, integration in enumerate(ids, start=100):  # all live; later ones wait longer
            await rate_budget.note(svc, integration, seconds)
        assert len(rate_budget._local) <= 10
        assert await rate_budget.wait_for(svc, ids[-1]) > 100  # the longest waits are kept
        assert 100 <= await rate_budget.wait_for(svc, ids[0]) <= 100  # dropped here, read again from the table

    try:
        asyncio.run(go())
    finally:
        _forget_process_state()


def test_without_redis_another_process_sees_the_wait_through_the_database(database):
    """What the CLI's sync run and the daemon share on SQLite, or on PostgreSQL without REDIS_URL: one row per
    integration holding the later end, read once a second at most while there is no wait."""
    svc = types.SimpleNamespace(redis=None, run=direct)
    one, two = uuid.uuid4(), uuid.uuid4()

    async def go():
        _forget_process_state()
        assert await rate_budget.wait_for(svc, one) is None  # read from the table: none, trusted for RECHECK
        await rate_budget.note(svc, two, 60)
        _forget_process_state()  # as seen from another process
        assert 59 <= await rate_budget.wait_for(svc, two) <= 60
        await rate_budget.note(svc, two, 10)  # shorter: the table keeps the later end
        _forget_process_state()
        assert await rate_budget.wait_for(svc, two) >= 59
        assert RateWait.select().count() == 1  # written only when a provider said wait

    asyncio.run(go())


def test_a_no_wait_answer_is_trusted_for_a_second_and_a_database_error_never_fails_a_call(database, monkeypatch):
    reads = []
    one = uuid.uuid4()

    async def counting(fn, *args):
        reads.append(fn.__name__)
        return fn(*args)

    svc = types.SimpleNamespace(redis=None, run=counting)

    async def go():
        _forget_process_state()
        for _ in range(50):
            assert await rate_budget.wait_for(svc, one) is None
        assert reads == ["_read_row"]  # one read for fifty calls

        async def broken(fn, *args):
            raise rate_budget.peewee.OperationalError("database is locked")

        svc.run = broken
        _forget_process_state()
        assert await rate_budget.wait_for(svc, one) is None  # advice only: the call goes ahead
        await rate_budget.note(svc, one, 30)  # kept in this process at least
        assert await rate_budget.wait_for(svc, one) >= 29

    asyncio.run(go())


def test_callers_at_once_share_one_read_of_the_shared_budget(database):
    """Twenty proxied calls for one integration when the process's "no wait" has ended: one read of the table
    between them (each used to read it), and every one of them sees the wait another process was told."""
    reads = []

    async def counted(fn, *args):
        reads.append(fn.__name__)
        await asyncio.sleep(0)  # as a database thread's round trip: the other callers run meanwhile
        return await direct(fn, *args)

    svc = types.SimpleNamespace(redis=None, run=counted)
    one = uuid.uuid4()

    async def go():
        await rate_budget.note(svc, one, 60)
        _forget_process_state()  # as seen from another daemon
        reads.clear()
        waits = await asyncio.gather(*(rate_budget.wait_for(svc, one) for _ in range(20)))
        assert all(59 <= w <= 60 for w in waits)
        assert reads == ["_read_row"]

    asyncio.run(go())
    assert len(rate_budget._reading) == 0  # nothing left behind once the read is done
