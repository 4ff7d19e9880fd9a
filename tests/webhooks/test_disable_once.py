"""A receiver that answers 410 to a burst of events, with a real daemon sending: the webhook is disabled once.

Review: `nexusctl events emit --file` of 100 events to one webhook whose receiver answers 410, daemon running:
4 (SQLite) or 6 (PostgreSQL) ``integration.error`` WEBHOOK_DISABLED events for the one webhook, and 33 (44)
requests reached the receiver. Every 410 recorded disabled it again and announced it again, and the deliveries the
worker had claimed ahead (leased, so the disable left them alone) were sent anyway. The events also lacked userId
and provider, and deliveryId was always null.

Now only the transition announces it, and once the worker's record batch disabled the webhook, what it holds of
that webhook unsent ends FAILED as the disable ends the queued ones; a send already in flight finishes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading

from aiohttp import web
from support.daemons import NEXUSCTL
from support.receivers import ThreadedApp
from support.waiting import wait_for

from nexusctl.db.models import OutboxEvent, Webhook, WebhookDelivery
from nexusctl.enums import DeliveryStatus

REASON = "webhook disabled: the receiver answered 410 Gone"


class GoneReceiver(ThreadedApp):
    """``POST /hook``: answers 410 to the first request at once, to the others only after ``release()``; records
    the ``webhook-id`` of each request as it arrives."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.lock = threading.Lock()
        super().__init__(self._make)

    def _make(self) -> web.Application:
        self.gate = asyncio.Event()
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        with self.lock:
            self.ids.append(request.headers["webhook-id"])
            first = len(self.ids) == 1
        if not first:
            await self.gate.wait()
        return web.Response(status=410, text="gone")

    def release(self) -> None:
        self.loop.call_soon_threadsafe(self.gate.set)

    def seen(self) -> list[str]:
        with self.lock:
            return list(self.ids)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


def _nexusctl(env: dict, *args) -> str:
    done = subprocess.run([str(NEXUSCTL), *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _unsettled() -> set[str]:
    rows = WebhookDelivery.select(WebhookDelivery.id).where(WebhookDelivery.status != DeliveryStatus.FAILED)
    return {str(r.id) for r in rows}


def _webhook_and_events(env, integration, sink, tmp_path):
    """A webhook of ``integration`` to ``sink``, created with the CLI, and a file of 100 events for it to emit."""
    hook = json.loads(
        _nexusctl(
            env, "webhooks", "create", "--integration", str(integration.id), "--url", sink.url, "-e", "post.*",
            "--json",
        )
    )["id"]  # fmt: skip
    lines = tmp_path / "events.ndjson"
    lines.write_text(
        "".join(
            json.dumps({"integrationId": str(integration.id), "type": "post.created", "data": {"n": n}}) + "\n"
            for n in range(100)
        )
    )
    return hook, lines


def test_a_burst_to_a_receiver_answering_410_disables_the_webhook_once_and_sends_no_more(
    database, daemons, make_integration, tmp_path
):
    # One send at a time to the endpoint, so that what the receiver holds is what was in flight; a timeout far
    # longer than the test's waits (the receiver holds the second send until the others are settled).
    daemons.env.update(WEBHOOK_TIMEOUT="30", WEBHOOK_CONCURRENCY_PER_ENDPOINT="1")
    env = daemons.env
    sink = GoneReceiver()
    try:
        integration = make_integration()
        hook, lines = _webhook_and_events(env, integration, sink, tmp_path)
        _nexusctl(env, "events", "emit", "--file", str(lines))
        daemons.start()
        wait_for(lambda: not Webhook.get_by_id(hook).is_active, 30, "the first 410 to disable the webhook")
        # Every delivery ends FAILED but the one the receiver holds (in flight when the webhook was disabled, if
        # any): none is left waiting to be sent, none is sent.
        wait_for(lambda: _unsettled() <= set(sink.seen()[1:]), 30, "the deliveries not sent to end FAILED")
        sink.release()
        wait_for(lambda: not _unsettled(), 30, "the send in flight to be recorded")
        seen = sink.seen()
    finally:
        sink.release()
        sink.stop()
    assert 1 <= len(seen) <= 2 and len(set(seen)) == len(seen), seen  # the first, and the one then in flight
    _check_settled(seen, integration, hook, one_at_a_time=True)
    (shown,) = [h for h in json.loads(_nexusctl(env, "webhooks", "list", "--json")) if h["id"] == hook]
    assert shown["isActive"] is False and "410" in shown["disabledReason"]


def test_at_full_speed_every_delivery_is_accounted_for_and_the_disable_announced_once(
    database, daemons, make_integration, tmp_path
):
    """The review's own run: the default concurrency, a receiver answering 410 at once to everything. How many sends
    were in flight when the disable was recorded depends on the machine; each of them failed on its own 410, every
    other delivery failed unsent, and one event announced the disable."""
    env = daemons.env
    sink = GoneReceiver()
    sink.release()
    try:
        integration = make_integration()
        hook, lines = _webhook_and_events(env, integration, sink, tmp_path)
        daemons.start()
        _nexusctl(env, "events", "emit", "--file", str(lines))
        wait_for(lambda: not _unsettled() and len(_all()) == 100, 30, "every delivery to end FAILED")
        seen = sink.seen()
    finally:
        sink.stop()
    assert len(set(seen)) == len(seen), seen  # none sent twice
    print(f"{len(seen)} requests reached the receiver")
    _check_settled(seen, integration, hook, one_at_a_time=False)


def _all() -> list:
    return list(WebhookDelivery.select())


def _check_settled(seen: list, integration, hook: str, one_at_a_time: bool) -> None:
    """Every delivery FAILED with its webhook.failed event: those that reached the receiver on their 410, the others
    unsent with the disable's reason; one WEBHOOK_DISABLED event, about the first 410."""
    rows = {str(r.id): r for r in WebhookDelivery.select()}
    assert len(rows) == 100
    for delivery_id, row in rows.items():
        if delivery_id in seen:
            assert (row.attempts, row.error) == (1, "HTTP 410"), delivery_id
        else:
            assert (row.attempts, row.error) == (0, REASON), delivery_id
    failed = [e.data["deliveryId"] for e in OutboxEvent.select().where(OutboxEvent.type == "webhook.failed")]
    assert sorted(failed) == sorted(rows)  # one each
    errors = [e for e in OutboxEvent.select().where(OutboxEvent.type == "integration.error")]
    disabled = [e for e in errors if e.data.get("code") == "WEBHOOK_DISABLED"]
    assert len(disabled) == 1, [e.data for e in errors]
    assert disabled[0].data == {
        "integrationId": str(integration.id),
        "userId": str(integration.user_id),
        "provider": integration.provider.value,
        "webhookId": hook,
        "code": "WEBHOOK_DISABLED",
        "message": REASON,
        "deliveryId": disabled[0].data["deliveryId"],
    }
    # The delivery whose 410 disabled it: the first to arrive when one at a time was sent.
    assert disabled[0].data["deliveryId"] == seen[0] if one_at_a_time else disabled[0].data["deliveryId"] in seen
