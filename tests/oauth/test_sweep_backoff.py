"""The sweep against real daemons and the emulators: back-off, long-lived renewal, expiry warnings, job_runs.

The stack's daemons sweep every second (TOKEN_REFRESH_WINDOW 10 min,
TOKEN_EXPIRY_WARNING 7 days). Time passes on the clock the daemons, their CLI
and the emulators share (support.clock): "the back-off passes" is the clock
moved past the stored retry time, failures are the provider refusing, never
rows rewritten.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

from support import clock
from support.waiting import wait_for
from test_refresh_flows import age_instagram_token, connected, expire_in
from test_refresh_sweep import _far

UTC = dt.timezone.utc
NEXUSCTL = Path(sys.executable).parent / "nexusctl"


def _ts(value):
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(value).replace(tzinfo=UTC)


def _state(stack, integration: str) -> tuple:
    failures, retry_at, error = stack.sql(
        "SELECT refresh_failures, refresh_retry_at, last_error FROM integrations WHERE id = %s", integration
    )[0]
    return failures, _ts(retry_at), error


def _retry_now(stack, integration: str) -> None:
    """The back-off passes: time moves on (the shared clock) until just after the stored retry time."""
    clock.pass_until(stack.emulators, _state(stack, integration)[1])


def _two_more_sweeps(stack) -> None:
    """Wait until two whole sweeps have started and finished after now (job_runs, written by the daemons)."""
    mark = clock.now(stack.emulators)  # job_runs times are the daemons' (shared) clock's
    for _ in range(2):

        def swept(mark=mark):
            started, finished = stack.sql(
                "SELECT last_started_at, last_finished_at FROM job_runs WHERE name = 'token-refresh'"
            )[0]
            return _ts(started) > mark and _ts(finished) is not None and _ts(finished) >= _ts(started)

        wait_for(swept, 20, "a whole sweep")
        mark = _ts(stack.sql("SELECT last_finished_at FROM job_runs WHERE name = 'token-refresh'")[0][0])


def _errors(stack, integration: str) -> list[dict]:
    rows = stack.sql(
        "SELECT data FROM outbox_events WHERE integration_id = %s AND type = 'integration.error'", integration
    )
    found = [json.loads(d) if isinstance(d, str) else d for (d,) in rows]
    # The health job's status changes are integration.error too (INTEGRATION_DEGRADED ...): not warnings.
    return [d for d in found if not str(d.get("code", "")).startswith("INTEGRATION_")]


def test_a_refusing_provider_is_backed_off_and_a_success_resets_it(stack, fresh_emulators):
    emu = stack.emulators["DISCORD"]
    user, integration = connected(stack, "DISCORD")
    emu.fail_next("refresh", status=503)
    emu.fail_next("refresh", status=503)
    before = emu.calls["refresh"]
    expire_in(stack, 120, integration)  # time passes: two minutes left, inside the sweep's window

    wait_for(lambda: _state(stack, integration)[0] == 1, 15, "the first failed refresh")
    failures, retry_at, error = _state(stack, integration)
    wait = retry_at - clock.now(stack.emulators)
    assert dt.timedelta(minutes=4) < wait <= dt.timedelta(minutes=5.5) and "503" in error
    _two_more_sweeps(stack)
    assert emu.calls["refresh"] == before + 1  # the sweeps since left it alone
    shown = json.loads(stack.cli("integrations", "show", integration, "--json").stdout)
    assert shown["refreshFailures"] == 1 and shown["isActive"] is True
    assert (
        shown["refreshRetryAt"].endswith("Z")
        and abs(clock.aware(shown["refreshRetryAt"]) - retry_at).total_seconds() < 1
    )

    _retry_now(stack, integration)  # the token has lapsed by now: the sweep still renews it
    wait_for(lambda: _state(stack, integration)[0] == 2, 15, "the second failed refresh")
    wait = _state(stack, integration)[1] - clock.now(stack.emulators)
    assert dt.timedelta(minutes=8.5) < wait <= dt.timedelta(minutes=11)  # doubled
    assert emu.calls["refresh"] == before + 2

    _retry_now(stack, integration)  # the provider is back
    wait_for(lambda: _far(stack, integration), 15, "a successful refresh")
    assert _state(stack, integration) == (0, None, None)
    assert emu.calls["refresh"] == before + 3
    data = stack.api("GET", f"/integrations/{integration}", user=user).json()["data"]
    assert data["refreshFailures"] == 0 and data["refreshRetryAt"] is None and data["isActive"] is True


def test_a_reconnect_ends_the_back_off(stack, fresh_emulators):
    user, integration = connected(stack, "DISCORD")
    stack.emulators["DISCORD"].fail_next("refresh", status=503)
    expire_in(stack, 120, integration)  # the sweep tries, the provider refuses: backing off
    wait_for(lambda: _state(stack, integration)[0] == 1, 15, "a failed refresh")
    assert _state(stack, integration)[1] > clock.now(stack.emulators)
    again = stack.connect("DISCORD", user)  # the user connects the same account again: new tokens
    assert again["status"] == "success" and again["integrationId"] == integration
    # The old tokens' failures say nothing about the new ones: the sweep must not wait out the back-off.
    assert _state(stack, integration)[:2] == (0, None)


def test_long_lived_tokens_are_renewed_days_ahead(stack, fresh_emulators):
    facebook, instagram = stack.emulators["FACEBOOK"], stack.emulators["INSTAGRAM"]
    _, fb = connected(stack, "FACEBOOK")
    _, ig = connected(stack, "INSTAGRAM")
    age_instagram_token(stack, ig)
    exchanges, refreshes = facebook.calls["exchange"], instagram.calls["refresh"]
    # Time passes until three days are left (both 60-day tokens, connected seconds apart): far outside the
    # 10-minute window, inside the 7-day lead.
    expire_in(stack, 3 * 86400, fb)

    def renewed(integration):
        (expiry,) = stack.sql("SELECT expires_at FROM integrations WHERE id = %s", integration)[0]
        return _ts(expiry) > clock.now(stack.emulators) + dt.timedelta(days=59)  # a fresh 60-day token

    wait_for(lambda: renewed(fb) and renewed(ig), 20, "both renewals")
    assert (facebook.calls["exchange"], instagram.calls["refresh"]) == (exchanges + 1, refreshes + 1)
    assert not _errors(stack, fb) and not _errors(stack, ig)


def test_a_token_without_a_refresh_token_is_warned_about_once_per_expiry(stack, fresh_emulators):
    """X issues a refresh token only with offline.access; a user who unticks it gets a two-hour token that
    nothing can renew: the daemons warn once (two of them on PostgreSQL), and again for the next token."""
    postgres = stack.database_url.startswith("postgres")
    emu = stack.emulators["TWITTER"]
    other = stack.another_daemon()[1] if postgres else None  # two daemons: still one warning
    calls = emu.calls["refresh"]
    try:
        emu.withhold_next_grant("offline.access")
        user, integration = connected(stack, "TWITTER")
        (access_cipher,) = stack.sql("SELECT access_token FROM integrations WHERE id = %s", integration)[0]
        assert stack.sql("SELECT refresh_token FROM integrations WHERE id = %s", integration)[0][0] is None
        wait_for(lambda: _errors(stack, integration), 15, "the expiry warning")
        _two_more_sweeps(stack)
        (warning,) = _errors(stack, integration)
        assert warning["code"] == "TOKEN_EXPIRING" and warning["reason"] == "NO_REFRESH_TOKEN"
        assert warning["integrationId"] == integration and "connect it again" in warning["message"]
        shown = stack.api("GET", f"/integrations/{integration}", user=user).json()["data"]
        assert abs(clock.aware(warning["expiresAt"]) - clock.aware(shown["expiresAt"])) < dt.timedelta(seconds=1)
        assert access_cipher not in json.dumps(warning)
        # A new token (the user connected again, still without offline.access) is warned about again, once.
        emu.withhold_next_grant("offline.access")
        assert stack.connect("TWITTER", user)["integrationId"] == integration
        wait_for(lambda: len(_errors(stack, integration)) == 2, 15, "the second warning")
        _two_more_sweeps(stack)
        assert len(_errors(stack, integration)) == 2
    finally:
        if other is not None:
            other.terminate()
            other.wait(20)
    assert emu.calls["refresh"] == calls  # nothing to refresh with: the sweep does not try


def test_a_long_lived_token_that_keeps_failing_is_warned_about(stack, fresh_emulators):
    emu = stack.emulators["INSTAGRAM"]
    _, integration = connected(stack, "INSTAGRAM")
    age_instagram_token(stack, integration)
    for _ in range(3):
        emu.fail_next("refresh", status=500)
    expire_in(stack, 2 * 86400, integration)  # two days left: inside the 7-day lead, the sweep renews
    # Two failures (5 and 10 minutes of back-off, which time passes through); the third makes it "cannot renew".
    for failures in (1, 2):
        wait_for(lambda n=failures: _state(stack, integration)[0] == n, 15, f"failed renewal {failures}")
        assert not _errors(stack, integration)
        _retry_now(stack, integration)
    wait_for(lambda: _errors(stack, integration), 15, "the expiry warning")
    (warning,) = _errors(stack, integration)
    assert (warning["code"], warning["reason"]) == ("TOKEN_EXPIRING", "REFRESH_FAILING")
    assert "3 times in a row" in warning["message"]
    assert _state(stack, integration)[0] == 3
    (expiry,) = stack.sql("SELECT expires_at FROM integrations WHERE id = %s", integration)[0]
    assert _ts(expiry) < clock.now(stack.emulators) + dt.timedelta(days=3)  # not renewed


def test_a_renewal_that_does_not_extend_counts_as_a_failure(stack, fresh_emulators):
    """From cron, with a lead longer than Facebook's 60 days: the renewal cannot get the token out of it."""
    emu = stack.emulators["FACEBOOK"]
    _, integration = connected(stack, "FACEBOOK")
    stack.deactivate_others(integration)  # only this one (the operator, with the CLI)
    env = {**stack.env, "TOKEN_EXPIRY_WARNING": "61d"}

    def sweep():
        return subprocess.run(
            [str(NEXUSCTL), "integrations", "refresh", "--expiring-within", "1m", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    calls = emu.calls["exchange"]
    first = sweep()
    assert first.returncode == 22, first.stderr  # REFRESH_FAILED: something needs a look
    assert json.loads(first.stdout)["failed"] == 1 and emu.calls["exchange"] == calls + 1
    failures, retry_at, error = _state(stack, integration)
    assert failures == 1 and retry_at > clock.now(stack.emulators) and "without extending" in error
    second = sweep()  # backing off: no second call
    assert second.returncode == 0 and json.loads(second.stdout)["refreshed"] == 0
    assert emu.calls["exchange"] == calls + 1


def test_jobs_list_shows_the_daemons_runs(stack):
    # A daemon started now: its scheduler runs on the system clock, so once earlier tests moved the shared clock
    # on by hours, the hourly housekeeping of a daemon started before is overdue on the product's clock.
    stack.restart()
    deadline = time.monotonic() + 15
    while True:
        listed = stack.cli("jobs", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        jobs = {j["name"]: j for j in json.loads(listed.stdout)}
        if jobs["token-refresh"]["lastFinishedAt"] and jobs["housekeeping"]["nextRunAt"]:
            break
        assert time.monotonic() < deadline, jobs
        time.sleep(0.2)  # polling what the daemon records on its own
    refresh = jobs["token-refresh"]
    assert refresh["schedule"] == "every 1s" and refresh["outcome"] == "ok" and refresh["daemon"] == "scheduled"
    assert set(refresh["counts"]) == {"refreshed", "failed", "skipped", "notYet", "warned"}
    assert refresh["scheduledBy"] and refresh["ranBy"] and ":" in refresh["ranBy"]
    housekeeping = jobs["housekeeping"]
    assert housekeeping["schedule"] == "every 1h" and housekeeping["daemon"] == "scheduled"
    assert _ts(housekeeping["nextRunAt"].replace("Z", "")) > clock.now(stack.emulators) - dt.timedelta(seconds=5)
    table = stack.cli("jobs", "list")
    assert table.returncode == 0 and "daemon not running" not in table.stdout
