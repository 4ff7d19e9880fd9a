"""fetch_analytics through the real path, on SQLite and PostgreSQL: the browser-flow connect with the scopes the
service requests, ``POST /integrations/:id/sync {"action": "fetch_analytics"}``, the log COMPLETED with its
summary, and one ``analytics.fetched`` delivery at a webhook receiver carrying the metrics the emulator serves.

Also: a grant without the analytics scope fails with MISSING_SCOPES before any call; a scope the user removes at
the provider later is refused by the provider (as the emulators refuse it) and the log names it; a provider's
throttle is waited out within the run's budget, and beyond it the run fails RATE_LIMITED.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import pytest
from emulators.seed import seed
from emulators.testkit import CallbackSink
from support import clock
from support.waiting import wait_for
from test_sync_scopes import _connect, _sync

G = "https://www.googleapis.com/auth/"
POST_ANALYTICS = "r_member_postAnalytics"


def _approval(stack) -> None:
    """The operator's LinkedIn app is approved for post analytics, at LinkedIn and in the daemon's settings."""
    stack.emulators["LINKEDIN"].approve_scopes(POST_ANALYTICS)
    if stack.env.get("LINKEDIN_APPROVED_SCOPES") != POST_ANALYTICS:
        stack.restart(LINKEDIN_APPROVED_SCOPES=POST_ANALYTICS)


def _received(sink, integration: str, event: str, count: int = 1, timeout: float = 30) -> list[dict]:
    """The deliveries of ``event`` for ``integration`` the receiver got, once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        bodies = [json.loads(body) for _headers, body in list(sink.received)]
        found = [b for b in bodies if b["type"] == event and b["data"]["integrationId"] == integration]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"no {event} delivery in {timeout} s: {bodies}"
        time.sleep(0.1)  # polling the receiver for a condition, with a deadline


def _expected(emu, provider: str) -> tuple[dict, list[dict]]:
    """(some account metrics, each post's id and some metrics) as the seeded emulator serves them."""
    if provider == "TIKTOK":
        return (
            {"followers": emu.stats["follower_count"], "likes": emu.stats["likes_count"]},
            [
                {"id": v["id"], "views": v["view_count"], "likes": v["like_count"], "shares": v["share_count"]}
                for v in emu.records_of("videos")
            ],
        )
    if provider == "INSTAGRAM":
        return (
            {
                "followers": emu.account["followers_count"],
                "reach": emu.account_insights["reach"],
                "views": emu.account_insights["views"],
            },
            [
                {
                    "id": m["id"],
                    "likes": m["like_count"],
                    "views": m["insights"]["views"],
                    "reach": m["insights"]["reach"],
                }
                for m in emu.records_of("media")
            ],
        )
    if provider == "FACEBOOK":
        page = emu.records_of("pages")[0]
        return (
            {
                "followers": page["followers_count"],  # daily values summed over the 28-day window
                "page_media_view": 28 * page["insights"]["page_media_view"],
            },
            [
                {
                    "id": p["id"],
                    "views": p["insights"]["post_media_view"],
                    "reactions": sum(p["insights"]["post_reactions_by_type_total"].values()),
                }
                for p in emu.records_of("posts")
            ],
        )
    if provider == "YOUTUBE":
        stats = {v["id"]: v["statistics"] for v in emu.records_of("videos")}
        return (
            {
                "subscribers": int(emu.channel_statistics["subscriberCount"]),
                "views": int(emu.channel_statistics["viewCount"]),
            },
            [
                {
                    "id": u["snippet"]["resourceId"]["videoId"],
                    "views": int(stats[u["snippet"]["resourceId"]["videoId"]]["viewCount"]),
                }
                for u in emu.records_of("uploads")
            ],
        )
    if provider == "TWITTER":
        return (
            {"followers": emu.public_metrics["followers_count"]},
            [
                {
                    "id": t["id"],
                    "impressions": t["public_metrics"]["impression_count"],
                    "likes": t["public_metrics"]["like_count"],
                }
                for t in emu.records_of("tweets")
            ],
        )
    return {"impressions": emu.post_analytics["IMPRESSION"], "reactions": emu.post_analytics["REACTION"]}, []


PROVIDERS = ("TIKTOK", "INSTAGRAM", "FACEBOOK", "YOUTUBE", "TWITTER", "LINKEDIN")


