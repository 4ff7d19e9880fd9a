"""Running one sync action straight against its provider emulator (no database, no daemon).

``read_all(emulators, "SLACK", "fetch_channels", token=mint(emulators, "SLACK"))``
builds the provider's adapter on the emulator's URLs and collects every page
the action yields, as the sync engine would.

``mint`` grants what the service asks for (providers.scopes.requested, with the
approval-only scopes the emulator's app is approved for) unless told: a
narrower list is a user who declined some; a wider one needs ``wider=`` saying
why, since a grant the service never asks for proves nothing about real use.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os

import aiohttp

from nexusctl import clock, config
from nexusctl.enums import Provider
from nexusctl.providers.registry import adapter_for
from nexusctl.providers.scopes import requested
from nexusctl.providers.spec import TokenSet
from nexusctl.providers.sync.base import SyncApi
from nexusctl.providers.sync.registry import AUTH_HEADER, action_of

KEY = base64.b64encode(bytes(32)).decode()


def settings_for(emulators, env: dict | None = None):
    """The settings on the emulators' URLs; ``env`` adds variables (a None value removes one)."""
    values = {**emulators.env(), "ENCRYPTION_KEY": KEY, "NODE_ENV": "test", **(env or {})}
    return config.load({k: v for k, v in values.items() if v is not None})


def mint(emulators, provider: str, scope: list[str] | None = None, *, wider: str | None = None, **data) -> str:
    """An access token of a new grant of ``scope`` (default: the scopes the service requests)."""
    emu = emulators[provider]
    asked = requested(Provider(provider), emu.approved)
    scope = list(asked) if scope is None else scope
    beyond = sorted(set(scope) - set(asked))
    assert not beyond or wider, f"{provider}: {beyond} are not requested by the service: say why (wider=...)"
    return emu.issue(emu.new_grant(scope), "access", 3600, **data).value


async def _collect(emulators, provider, action, token, tenant, metadata, resume, max_pages, env):
    settings = settings_for(emulators, env)
    async with aiohttp.ClientSession(trust_env=False) as session:
        adapter = adapter_for(Provider(provider), settings, session)
        api = SyncApi(
            adapter,
            TokenSet(access_token=token, metadata=dict(metadata or {})),
            tenant,
            auth_header=AUTH_HEADER.get(Provider(provider), "bearer"),
        )
        api.settings = settings  # as the engine does (application credentials: bot and developer tokens)
        (act,) = action_of(Provider(provider), action)
        if act.report is not None:  # a snapshot (fetch_analytics): its one report stands for the pages
            return [await act.report(api, {})], api.calls
        pages = []
        async for page in act.pages(api, resume):
            pages.append(page)
            if max_pages is not None and len(pages) >= max_pages:
                break
        return pages, api.calls


def read_all(
    emulators,
    provider: str,
    action: str,
    *,
    token: str,
    tenant: str | None = None,
    metadata: dict | None = None,
    resume: dict | None = None,
    max_pages: int | None = None,
    env: dict | None = None,
):
    """(pages, calls made); for a snapshot action ([its Report], calls made). ``env``: variables to add to (None:
    remove from) the emulators' configuration. The product reads "now" from the clock it shares with the
    emulators (NEXUSCTL_CLOCK_FILE), as a daemon on them does: windows and cut-offs agree with the provider's."""
    with _shared_clock(emulators):
        return asyncio.run(_collect(emulators, provider, action, token, tenant, metadata, resume, max_pages, env))


@contextlib.contextmanager
def _shared_clock(emulators):
    name, before = clock.ENV, os.environ.get(clock.ENV)
    os.environ[name] = str(emulators.clock_file)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
