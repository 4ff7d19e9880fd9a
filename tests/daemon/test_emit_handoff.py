"""Deliveries leased at emit: an event POSTed to `/integrations/:id/events` is leased to the daemon's own worker in
the INSERT that queues it, as far as the worker has room, and sent without a claim (issue 19). What the worker has no
room for is queued unleased and claimed as before; a stopped daemon gives back what it was handed; a failed emit
hands nothing."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiohttp import web
from support.tokens import auth_header, configured_secret

from nexusctl import config
from nexusctl.core import events
from nexusctl.daemon import delivery
from nexusctl.daemon.app import WORKER, create_app
from nexusctl.db.models import WebhookDelivery
from nexusctl.enums import DeliveryStatus
from nexusctl.errors import DatabaseUnavailable

OWNER = uuid.UUID("3a7e5c1d-8b2f-4c6a-9e0d-1f2a3b4c5d6e")


def auth():
    return auth_header(OWNER, ttl=300, secret=configured_secret())


class Receiver:
    """Counts each request by its webhook-id, the most in flight at once; holds its answers while ``hold`` is
    cleared (after the first ``free`` requests)."""

    def __init__(self, free: int = 10**9) -> None:
        self.ids: list[str] = []
        self.now = self.most = 0
        self.free = free
        self.hold = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.ids.append(request.headers["webhook-id"])
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            if len(self.ids) > self.free:
                await self.hold.wait()
        finally:
            self.now -= 1
        return web.Response(text="ok")


async def _daemon(aiohttp_client, monkeypatch, url: str | None = None, *, slots: int = 8, cap: int = 16):
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("WEBHOOK_CONCURRENCY", str(slots))
    monkeypatch.setenv("WEBHOOK_CONCURRENCY_PER_ENDPOINT", str(cap))
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "60")
    api = await aiohttp_client(create_app(config.load()))
    worker = api.server.app[WORKER]
    await _until(lambda: worker.sender is not None)  # started
    return api, worker


async def _receiver(aiohttp_server, receiver: Receiver) -> str:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}/hook"


async def _webhook(api, integration, url: str) -> uuid.UUID:
    answer = await api.post(
        "/integrations/webhooks",
        json={"integrationId": str(integration.id), "url": url, "events": ["note.*"]},
        headers=auth(),
    )
    body = await answer.json()
    assert answer.status == 201, body
    return uuid.UUID(body["data"]["id"])


async def _emit(api, integration, n: int = 0, status: int = 202) -> dict:
    answer = await api.post(
        f"/integrations/{integration.id}/events", json={"type": "note.added", "data": {"n": n}}, headers=auth()
    )
    body = await answer.json()
    assert answer.status == status, body
    return body


async def _until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def _rows(hook_id) -> list:
    return list(WebhookDelivery.select().where(WebhookDelivery.webhook == hook_id))


async def _delivered(hook_id, count: int) -> list:
    def done():
        rows = _rows(hook_id)
        return len(rows) == count and all(r.status == DeliveryStatus.DELIVERED for r in rows)

    await _until(done)
    return _rows(hook_id)


async def test_an_emitted_event_is_sent_once_without_a_claim(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration
):
    receiver = Receiver()
    url = await _receiver(aiohttp_server, receiver)
    api, worker = await _daemon(aiohttp_client, monkeypatch)
    integration = make_integration(user_id=OWNER)
    hook_id = await _webhook(api, integration, url)
    body = await _emit(api, integration)
    assert body["data"]["deliveriesQueued"] == 1
    (row,) = await _delivered(hook_id, 1)
    assert row.attempts == 1 and row.lease_token is None
    assert receiver.ids == [str(row.id)]
    # Leased to the worker by the emit itself: no delivery was claimed.
    assert worker.counts["handed"] == 1 and worker.counts["claimed"] == 0, worker.counts
    text = await (await api.get("/metrics")).text()
    assert "nexus_webhook_handed_total 1" in text and "nexus_webhook_claimed_total 0" in text


async def test_a_burst_over_the_endpoints_cap_goes_by_the_claim_beyond_it(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration
):
    """The receiver holds every request: the emits hand the worker at most the endpoint's cap, the rest are queued
    unleased and claimed once the endpoint has room; never more than the cap in flight, each sent once."""
    cap, total = 2, 12
    receiver = Receiver(free=0)
    url = await _receiver(aiohttp_server, receiver)
    api, worker = await _daemon(aiohttp_client, monkeypatch, slots=8, cap=cap)
    integration = make_integration(user_id=OWNER)
    hook_id = await _webhook(api, integration, url)
    await asyncio.gather(*(_emit(api, integration, n) for n in range(total)))
    await _until(lambda: receiver.now == cap)
    assert 1 <= worker.counts["handed"] <= cap and worker.counts["claimed"] == 0, worker.counts
    leased = [r for r in _rows(hook_id) if r.lease_token is not None]
    assert len(leased) == worker.counts["handed"]  # the rest wait unleased for a claim
    receiver.hold.set()
    rows = await _delivered(hook_id, total)
    assert all(r.attempts == 1 for r in rows)
    assert sorted(receiver.ids) == sorted(str(r.id) for r in rows)  # each once
    assert receiver.most <= cap
    # (A delivery held waiting past SIGNING_FRESH_SECONDS on a loaded machine is given back and claimed again.)
    assert worker.counts["handed"] + worker.counts["claimed"] == total + worker.counts["given_back"], worker.counts


async def test_a_stopped_daemon_gives_back_what_it_was_handed_and_the_next_one_sends_it(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration
):
    cap = 2
    monkeypatch.setattr(delivery, "ANSWERED_SECONDS", 3600.0)  # the endpoint stays "answering" on a slow machine
    receiver = Receiver(free=2)  # the first two answered at once, then held
    url = await _receiver(aiohttp_server, receiver)
    api, worker = await _daemon(aiohttp_client, monkeypatch, slots=4, cap=cap)
    integration = make_integration(user_id=OWNER)
    hook_id = await _webhook(api, integration, url)
    for n in range(2):
        await _emit(api, integration, n)
    await _delivered(hook_id, 2)
    for n in range(2, 6):  # two in flight (held at the receiver), two handed to wait behind them
        await _emit(api, integration, n)
    await _until(lambda: receiver.now == cap and worker.queued == 2)
    assert worker.counts["handed"] == 6 and worker.counts["claimed"] == 0, worker.counts
    stopping = asyncio.create_task(worker.stop(grace=10))
    await _until(lambda: worker.queued == 0)
    receiver.hold.set()
    await stopping
    rows = _rows(hook_id)
    back = [r for r in rows if r.status != DeliveryStatus.DELIVERED]
    assert len(back) == 2 and all(r.lease_token is None and r.attempts == 0 for r in back)  # given back untouched
    assert len(receiver.ids) == 4
    # The next daemon claims and sends them.
    _, successor = await _daemon(aiohttp_client, monkeypatch, slots=4, cap=cap)
    rows = await _delivered(hook_id, 6)
    assert all(r.attempts == 1 for r in rows)
    assert sorted(receiver.ids) == sorted(str(r.id) for r in rows)  # each once
    assert successor.counts["claimed"] == 2


async def test_an_emit_that_fails_hands_nothing(db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration):
    receiver = Receiver()
    url = await _receiver(aiohttp_server, receiver)
    api, worker = await _daemon(aiohttp_client, monkeypatch)
    integration = make_integration(user_id=OWNER)
    hook_id = await _webhook(api, integration, url)
    write = events.statements.insert_together

    def failing(*args, **kwargs):
        raise DatabaseUnavailable("the database is unavailable: connection lost")

    monkeypatch.setattr(events.statements, "insert_together", failing)
    body = await _emit(api, integration, status=503)
    assert body["error"]["code"] == "DATABASE_UNAVAILABLE", body
    assert _rows(hook_id) == [] and not worker.held and worker.handing is None
    assert worker.counts["handed"] == 0
    monkeypatch.setattr(events.statements, "insert_together", write)
    await _emit(api, integration, 1)  # the room was given back: the next emit is handed and sent
    (row,) = await _delivered(hook_id, 1)
    assert receiver.ids == [str(row.id)] and worker.counts["handed"] == 1 and worker.counts["claimed"] == 0


async def test_an_event_emitted_by_the_cli_is_queued_unleased_and_claimed(
    db_url, aiohttp_client, aiohttp_server, monkeypatch, make_integration
):
    """`nexusctl events emit` has no worker in its process: its deliveries are queued unleased, for a daemon's
    claim, as before."""
    from support.daemons import NEXUSCTL

    receiver = Receiver()
    url = await _receiver(aiohttp_server, receiver)
    api, worker = await _daemon(aiohttp_client, monkeypatch)
    integration = make_integration(user_id=OWNER)
    hook_id = await _webhook(api, integration, url)
    proc = await asyncio.create_subprocess_exec(
        str(NEXUSCTL), "events", "emit", str(integration.id), "note.added", stdout=asyncio.subprocess.PIPE
    )
    await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    (row,) = await _delivered(hook_id, 1)
    assert receiver.ids == [str(row.id)] and row.attempts == 1
    assert worker.counts["claimed"] == 1 and worker.counts["handed"] == 0, worker.counts
