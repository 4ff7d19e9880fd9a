"""Helpers for the API fault suite: callers, a seeded world, a fake DNS, a counting receiver.

The daemons run as real processes (tests/support/stack.py ``launch_stack``),
so everything here talks HTTP, except the fake DNS: a ``sitecustomize`` put on
the daemon's PYTHONPATH (test-only code, never in the product) that answers
names under ``.fault.test`` (and ``.myshopify.com``, for shop hosts) from a JSON
file the test rewrites at will, so a name can resolve to a public address when a
webhook is stored and to a private one when it is delivered (DNS rebinding).

Addresses: the daemons allow exactly ``127.0.0.77/32`` (WEBHOOK_ALLOWED_NETWORKS),
where the receiver listens for the deliveries that must arrive. The receiver
also listens on ``127.0.0.1``, which stays forbidden: a delivery that reaches
that socket got past the SSRF guard.
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from emulators.testkit import call
from support.receivers import TwoAddressReceiver
from support.stack import FRONTEND, launch_stack
from support.tokens import JWT_SECRET, mint  # noqa: F401 - JWT_SECRET: an old name kept for importers
from support.waiting import wait_for

ALLOWED_HOST = "127.0.0.77"  # the one address the daemons may deliver to
FORBIDDEN_HOST = "127.0.0.1"  # loopback as an attacker would aim at it
PUBLIC_ADDRESS = "93.184.216.34"  # resolved to at creation only: nothing ever connects to it
SYNC_ACTION = "fetch_channels"  # what a DISCORD integration (the seeded one) can sync
IDENTITIES = ("none", "expired", "bad_signature", "owner", "other", "service", "admin")
ELEVATED = ("service", "admin")


def bearer(who: str, owner, other) -> dict[str, str]:
    """The Authorization header of one identity of the matrix ({} for none)."""
    token = {
        "none": None,
        "expired": mint(owner, ttl=-600),  # well past the verifier's 30 s leeway
        "bad_signature": mint(owner, secret="not-the-daemon-secret-" + "y" * 24),
        "owner": mint(owner),
        "other": mint(other),
        "service": mint("content-service", "service"),
        "admin": mint(uuid.uuid4(), "admin"),
    }[who]
    return {"Authorization": f"Bearer {token}"} if token else {}


# --- fake DNS ----------------------------------------------------------------

_SITECUSTOMIZE = '''\
"""Test-only (tests/fault/apikit.py): names under .fault.test and .myshopify.com resolve from $FAULT_FAKE_DNS."""
import json
import os
import socket

_real_getaddrinfo = socket.getaddrinfo


def _fake_getaddrinfo(host, port, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    table = os.environ.get("FAULT_FAKE_DNS")
    if table and isinstance(name, str) and name.rstrip(".").lower().endswith((".fault.test", ".myshopify.com")):
        try:
            with open(table) as handle:
                addresses = json.load(handle).get(name.rstrip(".").lower())
        except (OSError, ValueError):
            addresses = None
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for address in addresses:
            out += _real_getaddrinfo(address, port, *args, **kwargs)
        return out
    return _real_getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _fake_getaddrinfo

try:  # the daemon's loop (nexusctl.daemon.loop): uvloop resolves in libuv, never through socket.getaddrinfo
    import uvloop
except ImportError:
    pass
else:

    async def _loop_getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        return await self.run_in_executor(None, _fake_getaddrinfo, host, port, family, type, proto, flags)

    uvloop.Loop.getaddrinfo = _loop_getaddrinfo
'''


class FakeDNS:
    """``dns.set("hook.fault.test", "127.0.0.1")``: what the daemon's next lookup answers."""

    def __init__(self, work: Path):
        self.dir = work / "fakedns"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        self.table = self.dir / "hosts.json"
        self.names: dict[str, list[str]] = {}
        self._write()

    def set(self, name: str, *addresses: str) -> None:
        self.names[name.lower()] = list(addresses)
        self._write()

    def _write(self) -> None:
        tmp = self.table.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.names))
        tmp.replace(self.table)  # atomic: a lookup never reads half a file

    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.dir), "FAULT_FAKE_DNS": str(self.table)}


