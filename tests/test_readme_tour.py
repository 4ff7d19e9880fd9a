"""README's "First steps" tour runs as written: its shell blocks, in order, in a fresh data directory.

Only the ports change (a free one for the daemon and for the receiver, so this can run
next to anything else); everything else is the README's text, run by bash.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tour_blocks() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## First steps", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section, re.S)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_tour_has_the_five_steps():
    text = "\n".join(_tour_blocks())
    for step in ("nexusctl daemon", "nexusctl token mint", "nexusctl integrations connect",
                 "nexusctl webhooks create", "nexusctl webhooks deliveries"):
        assert step in text


@pytest.mark.skipif(shutil.which("curl") is None, reason="the tour uses curl")
def test_the_first_steps_tour_runs(tmp_path):
    daemon_port, receiver_port = _free_port(), _free_port()
    script = "set -euo pipefail\n" + "\n".join(_tour_blocks())
    script = script.replace("3008", str(daemon_port)).replace("9999", str(receiver_port))
    script = script.replace(". .venv/bin/activate", f'export PATH="{Path(sys.executable).parent}:$PATH"')
    env = {key: os.environ[key] for key in ("HOME", "LANG", "PATH") if key in os.environ}
    env.update(NEXUS_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT), PORT=str(daemon_port))
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen(["bash", "-c", script], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=120)
    finally:
        try:  # whatever the tour left running, had it failed half-way (it kills its own jobs at the end)
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            pass
    log = (work / "daemon.log").read_text() if (work / "daemon.log").exists() else ""
    assert proc.returncode == 0, output[-4000:] + log[-2000:]
    assert "status=success&integrationId=" in output
    assert "webhook.delivered" in output
    assert re.search(r"media\.created\s+DELIVERED\s+1", output) and re.search(r"webhook\.test\s+DELIVERED\s+1", output)
    received = (work / "received.log").read_text()
    assert '"type":"webhook.test"' in received and '"mediaId":"m1"' in received
