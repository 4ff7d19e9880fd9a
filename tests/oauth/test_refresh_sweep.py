"""Refresh before expiry: the running daemons sweep, with no command, each integration once."""

from __future__ import annotations

import datetime as dt
import uuid

from support.waiting import wait_for
from test_refresh_flows import connected, expire_in


def _far(stack, integration: str) -> bool:
    """The token expires more than a day from now (the shared clock's now: the daemon's and the provider's)."""
    (expires,) = stack.sql("SELECT expires_at FROM integrations WHERE id = %s", integration)[0]
    if isinstance(expires, str):
        expires = dt.datetime.fromisoformat(expires).replace(tzinfo=dt.timezone.utc)
    return expires > dt.datetime.fromtimestamp(stack.emulators.now(), dt.timezone.utc) + dt.timedelta(days=1)


def test_a_token_about_to_expire_is_refreshed_by_the_daemon(stack, fresh_emulators):
    emu = stack.emulators["DISCORD"]
    user, integration = connected(stack, "DISCORD")
    before = emu.calls["refresh"]
    assert _far(stack, integration)  # a 7-day token
    expire_in(stack, 30, integration)  # time passes: 30 s left
    assert not _far(stack, integration)
    wait_for(lambda: _far(stack, integration), 15, "the daemon's sweep")
    assert emu.calls["refresh"] == before + 1
    data = stack.api("GET", f"/integrations/{integration}", user=user).json()["data"]
    assert data["isActive"] is True


def test_the_cli_sweeps_once_for_cron(stack, fresh_emulators):
    emu = stack.emulators["YOUTUBE"]
    _, integration = connected(stack, "YOUTUBE")
    expire_in(stack, 1800, integration)  # time passes: 30 minutes left, outside the daemons' 10-minute window
    before = emu.calls["refresh"]
    swept = stack.cli("integrations", "refresh", "--expiring-within", "1h", "--json")
    assert swept.returncode == 0, swept.stderr
    assert emu.calls["refresh"] == before + 1
    assert stack.cli("integrations", "refresh", "--expiring-within", "soon").returncode == 2


def test_daemons_refresh_200_expiring_integrations_with_200_provider_calls(stack, fresh_emulators):
    """Two daemons on PostgreSQL (the scale-out shape); on SQLite its one daemon, sweeping every second."""
    postgres = stack.database_url.startswith("postgres")
    emu = stack.emulators["DISCORD"]
    user = uuid.uuid4()
    ids = []
    for _ in range(200):
        emu.account = {**emu.account, "id": str(uuid.uuid4().int)[:18]}  # 200 distinct Discord accounts
        result = stack.connect("DISCORD", user)
        assert result["status"] == "success", result
        ids.append(result["integrationId"])
    assert len(set(ids)) == 200
    other = stack.another_daemon()[1] if postgres else None
    emu.delay("refresh", 0.05)
    before = emu.calls["refresh"]
    try:
        # Time passes until the first one expires in a minute; the others, connected a little later, follow
        # within the daemons' 10-minute window.
        expire_in(stack, 60, ids[0])
        wait_for(lambda: sum(_far(stack, i) for i in ids) == 200, 120, "200 refreshes")
    finally:
        emu.delay("refresh", 0)
        if other is not None:
            other.terminate()
            other.wait(20)
    assert emu.calls["refresh"] == before + 200
