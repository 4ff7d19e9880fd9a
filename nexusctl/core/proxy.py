"""The provider API proxy: another service calls a provider's API through us, never holding a token.

``call(svc, integration_id, request)`` is an async context manager yielding
the provider's answer (status, headers, a stream of chunks) for the daemon's
``/integrations/{id}/proxy/{path}`` and the CLI's ``integrations call``:

- The path is joined to the integration's API base (providers.proxy.join,
  which refuses every spelling that would leave it) and signed the provider's
  way (providers.proxy.target); the caller's credentials, cookies and
  hop-by-hop headers stay behind, the provider's ``Set-Cookie`` too.
- A token that expires within EXPIRY_MARGIN is refreshed first; a 401 from the
  provider gets one refresh (single-flight across callers and daemons:
  nexusctl.core.refresh, told which token was refused so that twenty callers
  refused at once refresh once) and one retry. A refresh that fails goes the
  usual way (lastError, health, integration.error when the grant is gone)
  and answers PROVIDER_ERROR (502), or INTEGRATION_INACTIVE (409) once the
  grant is gone. A token still refused after that counts against the
  integration's health (refresh_failed_at, lastError) like a failed refresh.
- Throttling (429, and the provider-specific signals the syncs read from
  error answers) comes back as 429 with ``Retry-After``; with ``retries`` an
  idempotent call (GET, PUT, DELETE, or any with an Idempotency-Key) waits
  and tries again, within RETRY_BUDGET seconds of waiting in all; 502-504
  and unreachable hosts are retried the same way.
- The answer is never held whole: the caller reads it chunk by chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import AsyncIterator

from nexusctl import clock
from nexusctl.core import connections, events, proxy_cache, proxy_health, rate_budget, refresh, singleflight
from nexusctl.core.ids import parse_uuid
from nexusctl.db.database import database_proxy
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration
from nexusctl.errors import (
    IntegrationInactive,
    IntegrationNotFound,
    NexusError,
    PayloadTooLarge,
    ProviderError,
    RateLimited,
    RefreshFailed,
    UsageProblem,
)
from nexusctl.providers import proxy as targets
from nexusctl.providers.http import Reply, describe, retry_after
from nexusctl.providers.registry import SPECS
from nexusctl.providers.spec import NotYetRefreshable, RefreshStyle

log = logging.getLogger(__name__)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
IDEMPOTENT = frozenset({"GET", "PUT", "DELETE"})
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_RETRIES = 5
RETRY_BUDGET = 60.0  # seconds of waiting, in all, that ``retries`` may spend
UNKNOWN_WAIT = 10  # seconds, when a provider throttles without saying for how long
EXPIRY_MARGIN = dt.timedelta(seconds=60)
RETRIED_STATUSES = (502, 503, 504)
_RENEWABLE = (RefreshStyle.STANDARD, RefreshStyle.ROTATING, RefreshStyle.FB_EXCHANGE, RefreshStyle.IG_REFRESH)


@dataclass
class ProxyRequest:
    method: str
    path: str  # percent-encoded, as on the wire: /v10/users/@me
    query: str = ""  # percent-encoded, as on the wire, without our own parameters
    headers: dict = field(default_factory=dict)
    body: bytes | None = None
    retries: int = 0
    # check_request passed: the route and the CLI check where the call comes in (the route before it reads the
    # body, which it holds to MAX_BODY_BYTES itself), so ``call`` and ``grant`` do not check it again.
    checked: bool = field(default=False, repr=False, compare=False)


@dataclass
class Answer:
    """The provider's answer: status, the headers that may go back, and the body as chunks."""

    provider: str
    status: int
    headers: dict
    _response: object = None  # the aiohttp.ClientResponse still being read
    _prefix: bytes = b""  # what was read already (an error answer inspected for throttling)
    attempts: int = 1

    async def whole(self, limit: int) -> bytes | None:
        """The body at once when the provider said it is at most ``limit`` bytes (one write back instead of a
        streamed answer: most API answers); None for a longer or unsized one, which ``chunks`` streams (what this
        read took stays for it, so nothing is lost or read twice)."""
        response = self._response
        if response is None:
            return self._prefix
        length = response.content_length
        if length is None or length > limit:
            return None
        data, cap = self._prefix, 4 * limit  # a compressed answer grows when decoded: never hold more than this
        while True:
            chunk = await response.content.readany()
            if not chunk:
                self._response = None
                return data
            data += chunk
            if len(data) > cap:
                self._prefix = data
                return None

    async def chunks(self, size: int = 65536) -> AsyncIterator[bytes]:
        if self._prefix:
            yield self._prefix
        if self._response is not None:
            async for chunk in self._response.content.iter_chunked(size):
                yield chunk