def test_each_provider_reports_its_metrics_in_the_log_and_an_analytics_event(stack, fresh_emulators):
    seed(stack.emulators)
    _approval(stack)
    with CallbackSink(200) as sink:
        for provider in PROVIDERS:
            emu = stack.emulators[provider]
            user, integration = _connect(stack, provider)
            hook = stack.api(
                "POST",
                "/integrations/webhooks",
                user=user,
                body={"integrationId": integration, "url": sink.url, "events": ["analytics.fetched", "media.*"]},
            )
            assert hook.status == 201, hook.text
            account, posts = _expected(emu, provider)

            log = _sync(stack, integration, user, "fetch_analytics")
            assert (log["status"], log["itemsProcessed"], log["resourceType"]) == (
                "COMPLETED",
                len(posts),
                "analytics",
            ), (provider, log)
            summary = log["metadata"]["summary"]
            assert {k: summary["account"][k] for k in account} == account, (provider, summary)
            assert summary["posts"] == len(posts)

            (event,) = _received(sink, integration, "analytics.fetched")
            data = event["data"]
            assert (data["action"], data["syncLogId"], data["provider"]) == ("fetch_analytics", log["id"], provider)
            assert {k: data["account"][k] for k in account} == account, (provider, data["account"])
            got = [
                {"id": p["id"], **{k: p["metrics"][k] for k in want if k != "id"}}
                for p, want in zip(data["posts"], posts)
            ]
            assert got == posts and data["postCount"] == len(posts), (provider, data["posts"])
            if provider == "LINKEDIN":
                assert data["notes"] and "per-post" in data["notes"][0]

            # A second run reports again (one event per run); metrics are no reason for media.* events.
            runs_before = len(_received(sink, integration, "analytics.fetched"))
            assert _sync(stack, integration, user, "fetch_analytics")["status"] == "COMPLETED"
            assert len(_received(sink, integration, "analytics.fetched", runs_before + 1)) == runs_before + 1
            media = stack.sql(
                "SELECT COUNT(*) FROM outbox_events WHERE integration_id = %s AND type LIKE 'media.%%'", integration
            )[0][0]
            assert media == 0, provider


def test_windows_follow_each_providers_rules(stack, fresh_emulators):
    """YouTube Analytics' window ends two days ago (its data lag); Graph insights windows stay within the limits
    the emulators enforce as Graph does (a run over them would fail)."""
    seed(stack.emulators)
    user, integration = _connect(stack, "YOUTUBE")
    assert _sync(stack, integration, user, "fetch_analytics")["status"] == "COMPLETED"
    (asked,) = stack.emulators["YOUTUBE"].analytics_requests
    today = clock.now(stack.emulators).date()  # the shared clock's day, which earlier tests may have moved on
    end, start = dt.date.fromisoformat(asked["endDate"]), dt.date.fromisoformat(asked["startDate"])
    assert end in (today - dt.timedelta(days=2), today - dt.timedelta(days=1)) and (end - start).days == 27
    user, integration = _connect(stack, "INSTAGRAM")
    log = _sync(stack, integration, user, "fetch_analytics")
    assert log["status"] == "COMPLETED" and log["metadata"]["summary"]["window"]["period"] == "day", log


# provider -> the analytics scope a user may untick at the consent
UNTICKED = {
    "TIKTOK": "user.info.stats",
    "INSTAGRAM": "instagram_business_manage_insights",
    "FACEBOOK": "read_insights",
    "YOUTUBE": G + "yt-analytics.readonly",
    "LINKEDIN": POST_ANALYTICS,
}


def test_a_grant_without_the_analytics_scope_fails_with_missing_scopes(stack, fresh_emulators):
    seed(stack.emulators)
    _approval(stack)
    for provider, scope in UNTICKED.items():
        emu = stack.emulators[provider]
        user, integration = _connect(stack, provider, without=(scope,))
        before = sum(emu.calls.values())
        log = _sync(stack, integration, user, "fetch_analytics")
        assert log["status"] == "FAILED" and log["error"].startswith("MISSING_SCOPES: "), (provider, log)
        assert scope in log["error"], log["error"]
        if provider == "FACEBOOK":  # Facebook's token answer lists no scopes: its Graph API says what is missing
            assert emu.calls["page_insights"] == 1
        else:
            assert sum(emu.calls.values()) == before, provider  # refused before asking the provider


# provider -> (the scope removed later at the provider, what the failed log names)
REMOVED = {**{p: (s, s) for p, s in UNTICKED.items()}, "TWITTER": ("users.read", "users.read")}


