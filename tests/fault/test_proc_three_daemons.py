"""Three daemons on one PostgreSQL (and one Redis): the work each does is done once, not three times.

- Deliveries: 1,500 deliveries over ten webhooks, emitted through all three
  daemons' APIs to a healthy receiver: each ``webhook-id`` arrives exactly
  once, one attempt each, and every daemon sent some.
- Token refreshes: 30 tokens about to expire, raced for by three refresh
  sweeps (every second), and the same integrations refreshed through all
  three APIs at once: the emulator counts one refresh call per refresh.
- Scheduled syncs: eight integrations whose ``syncSchedule`` fell due at
  once (the hour passes on the shared clock), raced for by three sync
  runners (polling every second): one sync log each, one list call each at
  the emulator, and none more after two further passes of every runner.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from support import clock
from support.receivers import CountingReceiver
from support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def three(stack_launcher, emulators, tmp_path_factory, pg_template):
    """tests/oauth's stack on PostgreSQL (with Redis) plus two more daemons on the same database."""
    env = {"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32", "WEBHOOK_TIMEOUT": "5"}
    with stack_launcher("postgres", tmp_path_factory.mktemp("three"), emulators, pg_template, env) as stack:
        stack.extra["bases"] = [stack.base] + [stack.another_daemon()[0] for _ in range(2)]
        yield stack


def _connect_discord(stack, n: int, user=None) -> list[str]:
    """``n`` Discord integrations, each a different Discord account (a reconnect would update, not add)."""
    emu, ids = stack.emulators["DISCORD"], []
    user = user or uuid.uuid4()
    for _ in range(n):
        emu.account = {**emu.account, "id": str(uuid.uuid4().int)[:18]}
        result = stack.connect("DISCORD", user)
        assert result["status"] == "success", result
        ids.append(result["integrationId"])
    assert len(set(ids)) == n
    return ids


def _count(stack, query: str, *params) -> int:
    return stack.sql(query, *params)[0][0]


def test_each_delivery_is_sent_once(three, fresh_emulators, tmp_path):
    sink = CountingReceiver(delay=0.005)
    try:
        user = uuid.uuid4()
        (integration,) = _connect_discord(three, 1, user)
        for _ in range(10):
            made = three.api(
                "POST",
                "/integrations/webhooks",
                user=user,
                body={"integrationId": integration, "url": sink.url, "events": ["post.*"]},
            )
            assert made.status == 201, made.text
        for n in range(150):  # 150 events x 10 webhooks, through the three daemons in turn
            emitted = three.api(
                "POST",
                f"/integrations/{integration}/events",
                user=user,
                base=three.extra["bases"][n % 3],
                body={"type": "post.created", "data": {"n": n}},
            )
            assert emitted.status == 202 and emitted.json()["data"]["deliveriesQueued"] == 10, emitted.text
        wait_for(
            lambda: _count(three, "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'DELIVERED'") == 1500,
            90,
            "1,500 deliveries to be DELIVERED",
        )
    finally:
        sink.stop()
    ids = {str(i) for (i,) in three.sql("SELECT id FROM webhook_deliveries")}
    assert len(ids) == 1500 and set(sink.by_id) == ids
    twice = {i: n for i, n in sink.by_id.items() if n != 1}
    assert not twice, f"{len(twice)} webhook-ids arrived more than once: {list(twice.items())[:5]}"
    assert _count(three, "SELECT COUNT(*) FROM webhook_attempts") == 1500
    logs = [three.log_path] + sorted(three.log_path.parent.glob("daemon-*.log"))

    def per_daemon() -> list[int]:
        return [path.read_text().count(" attempt 1 -> 200 delivered") for path in logs]

    # A send's line is written after its record batch commits (the row reads DELIVERED a moment before).
    wait_for(lambda: sum(per_daemon()) >= 1500, 30, "every daemon to log its attempts")
    per_daemon = per_daemon()
    assert sum(per_daemon) == 1500 and all(n > 0 for n in per_daemon), per_daemon  # all three took part


