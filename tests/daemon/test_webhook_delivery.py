"""Webhooks end to end in the app: create, emit, the worker delivers, receivers verify.

A real local receiver (aiohttp on 127.0.0.1, allowed by WEBHOOK_ALLOWED_NETWORKS)
checks every request with the reference ``standardwebhooks`` library, and can be
told to fail, answer 410, ask for Retry-After or redirect.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import time
import uuid

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook as Verifier
from support.tokens import auth_header, configured_secret

from nexusctl import clock as product_clock
from nexusctl import config
from nexusctl.daemon import delivery
from nexusctl.daemon.app import WORKER, create_app
from nexusctl.daemon.dbexec import DbExecutor
from nexusctl.db.models import OutboxEvent, WebhookAttempt, WebhookDelivery
from nexusctl.enums import DeliveryStatus, Provider

OWNER = uuid.UUID("6f1c2a9e-0d4b-4f7e-9a51-2b8c3d4e5f60")


def auth(sub=OWNER, **claims):
    return auth_header(sub, ttl=300, secret=configured_secret(), **claims)


class Receiver:
    """Records what arrives; answers from a script of statuses (then 200)."""

    def __init__(self):
        self.secrets: list[str] = []
        self.received: list[dict] = []
        self.script: list[tuple[int, dict]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = [s for s in self.secrets if _verifies(s, body, headers)]
        self.received.append({"headers": headers, "body": body, "verified": verified})
        self.arrived.set()
        status, extra = self.script.pop(0) if self.script else (200, {})
        return web.Response(status=status, text="ok" if status < 300 else "nope", headers=extra)

    async def wait_for(self, count: int, timeout: float = 15):
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            self.arrived.clear()
            left = deadline - time.monotonic()
            assert left > 0, f"only {len(self.received)} of {count} requests arrived"
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except asyncio.TimeoutError:
                pass


def _verifies(secret: str, body: bytes, headers: dict) -> bool:
    try:
        Verifier(secret).verify(body, headers)
        return True
    except Exception:  # noqa: BLE001 - the library raises its own error types
        return False


@pytest.fixture
async def env(db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration, request):
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    app.router.add_post("/moved", lambda r: web.HTTPFound("http://127.0.0.1:9/elsewhere"))
    server = await aiohttp_server(app)
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", getattr(request, "param", "1,1"))
    api = await aiohttp_client(create_app(config.load()))
    integration = make_integration(user_id=OWNER, provider=Provider.SHOPIFY)
    return api, receiver, f"http://127.0.0.1:{server.port}", integration


async def _create(api, integration, url, events=("post.*",)):
    answer = await api.post(
        "/integrations/webhooks",
        json={"integrationId": str(integration.id), "url": url, "events": list(events)},
        headers=auth(),
    )
    body = await answer.json()
    assert answer.status == 201, body
    return body["data"]


async def _emit(api, integration, event_type="post.created", data=None):
    answer = await api.post(
        f"/integrations/{integration.id}/events", json={"type": event_type, "data": data or {}}, headers=auth()
    )
    body = await answer.json()
    assert answer.status == 202, body
    return body["data"]


async def _settled(delivery_filter, timeout=15.0):
    """Wait until the worker has finished with the matching deliveries (by polling the database)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(WebhookDelivery.select().where(delivery_filter))
        if rows and all(r.status in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED) for r in rows):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"not settled: {[(r.status, r.attempts) for r in rows]}")


async def test_emit_delivers_a_signed_payload_the_reference_library_verifies(env):
    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/hook")
    assert hook["secret"].startswith("whsec_")
    receiver.secrets = [hook["secret"]]
    emitted = await _emit(api, integration, "post.created", {"mediaId": "m1"})
    assert emitted["deliveriesQueued"] == 1
    await receiver.wait_for(1)
    got = receiver.received[0]
    assert got["verified"] == [hook["secret"]]
    payload = json.loads(got["body"])
    assert payload["type"] == "post.created" and payload["data"]["mediaId"] == "m1"
    assert payload["data"]["integrationId"] == str(integration.id) and payload["data"]["provider"] == "SHOPIFY"
    (row,) = await _settled(WebhookDelivery.webhook == uuid.UUID(hook["id"]))
    assert row.status == DeliveryStatus.DELIVERED and row.attempts == 1 and row.delivered_at
    assert got["headers"]["webhook-id"] == str(row.id)
    log = await (await api.get(f"/integrations/webhooks/{hook['id']}/deliveries", headers=auth())).json()
    assert log["data"][0]["attemptLog"][0]["statusCode"] == 200
    shown = await (await api.get(f"/integrations/webhooks/{hook['id']}", headers=auth())).text()
    assert hook["secret"] not in shown


async def test_wildcards_pick_the_webhooks(env):
    api, receiver, base, integration = env
    exact = await _create(api, integration, f"{base}/hook", ["post.created"])
    family = await _create(api, integration, f"{base}/hook", ["post.*"])
    everything = await _create(api, integration, f"{base}/hook", ["*"])
    other = await _create(api, integration, f"{base}/hook", ["review.created"])
    assert (await _emit(api, integration, "post.created"))["deliveriesQueued"] == 3
    assert (await _emit(api, integration, "post.deleted"))["deliveriesQueued"] == 2
    counts = {
        h["id"]: WebhookDelivery.select().where(WebhookDelivery.webhook == uuid.UUID(h["id"])).count()
        for h in (exact, family, everything, other)
    }
    assert counts == {exact["id"]: 1, family["id"]: 2, everything["id"]: 2, other["id"]: 0}


async def test_failures_retry_on_the_schedule_then_fail_with_an_event(env):
    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/hook")
    receiver.secrets = [hook["secret"]]
    receiver.script = [(500, {}), (502, {}), (500, {})]  # schedule "1,1": three attempts in all
    await _emit(api, integration)
    (row,) = await _settled(WebhookDelivery.webhook == uuid.UUID(hook["id"]))
    assert row.status == DeliveryStatus.FAILED and row.attempts == 3 and row.error == "HTTP 500"
    ids = {r["headers"]["webhook-id"] for r in receiver.received}
    assert ids == {str(row.id)} and all(r["verified"] for r in receiver.received)  # same id on every retry
    stamps = [int(r["headers"]["webhook-timestamp"]) for r in receiver.received]
    assert stamps == sorted(stamps)
    assert OutboxEvent.select().where(OutboxEvent.type == "webhook.failed").count() == 1


async def test_recovers_after_failures(env):
    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/hook")
    receiver.script = [(503, {})]
    await _emit(api, integration)
    (row,) = await _settled(WebhookDelivery.webhook == uuid.UUID(hook["id"]))
    assert row.status == DeliveryStatus.DELIVERED and row.attempts == 2
    assert OutboxEvent.select().where(OutboxEvent.type == "webhook.delivered").count() == 1


async def test_a_receivers_cookie_never_rides_along_on_later_deliveries(env):
    # Another user's webhook may live on the same host: what one receiver sets is not sent to anyone.
    api, receiver, base, integration = env
    # By name: aiohttp's default jar ignores cookies of IP-address hosts, so 127.0.0.1 would not show it.
    await _create(api, integration, base.replace("127.0.0.1", "localhost") + "/hook")
    receiver.script = [(200, {"Set-Cookie": "session=theirs; Path=/"})]
    await _emit(api, integration)
    await receiver.wait_for(1)
    await _emit(api, integration)
    await receiver.wait_for(2)
    assert [r["headers"].get("cookie") for r in receiver.received] == [None, None]


async def test_410_disables_the_webhook(env):
    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/hook")
    receiver.script = [(410, {})]
    await _emit(api, integration)
    (row,) = await _settled(WebhookDelivery.webhook == uuid.UUID(hook["id"]))
    shown = await _shown(api, hook)
    assert row.status == DeliveryStatus.FAILED and row.attempts == 1
    assert shown["isActive"] is False and "410" in shown["disabledReason"]
    errors = OutboxEvent.select().where(OutboxEvent.type == "integration.error")
    # The health job may also report the integration degraded (INTEGRATION_DEGRADED): not this event.
    assert len([e for e in errors if not e.data.get("code", "").startswith("INTEGRATION_")]) == 1
    # A delivery that ends FAILED says so, whatever made it fail.
    (failed,) = OutboxEvent.select().where(OutboxEvent.type == "webhook.failed")
    assert failed.data["deliveryId"] == str(row.id) and failed.data["error"] == "HTTP 410"
    assert failed.data["attempts"] == 1 and len(receiver.received) == 1


async def test_a_webhook_enabled_again_after_a_410_is_sent_to_at_once(env):
    """Review: a webhook disabled by a 410 and enabled again got nothing for ~33 s (the lease's length): the worker
    kept it as "disabled by my record" for that long, for a claim under way at the disable, and each claim in that
    time brought its delivery only to give it back. A claim started after the disable read it active: enabled again,
    so its deliveries are sent at once, the HTTP route's and the CLI's replay alike."""
    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/hook")
    receiver.script = [(410, {})]
    await _emit(api, integration)
    (gone,) = await _settled(WebhookDelivery.webhook == uuid.UUID(hook["id"]))
    assert gone.status == DeliveryStatus.FAILED
    answer = await api.patch(f"/integrations/webhooks/{hook['id']}", json={"isActive": True}, headers=auth())
    assert answer.status == 200, await answer.text()
    await _emit(api, integration)
    began = time.monotonic()
    (row,) = await _settled((WebhookDelivery.webhook == gone.webhook_id) & (WebhookDelivery.id != gone.id), timeout=10)
    assert row.status == DeliveryStatus.DELIVERED and row.attempts == 1
    assert time.monotonic() - began < 5  # the worker's poll is a second; before, 30 s and more
    assert len(receiver.received) == 2


