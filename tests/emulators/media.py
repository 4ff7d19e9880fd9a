"""A media host (a CDN) serving generated video bytes, on its own thread, at 127.0.0.2 by default.

``GET /r?to=URL`` redirects (302) to URL. ``GET /v/{name}.mp4?size=N[&seed=S]`` streams N deterministic bytes (64 KiB
pieces, generated on the fly: the server never holds the video) with
Content-Length and ``video/mp4``; ``chunked=1`` leaves Content-Length out.
``expected(size, seed)`` is the sha256 of what it serves; ``served`` counts
requests per path. It listens on 127.0.0.2 so a test can exempt exactly this
host from the SSRF guard while 127.0.0.1 (the emulators) stays refused.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import threading

from aiohttp import web

PIECE = 64 * 1024


def piece(seed: str, index: int) -> bytes:
    return hashlib.sha256(f"{seed}:{index}".encode()).digest() * (PIECE // 32)


def expected(size: int, seed: str = "v") -> str:
    digest, left, index = hashlib.sha256(), size, 0
    while left > 0:
        chunk = piece(seed, index)[:left]
        digest.update(chunk)
        left -= len(chunk)
        index += 1
    return digest.hexdigest()


class MediaServer:
    def __init__(self, host: str = "127.0.0.2") -> None:
        self.host, self.base_url = host, None
        self.served: collections.Counter = collections.Counter()
        self._loop = self._runner = self._thread = None

    async def _video(self, request: web.Request) -> web.StreamResponse:
        self.served[request.path] += 1
        size, seed = int(request.query.get("size", "1000")), request.query.get("seed", "v")
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        if request.query.get("chunked") != "1":
            response.content_length = size
        await response.prepare(request)
        left, index = size, 0
        while left > 0:
            chunk = piece(seed, index)[:left]
            await response.write(chunk)  # waits while the client is not reading: the bytes are not piled up
            left -= len(chunk)
            index += 1
        await response.write_eof()
        return response

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        self.served[request.path] += 1
        raise web.HTTPFound(request.query["to"])

    def start(self) -> "MediaServer":
        ready = threading.Event()

        async def serve():
            app = web.Application()
            app.router.add_get("/v/{name}", self._video)
            app.router.add_get("/r", self._redirect)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, 0)
            await site.start()
            self.base_url = f"http://{self.host}:{self._runner.addresses[0][1]}"

        def run():
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(serve())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="media-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the media server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def url(self, name: str, size: int, seed: str = "v", **extra) -> str:
        query = "&".join([f"size={size}", f"seed={seed}"] + [f"{k}={v}" for k, v in extra.items()])
        return f"{self.base_url}/v/{name}.mp4?{query}"
