"""OAuth flow state: created at initiate, consumed once at the callback.

The state is 256 random bits (RFC 6749 §10.10 asks for at least 128), kept
only as its SHA-256 so a leaked table or Redis dump cannot complete a flow.

The whole flow record (provider, user, redirectUri, metadata, tenant, expiry,
PKCE verifier, WooCommerce's keys) is one AES-256-GCM value whose associated
data names the state's digest: in Redis the place is the digest itself; in the
``oauth_states`` table it is the row id, which is derived from the digest. So
whoever can write to Redis or the table cannot redirect a flow, give it to
another user, or move a sealed record under another state: the record fails to
open and the callback ends in an error. The plain ``provider``/``user_id``/
``expires_at`` columns stay for housekeeping (purge, a deleted user's flows)
and are never trusted.

A callback checks before it consumes: it reads the record, checks provider and
expiry, then deletes it only if it still holds the very ciphertext it read
(Redis: a compare-and-delete script; SQL: DELETE ... WHERE id AND secret), so a
state sent to another provider's callback stays usable, and of two racing
callbacks exactly one wins. Redis holds states when REDIS_URL is set, else the
``oauth_states`` table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass, field

from nexusctl.crypto import Keyring, Place
from nexusctl.db.fields import utcnow
from nexusctl.db.models import OAuthState
from nexusctl.db.secrets import place_of, seal
from nexusctl.enums import Provider
from nexusctl.errors import DecryptionFailed, OAuthFailed

STATE_TTL = dt.timedelta(minutes=10)
REDIS_PREFIX = "nexusctl:oauth-state:"
RECORD_VERSION = 2  # 1: plain JSON beside an encrypted secret (before the whole record was sealed)

# Deletes the key only if it still holds what the caller read and checked.
_COMPARE_AND_DELETE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# Replaces the value only if unchanged since read, keeping the TTL (WooCommerce's keys, key rotation).
_COMPARE_AND_SET = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') end return 0"
)


def new_state() -> str:
    return secrets.token_urlsafe(32)


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def row_id_of(digest: str) -> uuid.UUID:
    """The table row's id, derived from the state's digest: the row id is in the AAD, so the digest is too."""
    return uuid.UUID(bytes=hashlib.sha256(b"nexusctl oauth state row\x00" + digest.encode()).digest()[:16])


class StateUnreadable(OAuthFailed):
    """The stored flow would not open: altered, from an older release, or under a key no longer configured.

    The callback answers it with a redirect to FRONTEND_URL (status=error): the
    flow's own redirectUri is exactly what cannot be trusted.
    """


@dataclass
class Flow:
    provider: Provider
    user_id: uuid.UUID
    redirect_uri: str
    metadata: dict = field(default_factory=dict)
    tenant: str | None = None
    secret: dict = field(default_factory=dict)  # {"verifier": ..., "keys": {...}}: never logged
    expires_at: dt.datetime | None = None
    organization_id: uuid.UUID | None = None  # the spec's Integration.organizationId, given at initiate

    def __repr__(self) -> str:
        return f"Flow(provider={self.provider.value}, user_id={self.user_id}, tenant={self.tenant!r})"

    def to_json(self, digest: str) -> str:
        return json.dumps(
            {
                "v": RECORD_VERSION,
                "state": digest,
                "provider": self.provider.value,
                "userId": str(self.user_id),
                "redirectUri": self.redirect_uri,
                "metadata": self.metadata,
                "tenant": self.tenant,
                "expiresAt": self.expires_at.isoformat(),
                "secret": self.secret,
                "organizationId": str(self.organization_id) if self.organization_id else None,
            }
        )

    @classmethod
    def from_json(cls, plaintext: str, digest: str) -> Flow:
        try:
            data = json.loads(plaintext)
            if data.get("v") != RECORD_VERSION or data.get("state") != digest:
                raise ValueError("not a sealed flow of this state")
            organization = data.get("organizationId")  # absent in flows sealed before it existed
            return cls(
                Provider(data["provider"]),
                uuid.UUID(data["userId"]),
                str(data["redirectUri"]),
                dict(data["metadata"]),
                data["tenant"],
                dict(data["secret"]),
                dt.datetime.fromisoformat(data["expiresAt"]),
                uuid.UUID(organization) if organization else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise StateUnreadable("the connection attempt cannot be read: start it again") from None


def _open(keyring: Keyring, digest: str, stored: str, place: Place) -> Flow:
    try:
        return Flow.from_json(keyring.decrypt(stored, place), digest)
    except DecryptionFailed:  # its message names tables and key ids: not for the browser
        raise StateUnreadable("the connection attempt cannot be read: start it again") from None


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
        digest = state_hash(state)
        # redirect_uri/metadata/tenant live only in the sealed record; the plain columns are for housekeeping.
        row = OAuthState(
            id=row_id_of(digest),
            state=digest,
            provider=flow.provider,
            user_id=flow.user_id,
            redirect_uri="",
            metadata={},
            tenant=None,
            expires_at=flow.expires_at,
        )
        seal(self.keyring, row, "secret", flow.to_json(digest))
        row.save(force_insert=True)

    def _read(self, state: str) -> tuple[OAuthState | None, Flow | None]:
        digest = state_hash(state)
        row = OAuthState.select().where(OAuthState.state == digest).first()
        if row is None:
            return None, None
        if row.secret is None or uuid.UUID(str(row.id)) != row_id_of(digest):
            raise StateUnreadable("the connection attempt cannot be read: start it again")
        flow = _open(self.keyring, digest, row.secret, place_of(row, "secret"))
        # The plain column may only shorten the sealed expiry (housekeeping and tests age rows through it).
        flow.expires_at = min(flow.expires_at, row.expires_at)
        return row, flow

    def peek(self, state: str, provider: Provider) -> Flow:
        return _check(self._read(state)[1], provider)

    def take(self, state: str, provider: Provider) -> Flow:
        row, flow = self._read(state)
        _check(flow, provider)  # before consuming: another provider's callback leaves the state usable
        # The DELETE decides: of two callbacks racing with one state, one deletes the row it checked.
        deleted = OAuthState.delete().where((OAuthState.id == row.id) & (OAuthState.secret == row.secret)).execute()
        return _check(flow if deleted == 1 else None, provider)

    def attach_keys(self, state: str, provider: Provider, keys: dict) -> None:
        row, flow = self._read(state)
        _check(flow, provider)
        flow.secret["keys"] = keys
        read = row.secret
        seal(self.keyring, row, "secret", flow.to_json(row.state))
        updated = (
            OAuthState.update(secret=row.secret, updated_at=utcnow())
            .where((OAuthState.id == row.id) & (OAuthState.secret == read))
            .execute()
        )
        _check(flow if updated == 1 else None, provider)

    def purge_expired(self) -> int:
        return OAuthState.delete().where(OAuthState.expires_at <= utcnow()).execute()


class RedisStates:
    """States in Redis with a TTL (several daemons share them). Async: redis.asyncio client."""

    def __init__(self, keyring: Keyring, client) -> None:
        self.keyring = keyring
        self.client = client

    @staticmethod
    def place(digest: str) -> Place:
        return Place("oauth_states", digest, "flow")

    def _seal(self, digest: str, flow: Flow) -> str:
        return self.keyring.encrypt(flow.to_json(digest), self.place(digest))

    async def _read(self, state: str) -> tuple[str, bytes | None, Flow | None]:
        digest = state_hash(state)
        raw = await self.client.get(REDIS_PREFIX + digest)
        if raw is None:
            return digest, None, None
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return digest, raw, _open(self.keyring, digest, text, self.place(digest))

    async def save(self, state: str, flow: Flow) -> None:
        flow.expires_at = utcnow() + STATE_TTL
        digest = state_hash(state)
        await self.client.set(
            REDIS_PREFIX + digest, self._seal(digest, flow), ex=int(STATE_TTL.total_seconds()), nx=True
        )

    async def peek(self, state: str, provider: Provider) -> Flow:
        return _check((await self._read(state))[2], provider)

    async def take(self, state: str, provider: Provider) -> Flow:
        digest, raw, flow = await self._read(state)
        _check(flow, provider)
        deleted = await self.client.eval(_COMPARE_AND_DELETE, 1, REDIS_PREFIX + digest, raw)
        return _check(flow if deleted == 1 else None, provider)

    async def attach_keys(self, state: str, provider: Provider, keys: dict) -> None:
        digest, raw, flow = await self._read(state)
        _check(flow, provider)
        flow.secret["keys"] = keys
        stored = await self.client.eval(_COMPARE_AND_SET, 1, REDIS_PREFIX + digest, raw, self._seal(digest, flow))
        _check(flow if stored else None, provider)

    async def rotate(self, *, dry_run: bool = False) -> tuple[int, int]:
        """Re-encrypt pending flows under the current key; answers (rewritten, unreadable)."""
        rewritten = failed = 0
        async for key in self.client.scan_iter(match=REDIS_PREFIX + "*", count=500):
            key = key.decode() if isinstance(key, bytes) else key
            raw = await self.client.get(key)
            if raw is None:
                continue
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            if not self.keyring.needs_rotation(text):
                continue
            place = self.place(key.removeprefix(REDIS_PREFIX))
            try:
                self.keyring.key_id_of(text, place)
            except DecryptionFailed:
                continue  # a record from before flows were sealed: unreadable by design, gone within ten minutes
            try:
                plaintext = self.keyring.decrypt(text, place)
            except DecryptionFailed:
                failed += 1  # expires within ten minutes anyway; its callback ends in status=error
                continue
            if dry_run or await self.client.eval(_COMPARE_AND_SET, 1, key, raw, self.keyring.encrypt(plaintext, place)):
                rewritten += 1
        return rewritten, failed