@pytest.mark.parametrize("env", [",".join(["86400"] * 8)], indirect=True)  # a retry a day: none ends FAILED alone
async def test_the_five_day_disable_emits_webhook_failed_for_each_delivery_it_fails(env, tmp_path, monkeypatch):
    """A receiver failing for 5 days without a success: its webhook is disabled, and every delivery still queued
    ends FAILED with a ``webhook.failed`` event, as a delivery failed by its own attempts or a 410 has (before,
    they ended FAILED silently)."""
    from support import clock as shared_clock

    advance = shared_clock.own_file(monkeypatch, tmp_path / "clock-offset")
    monkeypatch.setattr(delivery.attempts, "DISABLE_BATCH", 3)  # the 4 are failed in two statements
    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/hook", ["*"])
    hook_id = uuid.UUID(hook["id"])
    receiver.script = [(500, {})] * 20
    for n in range(4):
        await _emit(api, integration, f"post.n{n}")
    await receiver.wait_for(4)
    await _until(lambda: _statuses(hook_id) == {DeliveryStatus.RETRYING: 4})
    advance(5 * 86400 + 3 * 3600)  # every retry due (a day +-20%), 5 days after the first failure
    rows = await _settled(WebhookDelivery.webhook == hook_id, timeout=30)
    shown = await _shown(api, hook)
    assert shown["isActive"] is False and "5 days" in shown["disabledReason"], shown
    assert {r.status for r in rows} == {DeliveryStatus.FAILED}
    assert {r.error for r in rows} == {"webhook disabled: failing for 5 days without a successful delivery"}
    failed = {e.data["deliveryId"]: e.data for e in OutboxEvent.select().where(OutboxEvent.type == "webhook.failed")}
    assert set(failed) == {str(r.id) for r in rows}, failed  # one each, none missing
    for row in rows:
        assert failed[str(row.id)] == {
            "webhookId": hook["id"],
            "deliveryId": str(row.id),
            "event": row.event,
            "attempts": row.attempts,
            "error": row.error,
        }


@pytest.mark.parametrize("env", [",".join(["86400"] * 8)], indirect=True)  # a retry a day: none ends FAILED alone
async def test_a_patch_that_repeats_is_active_true_keeps_the_failure_window(env, tmp_path, monkeypatch):
    """A client that sends the whole webhook on every PATCH (isActive: true on one already active) does not start
    its failure window again: its receiver failing for 5 days since the first failure still disables it. Before,
    every such PATCH cleared failing_since, and a webhook whose endpoint never answered stayed on forever."""
    from support import clock as shared_clock

    advance = shared_clock.own_file(monkeypatch, tmp_path / "clock-offset")
    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/hook", ["*"])
    hook_id = uuid.UUID(hook["id"])
    receiver.script = [(500, {})] * 20
    await _emit(api, integration, "post.created")
    await receiver.wait_for(1)
    await _until(lambda: _statuses(hook_id) == {DeliveryStatus.RETRYING: 1})
    first_failure = (await _shown(api, hook))["failingSince"]  # its first failure's record, the window's start
    (first_attempt,) = WebhookAttempt.select().where(WebhookAttempt.delivery == WebhookDelivery.get().id)
    assert first_failure is not None
    assert shared_clock.aware(first_attempt.started_at) <= shared_clock.aware(first_failure) <= product_clock.now()
    advance(86400 + 5 * 3600)  # its first retry due (a day +-20%): it fails too
    await receiver.wait_for(2)
    await _until(lambda: [r.attempts for r in WebhookDelivery.select()] == [2])
    assert (await _shown(api, hook))["failingSince"] == first_failure  # failing since the first, not the last
    whole = {"url": hook["url"], "events": hook["events"], "isActive": True, "metadata": {"team": "ops"}}
    answer = await api.patch(f"/integrations/webhooks/{hook['id']}", json=whole, headers=auth())
    assert answer.status == 200, await answer.text()
    assert (await answer.json())["data"]["failingSince"] == first_failure
    advance(4 * 86400)  # 5 days and 5 hours since the first failure: the next retry is due, and fails
    await _until(lambda: [r.attempts for r in WebhookDelivery.select()] == [3])
    (row,) = WebhookDelivery.select()  # its status written with its attempt count, by the same record
    shown = await _shown(api, hook)
    assert shown["isActive"] is False and "5 days" in shown["disabledReason"], shown
    assert row.status == DeliveryStatus.FAILED and row.attempts == 3, (row.status, row.attempts)
    assert shown["failingSince"] == first_failure  # disabled, it still says since when it failed
    # Switched on again for real: a fresh window, so its next failure is a retry, not at once a disable.
    answer = await api.patch(f"/integrations/webhooks/{hook['id']}", json=whole, headers=auth())
    assert answer.status == 200, await answer.text()
    assert (await answer.json())["data"]["failingSince"] is None
    await _emit(api, integration, "post.created")
    await _until(lambda: {r.attempts for r in WebhookDelivery.select().where(WebhookDelivery.id != row.id)} == {1})
    shown = await _shown(api, hook)
    assert shown["isActive"] is True and _statuses(hook_id) == {DeliveryStatus.FAILED: 1, DeliveryStatus.RETRYING: 1}
    assert shared_clock.aware(shown["failingSince"]) > shared_clock.aware(first_failure)  # the new window's first
    listed = await api.get(f"/integrations/webhooks?integrationId={integration.id}", headers=auth())
    assert (await listed.json())["data"] == [shown]  # the list's rows (read column by column) say the same
    # A success ends the window: the retry answered 2xx, the webhook is not failing.
    receiver.script = []
    advance(86400 + 5 * 3600)
    await _until(lambda: _statuses(hook_id) == {DeliveryStatus.FAILED: 1, DeliveryStatus.DELIVERED: 1})
    assert (await _shown(api, hook))["failingSince"] is None


async def _shown(api, hook: dict) -> dict:
    """The webhook as GET /integrations/webhooks/:id answers it."""
    answer = await api.get(f"/integrations/webhooks/{hook['id']}", headers=auth())
    assert answer.status == 200, await answer.text()
    return (await answer.json())["data"]


def _statuses(hook_id) -> dict:
    rows = WebhookDelivery.select(WebhookDelivery.status).where(WebhookDelivery.webhook == hook_id)
    return dict(collections.Counter(r.status for r in rows))


@pytest.mark.parametrize("env", ["1,2"], indirect=True)
@pytest.mark.parametrize("retry_after", ["0", "1"])
async def test_throttling_counts_against_the_schedule_and_ends_failed(env, retry_after):
    """A receiver answering 429 forever gets the schedule's attempts, each after at least its step."""
    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/hook")
    receiver.script = [(429, {"Retry-After": retry_after})] * 3 + [(200, {})] * 5  # a 4th try would succeed
    await _emit(api, integration)
    (row,) = await _settled(WebhookDelivery.webhook == uuid.UUID(hook["id"]))
    assert row.status == DeliveryStatus.FAILED and row.attempts == 3 and row.error == "HTTP 429"
    assert len(receiver.received) == 3
    started = [
        a.started_at
        for a in WebhookAttempt.select().where(WebhookAttempt.delivery == row.id).order_by(WebhookAttempt.number)
    ]
    waits = [(later - earlier).total_seconds() for earlier, later in zip(started, started[1:])]
    assert waits[0] >= 1 and waits[1] >= 2, waits  # the schedule's steps, whatever Retry-After said
    (failed,) = OutboxEvent.select().where(OutboxEvent.type == "webhook.failed")
    assert failed.data["deliveryId"] == str(row.id) and failed.data["attempts"] == 3


