"""The proxy reads an integration once for all the callers that miss its cache entry at the same moment."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from nexusctl.core import proxy, proxy_cache
from nexusctl.errors import IntegrationNotFound


class CountingServices:
    """What core.proxy needs of the daemon's services: ``run`` on a thread (as the database threads do), counted."""

    def __init__(self, keyring, gate: asyncio.Event | None = None) -> None:
        self.keyring, self.gate, self.reads = keyring, gate, 0

    async def run(self, fn, *args):
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()  # every caller has missed the cache before the first read ends
        return await asyncio.to_thread(fn, *args)


@pytest.fixture(autouse=True)
def empty_cache():
    proxy_cache.clear()
    yield
    proxy_cache.clear()


async def test_sixteen_callers_missing_the_cache_share_one_read(make_integration, keyring):
    row = make_integration()
    svc = CountingServices(keyring, asyncio.Event())
    callers = [asyncio.create_task(proxy._load(svc, str(row.id), row.user_id)) for _ in range(16)]
    await asyncio.sleep(0)
    svc.gate.set()
    loaded = await asyncio.gather(*callers)
    assert svc.reads == 1
    assert {r.id for r, _tokens in loaded} == {row.id} and loaded[0][1].access_token
    await proxy._load(svc, str(row.id), row.user_id)  # now from the cache
    assert svc.reads == 1


async def test_a_read_begun_before_this_process_changed_the_integration_is_not_joined(make_integration, keyring):
    row = make_integration()
    svc = CountingServices(keyring, asyncio.Event())
    before = asyncio.create_task(proxy._load(svc, str(row.id), None))
    await asyncio.sleep(0)
    proxy_cache.forget(row.id)  # e.g. a PATCH deactivating it, answered while the read was on its way
    after = asyncio.create_task(proxy._load(svc, str(row.id), None))
    await asyncio.sleep(0)
    svc.gate.set()
    await asyncio.gather(before, after)
    assert svc.reads == 2


async def test_a_failed_read_fails_every_caller_and_one_cancelled_caller_stops_no_other(make_integration, keyring):
    svc = CountingServices(keyring, asyncio.Event())
    missing = "00000000-0000-4000-8000-000000000000"
    callers = [asyncio.create_task(proxy._load(svc, missing, None)) for _ in range(4)]
    await asyncio.sleep(0)
    svc.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert svc.reads == 1 and all(isinstance(r, IntegrationNotFound) for r in results)

    row = make_integration()
    svc = CountingServices(keyring, asyncio.Event())
    first, second = (asyncio.create_task(proxy._load(svc, str(row.id), None)) for _ in range(2))
    await asyncio.sleep(0)
    first.cancel()
    svc.gate.set()
    (loaded, _tokens), cancelled = await second, await asyncio.gather(first, return_exceptions=True)
    assert loaded.id == row.id and isinstance(cancelled[0], asyncio.CancelledError) and svc.reads == 1


async def test_another_users_caller_sharing_the_read_is_still_refused(make_integration, keyring):
    row = make_integration()
    svc = CountingServices(keyring, asyncio.Event())
    owner = asyncio.create_task(proxy._load(svc, str(row.id), row.user_id))
    stranger = asyncio.create_task(proxy._load(svc, str(row.id), SimpleNamespace()))
    await asyncio.sleep(0)
    svc.gate.set()
    results = await asyncio.gather(owner, stranger, return_exceptions=True)
    assert results[0][0].id == row.id and isinstance(results[1], IntegrationNotFound) and svc.reads == 1
