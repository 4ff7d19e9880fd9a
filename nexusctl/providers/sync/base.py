"""What a sync action is, and the API handle it reads the provider through.

An action (``fetch_posts``, ``fetch_orders`` ...) knows one list endpoint and
its pagination, nothing else: ``pages(api, resume)`` yields ``Page``s of
``Item``s, each page carrying the ``resume`` state that continues *after* it
(a page token, an offset, a last id). The engine (nexusctl.core.sync_runs)
stores that state after every committed page, so a run that fails or is
cancelled continues next time from where it stopped; it also decides what
changed (fingerprints), emits the events and writes the sync log.

``SyncApi`` makes the calls: the integration's access token in the header the
provider wants (``bearer``, ``oauth``, a header name, or ``basic`` for a
``key:secret`` pair such as WooCommerce's consumer key and secret), its
per-tenant base URL, and the provider's throttling signals turned into
``RateLimited`` (with the wait when the provider says) and a refused token into
``TokenExpired`` (the engine refreshes once and retries). Every call asks the
integration's rate budget first (``api.budget``, nexusctl.core.rate_budget):
while a wait told to any caller lasts, ``BudgetWait`` is raised without calling
the provider; a wait the provider tells this call is noted there. Calls a
publisher makes outside ``request`` (the Discord bot, a channel webhook, an
upload's chunks) go through ``raw`` for the same.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from nexusctl.errors import ProviderError, RateLimited, TokenExpired
from nexusctl.providers.http import Reply, describe, exhausted_wait


class BudgetWait(RateLimited):
    """The integration's rate budget holds a wait (told to the proxy, a sync, another process): nothing was sent
    to the provider. The engine defers a run whose budget the wait is beyond, instead of failing it."""


@dataclass
class Item:
    external_id: str
    data: dict
    # Top-level keys of ``data`` left out of the fingerprint: values that change every day without the
    # object changing (an ad campaign's metrics for the last 30 days). They still travel in the event
    # payload (``data`` whole), so a created / updated event carries them as of that run.
    volatile: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        """Changes when the provider's data changes, whatever the key order (``volatile`` keys aside)."""
        stable = {k: v for k, v in self.data.items() if k not in self.volatile} if self.volatile else self.data
        raw = json.dumps(stable, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class Page:
    items: list[Item]
    resume: dict | None  # where the next page starts; None: this was the last page
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SyncAction:
    name: str  # fetch_posts
    resource: str  # media, order, product ... (events are <resource>.created/.updated/.deleted)
    pages: Any  # async (api: SyncApi, resume: dict | None) -> AsyncIterator[Page]
    newest_first: bool = False  # an incremental run may stop at the first page with nothing new
    description: str = ""
    # A snapshot instead of a list (analytics): ``report(api, got)`` returns one ``Report``; the engine records it
    # as a single ``<resource>.fetched`` event, with no per-item change tracking. ``got`` is a dict that survives
    # a retry within the run (after a throttle or a refreshed token), so what was read is not read again.
    report: Any = None


@dataclass
class Report:
    """What a snapshot action read: metrics of the account and of its recent posts, as of now.

    ``account``: the account-level metrics; ``posts``: one dict per recent post (``id``, when it was made and its
    ``metrics``), newest first; ``window``: the reporting window of windowed metrics (``since``, ``until``, which
    metrics), None when every metric is a lifetime total; ``notes``: what the run left out and why."""

    account: dict
    posts: list[dict]
    window: dict | None = None
    notes: list[str] = field(default_factory=list)


class SyncApi:
    """One integration's view of its provider's API (the adapter does the HTTP)."""

    def __init__(
        self, adapter, tokens, tenant: str | None, *, auth_header: str = "bearer", base_url: str | None = None
    ) -> None:
        self.adapter, self.tokens, self.tenant = adapter, tokens, tenant
        self.auth_header = auth_header
        self.base = (base_url or adapter.url("API", tenant) or "").rstrip("/")
        self.calls = 0
        self.settings = None  # set by the engine: publishers that post as the application read its credentials
        self.pending: dict | None = None  # a deferred publish run's state (publish_common.NotReady), else None
        self.heartbeat = None  # set by the engine: a long publish (an upload) awaits it now and then
        self.refresh = None  # set by the engine: a new access token in place, for an upload that cannot restart
        # Set by the engine: the integration's rate-limit budget, shared with the API proxy (core.rate_budget.Gate):
        # a wait another caller was told to keep is kept here too, and a wait this run is told is kept for them.
        self.budget = None

    @property
    def allowed_networks(self) -> tuple:
        """The SSRF guard's allow-list for URLs the user supplied (media), as the adapter has it."""
        return self.adapter.allowed_networks

    @property
    def metadata(self) -> dict:
        return self.tokens.metadata or {}

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base}/{path.lstrip('/')}"

    def _auth(self, headers: dict, token: str | None = None) -> dict:
        token = token or self.tokens.access_token
        if self.auth_header == "basic":  # WooCommerce keys, stored as "consumer_key:consumer_secret"
            headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        elif self.auth_header == "bearer":
            headers["Authorization"] = f"Bearer {token}"
        elif self.auth_header == "oauth":
            headers["Authorization"] = f"OAuth {token}"
        else:
            headers[self.auth_header] = token
        return headers

    def _secrets(self) -> tuple:
        """What must never appear in an error message: the token (and, for Basic, each half of it)."""
        token = self.tokens.access_token
        if self.auth_header == "basic":
            key, _, secret = token.partition(":")
            return (token, key, secret, base64.b64encode(token.encode()).decode())
        return (token,)

    def signed(self, headers: dict) -> dict:
        """``headers`` with the integration's credentials added as the provider wants them (the API proxy)."""
        return self._auth(headers)

    def secret_values(self) -> tuple:
        return self._secrets()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json_body: Any = None,
        headers: dict | None = None,
        check=None,
        token: str | None = None,
        secrets: tuple = (),
    ) -> Reply:
        """``check(reply)``, when given, reads the provider's own error shapes first (it may raise, e.g. a
        Graph code 190 on HTTP 400 as TokenExpired) before the generic 401 / 4xx handling below.

        ``token``: send this bearer token instead of the integration's (a Facebook page token got from
        ``/me/accounts``); it is kept out of error messages like the integration's own.
        ``secrets``: other values this call sends that no message may show (an application's developer token)."""
        kwargs: dict = {"headers": self._auth({"Accept": "application/json", **(headers or {})}, token)}
        if params:
            kwargs["params"] = {k: str(v) for k, v in params.items() if v is not None}
        if json_body is not None:
            kwargs["json"] = json_body
        await self.ask_budget()
        self.calls += 1
        secrets = self._secrets() + ((token,) if token else ()) + tuple(s for s in secrets if s)
        reply = await self._heard(self.adapter.http(method, self.url(path), secrets=secrets, **kwargs))
        if check is not None:
            check(reply)
        if reply.status == 401:
            raise TokenExpired(f"{self.adapter.name}: the access token was refused", provider=self.adapter.name)
        if reply.status >= 400:
            raise ProviderError(
                f"{self.adapter.name}: {method} {path.split('?')[0]} answered HTTP {reply.status}"
                f"{describe(reply, secrets, ': ')}",
                provider=self.adapter.name,
                status=reply.status,
            )
        return reply

    async def ask_budget(self) -> None:
        """BudgetWait while the provider's wait, told to any caller for this integration, lasts."""
        if self.budget is not None and (wait := await self.budget.wait_for()):
            raise BudgetWait(
                f"{self.adapter.name}: rate limited (the provider asked this integration's callers to wait)",
                provider=self.adapter.name,
                retry_after=wait,
            )

    async def _heard(self, call, *, note_exhausted: bool = True) -> Reply:
        """Await the provider call; its throttle (429, the provider's own signals) is noted in the budget and
        raised as RateLimited, and (``note_exhausted``) an answer that says no call is left is noted for the
        next one."""
        try:
            reply = await call
            self.adapter._check_throttle(reply)  # provider-specific signals besides 429 (handled in http.call)
        except RateLimited as exc:
            if self.budget is not None:
                await self.budget.note(exc.retry_after)
            raise
        if note_exhausted and self.budget is not None and (spent := exhausted_wait(reply.headers)):
            await self.budget.note(spent, "none remaining")  # this answer stands; the next call waits
        return reply

    async def raw(self, method: str, url: str, **kwargs) -> Reply:
        """A call made with the adapter's HTTP directly (headers and secrets as the caller gives them), counted
        and under the budget like ``request``: asked first, the provider's throttles noted. A "none remaining"
        answer is not noted: these calls may use another credential than the integration's token (Discord's
        bot, a channel webhook), whose per-route limits routinely read 0 remaining and are not this
        integration's budget."""
        await self.ask_budget()
        self.calls += 1
        return await self._heard(self.adapter.http(method, url, **kwargs), note_exhausted=False)

    async def get(self, path: str, **kwargs) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs) -> Reply:
        return await self.request("POST", path, **kwargs)


PagesFn = AsyncIterator[Page]