# --- receiver ----------------------------------------------------------------


class Receiver(TwoAddressReceiver):
    """One port on 127.0.0.77 (allowed) and 127.0.0.1 (forbidden); ``/redirect/<rest>`` bounces to loopback."""

    def __init__(self):
        super().__init__(ALLOWED_HOST, FORBIDDEN_HOST)


# --- the stack and its data ------------------------------------------------------


@contextlib.contextmanager
def api_stack(kind: str, work: Path, emulators, pg_template, receiver: Receiver):
    """A daemon on a fresh database with the fake DNS and only 127.0.0.77 allowed; yields (stack, dns)."""
    dns = FakeDNS(work)
    env = {
        **dns.env(),
        "WEBHOOK_ALLOWED_NETWORKS": f"{ALLOWED_HOST}/32",
        "WEBHOOK_TIMEOUT": "2",
        "WEBHOOK_RETRY_SCHEDULE": "3600",
        "LOG_FORMAT": "text",
    }
    with launch_stack(kind, work, emulators, pg_template, extra_env=env) as stack:
        yield stack, dns


@dataclass
class World:
    """One user's rows, made through the API: an OAuth integration, a webhook and a delivery."""

    owner: uuid.UUID
    other: uuid.UUID
    integration: str
    webhook: str
    delivery: str
    extra: dict = field(default_factory=dict)

    def path_value(self, name: str) -> str:
        return {
            "id": self.integration,
            "webhookId": self.webhook,
            "deliveryId": self.delivery,
            "userId": str(self.owner),
            "provider": "discord",
            # The world's integration is Discord's, which has no comments: see test_api_security's _expected.
            "commentId": "UgzMatrixComment01",
        }[name]


def seed_world(stack, receiver: Receiver, owner: uuid.UUID | None = None) -> World:
    owner = owner or uuid.uuid4()
    connected = stack.connect("DISCORD", owner)
    assert connected["status"] == "success", connected
    integration = connected["integrationId"]
    hook = stack.api(
        "POST",
        "/integrations/webhooks",
        user=owner,
        body={"integrationId": integration, "url": receiver.url(), "events": ["post.*"]},
    )
    assert hook.status == 201, hook.text
    webhook = hook.json()["data"]["id"]
    emitted = stack.api(
        "POST",
        f"/integrations/{integration}/events",
        user=owner,
        body={"type": "post.created", "data": {"seed": True}},
    )
    assert emitted.status == 202 and emitted.json()["data"]["deliveriesQueued"] == 1, emitted.text

    def recorded():
        # Its first attempt recorded (the daemon sends it at once): a redelivery of a delivery still being sent is
        # refused (409 DELIVERY_IN_FLIGHT), which the matrices would take for a wrong answer.
        (row,) = stack.api("GET", f"/integrations/webhooks/{webhook}/deliveries", user=owner).json()["data"]
        return row["id"] if row["attempts"] >= 1 else None

    delivery = wait_for(recorded, 30, "the seeded delivery's first attempt to be recorded")
    return World(owner, uuid.uuid4(), integration, webhook, delivery)


def frontend_redirect() -> str:
    return f"{FRONTEND}/connected"


def query_of(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


__all__ = [
    "call",
    "SYNC_ACTION",
    "mint",
    "bearer",
    "FakeDNS",
    "Receiver",
    "World",
    "seed_world",
    "api_stack",
    "wait_for",
    "IDENTITIES",
    "ELEVATED",
    "ALLOWED_HOST",
    "FORBIDDEN_HOST",
    "PUBLIC_ADDRESS",
    "frontend_redirect",
    "query_of",
]
