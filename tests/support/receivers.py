"""Webhook receivers on threads of their own, for daemons running as other processes.

- ``ThreadedApp``: an aiohttp application served from its own thread and event
  loop on 127.0.0.1, bound to port 0 (the port is read back: no race); also
  how a test serves the daemon's own app to an outside client.
- ``CountingReceiver``: ``POST /hook``, counts requests by ``webhook-id``
  (optionally answering after ``delay`` seconds).
- ``HoldingReceiver``: ``POST /hook``, counts requests by ``webhook-id`` as
  they arrive and holds every answer until ``release()`` (a receiver slower
  than any lease, for as long as the test needs).
- ``BehavingReceiver``: records (path, arrival time) per ``webhook-id`` and
  answers per path: ``/ok``, ``/flap`` (500 then 200, alternately, per id) or
  ``/slow`` (slower than WEBHOOK_TIMEOUT for the first attempts of each id).
- ``TwoAddressReceiver``: one port on two addresses (an allowed one and a
  forbidden one), recording (address, webhook-id, path); ``/redirect/<rest>``
  answers 302 to the forbidden address. A delivery reaching the forbidden
  socket got past the SSRF guard.
"""

from __future__ import annotations

import asyncio
import collections
import http.server
import threading
import time

from aiohttp import web


class ThreadedApp:
    """Serve the aiohttp application ``make_app()`` from a thread of its own; ``port`` is the one the OS gave.

    ``make_app`` runs on that thread, inside its event loop (an app may need the loop when it is made)."""

    def __init__(self, make_app, timeout: float = 10) -> None:
        self.loop, self.port, self.timeout = asyncio.new_event_loop(), 0, timeout
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(make_app, ready), daemon=True)
        self.thread.start()
        assert ready.wait(timeout), "server did not start"

    def _run(self, make_app, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(make_app(), access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", 0).start())
        self.port = self.runner.addresses[0][1]
        ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(self.timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(self.timeout)


def _app(method: str, path: str, handler) -> web.Application:
    app = web.Application()
    app.router.add_route(method, path, handler)
    return app


class CountingReceiver(ThreadedApp):
    """``POST /hook``: counts requests by ``webhook-id`` in ``by_id``."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.by_id: collections.Counter = collections.Counter()
        self.lock = threading.Lock()
        super().__init__(lambda: _app("POST", "/hook", self._handle))

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.by_id[request.headers["webhook-id"]] += 1
        return web.Response(text="ok")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def total(self) -> int:
        with self.lock:
            return sum(self.by_id.values())


class HoldingReceiver(ThreadedApp):
    """``POST /hook``: counts each request by ``webhook-id`` when it arrives (``by_id``) and answers 200 only
    once ``release()`` was called (at once after that)."""

    def __init__(self) -> None:
        self.by_id: collections.Counter = collections.Counter()
        self.lock = threading.Lock()
        super().__init__(self._make)

    def _make(self) -> web.Application:
        self.gate = asyncio.Event()  # made on the server's loop
        return _app("POST", "/hook", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        with self.lock:
            self.by_id[request.headers["webhook-id"]] += 1
        await self.gate.wait()
        return web.Response(text="ok")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def total(self) -> int:
        with self.lock:
            return sum(self.by_id.values())

    def counts(self) -> dict:
        with self.lock:
            return dict(self.by_id)

    def release(self) -> None:
        self.loop.call_soon_threadsafe(self.gate.set)

    def stop(self) -> None:
        self.release()
        super().stop()


class BehavingReceiver(ThreadedApp):
    """Records (path, arrival time) of every request by ``webhook-id``; answers by path.

    - ``/ok``: 200 at once.
    - ``/flap``: per webhook-id, odd-numbered requests get a 500 and even ones a 200.
    - ``/slow``: per webhook-id, the first ``slow_times`` requests wait ``slow_seconds`` before answering
      (longer than the daemon's WEBHOOK_TIMEOUT), later ones answer 200 at once.
    """

    def __init__(self, slow_seconds: float = 3.0, slow_times: int = 2) -> None:
        self.slow_seconds, self.slow_times = slow_seconds, slow_times
        self.seen: dict[str, list[tuple[str, float]]] = collections.defaultdict(list)  # id -> [(path, time)]
        self.lock = threading.Lock()
        super().__init__(lambda: _app("POST", "/{behaviour}", self._handle))

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        behaviour, message_id = request.match_info["behaviour"], request.headers.get("webhook-id", "")
        with self.lock:
            self.seen[message_id].append((behaviour, time.time()))
            count = len(self.seen[message_id])
        if behaviour == "flap" and count % 2 == 1:
            return web.Response(status=500, text="flapping: down this time")
        if behaviour == "slow" and count <= self.slow_times:
            await asyncio.sleep(self.slow_seconds)
        return web.Response(text="ok")

    def url(self, behaviour: str) -> str:
        return f"http://127.0.0.1:{self.port}/{behaviour}"

    def arrivals(self, message_id: str) -> list[float]:
        with self.lock:
            return [t for _, t in self.seen.get(message_id, [])]


class TwoAddressReceiver:
    """One port on ``allowed`` and on ``forbidden``; records (address, webhook-id, path) in ``hits``.

    ``/redirect/<rest>`` answers 302 to ``http://<forbidden>:<port>/<rest>``: a receiver trying to bounce a
    delivery to an address the daemon may not reach.
    """

    def __init__(self, allowed: str, forbidden: str) -> None:
        self.allowed, self.forbidden = allowed, forbidden
        self.hits: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.servers: list[http.server.ThreadingHTTPServer] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.hits.append((self.server.server_address[0], self.headers.get("webhook-id", ""), self.path))
                if self.path.startswith("/redirect/"):
                    self.send_response(302)
                    self.send_header("Location", receiver.url(forbidden, self.path.removeprefix("/redirect")))
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        for _ in range(20):  # port 0 on the first address, then the same port on the second
            first = http.server.ThreadingHTTPServer((allowed, 0), Handler)
            try:
                second = http.server.ThreadingHTTPServer((forbidden, first.server_address[1]), Handler)
            except OSError:
                first.server_close()
                continue
            self.servers = [first, second]
            break
        else:
            raise RuntimeError(f"no port free on both {allowed} and {forbidden}")
        self.port = self.servers[0].server_address[1]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def url(self, host: str | None = None, path: str = "/hook") -> str:
        return f"http://{host or self.allowed}:{self.port}{path}"

    def paths(self, address: str | None = None) -> list[str]:
        with self.lock:
            return [p for a, _, p in self.hits if address is None or a == address]

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
