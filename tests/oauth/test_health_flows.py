"""Integration health against real daemons and the emulators, on SQLite and PostgreSQL.

Each reason is reached through what a user would see happen: a provider that
starts refusing refreshes (and a grant that dies), a webhook receiver that
starts failing, a grant with fewer scopes and a permission removed later. The
daemon's health job runs every second here; each status change must be
announced once (integration.error / integration.recovered), however many
checks see it.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from emulators.testkit import CallbackSink
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter
from support.stack import run_sync
from support.waiting import wait_for
from test_refresh_flows import connected, expire_in

from nexusctl.daemon import responses

UTC = dt.timezone.utc
ADWORDS = "https://www.googleapis.com/auth/adwords"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request, emulators, tmp_path_factory, pg_template, stack_launcher):
    env = {
        "HEALTH_CHECK_INTERVAL": "1",
        "HEALTH_RECHECK": "1",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "WEBHOOK_RETRY_SCHEDULE": "1,1,1,1,1",
    }
    with stack_launcher(
        request.param, tmp_path_factory.mktemp("health-stack"), emulators, pg_template, extra_env=env
    ) as stack:
        yield stack


def _health(stack, integration, user):
    answer = stack.api("GET", f"/integrations/{integration}/health", user=user)
    assert answer.status == 200, answer.text
    Draft202012Validator(TypeAdapter(responses.HealthRecord).json_schema()).validate(
        answer.json()["data"]
    )  # what OpenAPI says
    return answer.json()["data"]


def _stored(stack, integration) -> str | None:
    return stack.sql("SELECT health_status FROM integrations WHERE id = %s", integration)[0][0]


def _changes(stack, integration) -> list[tuple[str, str]]:
    """The status-change events of one integration, oldest first: (type, status)."""
    rows = stack.sql(
        "SELECT type, data FROM outbox_events WHERE integration_id = %s AND type IN "
        "('integration.error', 'integration.recovered') ORDER BY created_at, id",
        integration,
    )
    out = []
    for kind, data in rows:
        data = json.loads(data) if isinstance(data, str) else data
        if kind == "integration.recovered" or str(data.get("code", "")).startswith("INTEGRATION_"):
            out.append((kind, data["status"]))
    return out


def _more_checks(stack, count: int = 2) -> None:
    """Wait until the daemon's health job has run ``count`` more times (job_runs, written by the daemon)."""

    def finished():
        (value,) = stack.sql("SELECT last_finished_at FROM job_runs WHERE name = 'integration-health'")[0]
        return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value).replace(tzinfo=UTC)

    for _ in range(count):
        mark = finished()
        wait_for(lambda mark=mark: finished() > mark, 20, "a run of the health job")


def test_a_refusing_provider_degrades_then_breaks_and_a_refresh_recovers(stack, fresh_emulators):
    emu = stack.emulators["DISCORD"]
    user, integration = connected(stack, "DISCORD")
    assert _health(stack, integration, user)["status"] == "healthy"

    emu.fail_next("refresh", status=503)
    expire_in(stack, 120, integration)  # time passes into the sweep's window: the daemon tries, the provider refuses
    wait_for(lambda: _stored(stack, integration) == "degraded", 20, "degraded after the failed refresh")
    record = _health(stack, integration, user)
    assert [r["code"] for r in record["reasons"]] == ["REFRESH_FAILING"]
    assert "503" in record["reasons"][0]["message"] and record["refresh"]["lastOutcome"] == "failed"
    assert record["refresh"]["consecutiveFailures"] == 1 and record["token"]["renewable"] is True

    expire_in(stack, -60, integration)  # time passes: the token lapses while the sweep backs off (5 minutes)
    wait_for(lambda: _stored(stack, integration) == "broken", 20, "broken once the token has expired")
    codes = [r["code"] for r in _health(stack, integration, user)["reasons"]]
    assert codes == ["TOKEN_EXPIRED"]
    listed = stack.cli("integrations", "health", "--status", "degraded,broken", "--json")
    assert listed.returncode == 22, listed.stderr  # a broken one is listed: non-zero for cron
    assert integration in [r["integrationId"] for r in json.loads(listed.stdout)]
    metrics = stack.api("GET", "/metrics").text
    assert 'nexus_integrations{provider="DISCORD",status="broken"}' in metrics

    refreshed = stack.api("POST", f"/integrations/{integration}/refresh", user=user)
    assert refreshed.status == 200, refreshed.text
    wait_for(lambda: _stored(stack, integration) == "healthy", 20, "healthy after a successful refresh")
    _more_checks(stack)
    assert _changes(stack, integration) == [
        ("integration.error", "degraded"),
        ("integration.error", "broken"),
        ("integration.recovered", "healthy"),
    ]
    assert _health(stack, integration, user)["refresh"]["lastOutcome"] == "succeeded"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def unhurried(request, emulators, tmp_path_factory, pg_template, stack_launcher):
    """A health job every second, but HEALTH_RECHECK at its default (15 min): nothing is checked again
    unless something asks for it."""
    env = {"HEALTH_CHECK_INTERVAL": "1"}
    with stack_launcher(
        request.param, tmp_path_factory.mktemp("health-unhurried"), emulators, pg_template, extra_env=env
    ) as stack:
        yield stack


