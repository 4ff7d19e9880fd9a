"""Real daemons delivering to a real receiver: the harness for the delivery proofs.

``Receiver`` is an aiohttp server on its own thread that counts every request
by ``webhook-id`` (optionally slow). ``daemons`` starts `nexusctl daemon`
processes on one database and kills them (gracefully or with SIGKILL).
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web

NEXUSCTL = Path(sys.executable).parent / "nexusctl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.by_id: collections.Counter = collections.Counter()
        self.lock = threading.Lock()
        self.port = None  # bound to port 0 by _run, then read back: no port found free and taken meanwhile
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", 0).start())
        self.port = self.runner.addresses[0][1]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, request):
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

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Daemons:
    def __init__(self, env: dict, work: Path):
        self.env, self.work, self.running = env, work, []

    def start(self, **env: str) -> subprocess.Popen:
        """One more daemon; ``env`` adds to (or overrides) the shared environment for this one only.
        Its port is ``process.port`` and its log ``process.log_path``."""
        for _ in range(5):  # a port found free may be taken before the daemon binds it: then another one
            port = free_port()
            log = open(self.work / f"daemon-{port}.log", "w")
            process = subprocess.Popen([str(NEXUSCTL), "daemon", "--port", str(port)],
                                       env={**self.env, **env, "PORT": str(port)}, stdout=log,
                                       stderr=subprocess.STDOUT)
            process.port, process.log_path = port, self.work / f"daemon-{port}.log"
            if not self._port_taken(process):
                break
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, (self.work / f"daemon-{port}.log").read_text()[-2000:]
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2).status == 200:
                    self.running.append(process)
                    return process
            except OSError:
                time.sleep(0.1)  # polling a readiness probe
        raise AssertionError("daemon not ready in 30 s")

    @staticmethod
    def _port_taken(process) -> bool:
        """True once the daemon exited saying its port is in use; False once it says it listens (its own log:
        another process answering on that port proves nothing), or fails otherwise (the readiness loop says)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return "is already in use" in process.log_path.read_text()
            if "daemon listening on" in process.log_path.read_text():
                return False
            time.sleep(0.05)  # polling the daemon's log for its start-up line
        return False

    def kill9(self, process) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        self.running.remove(process)

    def stop_all(self) -> None:
        for process in self.running:
            process.terminate()
        for process in self.running:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.running.clear()


@pytest.fixture
def daemons(tmp_path):
    """Daemons on the database the test's own fixture set DATABASE_URL to (request that fixture first)."""
    env = {k: v for k, v in os.environ.items()}
    env.update(WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32", WEBHOOK_TIMEOUT="1", LOG_FORMAT="text")
    runner = Daemons(env, tmp_path)
    yield runner
    runner.stop_all()


@pytest.fixture
def receiver():
    made = []

    def make(delay: float = 0.0) -> Receiver:
        made.append(Receiver(delay))
        return made[-1]

    yield make
    for r in made:
        r.stop()