def test_each_token_is_refreshed_once(three, fresh_emulators):
    emu = three.emulators["DISCORD"]
    ids = _connect_discord(three, 30)
    three.deactivate_others(*ids)  # the test before's token is not this count's (the operator, with the CLI)
    emu.delay("refresh", 0.05)  # each provider call takes a moment, so the sweeps overlap
    before = emu.calls["refresh"]
    try:
        # Time passes (the shared clock) until the first expires in a minute; the others, connected a little
        # later, follow within the 10-minute window.
        clock.expire_in(three, 60, ids[0])

        def refreshed():
            rows = three.sql("SELECT expires_at FROM integrations WHERE id = ANY(%s::uuid[])", ids)
            return all(e > clock.now(three.emulators) + dt.timedelta(days=1) for (e,) in rows)  # new 7-day tokens

        wait_for(refreshed, 60, "the three sweeps to refresh 30 tokens")
        assert emu.calls["refresh"] == before + 30, "a token was refreshed more than once"

        # The same five integrations refreshed through the three APIs at once: one provider call each. The five
        # winners' calls are held until the ten others wait for them (their daemons' logs say so).
        emu.delay("refresh", 0)
        emu.hold("refresh")
        before = emu.calls["refresh"]
        results, barrier = [], threading.Barrier(15)
        user = three.api("GET", f"/integrations/{ids[0]}", user=uuid.uuid4(), roles=("admin",)).json()["data"]["userId"]

        def hit(integration, base):
            barrier.wait()
            results.append(three.api("POST", f"/integrations/{integration}/refresh", user=user, base=base))

        threads = [threading.Thread(target=hit, args=(i, b)) for i in ids[:5] for b in three.extra["bases"]]
        for t in threads:
            t.start()
        wait_for(
            lambda: three.waiting_refreshes(*ids[:5]) == 10 and emu.calls["refresh"] == before + 5,
            50,  # within the winners' 60 s leases
            "five provider calls in flight and ten refreshes waiting for them",
        )
    finally:
        emu.release("refresh")
        for t in threads:
            t.join(60)
        emu.delay("refresh", 0)
    assert [r.status for r in results] == [200] * 15, [r.text for r in results if r.status != 200]
    assert emu.calls["refresh"] == before + 5


def test_each_scheduled_sync_runs_once(three, fresh_emulators):
    emu = three.emulators["DISCORD"]
    emu.set_records(
        "guilds", [{"id": str(10**17 + i), "name": f"guild-{i}", "owner": False, "permissions": "0"} for i in range(5)]
    )
    user = uuid.uuid4()
    ids = _connect_discord(three, 8, user)
    for integration in ids:
        patched = three.api(
            "PATCH", f"/integrations/{integration}", user=user, body={"metadata": {"syncSchedule": "1h"}}
        )
        assert patched.status == 200, patched.text
    before = emu.calls["guilds"]
    latest = max(n for (n,) in three.sql("SELECT next_sync_at FROM integrations WHERE id = ANY(%s::uuid[])", ids))
    clock.pass_until(three.emulators, latest)  # the hour passes: all eight due at once, for all three runners

    def completed() -> int:
        return _count(
            three,
            "SELECT COUNT(*) FROM integration_sync_logs WHERE integration_id = ANY(%s::uuid[]) "
            "AND status = 'COMPLETED'",
            ids,
        )

    wait_for(lambda: completed() == 8, 60, "the eight scheduled syncs to complete")
    # "Once" is also "not again": every runner makes two more passes (its count on its /metrics; the second
    # began after the eighth run completed), in which a second claim of the same slot would start another run.
    bases = three.extra["bases"]
    polls = [_polls(three, base) for base in bases]
    wait_for(
        lambda: all(_polls(three, base) >= n + 2 for base, n in zip(bases, polls)),
        30,
        "two more passes of every daemon's sync runner",
    )
    rows = three.sql(
        "SELECT integration_id, status, metadata FROM integration_sync_logs WHERE integration_id = ANY(%s::uuid[])", ids
    )
    assert sorted(str(i) for i, _, _ in rows) == sorted(ids), rows  # one log per integration
    assert all(status == "COMPLETED" and meta["trigger"] == "schedule" for _, status, meta in rows), rows
    assert emu.calls["guilds"] == before + 8  # one list call each (five guilds fit one page)
    upcoming = three.sql("SELECT next_sync_at FROM integrations WHERE id = ANY(%s::uuid[])", ids)
    assert all(n > clock.now(three.emulators) + dt.timedelta(minutes=50) for (n,) in upcoming)


def _polls(stack, base: str) -> float:
    """How many passes that daemon's sync runner has finished (nexus_sync_polls_total on its /metrics)."""
    text = stack.api("GET", "/metrics", base=base).text
    (line,) = [line for line in text.splitlines() if line.startswith("nexus_sync_polls_total ")]
    return float(line.split()[1])
