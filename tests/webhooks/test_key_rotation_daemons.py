"""`keys rotate` while daemons run: a daemon left on the old key is no outage.

Two daemons on one PostgreSQL. Daemon A has only the old key; after
`nexusctl keys rotate` (new key current, old one in ENCRYPTION_OLD_KEYS) every
stored secret is under a key A lacks:

- deliveries A claims go back untouched (no attempt counted, nothing FAILED)
  and daemon B, which has both keys, delivers every one; A says so in one
  plain warning, without a traceback;
- A's /ready is 503 naming the missing key id (a load balancer stops sending);
- a refresh or a sync start through A answers 503 ENCRYPTION_KEY_MISSING and
  the integration stays active, with no error and no failure counted;
- `nexusctl doctor` with A's settings reports the mismatch.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid

import pytest
from support.daemons import NEXUSCTL
from support.tokens import mint
from support.waiting import wait_for

from nexusctl.core import deliveries, webhooks
from nexusctl.crypto import key_id
from nexusctl.db.database import database_proxy
from nexusctl.db.models import Integration, WebhookAttempt, WebhookDelivery
from nexusctl.db.secrets import seal
from nexusctl.enums import DeliveryStatus, Provider

pytestmark = pytest.mark.postgres

JWT_SECRET = "key-rotation-test-secret-" + "x" * 32
NEW = bytes(range(100, 132))
COUNT = 40
MISSING = "which this process does not have"


def call(port: int, method: str, path: str, user) -> tuple[int, dict]:
    token = mint(user, ttl=600, secret=JWT_SECRET)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=b"{}" if method == "POST" else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_daemon_left_on_the_old_key_hands_its_work_to_one_that_has_the_new(pg_database, daemons, receiver, keyring):
    old_key, new_key = os.environ["ENCRYPTION_KEY"], base64.b64encode(NEW).decode()
    new_kid = key_id(NEW)
    sink = receiver()
    user = uuid.uuid4()
    integration = Integration(
        user_id=user,
        provider=Provider.SLACK,
        name="@someone",
        expires_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),
    )
    seal(keyring, integration, "access_token", "at-plain")
    seal(keyring, integration, "refresh_token", "rt-plain")
    integration.save(force_insert=True)
    webhooks.create(keyring, integration_id=integration.id, url=sink.url, events=["*"])

    daemons.env["JWT_SECRET"] = JWT_SECRET
    stale = daemons.start(ENCRYPTION_KEY=old_key)  # daemon A: only the old key, as before the rollout

    rotated = subprocess.run(
        [str(NEXUSCTL), "keys", "rotate", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ENCRYPTION_KEY": new_key, "ENCRYPTION_OLD_KEYS": old_key},
    )
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["rewritten"] == 3  # two tokens and the webhook secret

    with database_proxy.atomic():
        for i in range(COUNT):
            deliveries.fan_out(integration, "media.created", {"i": i})
    ids = {str(d.id) for d in WebhookDelivery.select(WebhookDelivery.id)}
    # A alone: it meets the new key, gives the deliveries back and says so.
    wait_for(lambda: MISSING in stale.log_path.read_text(), 30, "daemon A to say it lacks the new key")
    assert (
        WebhookDelivery.select()
        .where(
            (WebhookDelivery.attempts != 0)
            | WebhookDelivery.lease_until.is_null(False)
            | (WebhookDelivery.status != DeliveryStatus.PENDING)
        )
        .count()
        == 0
    )

    def not_ready():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{stale.port}/ready", timeout=5)
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        return None

    wait_for(lambda: not_ready() is not None, 30, "daemon A's /ready to see the key mismatch")
    status, body = not_ready()
    assert status == 503 and body["error"]["code"] == "NOT_READY"
    assert new_kid in body["data"]["checks"]["encryption"] and new_kid in body["error"]["message"]

    for method, path in (
        ("POST", f"/integrations/{integration.id}/refresh"),
        ("POST", f"/integrations/{integration.id}/sync"),
    ):
        status, body = call(stale.port, method, path, user)
        assert status == 503 and body["error"]["code"] == "ENCRYPTION_KEY_MISSING", (path, body)
        assert new_kid in body["error"]["message"] and "ENCRYPTION_KEY" in body["error"]["message"]
        assert "integrations." not in body["error"]["message"]  # no table or column names
    row = Integration.get_by_id(integration.id)
    assert (row.is_active, row.last_error, row.refresh_failures, row.refresh_lease_until) == (True, None, 0, None)

    # Daemon B has both keys: it delivers everything A gave back.
    rolled = daemons.start(ENCRYPTION_KEY=new_key, ENCRYPTION_OLD_KEYS=old_key)
    wait_for(
        lambda: WebhookDelivery.select().where(WebhookDelivery.status == DeliveryStatus.DELIVERED).count() == COUNT,
        60,
        "daemon B to deliver everything",
    )
    assert set(sink.by_id) == ids and set(sink.by_id.values()) == {1}
    assert WebhookAttempt.select().count() == COUNT  # one attempt each: A burnt none

    # A send's line is written after its record batch commits (the row reads DELIVERED a moment before).
    def delivered_lines() -> int:
        return rolled.log_path.read_text().count(" attempt 1 -> 200 delivered")

    wait_for(lambda: delivered_lines() >= COUNT, 30, "daemon B to log every attempt")
    assert delivered_lines() == COUNT
    log_a = stale.log_path.read_text()
    assert log_a.count(MISSING) == 1 and new_kid in log_a  # one warning per key id, however many deliveries
    assert "Traceback" not in log_a and "claiming failed" not in log_a and "attempt 1 ->" not in log_a
    assert "DECRYPTION_FAILED" not in log_a

    doctor = subprocess.run(
        [str(NEXUSCTL), "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ENCRYPTION_KEY": old_key},
    )
    (encryption,) = [f for f in json.loads(doctor.stdout) if f["check"] == "encryption"]
    assert encryption["status"] == "fail" and new_kid in encryption["detail"], encryption
    assert "ENCRYPTION_OLD_KEYS" in encryption["hint"]
    # With both keys (B's settings) the doctor is content, and so is a daemon with them.
    doctor = subprocess.run(
        [str(NEXUSCTL), "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ENCRYPTION_KEY": new_key, "ENCRYPTION_OLD_KEYS": old_key},
    )
    (encryption,) = [f for f in json.loads(doctor.stdout) if f["check"] == "encryption"]
    assert encryption["status"] == "ok", encryption
    assert urllib.request.urlopen(f"http://127.0.0.1:{rolled.port}/ready", timeout=5).status == 200
