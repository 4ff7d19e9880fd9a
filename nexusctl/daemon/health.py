"""GET /health (the process answers) and GET /ready (it can do its work)."""

from __future__ import annotations

import asyncio
import time
import weakref

from aiohttp import web

from nexusctl import clock
from nexusctl.config import redact_url
from nexusctl.core import key_usage, readiness
from nexusctl.daemon.answers import error_body, json_response
from nexusctl.daemon.keys import DB, REDIS, SERVICES, SETTINGS

REDIS_TIMEOUT = 2.0
# The key ids in use are read at most this often, one bounded step of a KeySweep (at most SWEEP_ROWS rows of
# each table with secrets, by primary key): a daemon left on the old key by a rotation turns not-ready within
# this long times the steps of a pass (one step while a table has at most SWEEP_ROWS rows).
KEYS_CHECK_SECONDS = 10.0
# keyring -> (its sweep, when it last stepped, missing key ids)
_keys_checked: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def health(request: web.Request) -> web.Response:
    return json_response({"success": True, "data": {"status": "ok"}})


async def _missing_keys(request: web.Request, executor) -> frozenset:
    """Key ids of stored secrets that this daemon's keyring lacks (a rotation it was not restarted for), cached."""
    services = request.app.get(SERVICES)
    if services is None:  # still starting: nothing decrypts yet
        return frozenset()
    now, keyring = time.monotonic(), services.keyring
    sweep, when, missing = _keys_checked.get(keyring) or (key_usage.KeySweep(), None, frozenset())
    if when is None or now - when >= KEYS_CHECK_SECONDS:
        missing = frozenset(await executor.run(sweep.missing, keyring))
        _keys_checked[keyring] = (sweep, now, missing)
    return missing


async def ready(request: web.Request) -> web.Response:
    """The core's readiness checks (nexusctl.core.readiness), through this daemon's threads, Redis and keys."""
    executor = request.app[DB]
    settings = request.app[SETTINGS]
    label = settings.redacted_database_url()

    async def database() -> list[readiness.Check]:
        async def read():
            try:
                return await executor.run(readiness.read_status, executor.db, label)
            except Exception:  # noqa: BLE001 - perhaps this thread's connection died (a server restart): the
                # executor has dropped it, and one fresh try tells whether the database is really away
                return await executor.run(readiness.read_status, executor.db, label)

        try:
            return readiness.check_database(label, await read())
        except Exception as exc:  # noqa: BLE001 - any failure to reach the database: the core words it
            return readiness.check_database(label, [], exc)

    async def encryption(usable: bool) -> readiness.Check:
        if not usable:
            return readiness.not_checked("encryption", "the database")
        services = request.app.get(SERVICES)
        have = services.keyring.key_ids if services is not None else frozenset()
        try:
            missing = await _missing_keys(request, executor)
        except Exception as exc:  # noqa: BLE001 - the database went away in between: not ready either way
            gone = readiness.check_database(label, [], exc)[0]
            return readiness.Check("encryption", readiness.FAIL, gone.message, gone.hint, state="unknown")
        return readiness.check_keys(missing, have, "the keys of every stored secret are configured")

    async def redis() -> readiness.Check:
        client = request.app[REDIS]
        if client is None:
            return readiness.check_redis(None)
        label = redact_url(settings.redis_url.get())
        try:
            await asyncio.wait_for(client.ping(), REDIS_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready: the core words it
            return readiness.check_redis(label, exc)
        return readiness.check_redis(label)

    checks = await readiness.compose(database, encryption, redis)
    states = {c.name: c.state for c in checks if c.state is not None}
    if (moved := clock.describe()) is not None:  # the test facility's offset clock is never silent
        states["clock"] = moved
    failures = [f"{c.name}: {c.reason or c.message}" for c in checks if c.failed]
    if failures:
        body = error_body("NOT_READY", "; ".join(failures), data={"status": "not ready", "checks": states})
        return json_response(body, status=503)
    return json_response({"success": True, "data": {"status": "ready", "checks": states}})