def _checked_at(stack, integration) -> str:
    (value,) = stack.sql("SELECT health_checked_at FROM integrations WHERE id = %s", integration)[0]
    return str(value)


def test_a_successful_refresh_records_the_health_it_leaves_without_a_check(unhurried, fresh_emulators):
    stack, emu = unhurried, unhurried.emulators["DISCORD"]
    user, integration = connected(stack, "DISCORD")
    wait_for(lambda: _stored(stack, integration) == "healthy", 20, "the first check of the new connection")
    emu.fail_next("refresh", status=503)
    assert stack.api("POST", f"/integrations/{integration}/refresh", user=user).status >= 500
    wait_for(lambda: _stored(stack, integration) == "degraded", 20, "the check the failed refresh asks for")
    checked = _checked_at(stack, integration)

    refreshed = stack.api("POST", f"/integrations/{integration}/refresh", user=user)
    assert refreshed.status == 200, refreshed.text
    # Stored and announced with the refresh itself (its transaction), not by a later check.
    assert _stored(stack, integration) == "healthy"
    assert _changes(stack, integration) == [("integration.error", "degraded"), ("integration.recovered", "healthy")]
    _more_checks(stack)
    assert _checked_at(stack, integration) == checked  # the health job was not asked to look again
    assert _changes(stack, integration)[-1] == ("integration.recovered", "healthy")  # announced once
    (reasons,) = stack.sql("SELECT health_reasons FROM integrations WHERE id = %s", integration)[0]
    assert (json.loads(reasons) if isinstance(reasons, str) else reasons) == []
    record = _health(stack, integration, user)  # a live check agrees
    assert record["status"] == "healthy" and record["refresh"]["lastOutcome"] == "succeeded"
    assert len(_changes(stack, integration)) == 2


def test_a_dead_grant_is_broken_at_once(stack, fresh_emulators):
    emu = stack.emulators["DISCORD"]
    user, integration = connected(stack, "DISCORD")
    emu.revoke_grants()  # the user removed the app at Discord
    answer = stack.api("POST", f"/integrations/{integration}/refresh", user=user)
    assert answer.status == 401
    wait_for(lambda: _stored(stack, integration) == "broken", 20, "broken after invalid_grant")
    record = _health(stack, integration, user)
    assert record["isActive"] is False and record["reasons"][0]["code"] == "INACTIVE"
    _more_checks(stack)
    assert _changes(stack, integration) == [("integration.error", "broken")]

    again = stack.connect("DISCORD", user)  # the user connects the account again
    assert again["integrationId"] == integration
    wait_for(lambda: _stored(stack, integration) == "healthy", 20, "healthy after reconnecting")
    assert _health(stack, integration, user)["refresh"]["lastOutcome"] is None
    assert _changes(stack, integration) == [("integration.error", "broken"), ("integration.recovered", "healthy")]