async def test_retry_after_is_honoured(env):
    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/hook")
    receiver.script = [(429, {"Retry-After": "2"})]
    await _emit(api, integration)
    await receiver.wait_for(1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        row = WebhookDelivery.get(WebhookDelivery.webhook == uuid.UUID(hook["id"]))
        if row.status == DeliveryStatus.RETRYING:
            break
        await asyncio.sleep(0.05)
    wait = (row.next_attempt_at - row.updated_at).total_seconds()
    assert 1.9 <= wait <= 2.1  # the receiver's 2 s, not the schedule's 1 s ± 20%


@pytest.mark.parametrize(
    "ahead, date_in, low, high",
    [
        # A date 10 s ahead of the product's clock: honoured up to twice the schedule's 1 s step (before, a date
        # was ignored and the schedule's 1 s +20% applied).
        (0, 10, 1.9, 2.1),
        # The product's clock an hour ahead of the system's, the date half an hour behind it: past, so 0 (the
        # schedule's step alone). Counted from the system's clock it would be 30 minutes: the 2 s cap.
        (3600, -1800, 1.0, 1.25),
    ],
)
async def test_retry_after_as_an_http_date_counts_from_the_product_clock(
    env, tmp_path, monkeypatch, ahead, date_in, low, high
):
    from email.utils import format_datetime

    from support import clock as shared_clock

    from nexusctl import clock

    offset = tmp_path / "clock-offset"
    offset.write_text(str(ahead))
    shared_clock.use_file(monkeypatch, offset)  # the worker runs in this process: it reads the same file
    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/hook")
    date = format_datetime(clock.now().replace(microsecond=0) + dt.timedelta(seconds=date_in), usegmt=True)
    receiver.script = [(503, {"Retry-After": date})]
    await _emit(api, integration)
    await receiver.wait_for(1)
    row = await _left_retrying(uuid.UUID(hook["id"]))
    wait = (row.next_attempt_at - row.updated_at).total_seconds()
    assert low <= wait <= high, (date, wait)


async def test_redirects_are_failures_and_not_followed(env):
    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/moved")
    await _emit(api, integration)
    (row,) = await _settled(WebhookDelivery.webhook == uuid.UUID(hook["id"]))
    assert row.status == DeliveryStatus.FAILED and row.error == "HTTP 302"


async def test_rotation_signs_with_both_secrets(env):
    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/hook")
    rotated = await (await api.post(f"/integrations/webhooks/{hook['id']}/rotate-secret", headers=auth())).json()
    new = rotated["data"]["secret"]
    assert new.startswith("whsec_") and new != hook["secret"]
    receiver.secrets = [hook["secret"], new]
    await _emit(api, integration)
    await receiver.wait_for(1)
    got = receiver.received[0]
    assert sorted(got["verified"]) == sorted([hook["secret"], new])  # either secret verifies during the overlap
    assert len(got["headers"]["webhook-signature"].split(" ")) == 2


async def test_a_second_rotation_ends_the_first_secret_at_once_as_readme_says(env):
    """Found by a reviewer: README said an old secret "keeps signing for 24 h" after a rotation; a second rotation
    within those 24 h ends it at once (deliveries carry the newest secret's signature and the one before it's).
    README now says so; this holds it to what deliveries carry."""
    from pathlib import Path

    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/hook")
    secrets = [hook["secret"]]
    for _ in range(2):
        rotated = await (await api.post(f"/integrations/webhooks/{hook['id']}/rotate-secret", headers=auth())).json()
        secrets.append(rotated["data"]["secret"])
    receiver.secrets = secrets
    await _emit(api, integration)
    await receiver.wait_for(1)
    got = receiver.received[0]
    assert sorted(got["verified"]) == sorted(secrets[1:])  # the first secret no longer signs, at once
    assert len(got["headers"]["webhook-signature"].split(" ")) == 2
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (row,) = [line for line in readme.splitlines() if "| `/integrations/webhooks/:webhookId/rotate-secret` |" in line]
    assert "the newest secret's and the one before it's" in row and "Rotating again within those 24 h ends it" in row
    assert "keeps signing (second signature) for 24 h." not in readme


async def test_test_event_and_redeliver(env):
    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/hook", ["review.created"])
    answer = await api.post(f"/integrations/webhooks/{hook['id']}/test", headers=auth())
    assert answer.status == 202, await answer.text()
    (row,) = await _settled(WebhookDelivery.webhook == uuid.UUID(hook["id"]))
    assert row.event == "webhook.test" and row.status == DeliveryStatus.DELIVERED
    again = await api.post(f"/integrations/webhooks/deliveries/{row.id}/redeliver", headers=auth())
    assert again.status == 202
    await receiver.wait_for(2)
    assert receiver.received[1]["headers"]["webhook-id"] == str(row.id)


@pytest.mark.parametrize("env", ["3600"], indirect=True)
async def test_a_switched_off_webhooks_backlog_is_parked_and_due_at_once_when_it_is_on_again(env):
    """An operator whose endpoint fails switches its webhook off, mends the endpoint and switches it on: the
    deliveries waiting for their next try (an hour off) are parked while it is off (still queued, no next attempt:
    no claim reads them) and sent at once when it is on again."""
    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/hook")
    receiver.script = [(500, {})] * 3
    for n in range(3):
        await _emit(api, integration, "post.created", {"n": n})
    await receiver.wait_for(3)
    mine = WebhookDelivery.webhook == uuid.UUID(hook["id"])
    await _until(lambda: all(r.status == DeliveryStatus.RETRYING for r in WebhookDelivery.select().where(mine)))

    async def listed():
        answer = await api.get(f"/integrations/webhooks/{hook['id']}/deliveries", headers=auth())
        assert answer.status == 200, await answer.text()
        return (await answer.json())["data"]

    before = await listed()
    assert all(d["status"] == "RETRYING" and d["nextAttemptAt"] for d in before), [
        (d["status"], d.get("nextAttemptAt")) for d in before
    ]
    off = await api.patch(f"/integrations/webhooks/{hook['id']}", json={"isActive": False}, headers=auth())
    assert off.status == 200, await off.text()
    assert [(d["status"], d["nextAttemptAt"]) for d in await listed()] == [("RETRYING", None)] * 3
    on = await api.patch(f"/integrations/webhooks/{hook['id']}", json={"isActive": True}, headers=auth())
    assert on.status == 200, await on.text()
    rows = await _settled(mine)
    assert [(r.status, r.attempts) for r in rows] == [(DeliveryStatus.DELIVERED, 2)] * 3
    assert len(receiver.received) == 6


async def test_test_event_to_an_inactive_webhook_is_refused(env):
    api, receiver, base, integration = env
    hook = await _create(api, integration, f"{base}/hook")
    answer = await api.patch(f"/integrations/webhooks/{hook['id']}", json={"isActive": False}, headers=auth())
    assert answer.status == 200, await answer.text()
    refused = await api.post(f"/integrations/webhooks/{hook['id']}/test", headers=auth())
    body = await refused.json()
    assert refused.status == 409 and body["error"]["code"] == "WEBHOOK_INACTIVE", body
    assert "inactive" in body["error"]["message"]
    assert WebhookDelivery.select().where(WebhookDelivery.webhook == uuid.UUID(hook["id"])).count() == 0


async def test_ssrf_and_bad_input_are_refused(env):
    api, _, _, integration = env
    for url, mention in (
        ("http://169.254.169.254/latest", "metadata"),
        ("http://10.0.0.5/x", "private"),
        ("ftp://x.example/", "http"),
        ("http://0x7f.0.0.1/", "non-canonical"),
    ):
        answer = await api.post(
            "/integrations/webhooks",
            json={"integrationId": str(integration.id), "url": url, "events": ["*"]},
            headers=auth(),
        )
        payload = await answer.json()
        assert answer.status == 400 and payload["error"]["code"] == "VALIDATION_ERROR", (url, payload)
        assert mention in payload["error"]["message"], payload
    bad_events = await api.post(
        "/integrations/webhooks",
        json={"integrationId": str(integration.id), "url": "http://127.0.0.1:9/x", "events": ["Bad Name"]},
        headers=auth(),
    )
    assert bad_events.status == 400 and "events" in (await bad_events.json())["error"]["message"]


async def test_someone_elses_webhook_does_not_exist_for_you(env):
    api, _, base, integration = env
    hook = await _create(api, integration, f"{base}/hook")
    stranger = auth(sub=uuid.uuid4())
    for method, path in (
        ("GET", f"/integrations/webhooks/{hook['id']}"),
        ("DELETE", f"/integrations/webhooks/{hook['id']}"),
        ("GET", f"/integrations/webhooks/{hook['id']}/deliveries"),
        ("POST", f"/integrations/webhooks/{hook['id']}/rotate-secret"),
    ):
        answer = await api.request(method, path, headers=stranger)
        assert answer.status == 404 and (await answer.json())["error"]["code"] == "WEBHOOK_NOT_FOUND"
    listed = await (await api.get("/integrations/webhooks", headers=stranger)).json()
    assert listed["data"] == []


@pytest.fixture
async def two_receivers(db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration, request):
    """A slow receiver and a fast one, with few sending slots (6 in all, 2 per endpoint)."""
    seen = {"slow": [], "fast": []}
    answer_slow = asyncio.Event()  # the slow receiver answers once the test says so (set at the end in any case)

    async def slow(request):
        await request.read()
        seen["slow"].append(time.monotonic())
        await answer_slow.wait()
        return web.Response(text="ok")

    async def fast(request):
        await request.read()
        seen["fast"].append(time.monotonic())
        return web.Response(text="ok")

    async def hang(request):
        await asyncio.sleep(10)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_post("/slow", slow)
    app.router.add_post("/fast", fast)
    app.router.add_post("/hang", hang)
    server = await aiohttp_server(app)
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("WEBHOOK_CONCURRENCY", "6")
    monkeypatch.setenv("WEBHOOK_CONCURRENCY_PER_ENDPOINT", "2")
    monkeypatch.setenv("WEBHOOK_TIMEOUT", str(getattr(request, "param", 3)))
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "60")
    api = await aiohttp_client(create_app(config.load()))
    try:
        yield api, f"http://127.0.0.1:{server.port}", make_integration(user_id=OWNER), seen, answer_slow
    finally:
        answer_slow.set()


@pytest.mark.parametrize("two_receivers", [30], indirect=True)  # the slow requests outlast the test's wait
async def test_one_slow_receiver_does_not_starve_the_others(two_receivers):
    api, base, integration, seen, answer_slow = two_receivers
    slow = await _create(api, integration, f"{base}/slow", ["slow.*"])
    fast = await _create(api, integration, f"{base}/fast", ["fast.*"])
    for _ in range(8):  # the slow ones first: without a per-endpoint cap they would take every slot
        await _emit(api, integration, "slow.event")
    for _ in range(8):
        await _emit(api, integration, "fast.event")
    # The slow receiver has not answered yet (it answers when told): every fast delivery still got through, so
    # the slow endpoint held only its 2 slots, however long anything took on this machine.
    await _settled(WebhookDelivery.webhook == uuid.UUID(fast["id"]), timeout=20)
    slow_rows = WebhookDelivery.select().where(WebhookDelivery.webhook == uuid.UUID(slow["id"]))
    assert len(seen["fast"]) == 8 and len(seen["slow"]) == 2, seen
    assert not [r for r in slow_rows if r.status == DeliveryStatus.DELIVERED]
    answer_slow.set()
    await _settled(WebhookDelivery.webhook == uuid.UUID(slow["id"]), timeout=20)
    assert len(seen["slow"]) == 8


@pytest.mark.parametrize("two_receivers", [0.5], indirect=True)
async def test_a_receiver_that_never_answers_times_out(two_receivers):
    api, base, integration, _, _ = two_receivers
    hook = await _create(api, integration, f"{base}/hang", ["*"])
    await _emit(api, integration, "post.created")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = WebhookDelivery.get(WebhookDelivery.webhook == uuid.UUID(hook["id"]))
        if row.status == DeliveryStatus.RETRYING:
            break
        await asyncio.sleep(0.05)
    assert row.status == DeliveryStatus.RETRYING and row.error == "timed out after 0.5 s"
    log = await (await api.get(f"/integrations/webhooks/{hook['id']}/deliveries", headers=auth())).json()
    attempt = log["data"][0]["attemptLog"][0]
    assert attempt["statusCode"] is None and 450 <= attempt["durationMs"] < 10_000  # cut off, not the 10 s answer