def test_a_scope_removed_at_the_provider_is_refused_there_and_named(stack, fresh_emulators):
    seed(stack.emulators)
    _approval(stack)
    for provider, (scope, named) in REMOVED.items():
        emu = stack.emulators[provider]
        user, integration = _connect(stack, provider)
        emu.revoke_scope(scope)  # the user removes the permission in the provider's settings later
        log = _sync(stack, integration, user, "fetch_analytics")
        assert log["status"] == "FAILED" and log["error"].startswith("MISSING_SCOPES: "), (provider, log)
        assert named in log["error"], (provider, log)
        assert "Bearer" not in log["error"], log["error"]


# provider -> (the emulator endpoint that throttles once, its calls in a run, an endpoint read before it)
# Graph's throttle (code 4) says no wait: the engine waits its default 10 s for Instagram.
THROTTLED = {
    "TIKTOK": ("videos", 1, "whoami"),
    "YOUTUBE": ("analytics", 1, "whoami"),
    "INSTAGRAM": ("insights", 1, "whoami"),
    "TWITTER": ("tweets", 1, "whoami"),
    "LINKEDIN": ("post_analytics", 5, None),
}  # one call per metric


def _sync_moving_time(stack, integration, user) -> dict:
    """fetch_analytics, whose run the provider throttles once: time passes the wait as soon as the daemon says
    it waits (Instagram's throttle names none: 10 s), instead of the test waiting it out."""
    started = stack.api("POST", f"/integrations/{integration}/sync", user=user, body={"action": "fetch_analytics"})
    assert started.status == 202, started.text
    log_id = started.json()["data"]["id"]
    said = wait_for(
        lambda: re.search(rf"sync {log_id}: rate limited; waiting (\d+) s", stack.logs()), 30, "the run to wait"
    )
    stack.emulators.advance_clock(float(said.group(1)) + 1)
    return wait_for(lambda: _finished(stack, integration, user, log_id), 30, "the run to end")


def _finished(stack, integration, user, log_id) -> dict | None:
    logs = stack.api("GET", f"/integrations/{integration}/sync-logs", user=user).json()["data"]
    (log,) = [row for row in logs if row["id"] == log_id]
    return None if log["status"] in ("PENDING", "IN_PROGRESS") else log


def test_a_throttle_is_waited_out_and_what_was_read_is_not_read_again(stack, fresh_emulators):
    seed(stack.emulators)
    _approval(stack)
    for provider, (endpoint, calls, earlier) in THROTTLED.items():
        emu = stack.emulators[provider]
        user, integration = _connect(stack, provider)
        emu.rate_limit_next(endpoint, retry_after=1)
        before = dict(emu.calls)
        log = _sync_moving_time(stack, integration, user)
        assert log["status"] == "COMPLETED" and log["metadata"]["rateLimitWaits"] == 1, (provider, log)
        assert emu.calls[endpoint] - before.get(endpoint, 0) == calls + 1, provider  # the throttled call again
        if earlier:  # what was read before the throttle is not read again
            assert emu.calls[earlier] - before.get(earlier, 0) == 1, provider
    if "TWITTER" in THROTTLED:
        user, integration = _connect(stack, "TWITTER")
        stack.emulators["TWITTER"].rate_limit_next("tweets", retry_after=3600)  # beyond SYNC_RATE_LIMIT_BUDGET
        log = _sync(stack, integration, user, "fetch_analytics")
        assert log["status"] == "FAILED" and log["error"].startswith("RATE_LIMITED: "), log


@pytest.mark.parametrize("provider", ["TIKTOK"])
def test_the_cli_runs_it_and_providers_show_lists_its_scopes(stack, fresh_emulators, provider):
    seed(stack.emulators)
    shown = stack.cli("providers", "show", provider, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert (
        data["actionScopes"]["fetch_analytics"]
        == "user.info.stats video.list (a connection made with a Login Kit app, tiktokApp login_kit)"
    )
    assert "user.info.stats" in data["scopes"]
    assert [a for a in data["actions"] if a["name"] == "fetch_analytics" and a["capability"] == "analytics"]
    user, integration = _connect(stack, provider)
    ran = stack.cli("sync", "run", integration, "--action", "fetch_analytics", "--json")
    assert ran.returncode == 0, (ran.stdout, ran.stderr)
