"""One aiohttp server hosting every provider emulator, on its own thread and loop.

Every real URL ``https://{host}{path}`` maps to ``{base}/{provider_lower}/{host}{path}``;
each ``Provider`` lists its routes as regexes over ``{host}{path}``.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
import traceback
from pathlib import Path
from typing import Self

from aiohttp import web

from .automation import Slack, Zapier
from .base import Provider
from .business import HubSpot, Salesforce
from .commerce import Shopify, WooCommerce
from .google import GoogleAds, YouTube
from .marketing import Mailchimp, SendGrid
from .meta import Facebook, Instagram, MetaAds
from .payments import PayPal, Stripe
from .social import Discord, LinkedIn, Twitter
from .tiktok import TikTok, TikTokAds

PROVIDERS: tuple[type[Provider], ...] = (
    TikTok,
    Instagram,
    Facebook,
    YouTube,
    Twitter,
    LinkedIn,
    HubSpot,
    Salesforce,
    Shopify,
    WooCommerce,
    MetaAds,
    GoogleAds,
    TikTokAds,
    Mailchimp,
    SendGrid,
    Stripe,
    PayPal,
    Zapier,
    Slack,
    Discord,
)


class Emulators:
    """All 20 provider emulators behind one server on 127.0.0.1:<free port>.

    ``start()`` returns once the socket is bound; ``stop()`` shuts it down. Also
    a context manager. ``emu["TIKTOK"]`` is that provider's state and controls.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, clock_file: str | os.PathLike | None = None):
        self.host = host
        self._port = port
        self._clock_lock = threading.Lock()
        self._offset = 0.0
        # The clock shared with the product (nexusctl.clock): env() hands NEXUSCTL_CLOCK_FILE to every daemon
        # and CLI run on these emulators, and advance_clock moves both. Without it the clock is ours alone.
        self.clock_file = Path(clock_file) if clock_file is not None else None
        self._write_clock()
        self.errors: list[str] = []  # tracebacks of handler crashes (a bug in an emulator, never a client's)
        self.providers: dict[str, Provider] = {cls.NAME: cls(self) for cls in PROVIDERS}
        self._by_prefix = {p.prefix: p for p in self.providers.values()}
        self._routes = {
            p.prefix: [(frozenset(m.split("|")), re.compile(rx), h) for m, rx, h in p.ROUTES]
            for p in self.providers.values()
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.base_url: str | None = None

    # --- lifecycle --------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # noqa: BLE001 - handed to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._runner.cleanup())
                loop.close()

        self._thread = threading.Thread(target=run, name="provider-emulators", daemon=True)
        self._thread.start()
        if not ready.wait(15):
            raise RuntimeError("emulators did not start within 15 s")
        if failure:
            self._thread = None
            raise failure[0]
        return self

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{self.host}:{port}"

    def stop(self) -> None:
        if self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(15)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- routing ----------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        prefix, _, tail = request.path.lstrip("/").partition("/")
        provider = self._by_prefix.get(prefix)
        if provider is None:
            return web.json_response({"error": f"no emulated provider {prefix!r}"}, status=404)
        method_seen = False
        for methods, regex, handler in self._routes[prefix]:
            match = regex.fullmatch(tail)
            if match is None:
                continue
            if request.method not in methods:
                method_seen = True
                continue
            provider.last_headers = dict(request.headers)  # what reached the provider (proxy tests read it)
            try:
                return await getattr(provider, handler)(request, **match.groupdict())
            except Exception:  # noqa: BLE001 - an emulator bug: record it, answer 500
                self.errors.append(traceback.format_exc())
                return web.json_response({"error": "emulator crashed", "see": "Emulators.errors"}, status=500)
        if method_seen:
            return web.json_response({"error": "method not allowed"}, status=405)
        return web.json_response({"error": f"{provider.NAME} emulator has no route {tail!r}"}, status=404)

    # --- interface for tests ----------------------------------------------------

    def __getitem__(self, name: str) -> Provider:
        return self.providers[name.upper()]

    def now(self) -> float:
        with self._clock_lock:
            return time.time() + self._offset

    @property
    def offset(self) -> float:
        """Seconds the shared clock is ahead of the system clock (what the clock file holds)."""
        with self._clock_lock:
            return self._offset

    def advance_clock(self, seconds: float) -> None:
        """Move the clock (token ages and expiries here; with a clock file, the product's "now" too) forward.

        Never back: daemons and tests keep timestamps from earlier "nows" (leases, retry times, expiries), and a
        clock going backwards would make them lie in the future."""
        if seconds < 0:
            raise ValueError(f"the shared clock only moves forward (asked to move {seconds:+g} s)")
        with self._clock_lock:
            self._offset += seconds
            self._write_clock()

    def _write_clock(self) -> None:
        """The offset into the clock file, atomically (a new inode: readers see the change at their next stat)."""
        if self.clock_file is None:
            return
        partial = self.clock_file.with_name(self.clock_file.name + ".partial")
        partial.write_text(f"{self._offset!r}\n")
        os.replace(partial, self.clock_file)

    def register_callback_base(self, public_url: str) -> None:
        """Register a daemon's callback URLs (``{PUBLIC_URL}/integrations/oauth/callback/<provider>``) with
        every emulated app, as an operator adds them in each provider's app settings. Only registered
        redirect URIs pass the authorize endpoints."""
        base = public_url.rstrip("/")
        for name, provider in self.providers.items():
            provider.register_redirect(f"{base}/integrations/oauth/callback/{name.lower()}")

    def env(self) -> dict[str, str]:
        if self.base_url is None:
            raise RuntimeError("start() the emulators first")
        out: dict[str, str] = {}
        for name, provider in self.providers.items():
            out[f"{name}_CLIENT_ID"] = provider.client_id
            out[f"{name}_CLIENT_SECRET"] = provider.client_secret
            for kind, url in provider.urls(self.base_url).items():
                out[f"{name}_{kind}_URL"] = url.rstrip("/") if kind == "API" else url
            out.update(provider.extra_env())
        if self.clock_file is not None:
            out["NEXUSCTL_CLOCK_FILE"] = str(self.clock_file)
        return out

    @property
    def woocommerce_store_url(self) -> str:
        return self.providers["WOOCOMMERCE"].store_url

    def sendgrid_key(self) -> str:
        return self.providers["SENDGRID"].key()

    def reset(self) -> None:
        """Back to a fresh start: tokens, counters, controls, accounts. Credentials stay, and so does the clock:
        time never goes back (``advance_clock``), so a test sees whatever "now" the tests before it left and
        reads it from ``support.clock.now`` rather than from the system clock."""
        self.errors.clear()
        for provider in self.providers.values():
            provider.reset()

    def reset_faults(self) -> None:
        """Clear queued faults, delays and denials everywhere; tokens stay."""
        for provider in self.providers.values():
            provider.reset_faults()
