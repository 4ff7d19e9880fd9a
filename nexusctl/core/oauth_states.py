"""OAuth flow state: created at initiate, consumed once at the callback.

The state is 256 random bits (RFC 6749 §10.10 asks for at least 128), kept
only as its SHA-256 so a leaked table or Redis dump cannot complete a flow.
It is bound to the provider and user, expires after ten minutes and is
consumed atomically (Redis GETDEL, or a DELETE whose row count decides the
winner), so a replay fails. The PKCE verifier and WooCommerce's keys travel
encrypted with it. Redis holds states when REDIS_URL is set, else the
``oauth_states`` table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass, field

from db.fields import utcnow
from db.models import OAuthState
from db.secrets import seal, unseal
from nexusctl.crypto import Keyring, Place
from nexusctl.enums import Provider
from nexusctl.errors import OAuthFailed

STATE_TTL = dt.timedelta(minutes=10)
REDIS_PREFIX = "nexusctl:oauth-state:"


def new_state() -> str:
    return secrets.token_urlsafe(32)


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


@dataclass
class Flow:
    provider: Provider
    user_id: uuid.UUID
    redirect_uri: str
    metadata: dict = field(default_factory=dict)
    tenant: str | None = None
    secret: dict = field(default_factory=dict)  # {"verifier": ..., "keys": {...}}: never logged
    expires_at: dt.datetime | None = None

    def __repr__(self) -> str:
        return f"Flow(provider={self.provider.value}, user_id={self.user_id}, tenant={self.tenant!r})"


def _check(flow: Flow | None, provider: Provider) -> Flow:
    if flow is None:
        raise OAuthFailed("unknown or already used state: start the connection again")
    if flow.expires_at is not None and flow.expires_at <= utcnow():
        raise OAuthFailed("the connection attempt expired (10 minutes): start it again")
    if flow.provider is not provider:
        raise OAuthFailed("the state was issued for another provider")
    return flow


class TableStates:
    """States in ``oauth_states`` (the embedded default). Calls are synchronous: run them off the loop."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def save(self, state: str, flow: Flow) -> None:
        flow.expires_at = utcnow() + STATE_TTL
        row = OAuthState(state=state_hash(state), provider=flow.provider, user_id=flow.user_id,
                         redirect_uri=flow.redirect_uri, metadata=flow.metadata, tenant=flow.tenant,
                         expires_at=flow.expires_at)
        seal(self.keyring, row, "secret", json.dumps(flow.secret))
        row.save(force_insert=True)

    def _row(self, state: str) -> OAuthState | None:
        return OAuthState.select().where(OAuthState.state == state_hash(state)).first()

    def _flow(self, row: OAuthState) -> Flow:
        return Flow(row.provider, row.user_id, row.redirect_uri, row.metadata or {}, row.tenant,
                    json.loads(unseal(self.keyring, row, "secret") or "{}"), row.expires_at)

    def peek(self, state: str, provider: Provider) -> Flow:
        return _check(self._flow(row) if (row := self._row(state)) else None, provider)

    def take(self, state: str, provider: Provider) -> Flow:
        row = self._row(state)
        # The DELETE decides: of two callbacks racing with one state, one deletes the row.
        if row is None or OAuthState.delete().where(OAuthState.id == row.id).execute() != 1:
            return _check(None, provider)
        return _check(self._flow(row), provider)

    def attach_keys(self, state: str, provider: Provider, keys: dict) -> None:
        row = self._row(state)
        flow = _check(self._flow(row) if row else None, provider)
        flow.secret["keys"] = keys
        seal(self.keyring, row, "secret", json.dumps(flow.secret))
        OAuthState.update(secret=row.secret, updated_at=utcnow()).where(OAuthState.id == row.id).execute()

    def purge_expired(self) -> int:
        return OAuthState.delete().where(OAuthState.expires_at <= utcnow()).execute()


class RedisStates:
    """States in Redis with a TTL (several daemons share them). Async: redis.asyncio client."""

    def __init__(self, keyring: Keyring, client) -> None:
        self.keyring = keyring
        self.client = client

    def _place(self, digest: str) -> Place:
        return Place("oauth_states", digest, "secret")

    def _encode(self, digest: str, flow: Flow) -> str:
        return json.dumps({
            "provider": flow.provider.value, "userId": str(flow.user_id), "redirectUri": flow.redirect_uri,
            "metadata": flow.metadata, "tenant": flow.tenant, "expiresAt": flow.expires_at.isoformat(),
            "secret": self.keyring.encrypt(json.dumps(flow.secret), self._place(digest)),
        })

    def _decode(self, digest: str, raw) -> Flow | None:
        if raw is None:
            return None
        data = json.loads(raw)
        return Flow(Provider(data["provider"]), uuid.UUID(data["userId"]), data["redirectUri"], data["metadata"],
                    data["tenant"], json.loads(self.keyring.decrypt(data["secret"], self._place(digest))),
                    dt.datetime.fromisoformat(data["expiresAt"]))

    async def save(self, state: str, flow: Flow) -> None:
        flow.expires_at = utcnow() + STATE_TTL
        digest = state_hash(state)
        await self.client.set(REDIS_PREFIX + digest, self._encode(digest, flow),
                              ex=int(STATE_TTL.total_seconds()), nx=True)

    async def peek(self, state: str, provider: Provider) -> Flow:
        digest = state_hash(state)
        return _check(self._decode(digest, await self.client.get(REDIS_PREFIX + digest)), provider)

    async def take(self, state: str, provider: Provider) -> Flow:
        digest = state_hash(state)
        return _check(self._decode(digest, await self.client.getdel(REDIS_PREFIX + digest)), provider)

    async def attach_keys(self, state: str, provider: Provider, keys: dict) -> None:
        flow = await self.peek(state, provider)
        flow.secret["keys"] = keys
        digest = state_hash(state)
        await self.client.set(REDIS_PREFIX + digest, self._encode(digest, flow), keepttl=True, xx=True)
