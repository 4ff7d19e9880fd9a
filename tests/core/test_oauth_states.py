"""OAuth states and PKCE: single use under races, expiry, binding, both stores."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from support import clock as shared_clock

from nexusctl.core.oauth_states import Flow, RedisStates, TableStates, new_state, state_hash
from nexusctl.db.models import OAuthState
from nexusctl.enums import Provider
from nexusctl.errors import OAuthFailed
from nexusctl.providers.oauth2 import challenge_of, new_verifier


def test_pkce_matches_the_rfc_7636_test_vector():
    assert challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    verifier = new_verifier()
    assert 43 <= len(verifier) <= 128 and verifier != new_verifier()


def _flow(**extra) -> Flow:
    return Flow(
        Provider.SLACK, uuid.uuid4(), "http://localhost:3000/x", {"a": 1}, None, {"verifier": "v" * 43}, **extra
    )


def test_table_state_round_trip_is_encrypted_and_single_use(database, keyring):
    states = TableStates(keyring)
    state = new_state()
    states.save(state, _flow())
    row = OAuthState.get()
    assert row.state == state_hash(state) and "v" * 43 not in (row.secret or "") and row.secret.startswith("nx1.")
    flow = states.take(state, Provider.SLACK)
    assert flow.secret == {"verifier": "v" * 43} and flow.metadata == {"a": 1}
    with pytest.raises(OAuthFailed):
        states.take(state, Provider.SLACK)


def test_table_state_expired_or_cross_provider_fails(database, keyring, monkeypatch, tmp_path):
    advance = shared_clock.own_file(monkeypatch, tmp_path / "clock")
    states = TableStates(keyring)
    old, other = new_state(), new_state()
    states.save(old, _flow())
    advance(300)
    states.save(other, _flow())
    advance(301)  # the first one's ten minutes are over, the other's not
    with pytest.raises(OAuthFailed, match="expired"):
        states.take(old, Provider.SLACK)
    with pytest.raises(OAuthFailed, match="another provider"):
        states.take(other, Provider.DISCORD)
    # Checked before consumed: the other provider's attempt left its state usable for its own provider.
    assert states.take(other, Provider.SLACK).provider is Provider.SLACK
    assert states.purge_expired() == 1  # the expired one, refused and left to housekeeping


@pytest.mark.postgres
def test_racing_callbacks_with_one_state_let_exactly_one_through(pg_database, keyring):
    states = TableStates(keyring)
    state = new_state()
    states.save(state, _flow())
    barrier, wins, losses = threading.Barrier(8), [], []

    def consume():
        barrier.wait()
        try:
            wins.append(states.take(state, Provider.SLACK))
        except OAuthFailed:
            losses.append(1)
        finally:
            pg_database.close()

    threads = [threading.Thread(target=consume) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(wins) == 1 and len(losses) == 7


def test_redis_state_is_single_use_with_a_ttl(redis_url, keyring):
    import redis.asyncio as aioredis

    async def scenario():
        client = aioredis.from_url(redis_url)
        states = RedisStates(keyring, client)
        state = new_state()
        await states.save(state, _flow())
        key = "nexusctl:oauth-state:" + state_hash(state)
        assert 0 < await client.ttl(key) <= 600
        assert b"v" * 43 not in await client.get(key)
        results = await asyncio.gather(*(states.take(state, Provider.SLACK) for _ in range(5)), return_exceptions=True)
        await client.aclose()
        return results

    results = asyncio.run(scenario())
    assert sum(isinstance(r, Flow) for r in results) == 1
    assert sum(isinstance(r, OAuthFailed) for r in results) == 4


def test_table_flow_is_sealed_plain_columns_are_not_trusted_and_a_moved_record_does_not_open(database, keyring):
    """On SQLite and PostgreSQL: what an attacker with write access to oauth_states can and cannot do."""
    from nexusctl.core.oauth_states import StateUnreadable

    states = TableStates(keyring)
    victim, attacker = new_state(), new_state()
    states.save(victim, _flow())
    states.save(attacker, _flow())
    row = OAuthState.get(OAuthState.state == state_hash(victim))
    assert row.redirect_uri == "" and row.metadata == {}  # only in the sealed record
    evil = uuid.uuid4()
    OAuthState.update(redirect_uri="https://evil.example/x", user_id=evil, metadata={"a": 2}).where(
        OAuthState.id == row.id
    ).execute()
    flow = states.peek(victim, Provider.SLACK)
    assert (flow.redirect_uri, flow.metadata, flow.user_id) == ("http://localhost:3000/x", {"a": 1}, row.user_id)
    sealed = OAuthState.get(OAuthState.state == state_hash(attacker)).secret
    OAuthState.update(secret=sealed).where(OAuthState.id == row.id).execute()
    with pytest.raises(StateUnreadable):
        states.take(victim, Provider.SLACK)
    # Nor does the row, renamed to the victim's state, carry the attacker's record there.
    OAuthState.delete().where(OAuthState.id == row.id).execute()
    OAuthState.update(state=state_hash(victim)).where(OAuthState.state == state_hash(attacker)).execute()
    with pytest.raises(StateUnreadable):
        states.take(victim, Provider.SLACK)
