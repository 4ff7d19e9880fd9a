"""Per-provider state and test controls shared by every emulator.

A ``Provider`` subclass is one emulated provider: its routes (regexes over
``{real_host}{real_path}``), its handlers and its quirks. This base class
holds what all of them share: credentials, issued codes/grants/tokens, the
call counter and the fault controls a test drives (``fail_next``,
``rate_limit_next``, ``delay``, ``hold``/``release``, ``deny_next_authorize``,
``revoke_grants``). ``hold`` keeps calls of an endpoint in flight until the
test releases them: for "while this call is under way" without a delay hoped
long enough.

Threading: handlers run on the emulator's event-loop thread, controls are
called from the test's thread. Every read-modify-write of state happens under
``self.lock`` and never across an ``await``.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# The redirect URI every emulated app has registered from the start: the one the emulator-level tests use
# (testkit.REDIRECT). A daemon's callback URLs are registered by Emulators.register_callback_base.
APP_REDIRECT = "https://app.example.com/oauth/callback"


def auth_header(request: web.Request, scheme: str = "Bearer") -> str | None:
    """The credential after ``Authorization: <scheme> `` (scheme is case-insensitive)."""
    name, _, value = request.headers.get("Authorization", "").partition(" ")
    if name.lower() == scheme.lower() and value.strip():
        return value.strip()
    return None


@dataclass
class Grant:
    """One user consent: every token minted from it dies with it."""

    id: str
    scope: list[str]
    created: float
    data: dict = field(default_factory=dict)
    alive: bool = True


@dataclass
class Token:
    value: str
    kind: str  # "access" or "refresh" (a provider may add kinds, e.g. "key")
    grant: Grant
    issued: float
    expires: float | None = None
    alive: bool = True
    rotated: bool = False  # a refresh token that died because it was used (rotation)
    data: dict = field(default_factory=dict)


@dataclass
class Code:
    value: str
    client_id: str
    redirect_uri: str
    scope: list[str]
    issued: float
    expires: float
    challenge: str | None = None
    method: str | None = None
    data: dict = field(default_factory=dict)
    used: bool = False
    grant: Grant | None = None  # the grant the (single) successful exchange created


class Provider:
    """Base of every emulated provider. ``emu[NAME]`` is an instance."""

    NAME = ""
    ROUTES: tuple[tuple[str, str, str], ...] = ()  # (METHODS "GET|POST", tail regex, handler name)
    URLS: dict[str, str] = {}  # AUTH/TOKEN/API/REVOKE -> "{real_host}{real_path}"
    CODE_TTL = 600
    ROTATION: bool | None = None  # None: rotation is not an app setting for this provider
    ACCOUNT: dict = {}
    # Scopes the provider grants only to apps it approved (partner programmes, reviews): a consent asking for
    # one the app is not approved for is refused whole (``refused_scope_error``), as the providers do, and no
    # grant carries one unless the test approved the app first (``approve_scopes``, reset to none).
    APPROVAL_ONLY: frozenset = frozenset()
    APPROVAL_ERROR = "invalid_scope"  # the error the authorize redirect carries for an unapproved scope
    REDIRECT_ERROR = "redirect_uri_mismatch"  # the error page's code for an unregistered redirect_uri (Google's)

    def __init__(self, emu):
        self.emu = emu
        self.prefix = self.NAME.lower()
        self.lock = threading.RLock()
        self.client_id = self.make_client_id()
        self.client_secret = self.make_client_secret()
        # The app's registered redirect URIs (its settings at the provider, like its credentials: reset keeps
        # them). An authorize request naming another is refused (400 REDIRECT_ERROR, never redirected).
        self.redirect_uris: set[str] = {APP_REDIRECT}
        self.reset()

    # --- identity of the app --------------------------------------------------

    def make_client_id(self) -> str:
        return f"{self.prefix}-client-{secrets.token_hex(6)}"

    def knows_client(self, client_id: str | None) -> bool:
        """Whether ``client_id`` is one of the provider's registered apps (its authorize endpoint takes it)."""
        return client_id == self.client_id

    def make_client_secret(self) -> str:
        return secrets.token_urlsafe(24)

    def extra_env(self) -> dict[str, str]:
        """Settings of the app besides its credentials and URLs (Slack's signing secret)."""
        return {}

    def urls(self, base: str) -> dict[str, str]:
        root = f"{base}/{self.prefix}/"
        return {kind: root + tail for kind, tail in self.URLS.items()}

    def register_redirect(self, *uris: str) -> None:
        """Add redirect URIs to the app's settings at the provider."""
        with self.lock:
            self.redirect_uris |= set(uris)

    def unregister_redirect(self, *uris: str) -> None:
        with self.lock:
            self.redirect_uris -= set(uris)

    def redirect_registered(self, uri: str) -> bool:
        """Exact match, as Google, Meta, Microsoft and most providers compare (no prefix, no wildcard)."""
        with self.lock:
            return uri in self.redirect_uris

    # --- state ----------------------------------------------------------------

    def reset(self) -> None:
        """Forget every code, grant and token; clear controls; default account."""
        with self.lock:
            self.calls: collections.Counter = collections.Counter()
            self.last_headers: dict = {}  # the headers of the last request that reached this provider
            self.account: dict = copy.deepcopy(self.ACCOUNT)
            self.codes: dict[str, Code] = {}
            self.tokens: dict[str, Token] = {}
            self.grants: list[Grant] = []
            self._rotation = self.ROTATION
            self._withhold: collections.deque = collections.deque()  # scopes the next consents leave out
            self.approved: set[str] = set()  # approval-only scopes this app has (approve_scopes)
            self._sign_ins: collections.deque = collections.deque()  # who the next consents are made by
            # What the provider's list endpoints serve (sync tests): kind -> rows, newest first where the
            # real API lists newest first.
            self.records: dict[str, list[dict]] = {}
            self.reset_faults()

    def reset_faults(self) -> None:
        with self.lock:
            self._fail: dict[str, collections.deque] = collections.defaultdict(collections.deque)
            self._rate: dict[str, collections.deque] = collections.defaultdict(collections.deque)
            self._delay: dict[str, float] = {}
            self._deny: collections.deque = collections.deque()
            self._lose: dict[str, collections.deque] = collections.defaultdict(collections.deque)
            kept = [event for events in getattr(self, "_kept", {}).values() for event in events]
            for held in [*getattr(self, "_held", {}).values(), *kept]:
                held.set()  # a held call goes on: nothing stays stuck past a reset
            self._held: dict[str, threading.Event] = {}
            # Holds that ``let_new_through`` closed to new calls; the calls they hold wait for ``release``.
            self._kept: dict[str, list[threading.Event]] = collections.defaultdict(list)

    def now(self) -> float:
        return self.emu.now()

    @property
    def rotation(self) -> bool:
        if self._rotation is None:
            raise AttributeError(f"{self.NAME}: refresh-token rotation is not an app setting here")
        return self._rotation

    @rotation.setter
    def rotation(self, value: bool) -> None:
        if self._rotation is None:
            raise AttributeError(f"{self.NAME}: refresh-token rotation is not an app setting here")
        with self.lock:
            self._rotation = bool(value)

    # --- test controls --------------------------------------------------------

    def set_records(self, kind: str, rows: list[dict]) -> None:
        """Replace what the list endpoint for ``kind`` serves (a copy: the test may keep mutating its own)."""
        with self.lock:
            self.records[kind] = copy.deepcopy(rows)

    def records_of(self, kind: str) -> list[dict]:
        with self.lock:
            return copy.deepcopy(self.records.get(kind, []))

    def valid_access(self, token: str) -> bool:
        return self.status(token, "access")[1] == "ok"

    def valid_refresh(self, token: str) -> bool:
        return self.status(token, "refresh")[1] == "ok"

    def deny_next_authorize(self, error: str = "access_denied") -> None:
        with self.lock:
            self._deny.append(error)

    def approve_scopes(self, *scopes: str) -> None:
        """The provider approved the app for these approval-only scopes (a partner programme, a review)."""
        unknown = set(scopes) - self.APPROVAL_ONLY
        if unknown:
            raise ValueError(f"{self.NAME}: {sorted(unknown)} are not approval-only scopes here")
        with self.lock:
            self.approved |= set(scopes)

    def unapproved(self, scope) -> list[str]:
        """The approval-only scopes among ``scope`` this app is not approved for."""
        with self.lock:
            return sorted(s for s in scope if s in self.APPROVAL_ONLY and s not in self.approved)

    def withhold_next_grant(self, *scopes: str) -> None:
        """The next user to consent unticks these scopes: the grant (and the token response) lacks them."""
        with self.lock:
            self._withhold.append(frozenset(scopes))

    def take_withheld(self) -> frozenset:
        with self.lock:
            return self._withhold.popleft() if self._withhold else frozenset()

    def sign_in_as(self, **fields) -> dict:
        """The next user to consent is another account: the default one with these fields changed (its own id).
        Their grant remembers it, so /me (and what the provider lists for the user) answers as them for every
        token of that grant, while other grants keep theirs. Returns the account."""
        account = {**copy.deepcopy(self.account), **fields}
        with self.lock:
            self._sign_ins.append(account)
        return copy.deepcopy(account)

    def take_sign_in(self) -> dict | None:
        with self.lock:
            return self._sign_ins.popleft() if self._sign_ins else None

    def account_of(self, token: Token) -> dict:
        """The account a token acts for: its grant's (``sign_in_as``), else the emulator's default account."""
        return token.grant.data.get("account") or self.account

    def revoke_scope(self, *scopes: str) -> None:
        """The user later removes these permissions from every grant (in the provider's account settings)."""
        with self.lock:
            for grant in self.grants:
                grant.scope = [s for s in grant.scope if s not in scopes]

    def revoke_grants(self) -> None:
        with self.lock:
            for grant in self.grants:
                grant.alive = False

    def fail_next(self, endpoint: str, status: int = 503, body: Any = None, headers: dict | None = None) -> None:
        with self.lock:
            self._fail[endpoint].append((status, body, dict(headers or {})))

    def lose_next_answer(self, endpoint: str, status: int = 502) -> None:
        """The next call of ``endpoint`` does its work (a post is made) but answers ``status`` instead: the
        answer lost on its way back (a gateway timeout). Only handlers that call ``answer()`` honour it."""
        with self.lock:
            self._lose[endpoint].append(status)

    def answer(self, endpoint: str, response: web.StreamResponse) -> web.StreamResponse:
        """``response``, unless a lost answer is queued for ``endpoint`` (see lose_next_answer)."""
        with self.lock:
            status = self._lose[endpoint].popleft() if self._lose[endpoint] else None
        return response if status is None else _raw_response(status, None, {})

    def rate_limit_next(self, endpoint: str, retry_after: int = 30) -> None:
        with self.lock:
            self._rate[endpoint].append(retry_after)

    def delay(self, endpoint: str, seconds: float) -> None:
        with self.lock:
            if seconds and seconds > 0:
                self._delay[endpoint] = float(seconds)
            else:
                self._delay.pop(endpoint, None)

    def hold(self, endpoint: str) -> None:
        """Calls of ``endpoint`` (counted as they arrive) wait until ``release``: a provider call in flight for
        as long as the test needs, instead of a delay it hopes is long enough."""
        with self.lock:
            self._held.setdefault(endpoint, threading.Event())

    def release(self, endpoint: str, *, hold_next: bool = False) -> None:
        """The held calls of ``endpoint`` answer; with ``hold_next``, calls arriving from now on are held again
        (until the next release), with no gap between the two."""
        with self.lock:
            held = [self._held.pop(endpoint, None), *self._kept.pop(endpoint, [])]
            if hold_next:
                self._held[endpoint] = threading.Event()
        for event in held:
            if event is not None:
                event.set()

    def let_new_through(self, endpoint: str) -> None:
        """Calls of ``endpoint`` arriving from now on answer at once, while those held now stay held until
        ``release``: a later caller's call overtakes the ones in flight."""
        with self.lock:
            held = self._held.pop(endpoint, None)
            if held is not None:
                self._kept[endpoint].append(held)

    # --- used by handlers -----------------------------------------------------

    async def gate(self, endpoint: str) -> web.StreamResponse | None:
        """Count the call, wait the configured delay, then play any queued fault."""
        with self.lock:
            self.calls[endpoint] += 1
            wait = self._delay.get(endpoint, 0.0)
            held = self._held.get(endpoint)
        while held is not None and not held.is_set():
            await asyncio.sleep(0.01)  # held until the test releases it (or resets the emulators)
        if wait:
            await asyncio.sleep(wait)
        with self.lock:
            if self._fail[endpoint]:
                status, body, headers = self._fail[endpoint].popleft()
                return _raw_response(status, body, headers)
            if self._rate[endpoint]:
                retry_after = self._rate[endpoint].popleft()
            else:
                return None
        return self.rate_limited(endpoint, retry_after)

    def rate_limited(self, endpoint: str, retry_after: int) -> web.StreamResponse:
        """The provider's own throttling answer; subclasses override."""
        return web.json_response({"error": "rate_limited"}, status=429, headers={"Retry-After": str(retry_after)})

    def take_deny(self) -> str | None:
        with self.lock:
            return self._deny.popleft() if self._deny else None

    def new_grant(self, scope: list[str], **data) -> Grant:
        refused = self.unapproved(scope)
        if refused:  # what the provider never grants this app: a test must approve_scopes first
            raise ValueError(f"{self.NAME} grants {refused} only to approved apps: call approve_scopes first")
        with self.lock:
            grant = Grant(id=secrets.token_hex(8), scope=list(scope), created=self.now(), data=data)
            self.grants.append(grant)
            return grant

    def issue(self, grant: Grant, kind: str, ttl: float | None, value: str | None = None, **data) -> Token:
        with self.lock:
            now = self.now()
            token = Token(
                value=value or secrets.token_urlsafe(32),
                kind=kind,
                grant=grant,
                issued=now,
                expires=None if ttl is None else now + ttl,
                data=data,
            )
            self.tokens[token.value] = token
            return token

    def status(self, value: str | None, kind: str | tuple[str, ...] = "access") -> tuple[Token | None, str]:
        """(token, "ok" | "missing" | "unknown" | "revoked" | "rotated" | "expired")."""
        kinds = (kind,) if isinstance(kind, str) else kind
        if not value:
            return None, "missing"
        with self.lock:
            token = self.tokens.get(value)
            if token is None or token.kind not in kinds:
                return None, "unknown"
            if token.rotated:
                return token, "rotated"
            if not token.alive or not token.grant.alive:
                return token, "revoked"
            if token.expires is not None and self.now() >= token.expires:
                return token, "expired"
            return token, "ok"

    # --- API calls: the preamble every handler shares ------------------------------------------------

    async def api_token(self, request, endpoint: str, scope: str | set | frozenset | None = None, *, carried=None):
        """The preamble of an API handler: ``endpoint``'s gate (faults, rate limits, quotas), then the call's
        access token (``bearer_of``, or ``carried`` where the provider takes it elsewhere) valid and, given
        ``scope`` (one scope, or a set of which any will do), granted it. ``(token, None)`` to go on; else
        ``(token or None, answer)``: the gate's fault or the provider's refusal in its own words
        (``token_refused``, ``scope_refused``)."""
        fault = await self.gate(endpoint)
        if fault is not None:
            return None, fault
        token, status = self.status(self.bearer_of(request) if carried is None else carried, "access")
        if status != "ok":
            return None, self.token_refused(endpoint, token, status)
        wanted = {scope} if isinstance(scope, str) else scope
        if wanted and not set(token.grant.scope) & set(wanted):
            return token, self.scope_refused(endpoint, token)
        return token, None

    def bearer_of(self, request) -> str | None:
        """The access token an API call carries: ``Authorization: Bearer`` unless the provider says otherwise."""
        return auth_header(request)

    def token_refused(self, endpoint: str, token: Token | None, status: str) -> web.StreamResponse:
        """The answer to a call of ``endpoint`` without a valid access token (``status`` says why)."""
        return web.json_response({"error": "invalid_token"}, status=401)

    def scope_refused(self, endpoint: str, token: Token) -> web.StreamResponse:
        """The answer to a call of ``endpoint`` whose token lacks the scope it needs."""
        return web.json_response({"error": "insufficient_scope"}, status=403)

    def kill(self, token: Token, *, grant: bool = False, rotated: bool = False) -> None:
        with self.lock:
            token.alive = False
            token.rotated = token.rotated or rotated
            if grant:
                token.grant.alive = False

    def new_code(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        scope: list[str],
        challenge: str | None = None,
        method: str | None = None,
        value: str | None = None,
        **data,
    ) -> Code:
        with self.lock:
            now = self.now()
            code = Code(
                value=value or secrets.token_urlsafe(24),
                client_id=client_id,
                redirect_uri=redirect_uri,
                scope=list(scope),
                issued=now,
                expires=now + self.CODE_TTL,
                challenge=challenge,
                method=method,
                data=data,
            )
            self.codes[code.value] = code
            return code


def _raw_response(status: int, body: Any, headers: dict) -> web.Response:
    if body is None:
        return web.Response(status=status, text=f"{status} emulated outage", headers=headers)
    if isinstance(body, (dict, list)):
        headers = {"Content-Type": "application/json", **headers}
        return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)
    if isinstance(body, str):
        body = body.encode()
    return web.Response(status=status, body=body, headers=headers)
