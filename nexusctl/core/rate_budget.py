"""One rate-limit budget per integration, shared by the API proxy and the syncs.

When a provider says "wait" to any call made for an integration (a 429 with
``Retry-After``, or its own signal: Salesforce's REQUEST_LIMIT_EXCEEDED,
Shopify's THROTTLED cost bucket, YouTube's quotaExceeded, Graph's codes,
``X-RateLimit-Remaining: 0`` with a reset ...), ``note`` records until when.
Before calling that provider again for the same integration, the proxy and
the sync engine (syncs and publishers alike, through SyncApi) ask ``wait_for``:
while the wait lasts, a proxied call answers 429 with ``Retry-After`` without
calling the provider, and a run waits it out within its budget or, beyond it,
goes back to PENDING until the wait ends (nexusctl.core.sync_runs).

Where it lives, so that every process calling for the integration sees it:

- with REDIS_URL, in Redis (one key per integration, ``nexus:ratelimit:<id>``,
  holding the end of the wait as epoch seconds of the product clock, expiring
  with it), so several daemons and the CLI share it;
- otherwise in the database (``rate_waits``, one row per integration holding
  the end of the wait on the product clock; migration 0016), so a CLI
  ``nexusctl sync run`` and the daemon on the embedded SQLite default (or on
  PostgreSQL without Redis) see each other's waits. A row is written only
  when a provider says wait; ended rows go with the next write, and the
  hourly housekeeping removes those no write came after (in batches).

A later, longer wait extends it; a shorter one never shortens it. A wait is
seen at once by the process that was told it (kept in this process too: no
read while it lasts); another process reads Redis or the table at most once
per RECHECK (1 s) per integration while there is no wait, so it sees a new
one within that second (the proxy's token cache has the same bound,
nexusctl.core.proxy_cache), and one read per call is not the proxy's cost.
Redis or the database being away never fails a call: the budget is advice,
the provider stays the judge.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time

import peewee

from nexusctl import clock
from nexusctl.core import singleflight
from nexusctl.db.fields import utcnow
from nexusctl.db.models import RateWait
from nexusctl.errors import NexusError

log = logging.getLogger(__name__)

PREFIX = "nexus:ratelimit:"
RECHECK = 1.0  # seconds a "no wait" read from Redis or the table is trusted: how late this process sees another's wait
MAX_WAIT = 24 * 3600  # a wait longer than a day is not kept (a daily quota resets within one)
_LOCAL_MAX = 50_000  # in-process entries kept at most (expired ones are dropped first)

# Keep the later end: SET only when there is none or it is earlier; the key expires when the wait ends.
_EXTEND = """
local current = redis.call('GET', KEYS[1])
if (not current) or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""

_local: dict[str, float] = {}
_checked: dict[str, tuple[float]] = {}  # id -> (monotonic time until which the shared "no wait" is trusted,)
_lock = threading.Lock()
# Shared reads in flight, by (services, id): when the "no wait" of RECHECK ended under load, every concurrent
# caller in that instant read Redis or the table itself (the proxy's database threads did a fiftieth of its
# work re-reading one row, py-spy); now they share one read.
_reading = singleflight.Flights()


def _now() -> float:
    return clock.time()


def _remaining(until: float | None) -> int | None:
    if until is None:
        return None
    left = until - _now()
    return math.ceil(left) if left > 0 else None


async def wait_for(svc, integration_id) -> int | None:
    """Seconds still to wait before calling this integration's provider (None: go ahead)."""
    key = str(integration_id)
    with _lock:
        local = _local.get(key)
        checked = _checked.get(key)
    left = _remaining(local)
    if left is not None:
        return left
    now = time.monotonic()
    if checked is not None and checked[0] > now:  # the shared budget said "go ahead" less than RECHECK s ago
        return None
    until = await _shared_until(svc, key)
    left = _remaining(until)
    with _lock:
        if left is None:
            _checked[key] = (now + RECHECK,)
            if len(_checked) > _LOCAL_MAX:
                _checked.clear()
        else:  # another process's wait, kept here too: no shared read until it ends
            _local[key] = max(_local.get(key, 0.0), until)
    return left


