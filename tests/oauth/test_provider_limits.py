"""Provider limits through the real path (issue 18: YouTube never ran out of quota, Shopify never of query cost).

A browser-flow connect with the requested scopes, ``POST /integrations/:id/sync``, and the emulators counting
what the providers count:
- YouTube's daily project quota (units per call, reset at midnight Pacific): once spent, the run stops at the
  refused call (no retry storm), goes back to PENDING until the reset (``rateLimitedUntil``), and the
  integration keeps its health;
- Shopify's GraphQL query cost (a leaky bucket): a THROTTLED page is waited for as ``throttleStatus`` says,
  and the run completes.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
import zoneinfo

from support import clock
from support.callers import tenant_of

PACIFIC = zoneinfo.ZoneInfo("America/Los_Angeles")


def _connect(stack, provider: str):
    user = uuid.uuid4()
    result = stack.connect(provider, user, **tenant_of(stack, provider))
    assert result["status"] == "success", result
    return user, result["integrationId"]


def _start_sync(stack, integration, user, action: str) -> str:
    started = stack.api("POST", f"/integrations/{integration}/sync", user=user, body={"action": action})
    assert started.status == 202, started.text
    return started.json()["data"]["id"]


def _log_when(stack, integration, user, log_id, done, what: str, timeout: float = 30) -> dict:
    """The sync log once ``done(log)`` holds (polled as an API client does), within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        logs = stack.api("GET", f"/integrations/{integration}/sync-logs", user=user).json()["data"]
        (log,) = [row for row in logs if row["id"] == log_id]
        if done(log):
            return log
        assert time.monotonic() < deadline, (what, log)
        time.sleep(0.1)


def _finished(log) -> bool:
    return log["status"] not in ("PENDING", "IN_PROGRESS")


def _health(stack, integration, user) -> dict:
    answer = stack.api("GET", f"/integrations/{integration}/health", user=user)
    assert answer.status == 200, answer.text
    return answer.json()["data"]


def _products(n):
    return [
        {
            "id": f"gid://shopify/Product/{i}",
            "title": f"Shirt {i}",
            "handle": f"shirt-{i}",
            "status": "ACTIVE",
            "createdAt": "2026-03-01T00:00:00Z",
            "updatedAt": "2026-03-02T00:00:00Z",
        }
        for i in range(n)
    ]


def _uploads(n):
    return [
        {
            "kind": "youtube#playlistItem",
            "etag": f"e{i}",
            "id": f"UExpi{i:05d}",
            "snippet": {
                "publishedAt": f"2026-11-{1 + i % 28:02d}T12:00:00Z",
                "channelId": "UCdemo0000000000000000ch",
                "title": f"upload {i}",
                "description": f"about {i}",
                "playlistId": "UUdemo0000000000000000ch",
                "position": i,
                "resourceId": {"kind": "youtube#video", "videoId": f"vid{i:08d}"},
            },
        }
        for i in range(n)
    ]


def _next_pacific_midnight(now: dt.datetime) -> dt.datetime:
    local = now.astimezone(PACIFIC)
    return dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), PACIFIC).astimezone(dt.timezone.utc)


def test_shopify_throttled_by_query_cost_waits_per_throttle_status_and_completes(stack, fresh_emulators):
    """The shop's cost bucket holds one 250-product page (252 points) and refills at 100 points/s: every later
    page is THROTTLED until the bucket holds its cost again. The run waits what throttleStatus says and
    completes; the waits are in its log, and the integration stays healthy."""
    emu = stack.emulators["SHOPIFY"]
    emu.set_records("products", _products(600))
    user, integration = _connect(stack, "SHOPIFY")
    emu.set_query_bucket(260, 100)
    log = _log_when(
        stack, integration, user, _start_sync(stack, integration, user, "fetch_products"), _finished, "the run ends"
    )
    assert (log["status"], log["itemsProcessed"]) == ("COMPLETED", 600), log
    throttled = emu.calls["throttled"]
    # 3 pages served, every refusal retried after one wait (how many refusals and how long each wait was depend
    # on how fast the machine is, so they are not asserted beyond that).
    assert throttled >= 1 and emu.calls["products"] == 3 + throttled
    assert log["metadata"]["rateLimitWaits"] == throttled, log["metadata"]
    assert log["metadata"]["rateLimitWaitedSeconds"] >= throttled  # at least 1 s each, as throttleStatus said
    assert _health(stack, integration, user)["status"] == "healthy"


def test_youtube_quota_spent_the_run_waits_for_the_reset_without_a_failure_storm(stack, fresh_emulators):
    emu = stack.emulators["YOUTUBE"]
    emu.set_records("uploads", _uploads(120))  # three pages of 50
    user, integration = _connect(stack, "YOUTUBE")
    emu.set_daily_quota(emu.quota_per_day - emu.quota_left() + 3)  # the channel lookup and two pages
    before = clock.now(stack.emulators)  # the shared clock, which earlier tests may have moved on
    log_id = _start_sync(stack, integration, user, "fetch_posts")
    log = _log_when(
        stack,
        integration,
        user,
        log_id,
        lambda row: "rateLimitedUntil" in row["metadata"],
        "the run waits for the quota",
    )
    assert log["status"] == "PENDING", log
    assert log["itemsProcessed"] == 100  # the two pages read before the quota ran out are kept
    meta = log["metadata"]
    assert meta["errorCode"] == "RATE_LIMITED" and "quota" in meta["rateLimitReason"], meta
    assert meta["rateLimitedUntil"] == _next_pacific_midnight(before).strftime("%Y-%m-%dT%H:%M:%SZ"), meta
    assert log["runAfter"].startswith(meta["rateLimitedUntil"][:16]), log
    assert emu.calls["playlistItems"] == 3 and emu.quota_left() == 0  # one refused call, not a retry storm
    health = _health(stack, integration, user)
    assert health["status"] == "healthy", health
    assert emu.calls["playlistItems"] == 3

    # Midnight Pacific comes (the clock the daemon and the emulators share): the daemon's runner takes the run
    # again, it resumes from its cursor (the third page only) and completes.
    until = dt.datetime.fromisoformat(meta["rateLimitedUntil"].replace("Z", "+00:00"))
    stack.emulators.advance_clock((until - dt.datetime.fromtimestamp(emu.now(), dt.timezone.utc)).total_seconds() + 1)
    assert emu.quota_left() == emu.quota_per_day  # a new day at YouTube
    log = _log_when(stack, integration, user, log_id, _finished, "the run resumes after the reset", timeout=60)
    assert log["status"] == "COMPLETED", log
    assert log["metadata"]["resumedFrom"], log["metadata"]  # from the cursor, not from the start
    assert emu.calls["playlistItems"] == 4  # the refused page, asked once more
    health = _health(stack, integration, user)
    assert health["status"] == "healthy", health


def test_a_daemon_on_the_test_clock_says_so(stack, fresh_emulators):
    """The shared clock is a test facility: the start-up log names it, and /ready shows it while time is moved."""
    assert "NEXUSCTL_CLOCK_FILE" in stack.logs() and "never for production" in stack.logs()
    checks = stack.api("GET", "/ready").json()["data"]["checks"]
    if fresh_emulators.offset:  # earlier tests moved time on (it never goes back)
        assert checks["clock"].startswith(f"clock offset by {fresh_emulators.offset:+.0f} s"), checks
    else:
        assert "clock" not in checks, checks
    fresh_emulators.advance_clock(3600)
    checks = stack.api("GET", "/ready").json()["data"]["checks"]
    assert checks["clock"].startswith(f"clock offset by {fresh_emulators.offset:+.0f} s"), checks