def test_a_receiver_that_starts_failing_degrades_and_recovers(stack, fresh_emulators):
    user, integration = connected(stack, "SLACK")
    with CallbackSink(200) as sink:
        hook = stack.api(
            "POST",
            "/integrations/webhooks",
            user=user,
            body={"integrationId": integration, "url": sink.url, "events": ["post.*"]},
        )
        assert hook.status == 201, hook.text

        def emit(n):
            for i in range(n):
                sent = stack.api(
                    "POST",
                    f"/integrations/{integration}/events",
                    user=user,
                    body={"type": "post.created", "data": {"mediaId": f"m{i}"}},
                )
                assert sent.status == 202, sent.text

        emit(2)
        wait_for(lambda: len(sink.received) >= 2, 20, "two deliveries")
        _more_checks(stack)
        assert _health(stack, integration, user)["status"] == "healthy"

        sink.status = 500  # the receiver starts failing
        emit(3)
        wait_for(lambda: _stored(stack, integration) == "degraded", 20, "degraded by failing deliveries")
        record = _health(stack, integration, user)
        assert record["reasons"][0]["code"] == "WEBHOOKS_FAILING", record["reasons"]
        assert record["webhooks"]["successRate"] < 0.9

        sink.status = 200  # fixed: the retries get through
        wait_for(lambda: _stored(stack, integration) == "healthy", 30, "healthy once the retries are delivered")
    assert _health(stack, integration, user)["webhooks"]["successRate"] == 1.0
    assert _changes(stack, integration) == [("integration.error", "degraded"), ("integration.recovered", "healthy")]


def test_fewer_scopes_granted_or_one_revoked_later_shows_as_missing(stack, fresh_emulators):
    emu = stack.emulators["GOOGLE_ADS"]
    emu.withhold_next_grant(ADWORDS)  # the user unticks the Google Ads permission
    user, integration = connected(stack, "GOOGLE_ADS")
    record = _health(stack, integration, user)
    assert record["status"] == "degraded" and record["scopes"]["missing"] == [ADWORDS]
    assert record["reasons"][0]["code"] == "MISSING_SCOPES" and "fetch_campaigns" in record["reasons"][0]["message"]

    again = stack.connect("GOOGLE_ADS", user)  # connecting again with every permission
    assert again["integrationId"] == integration
    wait_for(lambda: _stored(stack, integration) == "healthy", 20, "healthy after the full grant")

    emu.revoke_scope(ADWORDS)  # later removed in the Google account; the next refresh says so
    assert stack.api("POST", f"/integrations/{integration}/refresh", user=user).status == 200
    wait_for(lambda: _stored(stack, integration) == "degraded", 20, "degraded after the revocation")
    assert _health(stack, integration, user)["scopes"]["missing"] == [ADWORDS]
    assert _changes(stack, integration) == [
        ("integration.error", "degraded"),
        ("integration.recovered", "healthy"),
        ("integration.error", "degraded"),
    ]


def test_only_the_owner_or_an_elevated_role_sees_health(stack, fresh_emulators):
    user, integration = connected(stack, "DISCORD")
    stranger = uuid.uuid4()
    other = stack.api("GET", f"/integrations/{integration}/health", user=stranger)
    assert other.status == 404 and other.json()["error"]["code"] == "INTEGRATION_NOT_FOUND"
    missing = stack.api("GET", f"/integrations/{uuid.uuid4()}/health", user=user, roles=("admin",))
    assert missing.status == 404 and missing.json()["error"]["code"] == "INTEGRATION_NOT_FOUND"
    assert stack.api("GET", "/integrations/not-a-uuid/health", user=user).status == 400
    assert stack.api("GET", f"/integrations/user/{user}/health", user=stranger).status == 403
    mine = stack.api("GET", f"/integrations/user/{user}/health", user=user)
    assert mine.status == 200 and [r["integrationId"] for r in mine.json()["data"]] == [integration]
    # The list shows what the daemon's integration-health job stored: wait for it, not for the list.
    wait_for(lambda: _stored(stack, integration) == "healthy", 20, "checked by the daemon's job")
    [listed] = stack.api("GET", f"/integrations/user/{user}/health", user=user).json()["data"]
    Draft202012Validator(TypeAdapter(responses.HealthSummary).json_schema()).validate(listed)  # what OpenAPI says
    assert listed["status"] == "healthy" and listed["checkedAt"] and listed["nextCheckAt"]
    too_many = stack.api("GET", f"/integrations/user/{user}/health?limit=101", user=user)
    assert too_many.status == 400 and too_many.json()["error"]["code"] == "VALIDATION_ERROR"
    assert stack.api("GET", f"/integrations/user/{user}/health?status=sick", user=user).status == 400
    admin = stack.api("GET", f"/integrations/{integration}/health", user=stranger, roles=("service",))
    assert admin.status == 200 and admin.json()["data"]["status"] == "healthy"
    text = json.dumps(admin.json())
    assert "access_token" not in text and "refresh_token" not in text


