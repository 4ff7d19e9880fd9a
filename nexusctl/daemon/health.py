"""GET /health (the process answers) and GET /ready (it can do its work)."""

from __future__ import annotations

import asyncio
import time
import weakref

from aiohttp import web

from nexusctl import clock
from nexusctl.core import key_usage
from nexusctl.daemon.answers import error_body, json_response
from nexusctl.daemon.keys import DB, REDIS, SERVICES, SETTINGS
from nexusctl.db import migrate
from nexusctl.db.database import check_connection, describe_error

REDIS_TIMEOUT = 2.0
# The key ids in use are read at most this often (one small query per secret column): a daemon left on the
# old key by a rotation turns not-ready within this long.
KEYS_CHECK_SECONDS = 10.0
_keys_checked: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # keyring -> (when, missing key ids)


async def health(request: web.Request) -> web.Response:
    return json_response({"success": True, "data": {"status": "ok"}})


async def _missing_keys(request: web.Request, executor) -> frozenset:
    """Key ids of stored secrets that this daemon's keyring lacks (a rotation it was not restarted for), cached."""
    services = request.app.get(SERVICES)
    if services is None:  # still starting: nothing decrypts yet
        return frozenset()
    now, keyring = time.monotonic(), services.keyring
    checked = _keys_checked.get(keyring)
    if checked is None or now - checked[0] >= KEYS_CHECK_SECONDS:
        checked = _keys_checked[keyring] = (now, frozenset(await executor.run(key_usage.missing_key_ids, keyring)))
    return checked[1]


async def ready(request: web.Request) -> web.Response:

    checks: dict[str, str] = {}
    failures: list[str] = []
    executor = request.app[DB]
    settings = request.app[SETTINGS]

    def database_checks():
        check_connection(executor.db, settings.redacted_database_url())
        return migrate.pending(executor.db)

    try:
        try:
            pending = await executor.run(database_checks)
        except Exception:  # noqa: BLE001 - perhaps this thread's connection died (a server restart): the
            # executor has dropped it, and one fresh try tells whether the database is really away
            pending = await executor.run(database_checks)
        checks["database"] = "ok"
        if pending:
            checks["migrations"] = f"{len(pending)} pending"
            failures.append(f"migrations: {len(pending)} pending, run `nexusctl db migrate`")
        else:
            checks["migrations"] = "ok"
            missing = await _missing_keys(request, executor)
            if missing:
                checks["encryption"] = f"missing key(s) {', '.join(sorted(missing))}"
                failures.append(
                    f"encryption: stored secrets are under key(s) {', '.join(sorted(missing))} that this "
                    "daemon does not have; restart it with the new ENCRYPTION_KEY and the previous key "
                    "in ENCRYPTION_OLD_KEYS"
                )
            else:
                checks["encryption"] = "ok"
    except Exception as exc:  # any failure to reach the database means not ready
        message = getattr(exc, "message", None) or (
            f"cannot reach the database {settings.redacted_database_url()}: {describe_error(exc)}"
        )
        checks["database"] = "failing"
        checks["migrations"] = "unknown"
        failures.append(f"database: {message}")

    client = request.app[REDIS]
    if client is None:
        checks["redis"] = "not configured"
    else:
        try:
            await asyncio.wait_for(client.ping(), REDIS_TIMEOUT)
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = "failing"
            failures.append(f"redis: unreachable ({type(exc).__name__})")

    if (moved := clock.describe()) is not None:  # the test facility's offset clock is never silent
        checks["clock"] = moved

    if failures:
        body = error_body("NOT_READY", "; ".join(failures), data={"status": "not ready", "checks": checks})
        return json_response(body, status=503)
    return json_response({"success": True, "data": {"status": "ready", "checks": checks}})
