"""A pending OAuth flow cannot be bent by whoever writes to its store, nor lost to a key rotation.

On SQLite the stack keeps flows in the ``oauth_states`` table, on PostgreSQL in
Redis (tests/support/stack.py). The attacker here can write to that store and
wants a victim's callback to land on their URL or connect to their user. The
daemon must instead refuse (a redirect to FRONTEND_URL with status=error) or
finish the victim's own flow as it was started; never a 500, never the
attacker's URL.

The store is rewritten here on purpose, and only here: each rewrite is the attacker with the database (or Redis),
a state no user can reach. Expired, replayed and crossed states are reached the way users reach them, through
the shared clock and the callbacks (test_flow_security.py, tests/fault/test_api_security.py, and
``test_another_providers_callback_leaves_the_state_to_the_right_one`` below).
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
import uuid

import pytest
from emulators.testkit import call
from test_flow_security import at_provider, started

EVIL = "https://evil.example/steal"
FRONTEND = "http://app.nexus.test"  # the stack's FRONTEND_URL (tests/support/stack.py)
PARTNER = "http://partner.nexus.test"
KEY_2 = base64.b64encode(bytes(range(64, 96))).decode()
KEY_3 = base64.b64encode(bytes(range(96, 128))).decode()
PREFIX = "nexusctl:oauth-state:"


def _query(url: str) -> dict:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _redis(stack):
    import redis

    return redis.Redis.from_url(stack.env["REDIS_URL"])


def _write_sql(stack, query: str, *params) -> None:
    """What an attacker with write access to the database does (SQLite here: the stack's table store)."""
    import sqlite3

    def native(value):  # peewee keeps UUIDs as 32 hex digits on SQLite
        return value.hex if isinstance(value, uuid.UUID) else value

    with sqlite3.connect(stack.database_url.removeprefix("sqlite:///")) as conn:
        assert conn.execute(query, [native(p) for p in params]).rowcount == 1


def _connected(stack, user) -> list:
    answer = stack.api("GET", f"/integrations/user/{user}", user=user)
    assert answer.status == 200, answer.text
    return answer.json()["data"]


def _refused_to_frontend(response) -> None:
    """The refusal a browser sees: back to FRONTEND_URL with status=error, nothing internal named."""
    assert response.status == 302, (response.status, response.text[:300])
    location = response.location
    assert location.startswith(FRONTEND) and not location.startswith(EVIL), location
    assert _query(location)["status"] == "error" and _query(location)["code"] == "OAUTH_FAILED", location
    assert "DECRYPTION" not in location and "oauth_states" not in location
    assert response.headers.get("Referrer-Policy") == "no-referrer"


def test_a_pending_flow_rewritten_in_its_store_never_redirects_to_the_attacker(stack, fresh_emulators):
    victim, attacker = uuid.uuid4(), uuid.uuid4()
    _, data = started(stack, "SLACK", user=victim)
    callback = at_provider(data["authorizationUrl"])
    digest = _digest(data["state"])
    # The attacker with the store: the victim's pending flow now names the attacker's user and URL.
    if "REDIS_URL" in stack.env:
        client = _redis(stack)
        stored = client.get(PREFIX + digest).decode()
        try:
            record = json.loads(stored)  # a readable record: edit its fields
        except ValueError:
            record = {"secret": stored}  # an opaque one: forge a readable record around it
        record.update(
            provider="SLACK",
            userId=str(attacker),
            redirectUri=EVIL,
            metadata={},
            tenant=None,
            expiresAt="2999-01-01T00:00:00+00:00",
        )
        client.set(PREFIX + digest, json.dumps(record), keepttl=True)
    else:
        _write_sql(
            stack, "UPDATE oauth_states SET redirect_uri = ?, user_id = ? WHERE state = ?", EVIL, attacker, digest
        )
    final = call("GET", callback)
    assert final.status == 302, (final.status, final.text[:300])
    assert not final.location.startswith(EVIL), final.location
    assert _connected(stack, attacker) == []
    if _query(final.location)["status"] == "success":  # the table's plain columns are not trusted: the victim's flow
        assert final.location.startswith(f"{FRONTEND}/connected?")
        assert [i["id"] for i in _connected(stack, victim)] == [_query(final.location)["integrationId"]]
    else:
        _refused_to_frontend(final)
        assert _connected(stack, victim) == []


def test_a_sealed_flow_moved_under_another_state_does_not_open(stack, fresh_emulators):
    victim, attacker = uuid.uuid4(), uuid.uuid4()
    _, theirs = started(stack, "SLACK", user=victim)
    _, mine = started(stack, "SLACK", user=attacker)  # a genuine flow of the attacker's, to transplant
    callback = at_provider(theirs["authorizationUrl"])
    victim_digest, attacker_digest = _digest(theirs["state"]), _digest(mine["state"])
    # The attacker with the store copies their own sealed record over the victim's.
    if "REDIS_URL" in stack.env:
        client = _redis(stack)
        client.set(PREFIX + victim_digest, client.get(PREFIX + attacker_digest), keepttl=True)
    else:
        (sealed,) = stack.sql("SELECT secret FROM oauth_states WHERE state = %s", attacker_digest)[0]
        _write_sql(stack, "UPDATE oauth_states SET secret = ? WHERE state = ?", sealed, victim_digest)
    _refused_to_frontend(call("GET", callback))
    assert _connected(stack, attacker) == [] and _connected(stack, victim) == []


def test_a_garbled_state_record_lands_on_the_frontend_error_not_a_500(stack, fresh_emulators):
    user = uuid.uuid4()
    _, data = started(stack, "DISCORD", user=user)
    callback = at_provider(data["authorizationUrl"])
    digest = _digest(data["state"])
    # Someone with the store (or a torn write) leaves a record that no key opens.
    if "REDIS_URL" in stack.env:
        _redis(stack).set(PREFIX + digest, b"nx1.00000000.AAAA", keepttl=True)
    else:
        _write_sql(stack, "UPDATE oauth_states SET secret = ? WHERE state = ?", "nx1.00000000.AAAA", digest)
    _refused_to_frontend(call("GET", callback))
    assert _connected(stack, user) == []


def test_another_providers_callback_leaves_the_state_to_the_right_one(stack, fresh_emulators):
    user = uuid.uuid4()
    _, data = started(stack, "SLACK", user=user)
    callback = at_provider(data["authorizationUrl"])
    crossed = call("GET", callback.replace("/callback/slack", "/callback/discord"))
    _refused_to_frontend(crossed)  # the browser goes to the frontend, never to the flow's redirectUri
    assert _query(crossed.location)["provider"] == "DISCORD"
    assert "the state was issued for another provider" in stack.logs()  # the reason is the operator's
    right = call("GET", callback)
    assert right.status == 302 and _query(right.location)["status"] == "success", right.location
    assert len(_connected(stack, user)) == 1
    replay = call("GET", callback)  # and it is still single use
    _refused_to_frontend(replay)
    assert len(_connected(stack, user)) == 1


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_pending_flows_survive_a_key_rotation_and_dropping_the_old_key(
    kind, emulators, tmp_path, pg_template, stack_launcher
):
    with stack_launcher(kind, tmp_path, emulators, pg_template, {"ALLOWED_REDIRECT_ORIGINS": PARTNER}) as stack:
        if "REDIS_URL" in stack.env:
            _redis(stack).flushdb()  # other stacks' leftovers, under keys this test does not configure
        user, partner_user = uuid.uuid4(), uuid.uuid4()
        _, pending = started(stack, "SLACK", user=user)
        _, partnered = started(stack, "SLACK", user=partner_user, redirectUri=f"{PARTNER}/back")
        callback = at_provider(pending["authorizationUrl"])
        partner_callback = at_provider(partnered["authorizationUrl"])

        old_key = stack.env["ENCRYPTION_KEY"]
        stack.env.update(ENCRYPTION_KEY=KEY_2, ENCRYPTION_OLD_KEYS=old_key)
        rotated = stack.cli("keys", "rotate", "--json")
        assert rotated.returncode == 0, rotated.stderr
        report = json.loads(rotated.stdout)
        where = "oauth_states (Redis)" if "REDIS_URL" in stack.env else "oauth_states"
        assert report["failed"] == 0 and report["byTable"].get(where) == 2, report

        # The old key is dropped, and the partner origin is no longer allowed.
        stack.restart(ENCRYPTION_OLD_KEYS=None, ALLOWED_REDIRECT_ORIGINS=None)
        final = call("GET", callback)
        assert final.status == 302 and _query(final.location)["status"] == "success", (final.status, final.text)
        assert final.location.startswith(f"{FRONTEND}/connected?")
        _refused_to_frontend(call("GET", partner_callback))  # re-checked at the callback: not sent there any more
        assert _connected(stack, partner_user) == []

        # A flow under a key dropped without rotating cannot be read: an error redirect, not a 500.
        _, stranded = started(stack, "DISCORD", user=user)
        stranded_callback = at_provider(stranded["authorizationUrl"])
        stack.restart(probe="/health", ENCRYPTION_KEY=KEY_3)  # not ready: stored tokens are under a key it lacks
        not_ready = call("GET", stack.base + "/ready")
        assert not_ready.status == 503 and "encryption" in not_ready.json()["data"]["checks"], not_ready.text
        _refused_to_frontend(call("GET", stranded_callback))
        assert len(_connected(stack, user)) == 1
        assert "Traceback" not in stack.logs()
