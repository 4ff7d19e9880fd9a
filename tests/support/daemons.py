"""`nexusctl daemon` processes for tests: started and waited on until ready, stopped for sure.

- ``launch``: one daemon on a given port, returned once ``probe`` answers 200.
- ``stop``: SIGTERM, then SIGKILL if it does not exit in time.
- ``Daemons``: several daemons on one environment (one database), each on a
  free port, killed with SIGKILL or stopped together at the end.

Daemons take their port on the command line (PUBLIC_URL names it before the
process starts), so they get ``free_port`` rather than port 0.
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


def launch(env: dict, port: int, log_path: Path, probe: str = "/ready", preexec_fn=None) -> subprocess.Popen:
    """A daemon on ``port``, once ``probe`` answers 200 (``/health`` for one meant to be up but not ready).
    ``preexec_fn`` runs in the child before exec (e.g. to lower its file limit)."""
    with open(log_path, "w") as log:
        process = subprocess.Popen([str(NEXUSCTL), "daemon", "--port", str(port)], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daemon exited: {log_path.read_text()[-2000:]}")
        if _answers(f"http://127.0.0.1:{port}{probe}"):
            return process
        time.sleep(0.1)  # polling a readiness probe, not waiting for luck
    process.kill()
    raise RuntimeError(f"daemon not ready in 30 s: {log_path.read_text()[-2000:]}")


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
    """Daemons sharing ``env`` (one database), each on a free port with its log in ``work``."""

    def __init__(self, env: dict, work: Path):
        self.env, self.work, self.running = env, work, []

    def start(self, **env: str) -> subprocess.Popen:
        """One more daemon; ``env`` adds to (or overrides) the shared environment for this one only.
        Its port is ``process.port`` and its log ``process.log_path``."""
        port = free_port()
        log_path = self.work / f"daemon-{port}.log"
        process = launch({**self.env, **env, "PORT": str(port)}, port, log_path)
        process.port, process.log_path = port, log_path
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