def check_request(request: ProxyRequest) -> None:
    """Everything about the request that is wrong whatever the integration: a 400 before any lookup. Its path
    becomes the checked one (providers.proxy.CheckedPath, which ``join`` takes as it is)."""
    if request.method not in METHODS:
        raise UsageProblem(f"method must be one of {', '.join(METHODS)}", field="method")
    if not 0 <= request.retries <= MAX_RETRIES:
        raise UsageProblem(f"retries must be between 0 and {MAX_RETRIES}", field="retries")
    if request.body is not None and len(request.body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the request body is over {MAX_BODY_BYTES // (1024 * 1024)} MiB")
    request.path = targets.check_path(request.path)
    targets.check_headers(request.headers)
    request.checked = True


def _retryable(request: ProxyRequest) -> bool:
    return request.method in IDEMPOTENT or any(k.lower() == "idempotency-key" for k in request.headers)


def _expiring(tokens) -> bool:
    return tokens.expires_at is not None and tokens.expires_at <= utcnow() + EXPIRY_MARGIN


def _renewable(row, tokens) -> bool:
    style = SPECS[row.provider].refresh
    return style in _RENEWABLE and (
        bool(tokens.refresh_token) or style not in (RefreshStyle.STANDARD, RefreshStyle.ROTATING)
    )


async def _refreshed(svc, row, refused_cipher: str | None):
    """Refresh (single-flight) and load the new tokens; failures as the caller should see them."""
    proxy_cache.forget(row.id)
    try:
        await refresh.refresh(svc, row.id, seen=refused_cipher)
    except NotYetRefreshable:  # the current token is still the one to use
        pass
    except RefreshFailed as exc:
        fresh = await svc.run(Integration.get_by_id, row.id)
        if not fresh.is_active:
            raise IntegrationInactive(
                f"{row.provider.value}: the access token could not be renewed and the "
                f"integration was deactivated ({exc.message}); connect it again",
                id=str(row.id),
            ) from None
        raise ProviderError(
            f"{row.provider.value}: renewing the access token failed ({exc.message})",
            provider=row.provider.value,
            id=str(row.id),
        ) from None
    except NexusError as exc:
        if exc.http_status in (409, 503):  # inactive; a key this process lacks, the database away: as they are
            raise
        raise ProviderError(
            f"{row.provider.value}: renewing the access token failed ({exc.message})",
            provider=row.provider.value,
            id=str(row.id),
        ) from None
    key = str(row.id)
    seen = proxy_cache.generation(key)
    row, tokens = await svc.run(connections.load, svc.keyring, key)
    proxy_cache.put(key, row, tokens, seen)
    return row, tokens


def note_refused(row_id, message: str) -> bool:
    """The provider refused the token even after a refresh (or it cannot be refreshed): health sees it as a
    failing renewal (REFRESH_FAILING, or TOKEN_EXPIRED once expired), checked again at once; the first such
    refusal since the last good refresh is an integration.error TOKEN_REFUSED. True when the event was new."""
    now = utcnow()
    # Failing already (a refusal or a failed refresh since the last good refresh): said before, not again.
    healthy = Integration.refresh_failed_at.is_null() | (
        Integration.refreshed_at.is_null(False) & (Integration.refresh_failed_at < Integration.refreshed_at)
    )
    with database_proxy.atomic():
        first = (
            Integration.update(refresh_failed_at=now, last_error=message, health_due_at=now)
            .where((Integration.id == row_id) & healthy)
            .execute()
        )
        if not first:
            Integration.update(refresh_failed_at=now, last_error=message, health_due_at=now).where(
                Integration.id == row_id
            ).execute()
            return False
        events.record(events.ERROR, Integration.get_by_id(row_id), code="TOKEN_REFUSED", message=message)
    return True


@contextlib.asynccontextmanager
async def call(svc, integration_id, request: ProxyRequest, *, owner_id=None, observe=None):
    """Yields the provider's ``Answer``; ``observe(provider, method, status, seconds)`` after each provider call
    (metrics). Raises NexusError for what never reached a usable answer."""
    if not request.checked:
        check_request(request)
    row, tokens = await _load(svc, integration_id, owner_id)
    provider = row.provider.value
    if not row.is_active:
        raise IntegrationInactive(
            f"integration {row.id} is inactive ({row.last_error or 'deactivated'}); connect it again", id=str(row.id)
        )
    if _expiring(tokens) and _renewable(row, tokens):
        row, tokens = await _refreshed(svc, row, None)
    adapter = svc.adapter_of(row)
    refreshed, attempts, waited = False, 0, 0.0
    while True:
        budget_wait = await rate_budget.wait_for(svc, row.id)
        if budget_wait:  # the provider told a sync (or another proxied call, here or elsewhere) to wait
            if _retryable(request) and attempts < request.retries and waited + budget_wait <= RETRY_BUDGET:
                attempts += 1
                waited += budget_wait
                await clock.wait(budget_wait)  # the provider's window: on the product clock (a test moves it)
                continue
            _observe(observe, provider, request.method, 429, time.monotonic(), None, called=False)
            await _note_health(svc, row, 429, f"{provider}: rate limited (waiting {budget_wait} s)")
            raise RateLimited(
                f"{provider}: rate limited; the provider asked this integration's callers to wait "
                f"{budget_wait} s more (not called)",
                provider=provider,
                retry_after=budget_wait,
            )
        target = _target(adapter, tokens, svc.settings)
        url = targets.join(target.base, request.path, request.query)
        session = adapter.guarded_session if adapter.user_supplied(str(url)) else adapter.session
        headers = {**targets.forwarded_request_headers(request.headers), **target.headers}
        attempts += 1
        started = time.monotonic()
        try:
            response = await targets.send(session, provider, request.method, url, headers, request.body)
        except ProviderError as exc:
            _observe(observe, provider, request.method, 0, started, url)
            wait = 1.0
            if _retryable(request) and attempts <= request.retries and waited + wait <= RETRY_BUDGET:
                waited += wait
                await asyncio.sleep(wait)
                continue
            await _note_health(svc, row, 0, exc.message)
            raise
        try:
            _observe(observe, provider, request.method, response.status, started, url)
            if response.status == 401 and not refreshed and _renewable(row, tokens):
                response.release()
                refreshed = True
                proxy_cache.forget(row.id)
                row, tokens = await _refreshed(svc, row, row.access_token)
                continue
            if response.status == 401:
                sniffed = await targets.sniff(response, provider=provider)
                detail = describe(Reply(401, {}, sniffed.decode("utf-8", "replace")), target.secrets, ": ")
                message = (
                    f"{provider} refused the access token{' even after a refresh' if refreshed else ''} (HTTP 401)"
                )
                proxy_cache.forget(row.id)
                await svc.run(note_refused, row.id, message)
                raise ProviderError(
                    f"{message}{detail}; connect the integration again if this persists", provider=provider, status=401
                )
            ok_too = targets.throttles_in_ok(adapter, response)
            sniffed = await targets.sniff(response, ok_too=ok_too, provider=provider)
            wait = targets.throttle_wait(adapter, response, sniffed, ok_too=ok_too)
            status = response.status
            if wait is not False:  # kept for the integration's other callers (syncs, proxied calls, other daemons)
                await rate_budget.note(svc, row.id, UNKNOWN_WAIT if wait is None else wait, reason="proxy")
            else:
                exhausted = targets.exhausted_wait_of(response)  # X-RateLimit-Remaining: 0 with a reset
                if exhausted:
                    await rate_budget.note(svc, row.id, exhausted, reason="proxy: none remaining")
            retry = wait is not False or status in RETRIED_STATUSES
            if retry:
                if wait is False:  # a 502-504: the provider's Retry-After if it gave one, else a second
                    seconds = float(retry_after(Reply(status, dict(response.headers), None)) or 1)
                else:
                    seconds = float(UNKNOWN_WAIT if wait is None else wait)
                if _retryable(request) and attempts <= request.retries and waited + seconds <= RETRY_BUDGET:
                    response.release()
                    waited += seconds
                    since = clock.time()  # before the line: a test moving the clock when it sees it is not early
                    log.info("proxy %s %s: HTTP %s, retrying in %.0f s", provider, request.method, status, seconds)
                    await clock.wait(seconds, since=since)  # the provider's Retry-After: on the product clock
                    continue
            answer_headers = targets.returned_response_headers(response.headers)
            if wait is not False:
                status = 429
                answer_headers["Retry-After"] = str(int(UNKNOWN_WAIT if wait is None else wait))
            await _note_health(svc, row, status, f"{provider} answered HTTP {response.status} to a proxied call")
            yield Answer(provider, status, answer_headers, response, sniffed, attempts)
            return
        finally:
            response.release()


# The credential headers a front (README: Provider API proxy, An optional C front) can set: anything else goes the
# daemon's own way.
FRONT_CREDENTIALS = ("Authorization", "X-Shopify-Access-Token", "Access-Token", "developer-token", "login-customer-id")
_FRONT_NAMES = {name.lower(): name for name in FRONT_CREDENTIALS}


@dataclass
class Grant:
    """What a front needs to make a proxied GET itself: the exact URL and the provider's credential headers."""

    provider: str
    url: object  # yarl.URL, provably under the integration's API base (providers.proxy.join)
    headers: dict  # FRONT_CREDENTIALS names only


async def grant(svc, integration_id, request: ProxyRequest, *, owner_id=None) -> Grant | str:
    """Everything ``call`` does before it sends (the caller's ownership, the path checks, a refresh when the
    token expires soon, the rate budget), for a front that sends the call itself: a Grant, or the reason
    the call must take the daemon's own proxy route (a str: a method other than GET, ``retries``, a wait the
    rate budget keeps, a user-supplied host, a provider that throttles in 200 answers, a health failure a
    good answer would clear, credentials the front cannot set). Refusals raise as ``call`` does."""
    if not request.checked:
        check_request(request)
    row, tokens = await _load(svc, integration_id, owner_id)
    if not row.is_active:
        raise IntegrationInactive(
            f"integration {row.id} is inactive ({row.last_error or 'deactivated'}); connect it again", id=str(row.id)
        )
    if request.method != "GET":
        return "method"
    if request.retries:
        return "retries"
    named = {h.strip().lower() for h in request.headers.get("Connection", "").split(",")}
    if named - {"", "keep-alive", "close"}:
        return "connection"
    adapter = svc.adapter_of(row)
    if getattr(adapter, "THROTTLES_IN_OK", False):
        return "throttles-in-ok"
    if proxy_health.worth_writing(row, proxy_health.OK):
        return "health"
    if _expiring(tokens) and _renewable(row, tokens):
        row, tokens = await _refreshed(svc, row, None)
    if await rate_budget.wait_for(svc, row.id):
        return "rate-budget"
    target = _target(adapter, tokens, svc.settings)
    url = targets.join(target.base, request.path, request.query)
    if adapter.user_supplied(str(url)):
        return "user-supplied-host"
    headers = {}
    for name, value in target.headers.items():
        known = _FRONT_NAMES.get(name.lower())
        if known is None:
            return "credentials"
        headers[known] = value
    return Grant(row.provider.value, url, headers)


def _target(adapter, tokens, settings) -> targets.Target:
    """The integration's base URL and signed headers, worked out once per token set read (core.proxy_cache keeps
    one for up to a second, so most calls reuse it; a refresh reads a new one). Kept on the token set itself, so
    it lives exactly as long as the plaintext it is made of, never in a table of its own. Each call has an adapter
    object of its own (Runtime.adapter_of), but one of the same class from the same settings: the same target."""
    kept = tokens.__dict__.get("_proxy_target")
    if kept is not None and kept[0] is type(adapter) and kept[1] is settings:
        return kept[2]
    target = targets.target(adapter, tokens, settings)
    tokens.__dict__["_proxy_target"] = (type(adapter), settings, target)
    return target


async def _load(svc, integration_id, owner_id):
    """The row and its tokens: from this process's cache (core.proxy_cache: at most TTL old, dropped at once on
    this process's own changes), else read and decrypted once and kept."""
    key = str(parse_uuid(integration_id, "integrationId"))
    cached = proxy_cache.get(key)
    row, tokens = cached if cached is not None else await _read_once(svc, key)
    if owner_id is not None and row.user_id != owner_id:
        raise IntegrationNotFound(f"integration {key} not found", id=key)
    return row, tokens


# Reads in flight, by (services, id), tagged with the cache generation they started at. When an entry expires under
# load, every caller in that instant missed it and read the row itself (sixteen reads and decryptions on the
# database threads for sixteen concurrent callers, each second): now they share one.
_READING = singleflight.Flights()


async def _read_once(svc, key: str):
    """(row, tokens) read and decrypted once for all the callers that need them now; kept in the cache. A read
    that began before this process changed the integration (proxy_cache.forget) is not joined."""
    seen = proxy_cache.generation(key)
    return await _READING.share((id(svc), key), lambda: _read(svc, key, seen), tag=seen)


async def _read(svc, key: str, seen: int):
    row, tokens = await svc.run(connections.load, svc.keyring, key)
    proxy_cache.put(key, row, tokens, seen)
    return row, tokens


async def _note_health(svc, row, status: int, message: str) -> None:
    """A proxied call's outcome as integration health sees it (proxy_health.record): throttling, a provider
    failure (5xx) or an unreachable provider degrade it, a good answer clears that; a caller's own 4xx is
    neither. Written only when it changes what is recorded (at most every few seconds under a storm)."""
    outcome = proxy_health.outcome_of(status)
    if outcome is None or not proxy_health.worth_writing(row, outcome):
        return
    try:
        await svc.run(proxy_health.record, row.id, outcome, message)
    except Exception as exc:  # noqa: BLE001 - bookkeeping never fails the call: the provider has answered
        # (a POST has done its work; failing it here would make the caller send it again). Not remembered, so
        # the next call writes it.
        log.warning("proxy: integration %s health not recorded (%s)", row.id, type(exc).__name__)
        return
    proxy_health.remember(row, outcome, message)


_CALL_LINE = "proxy call %s %s %s -> %s in %.0f ms"


def _observe(observe, provider: str, method: str, status: int, started: float, url, *, called: bool = True) -> None:
    seconds = time.monotonic() - started
    # Never the path's query string (it may carry anything), never a header: provider, method, host, status, time.
    if called:
        if log.isEnabledFor(logging.INFO):
            # Made and handled directly, as the daemon's request line is (daemon.observe): log.info would first
            # walk the stack for a file and line no formatter of the daemon writes (a third of this line's CPU).
            args = (provider, method, url.host, status or "unreachable", seconds * 1000)
            log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, _CALL_LINE, args, None))
    else:
        log.info("proxy call %s %s -> 429 without calling the provider (rate budget)", provider, method)
    if observe is not None:
        observe(provider, method, status, seconds)