def test_a_rate_limited_sync_degrades_and_the_next_good_run_recovers(stack, fresh_emulators):
    emu = stack.emulators["SLACK"]
    emu.set_records("channels", [{"id": "C1", "name": "general"}])
    user, integration = connected(stack, "SLACK")
    emu.rate_limit_next("conversations.list", retry_after=1)  # waited out within the run's budget
    assert run_sync(stack, integration, user, "fetch_channels") == "COMPLETED"
    record = _health(stack, integration, user)
    assert record["status"] == "healthy" and record["lastRateLimit"]["waits"] == 1
    assert record["lastRateLimit"]["runFailed"] is False and record["syncs"][0]["status"] == "COMPLETED"

    emu.rate_limit_next("conversations.list", retry_after=3600)  # beyond SYNC_RATE_LIMIT_BUDGET: the run stops
    assert run_sync(stack, integration, user, "fetch_channels") == "FAILED"
    wait_for(lambda: _stored(stack, integration) == "degraded", 20, "degraded by the rate-limited run")
    record = _health(stack, integration, user)
    assert [r["code"] for r in record["reasons"]] == ["RATE_LIMITED"] and record["lastRateLimit"]["runFailed"]

    fresh_emulators.advance_clock(3601)  # the provider's wait is over (kept in the integration's rate budget)
    assert run_sync(stack, integration, user, "fetch_channels") == "COMPLETED"
    wait_for(lambda: _stored(stack, integration) == "healthy", 20, "healthy after a good run")
    assert _changes(stack, integration) == [("integration.error", "degraded"), ("integration.recovered", "healthy")]


def test_a_webhook_disabled_by_its_receiver_degrades(stack, fresh_emulators):
    user, integration = connected(stack, "SLACK")
    with CallbackSink(410) as sink:  # Gone: the webhook is disabled at once
        hook = stack.api(
            "POST",
            "/integrations/webhooks",
            user=user,
            body={"integrationId": integration, "url": sink.url, "events": ["*"]},
        )
        assert hook.status == 201, hook.text
        sent = stack.api(
            "POST", f"/integrations/{integration}/events", user=user, body={"type": "post.created", "data": {}}
        )
        assert sent.status == 202
        wait_for(lambda: _stored(stack, integration) == "degraded", 20, "degraded by the disabled webhook")
    codes = {r["code"] for r in _health(stack, integration, user)["reasons"]}
    assert "WEBHOOK_DISABLED" in codes


def test_the_refresh_tokens_expiry_is_kept_where_the_provider_says(stack, fresh_emulators):
    user, integration = connected(stack, "TIKTOK")  # refresh_expires_in in TikTok's token answer
    record = _health(stack, integration, user)
    expiry = dt.datetime.fromisoformat(record["token"]["refreshTokenExpiresAt"].replace("Z", "+00:00"))
    assert expiry > dt.datetime.now(UTC) + dt.timedelta(days=30) and record["status"] == "healthy"
    _, discord = connected(stack, "DISCORD")  # Discord does not say: nothing is made up
    assert _health(stack, discord, _)["token"]["refreshTokenExpiresAt"] is None
