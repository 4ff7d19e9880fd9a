"""A real daemon stopped (SIGTERM) while a receiver still holds a send past the stop's grace.

Review: the send still in flight when the grace ended was dropped without a word: the receiver had the request,
the attempt log never showed it (PENDING, 0 attempts), and on PostgreSQL it was sent again only once its lease ran
out (35 s by default). Now it is cut, recorded as a failed attempt and retried on the schedule, with one warning
line: the next daemon sends it again when it is due, not after the lease.
"""

from __future__ import annotations

import json
import subprocess

from support.daemons import NEXUSCTL
from support.receivers import HoldingReceiver
from support.waiting import wait_for

from nexusctl.db.models import WebhookDelivery
from nexusctl.enums import DeliveryStatus

CUT = "the daemon stopped before the receiver answered"


def _nexusctl(env: dict, *args) -> str:
    done = subprocess.run([str(NEXUSCTL), *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_send_in_flight_when_the_grace_ends_is_recorded_and_retried_on_the_schedule(
    database, daemons, make_integration
):
    # The receiver holds longer than the worker's 10 s stop grace (WEBHOOK_TIMEOUT 30 s), and the lease (65 s) is
    # longer than the wait for the next daemon's send below: only the recorded retry (1 s) can bring it back in time.
    daemons.env.update(WEBHOOK_TIMEOUT="30", WEBHOOK_RETRY_SCHEDULE="1")
    env = daemons.env
    sink = HoldingReceiver()
    try:
        first = daemons.start()
        integration = make_integration()
        hook = json.loads(
            _nexusctl(
                env,
                "webhooks",
                "create",
                "--integration",
                str(integration.id),
                "--url",
                sink.url,
                "-e",
                "post.*",
                "--json",
            )
        )["id"]
        _nexusctl(env, "events", "emit", str(integration.id), "post.created", "--data", "{}")
        wait_for(lambda: sink.total() == 1, 30, "the daemon to send the delivery")
        first.terminate()
        assert first.wait(40) == 0
        daemons.running.remove(first)
        (shown,) = json.loads(_nexusctl(env, "webhooks", "deliveries", hook, "--json"))
        assert shown["status"] == "RETRYING" and shown["attempts"] == 1, shown
        assert [(a["statusCode"], a["error"]) for a in shown["attemptLog"]] == [(None, CUT)], shown
        lines = [line for line in first.log_path.read_text().splitlines() if "when the grace ended" in line]
        assert len(lines) == 1 and "1 send(s) still in flight" in lines[0] and "recorded" in lines[0], lines
        sink.release()
        daemons.start()
        wait_for(
            lambda: WebhookDelivery.get(WebhookDelivery.event == "post.created").status == DeliveryStatus.DELIVERED,
            30,  # well under the 65 s lease
            "the next daemon to send it again on the retry schedule",
        )
    finally:
        sink.stop()
    assert sink.counts() == {shown["id"]: 2}  # the cut send and the retry, the same webhook-id
    (shown,) = json.loads(_nexusctl(env, "webhooks", "deliveries", hook, "--json"))
    assert [(a["statusCode"], a["error"]) for a in shown["attemptLog"]] == [(None, CUT), (200, None)], shown