async def test_concurrent_emits_share_commits_and_each_answer_is_durable(env):
    from nexusctl.daemon import emits
    from nexusctl.daemon.app import DB

    api, receiver, base, integration = env
    await _create(api, integration, f"{base}/hook", ["*"])
    answers = await asyncio.gather(*(_emit(api, integration, "post.created", {"i": i}) for i in range(30)))
    assert [a["deliveriesQueued"] for a in answers] == [1] * 30
    # Every answer names an event that is committed (a 202 means durable), each with its own delivery.
    ids = {uuid.UUID(a["id"]) for a in answers}
    assert {e.id for e in OutboxEvent.select().where(OutboxEvent.type == "post.created")} == ids
    assert WebhookDelivery.select().where(WebhookDelivery.event == "post.created").count() == 30
    assert emits.batcher(api.server.app[DB]).batches < 30  # they shared transactions
    await receiver.wait_for(30)


async def test_a_batch_of_events_answers_each_in_order(env):
    api, receiver, base, integration = env
    await _create(api, integration, f"{base}/hook", ["post.*"])
    strangers = await _create_for_stranger(api, env)
    batch = [
        {"integrationId": str(integration.id), "type": "post.created", "data": {"n": 1}},
        {"integrationId": str(integration.id), "type": "integration.connected"},  # reserved
        {"integrationId": strangers, "type": "post.created"},  # not the caller's
        {"integrationId": str(integration.id), "type": "post.deleted", "extra": 1},  # unknown field
        {"integrationId": str(integration.id), "type": "review.created"},
    ]  # no matching webhook
    answer = await api.post("/integrations/events", json={"events": batch}, headers=auth())
    body = await answer.json()
    assert answer.status == 202, body
    results = body["data"]["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert body["data"]["accepted"] == 2 and body["data"]["refused"] == 3
    assert results[0]["deliveriesQueued"] == 1 and results[4]["deliveriesQueued"] == 0
    assert [results[i]["error"]["code"] for i in (1, 2, 3)] == [
        "VALIDATION_ERROR",
        "INTEGRATION_NOT_FOUND",
        "VALIDATION_ERROR",
    ]
    assert OutboxEvent.select().where(OutboxEvent.type.in_(["post.created", "review.created"])).count() == 2
    await receiver.wait_for(1)


async def test_emits_while_a_webhook_is_created_and_deleted_are_all_accepted(env):
    """Found by a reviewer on PostgreSQL: emits on both routes while another caller creates and deletes a webhook
    of the same integration got 500s (a webhook deleted between the emit's read and its write broke the
    deliveries' foreign key): 31 of 2,560. Each emit is a 202; the deleted webhooks keep no delivery."""
    from nexusctl.daemon.app import DB
    from nexusctl.db.database import database_proxy

    api, _receiver, base, integration = env
    # The test's own connection back to the daemon's pool: this churn can use every one of its connections.
    database_proxy.close()
    kept = await _create(api, integration, f"{base}/hook", ["churn.*"])
    emitting = True
    churned = 0

    async def churn():
        nonlocal churned
        while emitting:
            hook = await _create(api, integration, f"{base}/hook", ["churn.*"])
            gone = await api.delete(f"/integrations/webhooks/{hook['id']}", headers=auth())
            assert gone.status == 200, await gone.text()
            churned += 1

    async def emit(n):
        if n % 2:
            answer = await api.post(
                f"/integrations/{integration.id}/events", json={"type": "churn.x", "data": {}}, headers=auth()
            )
        else:
            answer = await api.post(
                "/integrations/events",
                json={"events": [{"integrationId": str(integration.id), "type": "churn.x"}] * 3},
                headers=auth(),
            )
        return answer.status, await answer.text()

    churners = [asyncio.create_task(churn()) for _ in range(2)]
    try:
        answers = []
        for start in range(0, 240, 8):  # bounded: 240 requests, 8 at a time
            answers += await asyncio.gather(*(emit(n) for n in range(start, start + 8)))
    finally:
        emitting = False
        await asyncio.gather(*churners)
    assert churned > 0
    assert [text for status, text in answers if status != 202] == []
    bodies = [json.loads(text)["data"] for _, text in answers]
    assert all(b["refused"] == 0 for b in bodies if "results" in b), bodies

    def written():
        events = OutboxEvent.select().where(OutboxEvent.type == "churn.x").count()
        return events, {d.webhook_id for d in WebhookDelivery.select().where(WebhookDelivery.event == "churn.x")}

    assert await api.server.app[DB].run(written) == (120 + 120 * 3, {uuid.UUID(kept["id"])})


async def test_data_cannot_name_another_user_integration_or_provider_in_any_copy(env):
    """Found by a reviewer: data.userId was kept in the delivery (what the receiver gets) while the outbox's copy
    said the caller. The subject wins in both, on both routes."""
    api, receiver, base, integration = env
    await _create(api, integration, f"{base}/hook", ["post.*"])
    spoof = {"userId": str(uuid.uuid4()), "integrationId": str(uuid.uuid4()), "provider": "SLACK", "n": 1}
    await _emit(api, integration, "post.created", spoof)
    batch = [{"integrationId": str(integration.id), "type": "post.updated", "data": spoof}]
    answer = await api.post("/integrations/events", json={"events": batch}, headers=auth())
    assert answer.status == 202 and (await answer.json())["data"]["accepted"] == 1
    await receiver.wait_for(2)
    own = {"userId": str(OWNER), "integrationId": str(integration.id), "provider": "SHOPIFY", "n": 1}
    sent = [json.loads(r["body"])["data"] for r in receiver.received]
    stored = [e.data for e in OutboxEvent.select().where(OutboxEvent.type.in_(["post.created", "post.updated"]))]
    assert sent == [own, own] and stored == [own, own]


async def test_a_retry_read_back_from_the_database_sends_the_same_values(env):
    """The first attempt answered 500, the retry is claimed from the database and its payload read back (on
    PostgreSQL through the jsonb reader, orjson's but for long digit runs): an integer beyond 64 bits, a tiny
    float, text beyond ASCII and digits in a string reach the receiver as they were emitted, both times."""
    api, receiver, base, integration = env
    await _create(api, integration, f"{base}/hook", ["post.*"])
    receiver.script = [(500, {})]
    data = {"big": 2**70, "small": -(2**64) - 1, "tiny": 1e-7, "ratio": 0.1, "text": "é€😀\u2028", "id": "1" * 25}
    await _emit(api, integration, "post.created", data)
    await receiver.wait_for(2)
    sent = [json.loads(r["body"])["data"] for r in receiver.received]
    expected = {**data, "userId": str(OWNER), "integrationId": str(integration.id), "provider": "SHOPIFY"}
    assert sent == [expected, expected]
    assert type(sent[1]["big"]) is int and type(sent[1]["tiny"]) is float


@pytest.mark.parametrize(("bad", "mention"), [(r"\u0000", "NUL"), (r"\ud800", "surrogate")])
async def test_text_no_database_stores_in_one_items_data_refuses_that_item_alone(env, bad, mention):
    """Found by a reviewer: a NUL in one item's data answered the whole batch 400 ("events contains a NUL
    character"); each item is answered on its own, as the README says."""
    api, _receiver, base, integration = env
    await _create(api, integration, f"{base}/hook", ["post.*"])
    item = '{"integrationId": "%s", "type": "post.created", "data": {"caption": "%s"}}'
    raw = '{"events": [%s, %s, %s]}' % (
        item % (integration.id, "ok"),
        item % (integration.id, bad),
        item % (integration.id, "ok"),
    )
    answer = await api.post(
        "/integrations/events", data=raw.encode(), headers={**auth(), "Content-Type": "application/json"}
    )
    body = await answer.json()
    assert answer.status == 202, body
    assert (body["data"]["accepted"], body["data"]["refused"]) == (2, 1)
    error = body["data"]["results"][1]["error"]
    assert error["code"] == "VALIDATION_ERROR" and mention in error["message"] and "data" in error["message"], error
    assert [r["deliveriesQueued"] for r in body["data"]["results"][::2]] == [1, 1]
    assert OutboxEvent.select().where(OutboxEvent.type == "post.created").count() == 2


async def _create_for_stranger(api, env):
    from nexusctl.db.models import Integration

    row = Integration.create(user_id=uuid.uuid4(), provider=Provider.SHOPIFY, name="someone else's")
    return str(row.id)


@pytest.mark.parametrize("events", [[], "nope", [1], [{"type": "post.created"}] * 501])
async def test_a_batch_that_is_empty_too_long_or_not_a_list_is_refused(env, events):
    api, *_ = env
    answer = await api.post("/integrations/events", json={"events": events}, headers=auth())
    assert answer.status == 400 and (await answer.json())["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("event_type", ["analytics.fetched", "comment.created", "media.updated", "sync.completed"])
async def test_what_only_the_service_writes_cannot_be_emitted_on_either_route(env, event_type):
    """A caller forging a sync's event (a comment the provider never had, metrics it never reported) onto the bus
    and the webhooks: refused by the single route and, alone, in a batch; nothing written, nothing queued."""
    api, _receiver, base, integration = env
    await _create(api, integration, f"{base}/hook", ["*"])
    one = await api.post(
        f"/integrations/{integration.id}/events", json={"type": event_type, "data": {}}, headers=auth()
    )
    body = await one.json()
    assert (one.status, body["error"]["code"]) == (400, "VALIDATION_ERROR"), body
    assert event_type in body["error"]["message"] and "reserved" in body["error"]["message"], body
    batch = [
        {"integrationId": str(integration.id), "type": event_type, "data": {}},
        {"integrationId": str(integration.id), "type": "post.created", "data": {}},
    ]
    answer = await api.post("/integrations/events", json={"events": batch}, headers=auth())
    body = await answer.json()
    assert answer.status == 202, body
    refused, accepted = body["data"]["results"]
    assert refused["error"]["code"] == "VALIDATION_ERROR" and event_type in refused["error"]["message"], refused
    assert accepted["deliveriesQueued"] == 1
    assert OutboxEvent.select().where(OutboxEvent.type == event_type).count() == 0
    assert WebhookDelivery.select().where(WebhookDelivery.event == event_type).count() == 0


@pytest.fixture
async def nul_receivers(db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration):
    """A receiver whose answer holds a NUL byte (500 or 200, by path) and a normal one; each counts its hits."""
    hits = {"nul": 0, "ok": 0}

    async def nul(request):
        await request.read()
        hits["nul"] += 1
        return web.Response(status=int(request.match_info["status"]), body=b"bad\x00answer")

    async def ok(request):
        await request.read()
        hits["ok"] += 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/nul/{status}", nul)
    app.router.add_post("/ok", ok)
    server = await aiohttp_server(app)
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "60")
    api = await aiohttp_client(create_app(config.load()))
    return api, f"http://127.0.0.1:{server.port}", make_integration(user_id=OWNER), hits


@pytest.mark.parametrize("status", [500, 200])
async def test_an_answer_holding_a_nul_byte_is_recorded_and_holds_no_other_delivery(nul_receivers, status):
    api, base, integration, hits = nul_receivers
    bad = await _create(api, integration, f"{base}/nul/{status}", ["post.*"])
    good = await _create(api, integration, f"{base}/ok", ["post.*"])
    await _emit(api, integration, "post.created")  # one event, both webhooks: their outcomes share a record batch
    (bad_row,) = (
        await _settled(WebhookDelivery.webhook == uuid.UUID(bad["id"]), timeout=20)
        if status == 200
        else [await _left_retrying(uuid.UUID(bad["id"]))]
    )
    (good_row,) = await _settled(WebhookDelivery.webhook == uuid.UUID(good["id"]), timeout=20)
    assert good_row.status == DeliveryStatus.DELIVERED and good_row.attempts == 1
    assert bad_row.attempts == 1 and bad_row.lease_token is None
    assert bad_row.response == {"status": status, "body": "bad\ufffdanswer"}  # the NUL stands replaced, no more
    for row in (bad_row, good_row):
        assert WebhookAttempt.select().where(WebhookAttempt.delivery == row.id).count() == 1
    assert hits == {"nul": 1, "ok": 1}


async def _left_retrying(webhook_id, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = WebhookDelivery.get(WebhookDelivery.webhook == webhook_id)
        if row.status == DeliveryStatus.RETRYING:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"not recorded: {row.status} after {row.attempts} attempt(s)")


@pytest.mark.parametrize("cap", [1, 2])
async def test_the_per_endpoint_cap_holds_while_a_record_batch_and_the_loop_both_would_claim(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration, cap
):
    """The worker's loop claims (woken by new events) while another endpoint's outcome is recorded: the record
    batch must not claim for the endpoint as well, or it gets more than WEBHOOK_CONCURRENCY_PER_ENDPOINT requests
    at once. The loop's claim is held open (in the worker, before its database call) until the outcome is
    recorded, so the two overlap on any machine, however loaded."""
    capped = {"now": 0, "most": 0, "hits": 0}
    answer_capped, answer_other = asyncio.Event(), asyncio.Event()
    other_hits = []

    async def capped_handler(request):
        await request.read()
        capped["hits"] += 1
        capped["now"] += 1
        capped["most"] = max(capped["most"], capped["now"])
        await answer_capped.wait()
        capped["now"] -= 1
        return web.Response(text="ok")

    async def other_handler(request):
        await request.read()
        other_hits.append(1)
        await answer_other.wait()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/capped", capped_handler)
    app.router.add_post("/other", other_handler)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("WEBHOOK_CONCURRENCY", "8")
    monkeypatch.setenv("WEBHOOK_CONCURRENCY_PER_ENDPOINT", str(cap))
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "60")
    hold = {"armed": False, "entered": asyncio.Event(), "go": asyncio.Event(), "done": asyncio.Event()}
    run = DbExecutor.run

    async def held_run(self, fn, *args, **kwargs):  # the loop's claim, held open once armed
        if fn is not delivery._claim_and_sign or not hold["armed"]:
            return await run(self, fn, *args, **kwargs)
        hold["armed"] = False
        hold["entered"].set()
        await hold["go"].wait()
        try:
            return await run(self, fn, *args, **kwargs)
        finally:
            hold["done"].set()

    monkeypatch.setattr(DbExecutor, "run", held_run)
    api = await aiohttp_client(create_app(config.load()))
    worker = api.server.app[WORKER]
    integration = make_integration(user_id=OWNER)
    hook = await _create(api, integration, f"{base}/capped", ["capped.*"])
    await _create(api, integration, f"{base}/other", ["other.*"])
    try:
        await _emit(api, integration, "other.a")  # in flight at the other receiver, answered when told
        await _until(lambda: other_hits)
        hold["armed"] = True
        answer = await api.post(
            "/integrations/events",
            json={"events": [{"integrationId": str(integration.id), "type": "capped.a"}] * (2 * cap)},
            headers=auth(),
        )
        assert answer.status == 202, await answer.text()
        await asyncio.wait_for(hold["entered"].wait(), 30)  # the loop's claim is under way (its rooms counted)
        answer_other.set()  # its outcome's record batch runs meanwhile
        await _until(lambda: worker.counts["record_batches"] >= 1)
        hold["go"].set()
        await asyncio.wait_for(hold["done"].wait(), 30)
        # Every send the worker started to the capped endpoint has arrived (and waits for its answer).
        hook_id = uuid.UUID(hook["id"])
        await _until(lambda: worker.claiming == 0 and worker.inflight[hook_id] == capped["now"] > 0)
        assert capped["most"] <= cap, capped
    finally:
        answer_capped.set()
        answer_other.set()
        hold["go"].set()
    rows = await _settled(WebhookDelivery.webhook == uuid.UUID(hook["id"]), timeout=30)
    assert len(rows) == 2 * cap and all(r.status == DeliveryStatus.DELIVERED and r.attempts == 1 for r in rows)
    assert capped["hits"] == 2 * cap and capped["most"] <= cap, capped


