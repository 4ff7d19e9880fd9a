"""Receivers that misbehave: retries happen when the schedule says, within its jitter.

One daemon, WEBHOOK_TIMEOUT=1 and WEBHOOK_RETRY_SCHEDULE=60,600,120 (seconds, each ±20%: distinct enough that
a retry taken from the wrong step of the schedule falls outside the bounds), three webhooks of one integration:

- flapping (500, then 200): two attempts, DELIVERED;
- slow (10 s, beyond the timeout, on the first two attempts): two timed-out
  attempts of about 1 s each (ended long before the answer), then DELIVERED
  on the third;
- refusing connections (a closed port): four attempts, then FAILED with a
  ``webhook.failed`` event.

The waits pass on the clock the daemon shares with the tests (support.clock), not on the wall clock: after each
round of attempts the test reads the retry time the daemon stored, checks it against the schedule's step (from
the moment the outcome was recorded, the delivery's updatedAt: both on the daemon's clock, so no allowance for
a loaded machine is needed), then moves time past it and waits for the next round. No latency is bounded from
above; every wait is on a condition with a deadline.
"""

from __future__ import annotations

import collections
import datetime as dt
import uuid

from procs import api, daemon_env, start_daemon
from support import clock
from support.daemons import stop as stop_daemon
from support.ports import closed_port
from support.waiting import wait_for

from nexusctl.core import webhooks
from nexusctl.db.models import Integration
from nexusctl.enums import Provider

SCHEDULE = (60, 600, 120)
JITTER = 0.2
ANSWER_AFTER = 10  # seconds the slow receiver takes to answer its first two requests
DONE = ("DELIVERED", "FAILED")


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _deliveries(base: str, user, hook_id: str) -> list[dict]:
    response = api(base, "GET", f"/integrations/webhooks/{hook_id}/deliveries", user=user)
    assert response.status == 200, response.text
    return response.json()["data"]


def _round(base: str, user, hooks: dict, attempts: int) -> dict:
    """Wait until every delivery has had ``attempts`` attempts or is done: {webhook name: its deliveries}."""

    def settled():
        found = {name: _deliveries(base, user, hook) for name, hook in hooks.items()}
        rows = [d for ds in found.values() for d in ds]
        if len(rows) == 9 and all(
            d["status"] in DONE or (d["status"] == "RETRYING" and d["attempts"] == attempts) for d in rows
        ):
            return found
        return None

    return wait_for(settled, 60, f"round {attempts} of attempts", interval=0.2)


def test_flapping_slow_and_refusing_receivers_are_retried_on_schedule(
    db_url, database, keyring, behaving_receiver, emulators, tmp_path
):
    # The slow receiver answers after 10 s: an attempt that ends well before is one the timeout (1 s) cut off.
    behaving_receiver.slow_seconds = ANSWER_AFTER
    user = uuid.uuid4()
    integration = Integration.create(user_id=user, provider=Provider.SHOPIFY, name="shop")
    hooks = {}
    for name, url in (
        ("flap", behaving_receiver.url("flap")),
        ("slow", behaving_receiver.url("slow")),
        ("refused", f"http://127.0.0.1:{closed_port()}/hook"),
    ):
        hooks[name] = str(webhooks.create(keyring, integration_id=integration.id, url=url, events=["*"])[0].id)
    env = daemon_env(
        WEBHOOK_TIMEOUT="1",
        WEBHOOK_RETRY_SCHEDULE=",".join(map(str, SCHEDULE)),
        NEXUSCTL_CLOCK_FILE=str(emulators.clock_file),  # the clock the test moves
    )
    base, daemon, _ = start_daemon(env, tmp_path)
    try:
        for n in range(3):
            emitted = api(
                base,
                "POST",
                f"/integrations/{integration.id}/events",
                user=user,
                body={"type": "post.created", "data": {"n": n}},
            )
            assert emitted.status == 202 and emitted.json()["data"]["deliveriesQueued"] == 3, emitted.text

        dues = collections.defaultdict(list)  # delivery id -> the retry times the daemon stored, in order
        for attempts, step in enumerate(SCHEDULE, start=1):
            waiting = [d for ds in _round(base, user, hooks, attempts).values() for d in ds if d["status"] not in DONE]
            assert waiting, f"nothing left to retry after round {attempts}"
            for delivery in waiting:  # the wait the daemon chose: this step of the schedule, within its jitter
                dues[delivery["id"]].append(_time(delivery["nextAttemptAt"]))
                wait = (_time(delivery["nextAttemptAt"]) - _time(delivery["updatedAt"])).total_seconds()
                assert step * (1 - JITTER) <= wait <= step * (1 + JITTER), (
                    f"retry {attempts} due {wait:.2f} s after attempt {attempts}, not {step} s ±{JITTER:.0%}"
                )
            # Time passes until the last of them is due; the daemon's worker picks them up on its own.
            clock.pass_until(emulators, max(_time(d["nextAttemptAt"]) for d in waiting))
        found = _round(base, user, hooks, len(SCHEDULE) + 1)
    finally:
        stop_daemon(daemon)

    def not_early(delivery: dict) -> None:
        """Each retry started once its time had come on the daemon's clock, never before."""
        for attempt, due in zip(delivery["attemptLog"][1:], dues[delivery["id"]], strict=True):
            assert _time(attempt["startedAt"]) >= due, (attempt, due)

    for delivery in found["flap"]:
        log = delivery["attemptLog"]
        assert delivery["status"] == "DELIVERED" and [a["statusCode"] for a in log] == [500, 200], delivery
        assert len(behaving_receiver.arrivals(delivery["id"])) == 2
        not_early(delivery)

    for delivery in found["slow"]:
        log = delivery["attemptLog"]
        assert delivery["status"] == "DELIVERED" and [a["statusCode"] for a in log] == [None, None, 200], delivery
        for attempt in log[:2]:
            assert attempt["error"] == "timed out after 1 s", attempt
            assert attempt["durationMs"] >= 950, attempt  # cut off at the timeout, not before
        assert len(behaving_receiver.arrivals(delivery["id"])) == 3  # the cut-off requests did arrive
        not_early(delivery)

    for delivery in found["refused"]:
        log = delivery["attemptLog"]
        assert delivery["status"] == "FAILED" and delivery["attempts"] == len(SCHEDULE) + 1, delivery
        assert all(a["statusCode"] is None and "cannot connect to" in a["error"] for a in log), log
        assert behaving_receiver.arrivals(delivery["id"]) == []
        not_early(delivery)

    from nexusctl.db.models import OutboxEvent

    failed = [e.data for e in OutboxEvent.select().where(OutboxEvent.type == "webhook.failed")]
    assert sorted(e["deliveryId"] for e in failed) == sorted(d["id"] for d in found["refused"])
    assert all(e["webhookId"] == hooks["refused"] and e["attempts"] == 4 for e in failed), failed
