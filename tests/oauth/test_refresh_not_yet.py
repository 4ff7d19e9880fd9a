"""An Instagram token under 24 h old is not yet refreshable: skipped, not failed (issue 18, item 5).

Instagram's ``ig_refresh_token`` refuses a long-lived token younger than 24 h
(the emulator does too: tests/emulators/test_flows_social.py). A token just
connected is that young, so no clock is moved here: a real connect through the
emulator's consent page, then the refresh sweep (`integrations refresh
--expiring-within` with a lead that covers a 60-day token), the API's refresh
and the CLI's. Each says "not yet" without calling Instagram; the integration
keeps no error, its health stays healthy (the daemon's health job looks at it
every second here), no integration.error goes out, and the sweep is scheduled
back for when the token turns 24 h old.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import uuid

import pytest
from support.daemons import NEXUSCTL
from test_health_flows import _more_checks, _stored

UTC = dt.timezone.utc


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request, emulators, tmp_path_factory, pg_template, stack_launcher):
    env = {"HEALTH_CHECK_INTERVAL": "1", "HEALTH_RECHECK": "1"}
    with stack_launcher(
        request.param, tmp_path_factory.mktemp("refresh-not-yet"), emulators, pg_template, extra_env=env
    ) as stack:
        yield stack


def _when(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def test_a_young_instagram_token_is_not_yet_refreshable_and_nothing_degrades(stack, fresh_emulators):
    emu = stack.emulators["INSTAGRAM"]
    user = uuid.uuid4()
    result = stack.connect("INSTAGRAM", user)
    assert result["status"] == "success", result
    integration = result["integrationId"]
    shown = stack.api("GET", f"/integrations/{integration}", user=user).json()["data"]
    ready = _when(shown["metadata"]["provider"]["tokenIssuedAt"]) + dt.timedelta(hours=24)
    calls = emu.calls["refresh"]

    # The sweep (cron's form), with a lead that makes the 60-day token due: not yet, not a failure.
    sweep = subprocess.run(
        [str(NEXUSCTL), "integrations", "refresh", "--expiring-within", "1m", "--json"],
        env={**stack.env, "TOKEN_EXPIRY_WARNING": "61d"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sweep.returncode == 0, sweep.stderr
    assert json.loads(sweep.stdout) == {"refreshed": 0, "failed": 0, "skipped": 0, "notYet": 1, "warned": 0}
    assert "not refreshable yet 1" in sweep.stderr

    # The API: 200, the integration as it is, and why it was not renewed.
    answer = stack.api("POST", f"/integrations/{integration}/refresh", user=user)
    assert answer.status == 200, answer.text
    data = answer.json()["data"]
    assert data["refresh"]["refreshed"] is False and "24 h old" in data["refresh"]["message"]
    assert "still valid" in data["refresh"]["message"]
    assert _when(data["refresh"]["refreshableAt"]) == ready
    # Scheduled: the sweep leaves it alone until it is refreshable, then renews it.
    assert _when(data["refreshRetryAt"]) == ready and data["refreshFailures"] == 0
    assert data["isActive"] is True and data["lastError"] is None

    # The CLI: exit 0, says so.
    cli = stack.cli("integrations", "refresh", integration, "--json")
    assert cli.returncode == 0, cli.stderr
    assert "Not refreshed" in cli.stderr and "24 h old" in cli.stderr
    assert json.loads(cli.stdout)["refresh"]["refreshed"] is False

    assert emu.calls["refresh"] == calls  # Instagram was never asked (it would refuse)
    _more_checks(stack)  # the daemon's health job has looked since
    assert _stored(stack, integration) == "healthy"
    live = stack.api("GET", f"/integrations/{integration}/health", user=user).json()["data"]
    assert live["status"] == "healthy" and live["refresh"]["lastFailedAt"] is None, live
    errors = stack.sql(
        "SELECT data FROM outbox_events WHERE integration_id = %s AND type = 'integration.error'", integration
    )
    assert errors == []