async def _until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_a_url_refused_at_send_time_says_why_in_the_attempt_log(
    db_url, aiohttp_client, monkeypatch, make_integration
):
    """A webhook stored while its address was allowed, then the operator narrowed WEBHOOK_ALLOWED_NETWORKS and
    restarted: its attempts are refused before any connection, and the attempt log says why in words."""
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "1")
    before = await aiohttp_client(create_app(config.load()))
    integration = make_integration(user_id=OWNER, provider=Provider.SHOPIFY)
    hook = await _create(before, integration, "http://127.0.0.1:9/hook")
    await before.close()
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "")
    api = await aiohttp_client(create_app(config.load()))
    await _emit(api, integration)
    (row,) = await _settled(WebhookDelivery.webhook == uuid.UUID(hook["id"]))
    page = await (await api.get(f"/integrations/webhooks/{hook['id']}/deliveries", headers=auth())).json()
    (shown,) = page["data"]
    errors = [attempt["error"] for attempt in shown["attemptLog"]]
    assert row.status == DeliveryStatus.FAILED and shown["status"] == "FAILED", shown
    assert errors == ["not sent: Webhook URL refused: 127.0.0.1 is a loopback address"] * 2, errors


async def test_a_2xx_whose_body_stalls_is_delivered_not_sent_again(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration
):
    """The receiver accepted the delivery (200, its headers and a few bytes of body) and then stalls its body past
    WEBHOOK_TIMEOUT: the delivery is delivered, with what came of the body, and sent once."""
    hits, release = [], asyncio.Event()

    async def stalls(request):
        hits.append(await request.read())
        answer = web.StreamResponse(headers={"Content-Length": "100"})
        await answer.prepare(request)
        await answer.write(b"accepted")
        await release.wait()  # the rest never comes while the test runs
        return answer

    app = web.Application()
    app.router.add_post("/stalls", stalls)
    server = await aiohttp_server(app)
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("WEBHOOK_TIMEOUT", "0.5")
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "1")  # a resend, were it recorded as a failure, within the wait
    api = await aiohttp_client(create_app(config.load()))
    integration = make_integration(user_id=OWNER, provider=Provider.SHOPIFY)
    try:
        hook = await _create(api, integration, f"http://127.0.0.1:{server.port}/stalls")
        await _emit(api, integration)
        (row,) = await _settled(WebhookDelivery.webhook == uuid.UUID(hook["id"]))
    finally:
        release.set()
    assert row.status == DeliveryStatus.DELIVERED and row.attempts == 1
    assert row.response == {"status": 200, "body": "accepted"}
    assert len(hits) == 1


async def _one_endpoint_worker(
    aiohttp_client, aiohttp_server, monkeypatch, make_integration, handler, *, slots, cap, events
):
    """A daemon app whose one webhook's receiver is ``handler``, with WEBHOOK_CONCURRENCY ``slots`` and
    WEBHOOK_CONCURRENCY_PER_ENDPOINT ``cap``, given ``events`` events for it through the batch route:
    (its delivery worker, the webhook's id)."""
    app = web.Application()
    app.router.add_post("/hook", handler)
    server = await aiohttp_server(app)
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("WEBHOOK_CONCURRENCY", str(slots))
    monkeypatch.setenv("WEBHOOK_CONCURRENCY_PER_ENDPOINT", str(cap))
    api = await aiohttp_client(create_app(config.load()))
    integration = make_integration(user_id=OWNER)
    hook = await _create(api, integration, f"http://127.0.0.1:{server.port}/hook", ["one.*"])
    answer = await api.post(
        "/integrations/events",
        json={"events": [{"integrationId": str(integration.id), "type": "one.a"}] * events},
        headers=auth(),
    )
    assert answer.status == 202, await answer.text()
    return api.server.app[WORKER], uuid.UUID(hook["id"])


