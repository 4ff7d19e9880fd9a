"""Receivers that misbehave: retries happen when the schedule says, within its jitter.

One daemon, WEBHOOK_TIMEOUT=1 and WEBHOOK_RETRY_SCHEDULE=1,6,2 (seconds, each
±20%: distinct enough that a retry taken from the wrong step of the schedule
falls outside the bounds), three webhooks of one integration:

- flapping (500, then 200): two attempts, DELIVERED;
- slow (10 s, beyond the timeout, on the first two attempts): two timed-out
  attempts of about 1 s each (ended long before the answer), then DELIVERED
  on the third;
- refusing connections (a closed port): four attempts, then FAILED with a
  ``webhook.failed`` event.

The gap between the end of attempt k and the start of attempt k+1, read from
the attempt log the API returns, must lie within schedule[k-1] ± 20%, plus
the worker's poll interval (1 s) and some scheduling slack on the late side.
"""

from __future__ import annotations

import datetime as dt
import uuid

from procs import api, daemon_env, start_daemon
from support.daemons import stop as stop_daemon
from support.ports import closed_port
from support.waiting import wait_for

from nexusctl.core import webhooks
from nexusctl.db.models import Integration
from nexusctl.enums import Provider

SCHEDULE = (1, 6, 2)
JITTER = 0.2
POLL = 1.0  # the delivery worker's safety-net poll: a retry that fell due is claimed within it
SLACK = 1.5  # recording, claiming and a loaded machine
ANSWER_AFTER = 10  # seconds the slow receiver takes to answer its first two requests


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _gaps(attempt_log: list[dict]) -> list[float]:
    """Seconds from the end of each attempt to the start of the next."""
    gaps = []
    for before, after in zip(attempt_log, attempt_log[1:], strict=False):
        ended = _time(before["startedAt"]) + dt.timedelta(milliseconds=before["durationMs"])
        gaps.append((_time(after["startedAt"]) - ended).total_seconds())
    return gaps


def _check_schedule(attempt_log: list[dict], what: str) -> None:
    for step, gap in enumerate(_gaps(attempt_log)):
        base = SCHEDULE[step]
        low, high = base * (1 - JITTER) - 0.05, base * (1 + JITTER) + POLL + SLACK
        assert low <= gap <= high, (
            f"{what}: retry {step + 1} came {gap:.2f} s after the attempt, not in "
            f"[{low:.2f}, {high:.2f}] (schedule {SCHEDULE}, ±{JITTER:.0%})"
        )


def _deliveries(base: str, user, hook_id: str) -> list[dict]:
    response = api(base, "GET", f"/integrations/webhooks/{hook_id}/deliveries", user=user)
    assert response.status == 200, response.text
    return response.json()["data"]


def test_flapping_slow_and_refusing_receivers_are_retried_on_schedule(
    db_url, database, keyring, behaving_receiver, tmp_path
):
    # The slow receiver answers after 10 s: an attempt that ends well before is one the timeout (1 s) cut off,
    # however loaded the machine (no tight bound on how long the cut-off itself took).
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
    env = daemon_env(WEBHOOK_TIMEOUT="1", WEBHOOK_RETRY_SCHEDULE=",".join(map(str, SCHEDULE)))
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

        def settled():
            found = {name: _deliveries(base, user, hook) for name, hook in hooks.items()}
            done = all(d["status"] in ("DELIVERED", "FAILED") for rows in found.values() for d in rows)
            return found if done and all(len(rows) == 3 for rows in found.values()) else None

        # The refused ones take longest: 1 + 6 + 2 s of waits (up to +20%), four attempts.
        found = wait_for(settled, 40, "every delivery to be DELIVERED or FAILED", interval=0.5)
    finally:
        stop_daemon(daemon)

    for delivery in found["flap"]:
        log = delivery["attemptLog"]
        assert delivery["status"] == "DELIVERED" and [a["statusCode"] for a in log] == [500, 200], delivery
        _check_schedule(log, "flapping receiver")
        assert len(behaving_receiver.arrivals(delivery["id"])) == 2

    for delivery in found["slow"]:
        log = delivery["attemptLog"]
        assert delivery["status"] == "DELIVERED" and [a["statusCode"] for a in log] == [None, None, 200], delivery
        for attempt in log[:2]:
            assert attempt["error"] == "timed out after 1 s", attempt
            assert 950 <= attempt["durationMs"] < ANSWER_AFTER * 1000, attempt  # cut off at the timeout
        _check_schedule(log, "slow receiver")
        assert len(behaving_receiver.arrivals(delivery["id"])) == 3  # the cut-off requests did arrive

    for delivery in found["refused"]:
        log = delivery["attemptLog"]
        assert delivery["status"] == "FAILED" and delivery["attempts"] == len(SCHEDULE) + 1, delivery
        assert all(a["statusCode"] is None and "ClientConnectorError" in a["error"] for a in log), log
        _check_schedule(log, "refusing receiver")
        assert behaving_receiver.arrivals(delivery["id"]) == []

    from nexusctl.db.models import OutboxEvent

    failed = [e.data for e in OutboxEvent.select().where(OutboxEvent.type == "webhook.failed")]
    assert sorted(e["deliveryId"] for e in failed) == sorted(d["id"] for d in found["refused"])
    assert all(e["webhookId"] == hooks["refused"] and e["attempts"] == 4 for e in failed), failed