async def _shared_until(svc, key: str) -> float | None:
    """One read of the shared budget for all of this integration's callers that need it now."""
    return await _reading.share(
        (id(svc), key), lambda: _redis_until(svc, key) if svc.redis is not None else _table_until(svc, key)
    )


async def _redis_until(svc, key: str) -> float | None:
    from redis.exceptions import RedisError  # start-up: the CLI's sync runs load this module; redis only with Redis

    try:
        value = await svc.redis.get(PREFIX + key)
    except RedisError as exc:
        log.warning("rate budget: Redis unreachable (%s); calling the provider", type(exc).__name__)
        return None
    return float(value) if value else None


async def _table_until(svc, key: str) -> float | None:
    try:
        return await svc.run(_read_row, key)
    except (peewee.PeeweeException, NexusError) as exc:
        log.warning("rate budget: the database is unavailable (%s); calling the provider", type(exc).__name__)
        return None


def _read_row(key: str) -> float | None:
    row = RateWait.select(RateWait.until).where(RateWait.integration_id == key).tuples().first()
    return None if row is None else row[0].timestamp()


def _write_row(key: str, until: float) -> None:
    """Keep the later end (a conditional upsert, so two processes noting at once keep the longer wait); ended
    waits of any integration go (by the index on ``until``): the table holds live waits only."""
    now = utcnow()
    end = dt.datetime.fromtimestamp(until, dt.timezone.utc)
    RateWait.delete().where(RateWait.until <= now).execute()
    RateWait.insert(integration_id=key, until=end, updated_at=now).on_conflict(
        conflict_target=[RateWait.integration_id],
        update={RateWait.until: peewee.EXCLUDED.until, RateWait.updated_at: peewee.EXCLUDED.updated_at},
        where=(RateWait.until < peewee.EXCLUDED.until),
    ).execute()


async def note(svc, integration_id, seconds: float | None, *, reason: str = "") -> None:
    """The provider asked this integration's callers to wait ``seconds`` (from now)."""
    if seconds is None or seconds <= 0:
        return
    seconds = min(float(seconds), MAX_WAIT)
    until = _now() + seconds
    key = str(integration_id)
    with _lock:
        if _local.get(key, 0.0) < until:
            _local[key] = until
        if len(_local) > _LOCAL_MAX:
            now = _now()
            for stale in [k for k, v in _local.items() if v <= now]:
                del _local[stale]
            if len(_local) > _LOCAL_MAX:  # still over with every wait live: the soonest to end go first
                for soonest in sorted(_local, key=_local.__getitem__)[: len(_local) - _LOCAL_MAX]:
                    del _local[soonest]
    log.info("rate budget: integration %s waits %.0f s%s", key, seconds, f" ({reason})" if reason else "")
    if svc.redis is None:
        try:
            await svc.run(_write_row, key, until)
        except (peewee.PeeweeException, NexusError) as exc:
            log.warning(
                "rate budget: the database is unavailable (%s); the wait is kept in this process only",
                type(exc).__name__,
            )
        return
    from redis.exceptions import RedisError  # start-up: as in _redis_until()

    try:
        await svc.redis.eval(_EXTEND, 1, PREFIX + key, repr(until), max(1, math.ceil(seconds)))
    except RedisError as exc:
        log.warning("rate budget: Redis unreachable (%s); the wait is kept in this process only", type(exc).__name__)


class Gate:
    """The budget of one integration as a sync run sees it (set on its SyncApi as ``api.budget``). ``caller``
    says in the log who was told a wait: ``sync``, ``publish`` or ``reply`` (a comment reply)."""

    def __init__(self, svc, integration_id, caller: str = "sync") -> None:
        self.svc, self.integration_id, self.caller = svc, integration_id, caller

    async def wait_for(self) -> int | None:
        return await wait_for(self.svc, self.integration_id)

    async def note(self, seconds: float | None, detail: str = "") -> None:
        """``detail``, if any, follows the caller in the logged reason (``sync: none remaining``)."""
        reason = f"{self.caller}: {detail}" if detail else self.caller
        await note(self.svc, self.integration_id, seconds, reason=reason)