async def test_a_busy_endpoint_is_kept_busy_without_a_claim_per_send(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration
):
    """Issue 19: deliveries wait in the worker for their endpoint's next free slot (claimed with the record
    batches), so a busy endpoint's sends do not each cost a claim (nor do the worker's other slots, free while
    it sends at its cap), and its cap holds at every moment."""
    seen = {"now": 0, "most": 0, "hits": 0}

    async def handler(request):
        await request.read()
        seen["hits"] += 1
        seen["now"] += 1
        seen["most"] = max(seen["most"], seen["now"])
        await asyncio.sleep(0.002)
        seen["now"] -= 1
        return web.Response(text="ok")

    total = 240
    worker, hook_id = await _one_endpoint_worker(
        aiohttp_client, aiohttp_server, monkeypatch, make_integration, handler, slots=8, cap=4, events=total
    )
    rows = await _settled(WebhookDelivery.webhook == hook_id, timeout=60)
    assert len(rows) == total and all(r.status == DeliveryStatus.DELIVERED and r.attempts == 1 for r in rows)
    assert seen["hits"] == total and seen["most"] <= 4, seen
    # Claimed for each slot as it frees (main before this: 123 claims for 240 sends), a claim served two sends;
    # claimed ahead with the record batches (and the loop's look past them once a batch), each serves several.
    # Each claimed once, but for any held waiting past SIGNING_FRESH_SECONDS (a stall of a loaded machine), given back
    # unsent and claimed again (seen once in CI: 4 of 240).
    assert worker.counts["claimed"] == total + worker.counts["given_back"], worker.counts
    assert worker.counts["claims"] <= total / 2, worker.counts


def _records_held(monkeypatch):
    """A receiver that counts its hits (the list, the handler), and the worker's record batches held until the
    returned event is set (a stalled commit)."""
    hits = []

    async def handler(request):
        await request.read()
        hits.append(1)
        return web.Response(text="ok")

    release = asyncio.Event()
    run = DbExecutor.run

    async def held_run(self, fn, *args, **kwargs):
        if fn is delivery.attempts.record_many and not release.is_set():
            await release.wait()
        return await run(self, fn, *args, **kwargs)

    monkeypatch.setattr(DbExecutor, "run", held_run)
    return hits, handler, release


async def test_a_fast_endpoint_is_sent_to_while_a_record_batch_is_slow(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration
):
    """Issue 19: the deliveries waiting for an endpoint that answers are claimed by claims of their own, not only
    inside record batches: while the first record batch is held (a slow commit), every queued delivery is still
    sent. Before, the claims rode with the record batches, so with one held and nothing waking the worker (no
    new event; its 1 s poll is set to an hour here) the sends stopped after two claims."""
    hits, handler, release = _records_held(monkeypatch)
    monkeypatch.setattr(delivery, "POLL_SECONDS", 3600.0)
    monkeypatch.setattr(delivery, "HELD_PER_SLOT", 100)  # the bound on held deliveries is not what stops them
    total = 40
    worker, hook_id = await _one_endpoint_worker(
        aiohttp_client, aiohttp_server, monkeypatch, make_integration, handler, slots=4, cap=4, events=total
    )
    try:
        await _until(lambda: len(hits) == total)
        assert worker.counts["record_batches"] == 0  # all sent while the record was held
    finally:
        release.set()
    rows = await _settled(WebhookDelivery.webhook == hook_id, timeout=60)
    assert len(rows) == total and all(r.status == DeliveryStatus.DELIVERED and r.attempts == 1 for r in rows)
    assert len(hits) == total


async def test_sends_waiting_for_their_record_are_bounded_apart_from_the_unsent(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration
):
    """Issue 19: a delivery sent and waiting for its outcome's commit counts against a bound of its own
    (SENT_PER_SLOT), not against the unsent's (HELD_PER_SLOT): with every record batch held (a stalled commit), a
    worker of 4 slots sends what both bounds allow, (2 + 3) x 4, then claims no more (its memory stays bounded),
    and once the records commit it sends the rest. Before, the sent counted with the unsent, and a busy endpoint's
    sends waiting a record batch's trip cut the claims that refilled its slots (at most 2 x 4 went out here)."""
    hits, handler, release = _records_held(monkeypatch)
    monkeypatch.setattr(delivery, "POLL_SECONDS", 3600.0)
    monkeypatch.setattr(delivery, "HELD_PER_SLOT", 2)
    monkeypatch.setattr(delivery, "SENT_PER_SLOT", 3)
    total, bound, cap = 40, (2 + 3) * 4, 4
    worker, hook_id = await _one_endpoint_worker(
        aiohttp_client, aiohttp_server, monkeypatch, make_integration, handler, slots=4, cap=cap, events=total
    )
    # A send's end claims ahead only for more than half the endpoint's cap (no claim per send), and the claims
    # that would take the last one or two (the record batches') are held here: the worker may stop that short.
    short = cap // 2
    try:
        # Quiet: every slot free (its send answered: the receiver counts a hit before the worker has its answer),
        # no claim under way, none waiting to send.
        await _until(
            lambda: (
                len(hits) >= bound - short
                and worker.free == 4
                and not worker.refilling
                and not worker.claiming
                and not worker.queued
            )
        )
        sent = len(hits)
        assert bound - short <= sent <= bound  # both bounds' room used, and nothing past it
        assert worker.unrecorded == len(worker.held) == sent and worker._claimable(ahead=True) <= short
        leased = WebhookDelivery.select().where(WebhookDelivery.lease_token.is_null(False)).count()
        assert leased == sent
    finally:
        release.set()
    rows = await _settled(WebhookDelivery.webhook == hook_id, timeout=60)
    assert len(rows) == total and all(r.status == DeliveryStatus.DELIVERED and r.attempts == 1 for r in rows)
    assert len(hits) == total


async def test_stopping_gives_back_the_deliveries_waiting_for_a_slot(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration
):
    """Deliveries claimed ahead for an endpoint that answers, still waiting for its next free slot when the daemon
    stops, are released at once (claimable by another daemon now, not when their leases run out), never sent."""
    release = asyncio.Event()
    hits = []

    async def handler(request):
        await request.read()
        hits.append(1)
        if len(hits) > 2:  # the first two are answered at once (the endpoint answers: claimed ahead), then held
            await release.wait()
        return web.Response(text="ok")

    worker, hook_id = await _one_endpoint_worker(
        aiohttp_client, aiohttp_server, monkeypatch, make_integration, handler, slots=4, cap=2, events=10
    )
    # Two answered, two held at the receiver (the endpoint's cap), the six others claimed ahead waiting behind them
    # (it answered in milliseconds: claimed (AHEAD_MOST - 1) x its cap ahead).
    await _until(lambda: len(hits) == 4 and worker.queued == 6)
    stopping = asyncio.create_task(worker.stop(grace=10))
    await _until(lambda: worker.queued == 0)
    release.set()
    await stopping
    rows = list(WebhookDelivery.select().where(WebhookDelivery.webhook == hook_id))
    sent = [r for r in rows if r.status == DeliveryStatus.DELIVERED]
    assert len(sent) == 4 and len(hits) == 4  # the waiting ones were not sent
    assert all(r.lease_token is None and r.status == DeliveryStatus.PENDING for r in rows if r not in sent)


@pytest.mark.parametrize("answer_seconds, events, fast", [(0.0, 24, True), (0.4, 10, False)])
async def test_an_endpoint_is_claimed_ahead_as_far_as_its_answers_pace_allows(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration, answer_seconds, events, fast
):
    """Issue 19: deliveries wait in the worker for the slots of an endpoint that answers, as many as it answers in
    AHEAD_SECONDS at its pace, up to AHEAD_MOST - 1 times its cap: one answering at once has more waiting than the
    cap's worth of AHEAD_PER_SLOT (with which the bench's busy endpoint found none waiting most of the time, its
    slots a third empty between two claims); one answering in 0.4 s no more than that, so that none of them waits
    so long that it must be given back. Every delivery is sent once."""
    cap, waiting, workers = 2, [], []

    async def handler(request):
        await request.read()
        await asyncio.sleep(answer_seconds)
        return web.Response(text="ok")

    async def sample():  # how many wait in the worker for a slot, every millisecond
        while True:
            waiting.append(workers[0].queued if workers else 0)
            await asyncio.sleep(0.001)

    sampler = asyncio.create_task(sample())
    # Four slots, the cap two: none to borrow past it (``_Pace``: up to WEBHOOK_CONCURRENCY less the cap), so the cap
    # is its limit throughout.
    worker, hook_id = await _one_endpoint_worker(
        aiohttp_client, aiohttp_server, monkeypatch, make_integration, handler, slots=4, cap=cap, events=events
    )
    workers.append(worker)
    try:
        rows = await _settled(WebhookDelivery.webhook == hook_id, timeout=60)
    finally:
        sampler.cancel()
    assert len(rows) == events and all(r.status == DeliveryStatus.DELIVERED and r.attempts == 1 for r in rows)
    # The rows show DELIVERED once the record batch commits, a moment before the worker's task resumes to count it
    # (seen in CI on a loaded machine: 18 of 24 counted): wait for the count, then check nothing was counted twice.
    await _until(lambda: worker.counts["recorded"] >= events)
    # Each sent once. One held waiting past SIGNING_FRESH_SECONDS (a stall of a loaded machine) is given back unsent
    # and claimed again: what keeps that from happening by design is the bound on waiting checked below.
    assert worker.counts["recorded"] == events, worker.counts
    assert worker.counts["claimed"] == events + worker.counts["given_back"], worker.counts
    if fast:
        # (Sending or waiting, at most AHEAD_MOST times the cap: all of them wait while their sends wait for a record.)
        assert (delivery.AHEAD_PER_SLOT - 1) * cap < max(waiting) <= delivery.AHEAD_MOST * cap, waiting
    else:
        assert 0 < max(waiting) <= (delivery.AHEAD_PER_SLOT - 1) * cap, waiting


