"""`nexusctl daemon` processes for tests: started and waited on until ready, stopped for sure.

- ``launch``: one daemon on a given port, returned once ``probe`` answers 200 and its own log says it
  listens; ``PortTaken`` if it exited because something else had the port.
- ``start_on_free_port``: ``launch`` on a free port, again on another one if that port was taken
  before the daemon bound it.
- ``stop``: SIGTERM, then SIGKILL if it does not exit in time.
- ``Daemons``: several daemons on one environment (one database), each on a
  free port, killed with SIGKILL or stopped together at the end.

Daemons take their port on the command line (PUBLIC_URL names it before the
process starts), so they get ``free_port`` rather than port 0, and
``start_on_free_port`` retries when another process took that port first.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from support.ports import free_port

NEXUSCTL = Path(sys.executable).parent / "nexusctl"


_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy from the environment


def _answers(url: str) -> bool:
    try:
        with _LOCAL.open(url, timeout=2) as response:
            return response.status == 200
    except OSError:  # not listening yet, or not 200 (HTTPError is an OSError)
        return False


class PortTaken(RuntimeError):
    """The daemon could not bind its port: something else took it after ``free_port`` found it free."""


def launch(env: dict, port: int, log_path: Path, probe: str = "/ready", preexec_fn=None) -> subprocess.Popen:
    """A daemon on ``port``, once ``probe`` answers 200 (``/health`` for one meant to be up but not ready) and
    its own log says it listens (another server answering on that port proves nothing). ``PortTaken`` if it
    exited because the port is in use. ``preexec_fn`` runs in the child before exec (e.g. to lower its file
    limit)."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(NEXUSCTL), "daemon", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log_path.read_text()
            if "is already in use" in text:
                raise PortTaken(f"port {port} was taken before the daemon bound it")
            raise RuntimeError(f"daemon exited: {text[-2000:]}")
        if _answers(f"http://127.0.0.1:{port}{probe}") and "daemon listening on" in log_path.read_text():
            return process
        time.sleep(0.1)  # polling a readiness probe, not waiting for luck
    process.kill()
    raise RuntimeError(f"daemon not ready in 30 s: {log_path.read_text()[-2000:]}")


def start_on_free_port(
    env_for, log_for, probe: str = "/ready", tries: int = 5, preexec_fn=None
) -> tuple[int, subprocess.Popen]:
    """A daemon on a port found free, again on another one if something took that port before the daemon bound
    it (the port must be known before the start: PUBLIC_URL names it). ``env_for(port)`` is its environment,
    ``log_for(port)`` its log path; ``probe`` and ``preexec_fn`` as in ``launch``. Returns (port, process)."""
    for attempt in range(tries):
        port = free_port()
        try:
            return port, launch(env_for(port), port, log_for(port), probe, preexec_fn)
        except PortTaken:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM and wait; SIGKILL if it is still there after ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class Daemons:
    """Daemons sharing ``env`` (one database), each on a free port (``start_on_free_port``) with its log in
    ``work``."""

    def __init__(self, env: dict, work: Path):
        self.env, self.work, self.running = env, work, []

    def start(self, **env: str) -> subprocess.Popen:
        """One more daemon; ``env`` adds to (or overrides) the shared environment for this one only.
        Its port is ``process.port`` and its log ``process.log_path``."""
        port, process = start_on_free_port(
            lambda port: {**self.env, **env, "PORT": str(port)}, lambda port: self.work / f"daemon-{port}.log"
        )
        process.port, process.log_path = port, self.work / f"daemon-{port}.log"
        self.running.append(process)
        return process

    def kill9(self, process) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        self.running.remove(process)

    def stop_all(self) -> None:
        for process in self.running:
            process.terminate()
        for process in self.running:
            stop(process)
        self.running.clear()
