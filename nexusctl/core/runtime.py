"""The runtime: what every piece of work gets from the process it runs in. Read this first.

A ``Runtime`` is made once per process and handed to every core flow (connect,
refresh, sync runs, publishing, inbound events) as ``svc``:

- ``settings``: the environment, validated once (``nexusctl.config.load``);
- ``keyring``: the encryption keys that open tokens and secrets at rest (``nexusctl.crypto``);
- ``run(fn, *args, **kwargs)``: database work. The daemon passes its database threads
  (``nexusctl.daemon.dbexec.DbExecutor.run``), so the event loop never blocks on a query; the CLI passes
  ``direct``, a plain call. Either way ``fn`` runs with the peewee database bound;
- ``session`` and ``guarded``: the outbound HTTP sessions for provider calls; ``guarded`` goes through
  the SSRF guard (``nexusctl.ssrf``) and is used for hosts a user named (a WooCommerce store, a media URL);
  ``poster``: the lean client of form POSTs (token requests) to the operator's hosts (``providers.poster``);
- ``redis``: the Redis client when REDIS_URL is set (OAuth states, the event bus), else None.

``opened()`` makes one and closes what it opened: the CLI's ``cli/flows.py`` and the daemon's
cleanup context (``nexusctl/daemon/app.py``) both use it, so they cannot assemble it differently.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from nexusctl.config import Settings
from nexusctl.core.oauth_states import RedisStates, TableStates
from nexusctl.crypto import Keyring
from nexusctl.enums import Provider
from nexusctl.errors import RedisUnavailable
from nexusctl.providers.adapters import tiktok
from nexusctl.providers.http import provider_sessions
from nexusctl.providers.registry import adapter_for


@dataclass
class Runtime:
    settings: Settings
    keyring: Keyring
    session: Any  # aiohttp.ClientSession
    run: Callable[..., Awaitable[Any]]  # run(fn, *args, **kwargs) for database work
    redis: Any = None  # redis.asyncio client, when REDIS_URL is set
    guarded: Any = None  # aiohttp.ClientSession through the SSRF guard, for hosts a user named
    poster: Any = None  # providers.poster.Poster: form POSTs (token requests) to the operator's provider hosts

    def adapter(self, provider: Provider, *, tiktok_app: str | None = None):
        """The provider's adapter; ``tiktok_app`` names the kind of TikTok app (None: TIKTOK_APP's). For an
        existing connection use ``adapter_of``, which follows the connection rather than the setting."""
        return adapter_for(
            provider, self.settings, self.session, self.guarded, tiktok_app=tiktok_app, poster=self.poster
        )

    def adapter_of(self, row):
        """The adapter for one connection (an Integration row): a TikTok one is of the kind it was made with."""
        app = tiktok.app_of((row.metadata or {}).get("provider")) if row.provider is Provider.TIKTOK else None
        return self.adapter(row.provider, tiktok_app=app)

    async def states(self, method: str, *args):
        if self.redis is not None:
            # start-up: redis loads only where Redis is used
            from redis.exceptions import RedisError

            try:
                return await getattr(RedisStates(self.keyring, self.redis), method)(*args)
            except RedisError as exc:
                raise RedisUnavailable(
                    f"Redis (where OAuth states live) is unreachable: {type(exc).__name__}; check REDIS_URL"
                ) from None
        return await self.run(getattr(TableStates(self.keyring), method), *args)


async def direct(fn, *args, **kwargs):
    """``Runtime.run`` for the CLI: the database call, right here."""
    return fn(*args, **kwargs)


@asynccontextmanager
async def opened(settings: Settings, keyring: Keyring, run=direct, *, redis=None) -> AsyncIterator[Runtime]:
    """A runtime with fresh provider sessions (plain and SSRF-guarded), closed on the way out; ``redis``
    is the caller's (the daemon shares its client with the event bus)."""
    async with provider_sessions(settings.webhook_allowed_networks) as (session, guarded, poster):
        yield Runtime(settings, keyring, session, run, redis, guarded, poster)