async def _nexusctl(*args) -> tuple[int, str, str]:
    """The CLI as a user runs it, on this test's database (DATABASE_URL and the data directory are in the
    environment): (exit status, stdout, stderr)."""
    from support.daemons import NEXUSCTL

    proc = await asyncio.create_subprocess_exec(
        str(NEXUSCTL), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, stdout.decode(), stderr.decode()


async def test_a_delivery_being_sent_is_not_queued_again_over_its_send(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration, caplog
):
    """Review: a redelivery (HTTP or CLI) or a replay of a delivery whose send is in flight cleared its lease: the
    worker sent the same webhook-id again beside the send under way (4 POSTs at once), and the attempt it was
    making was never recorded ("lease lost"). Now the redelivery is refused (409 DELIVERY_IN_FLIGHT, exit 16) and
    the replay skips it and says so; the send under way is recorded, once; afterwards a redelivery goes through."""
    arrived: list[str] = []
    release = asyncio.Event()

    async def handler(request):
        await request.read()
        arrived.append(request.headers["webhook-id"])
        if len(arrived) > 1:  # the first is answered at once; the next one is held until the test says
            await release.wait()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handler)
    server = await aiohttp_server(app)
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("WEBHOOK_TIMEOUT", "60")  # the held send outlasts the test's steps, whatever the machine
    api = await aiohttp_client(create_app(config.load()))
    integration = make_integration(user_id=OWNER)
    hook = await _create(api, integration, f"http://127.0.0.1:{server.port}/hook", ["*"])
    hook_id = uuid.UUID(hook["id"])
    try:
        await _emit(api, integration, "post.done")
        (first,) = await _settled(WebhookDelivery.event == "post.done")
        await _emit(api, integration, "post.held")
        await _until(lambda: len(arrived) == 2)
        held = WebhookDelivery.get(WebhookDelivery.event == "post.held")
        assert arrived == [str(first.id), str(held.id)]

        answer = await api.post(f"/integrations/webhooks/deliveries/{held.id}/redeliver", headers=auth())
        body = await answer.json()
        assert answer.status == 409 and body["error"]["code"] == "DELIVERY_IN_FLIGHT", body
        assert "is held by a daemon (sending it, or about to) until its lease runs out at" in body["error"]["message"]
        code, _, stderr = await _nexusctl("webhooks", "redeliver", str(held.id))
        assert code == 16 and "DELIVERY_IN_FLIGHT" in stderr and "held by a daemon" in stderr, stderr
        code, _, stderr = await _nexusctl("webhooks", "replay", hook["id"], "--since", "1h", "--dry-run")
        assert code == 0 and "Would queue 1 deliveries again; skipped 1 being sent now" in stderr, stderr
        code, stdout, stderr = await _nexusctl("webhooks", "replay", hook["id"], "--since", "1h", "--json")
        assert code == 0, stderr
        assert json.loads(stdout) == {"webhookId": hook["id"], "queued": 1, "skipped": 1, "dryRun": False}
        assert "Queued 1 deliveries again; skipped 1 being sent now" in stderr, stderr
        await _until(lambda: arrived.count(str(first.id)) == 2)  # the replayed one is sent again
        await asyncio.sleep(0.3)  # were the held one queued again, its second send would start now
        assert arrived.count(str(held.id)) == 1, arrived
    finally:
        release.set()
    rows = await _settled(WebhookDelivery.webhook == hook_id)
    by_event = {r.event: r for r in rows}
    assert by_event["post.held"].status == DeliveryStatus.DELIVERED and by_event["post.held"].attempts == 1
    page = (await (await api.get(f"/integrations/webhooks/{hook['id']}/deliveries", headers=auth())).json())["data"]
    logs = {d["event"]: [a["statusCode"] for a in d["attemptLog"]] for d in page}
    assert logs == {"post.held": [200], "post.done": [200, 200]}  # every send is in the log
    assert "lease lost" not in caplog.text and "not recorded" not in caplog.text
    # Once its attempt is recorded, it can be sent again.
    again = await api.post(f"/integrations/webhooks/deliveries/{held.id}/redeliver", headers=auth())
    assert again.status == 202, await again.text()
    await _until(lambda: arrived.count(str(held.id)) == 2)


class _Counting:
    """A receiver that counts its requests in hand at once (``most``; ``most_after`` of those that arrive once
    ``after`` is set), answering as ``mode`` says: ``fast`` (200 after a few ms, so that sends overlap), ``fail``
    (500 at once), ``slow`` (200 after ``hold`` seconds) or ``hold`` (kept until the test answers it: ``held``)."""

    def __init__(self, mode="fast", hold=0.0):
        self.mode, self.hold = mode, hold
        self.now = self.most = self.most_after = self.hits = 0
        self.after = False
        self.held: list[tuple[float, asyncio.Future]] = []

    async def handle(self, request):
        await request.read()
        self.hits += 1
        self.now += 1
        self.most = max(self.most, self.now)
        if self.after:
            self.most_after = max(self.most_after, self.now)
        try:
            if self.mode == "fast":
                await asyncio.sleep(0.005)
                return web.Response(text="ok")
            if self.mode == "slow":
                await asyncio.sleep(self.hold)
                return web.Response(text="late")
            if self.mode == "hold":
                gate = asyncio.get_running_loop().create_future()
                self.held.append((time.monotonic(), gate))
                return web.Response(status=await gate, text="held")
            return web.Response(status=500, text="nope")
        finally:
            self.now -= 1  # before the answer goes out: never more in hand here than the worker has in flight

    def pending(self) -> list:
        return [entry for entry in self.held if not entry[1].done()]


async def _paced_app(aiohttp_client, aiohttp_server, monkeypatch, receivers: dict, *, slots=8, cap=2):
    app = web.Application()
    for name, receiver in receivers.items():
        app.router.add_post(f"/{name}", receiver.handle)
    server = await aiohttp_server(app)
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("WEBHOOK_CONCURRENCY", str(slots))
    monkeypatch.setenv("WEBHOOK_CONCURRENCY_PER_ENDPOINT", str(cap))
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "60")
    api = await aiohttp_client(create_app(config.load()))
    return api, f"http://127.0.0.1:{server.port}"


async def _emit_many(api, integration, event_type, count):
    answer = await api.post(
        "/integrations/events",
        json={"events": [{"integrationId": str(integration.id), "type": event_type}] * count},
        headers=auth(),
    )
    assert answer.status == 202, await answer.text()


async def test_a_fast_endpoint_grows_past_the_per_endpoint_cap(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration
):
    """Issue 19: a receiver that answers 2xx fast is not held to WEBHOOK_CONCURRENCY_PER_ENDPOINT (2 here): its limit
    grows window by window, up to WEBHOOK_CONCURRENCY less the cap (8 - 2 = 6), and it gets more requests at once;
    every delivery is still sent once."""
    fast = _Counting()
    api, base = await _paced_app(aiohttp_client, aiohttp_server, monkeypatch, {"fast": fast})
    worker = api.server.app[WORKER]
    integration = make_integration(user_id=OWNER)
    hook = await _create(api, integration, f"{base}/fast", ["fast.*"])
    total = 300
    await _emit_many(api, integration, "fast.a", total)
    rows = await _settled(WebhookDelivery.webhook == uuid.UUID(hook["id"]), timeout=60)
    assert len(rows) == total and all(r.status == DeliveryStatus.DELIVERED and r.attempts == 1 for r in rows)
    assert fast.hits == total and 2 < fast.most <= 6, vars(fast)
    # Its limit now (above the cap unless an answer slower than 1 s on a loaded machine brought it back) on /metrics.
    limit = worker._limit(uuid.UUID(hook["id"]))
    text = await (await api.get("/metrics")).text()
    assert f"nexus_webhook_endpoints_above_cap {float(limit > 2)}" in text, text
    assert f"nexus_webhook_endpoint_limit_max {float(limit)}" in text, text


async def test_a_slow_endpoint_never_passes_the_cap_while_a_fast_one_does(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration
):
    """Issue 19: a receiver that holds each request past the slow bound (1 s) gets no more than
    WEBHOOK_CONCURRENCY_PER_ENDPOINT requests at once, however many wait for it; meanwhile another endpoint's
    deliveries are all sent, and that one, fast, grows past the cap."""
    slow, fast = _Counting("slow", hold=delivery.SLOW_SECONDS + 0.05), _Counting()
    api, base = await _paced_app(aiohttp_client, aiohttp_server, monkeypatch, {"slow": slow, "fast": fast})
    integration = make_integration(user_id=OWNER)
    slow_hook = await _create(api, integration, f"{base}/slow", ["slow.*"])
    fast_hook = await _create(api, integration, f"{base}/fast", ["fast.*"])
    await _emit_many(api, integration, "slow.a", 6)  # first: without a cap they would take the slots
    await _emit_many(api, integration, "fast.a", 200)
    fast_rows = await _settled(WebhookDelivery.webhook == uuid.UUID(fast_hook["id"]), timeout=60)
    assert all(r.status == DeliveryStatus.DELIVERED and r.attempts == 1 for r in fast_rows)
    assert fast.hits == 200 and fast.most > 2, vars(fast)
    slow_rows = await _settled(WebhookDelivery.webhook == uuid.UUID(slow_hook["id"]), timeout=60)
    assert len(slow_rows) == 6 and all(r.status == DeliveryStatus.DELIVERED for r in slow_rows)
    assert slow.hits == 6 and slow.most == 2, vars(slow)


@pytest.mark.parametrize("turn", ["fails", "slows"])
async def test_a_fast_endpoint_that_fails_or_slows_is_back_at_the_cap(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration, turn
):
    """Issue 19: a fast receiver past the cap that starts holding its requests, then answers one with a 500 (or
    with a 200 after the slow bound), is back at WEBHOOK_CONCURRENCY_PER_ENDPOINT at once: the sends in flight
    above it finish, and no new one starts until it is under the cap again; failing on, it never gets more."""
    # The slow bound: 3 s (a loaded machine's stall of a second does not bring it back before the test does), and
    # when it fails, 30 s: the 500 alone brings it back, not its sends in flight growing old.
    monkeypatch.setattr(delivery, "SLOW_SECONDS", 30.0 if turn == "fails" else 3.0)
    monkeypatch.setenv("WEBHOOK_TIMEOUT", "60")  # the held requests are answered by the test, never time out
    receiver = _Counting()
    api, base = await _paced_app(aiohttp_client, aiohttp_server, monkeypatch, {"hook": receiver})
    worker = api.server.app[WORKER]
    integration = make_integration(user_id=OWNER)
    hook = await _create(api, integration, f"{base}/hook", ["one.*"])
    hook_id = uuid.UUID(hook["id"])
    total = 400
    await _emit_many(api, integration, "one.a", total)
    await _until(lambda: worker._limit(hook_id) > 2 and receiver.most > 2, timeout=60)
    receiver.mode = "hold"
    # As many sends in flight as its limit allows, every one held at the receiver: more than the cap of them.
    await _until(
        lambda: worker.inflight[hook_id] == len(receiver.pending()) == receiver.now == worker._limit(hook_id),
        timeout=60,
    )
    flying = worker.inflight[hook_id]
    assert flying > 2, (flying, worker._limit(hook_id))
    first_at, first = receiver.pending()[0]
    hits, receiver.after = receiver.hits, True
    if turn == "fails":
        first.set_result(500)
    else:
        while time.monotonic() - first_at <= worker.slow:  # a deadline on the clock, not a guess
            await asyncio.sleep(0.05)
        first.set_result(200)
    # Its answer frees a slot; a new send starting there and then (the worker has deliveries of it waiting) would
    # come in before the slot shows free.
    await _until(lambda: worker.inflight[hook_id] < flying or receiver.hits > hits)
    assert worker._limit(hook_id) == 2 and worker.inflight[hook_id] == flying - 1 == len(receiver.pending())
    assert receiver.hits == hits
    if turn == "fails":
        receiver.mode = "fail"
        for _, gate in receiver.pending():
            gate.set_result(500)

        def attempted():
            rows = list(WebhookDelivery.select().where(WebhookDelivery.webhook == hook_id))
            return len(rows) == total and all(r.attempts >= 1 and r.lease_until is None for r in rows)

        await _until(attempted, timeout=60)
        assert receiver.most_after <= 2 and receiver.hits == total, vars(receiver)
        assert worker._limit(hook_id) == 2
    else:
        receiver.mode = "fast"
        for _, gate in receiver.pending():
            gate.set_result(200)
        rows = await _settled(WebhookDelivery.webhook == hook_id, timeout=60)
        assert len(rows) == total and all(r.status == DeliveryStatus.DELIVERED and r.attempts == 1 for r in rows)


@pytest.mark.parametrize("change", ["url", "inactive"])
async def test_a_delivery_held_past_a_webhook_change_goes_with_the_change(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration, change
):
    """A delivery the worker holds waiting for a slot (taken at emit or claimed ahead, with its webhook's URL and
    secrets as they were then) is not sent with them once it has waited past SIGNING_FRESH_SECONDS: the webhook
    may have changed meanwhile. After `webhooks update --url`, it goes to the new URL; after `--inactive`, it is
    not sent and stays queued (for when the webhook is switched on again). Only the send in flight at the change
    reached the old URL."""
    monkeypatch.setattr(delivery, "SIGNING_FRESH_SECONDS", 0.2)
    monkeypatch.setenv("WEBHOOK_TIMEOUT", "60")  # the held request is answered by the test, never times out
    old, new = _Counting(), _Counting()
    # One slot per endpoint and no growth past it (2 slots, cap 1): one send in flight, the next held waiting.
    api, base = await _paced_app(aiohttp_client, aiohttp_server, monkeypatch, {"old": old, "new": new}, slots=2, cap=1)
    worker = api.server.app[WORKER]
    integration = make_integration(user_id=OWNER)
    hook = await _create(api, integration, f"{base}/old", ["one.*"])
    hook_id = uuid.UUID(hook["id"])
    await _emit_many(api, integration, "one.a", 1)  # answered: the endpoint is warm, so more is taken ahead for it
    await _settled(WebhookDelivery.webhook == hook_id)
    old.mode = "hold"
    for _ in range(2):
        answer = await api.post(f"/integrations/{integration.id}/events", json={"type": "one.b"}, headers=auth())
        assert answer.status == 202, await answer.text()
    await _until(lambda: len(old.pending()) == 1 and len(worker.waiting.get(hook_id, ())) == 1, timeout=30)
    (waiting,) = [item for item, _ in worker.waiting[hook_id]]
    patch = {"url": f"{base}/new"} if change == "url" else {"isActive": False}
    answer = await api.patch(f"/integrations/webhooks/{hook_id}", json=patch, headers=auth())
    assert answer.status == 200, await answer.text()
    # Past the bound on the clock, then the send in flight ends and frees the slot the held one waits for.
    await _until(lambda: time.monotonic() - waiting.held_since > delivery.SIGNING_FRESH_SECONDS, timeout=10)
    old.pending()[0][1].set_result(200)
    if change == "url":
        rows = await _settled(WebhookDelivery.webhook == hook_id, timeout=30)
        assert all(r.status == DeliveryStatus.DELIVERED and r.attempts == 1 for r in rows), rows
        assert (old.hits, new.hits) == (2, 1), (vars(old), vars(new))
    else:
        await _until(lambda: worker.counts["given_back"] >= 1 and waiting.id not in worker.held, timeout=30)
        await _until(lambda: WebhookDelivery.get_by_id(waiting.id).lease_token is None, timeout=30)
        row = WebhookDelivery.get_by_id(waiting.id)
        assert row.status == DeliveryStatus.PENDING and row.attempts == 0, (row.status, row.attempts)
        assert (old.hits, new.hits) == (2, 0), (vars(old), vars(new))
    text = await (await api.get("/metrics")).text()
    assert "nexus_webhook_given_back_total 1.0" in text, text


async def test_a_delivery_given_back_after_another_daemon_disabled_its_webhook_is_parked(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration, keyring
):
    """Two daemons send for one webhook. This one holds a delivery waiting for a slot when the other's record of a
    410 disables the webhook (a disable leaves the deliveries another daemon holds alone): given back, the delivery
    is parked at once (still queued, no next attempt, as a switched-off webhook's backlog), not left in the due index
    for every claim to walk past until housekeeping parks it. Switched on again, it is sent."""
    from nexusctl.core import attempts, deliveries, events
    from nexusctl.db.fields import utcnow

    monkeypatch.setattr(delivery, "SIGNING_FRESH_SECONDS", 0.2)
    monkeypatch.setenv("WEBHOOK_TIMEOUT", "60")  # the held request is answered by the test, never times out
    receiver = _Counting()
    api, base = await _paced_app(aiohttp_client, aiohttp_server, monkeypatch, {"hook": receiver}, slots=2, cap=1)
    worker = api.server.app[WORKER]
    integration = make_integration(user_id=OWNER)
    hook = await _create(api, integration, f"{base}/hook", ["one.*"])
    hook_id = uuid.UUID(hook["id"])
    await _emit_many(api, integration, "one.a", 1)  # answered: the endpoint is warm, so more is taken ahead for it
    await _settled(WebhookDelivery.webhook == hook_id)
    receiver.mode = "hold"
    for _ in range(2):
        answer = await api.post(f"/integrations/{integration.id}/events", json={"type": "one.b"}, headers=auth())
        assert answer.status == 202, await answer.text()
    await _until(lambda: len(receiver.pending()) == 1 and len(worker.waiting.get(hook_id, ())) == 1, timeout=30)
    (waiting,) = [item for item, _ in worker.waiting[hook_id]]
    # The other daemon: an emit leases its delivery to its worker (as the daemon's emits do), whose receiver
    # answers 410; its record disables the webhook.
    offer = deliveries.Offer(keyring, uuid.uuid4(), 60, total=1, cap=1, rooms={})
    _, handed = await asyncio.to_thread(events.emit_handing, [(integration.id, "one.c", {}, None)], offer)
    (theirs,) = handed.claimed
    gone = attempts.Result(started_at=utcnow(), duration_ms=3, status_code=410)
    await asyncio.to_thread(attempts.record_many, [(theirs, gone)], (60,))
    shown = (await (await api.get(f"/integrations/webhooks/{hook_id}", headers=auth())).json())["data"]
    assert shown["isActive"] is False and "410" in shown["disabledReason"], shown
    # Past the bound on the clock, then the send in flight ends and frees the slot the held one waits for.
    await _until(lambda: time.monotonic() - waiting.held_since > delivery.SIGNING_FRESH_SECONDS, timeout=10)
    receiver.pending()[0][1].set_result(200)
    await _until(lambda: worker.counts["given_back"] >= 1 and waiting.id not in worker.held, timeout=30)
    await _until(lambda: WebhookDelivery.get_by_id(waiting.id).lease_token is None, timeout=30)
    listed = await (await api.get(f"/integrations/webhooks/{hook_id}/deliveries", headers=auth())).json()
    (given_back,) = [d for d in listed["data"] if d["id"] == str(waiting.id)]
    assert (given_back["status"], given_back["attempts"], given_back["nextAttemptAt"]) == ("PENDING", 0, None), (
        given_back
    )
    receiver.mode = "fast"
    answer = await api.patch(f"/integrations/webhooks/{hook_id}", json={"isActive": True}, headers=auth())
    assert answer.status == 200, await answer.text()
    await _until(lambda: WebhookDelivery.get_by_id(waiting.id).status == DeliveryStatus.DELIVERED, timeout=30)


async def test_an_endpoint_idle_past_its_pace_is_counted_at_the_cap_again(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration
):
    """A fast endpoint that grew past the cap and then went idle (PACE_IDLE_SECONDS without a send) starts again at
    the cap: the /metrics gauges say so at once, not only once it sends again (review of 2026-12-06: they stayed at
    34 with no webhook left)."""
    monkeypatch.setattr(delivery, "PACE_IDLE_SECONDS", 0.5)
    fast = _Counting()
    api, base = await _paced_app(aiohttp_client, aiohttp_server, monkeypatch, {"fast": fast})
    worker = api.server.app[WORKER]
    integration = make_integration(user_id=OWNER)
    hook = await _create(api, integration, f"{base}/fast", ["fast.*"])
    hook_id = uuid.UUID(hook["id"])
    await _emit_many(api, integration, "fast.a", 300)
    await _settled(WebhookDelivery.webhook == hook_id, timeout=60)
    assert fast.most > 2, vars(fast)  # it grew past the cap of 2
    pace = worker.paces[hook_id]
    await _until(lambda: not pace.sending and time.monotonic() - pace.last > delivery.PACE_IDLE_SECONDS, timeout=10)
    text = await (await api.get("/metrics")).text()
    assert "nexus_webhook_endpoints_above_cap 0.0" in text and "nexus_webhook_endpoint_limit_max 2.0" in text, text
    assert worker._limit(hook_id) == 2
