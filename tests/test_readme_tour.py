"""README's "First steps" tour runs as written: its shell blocks, in order, in a fresh data directory.

Only the ports change (a free one for the daemon and for the receiver, so this can run
next to anything else); everything else is the README's text, run by bash. It runs twice:
alone, and with the set-up command's daemon still running (on the port the README gives it,
3008, and on the default data directory), as a reader who left it running in another
terminal has it: the tour must not depend on it being stopped.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.ports import held_ports

ROOT = Path(__file__).resolve().parents[1]


def _tour_blocks() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## First steps", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section, re.S)


def test_the_tour_has_the_five_steps():
    text = "\n".join(_tour_blocks())
    for step in (
        "nexusctl daemon",
        "nexusctl token mint",
        "nexusctl integrations connect",
        "nexusctl webhooks create",
        "nexusctl webhooks deliveries",
    ):
        assert step in text


@contextlib.contextmanager
def _setup_daemon(env: dict, port: int):
    """The README's set-up command's daemon (`nexusctl db migrate && nexusctl daemon`), still running."""
    nexusctl = str(Path(sys.executable).parent / "nexusctl")
    subprocess.run([nexusctl, "db", "migrate"], env=env, check=True, capture_output=True, timeout=60)
    daemon = subprocess.Popen(
        [nexusctl, "daemon", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = iter(daemon.stderr.readline, "")  # it prints "listening on" once its socket is bound
        assert any("listening on" in line for line in lines), "the set-up daemon did not start"
        yield
    finally:
        daemon.terminate()
        daemon.wait(30)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the tour uses curl")
@pytest.mark.parametrize("setup_daemon", [False, True], ids=["alone", "set-up-daemon-still-running"])
def test_the_first_steps_tour_runs(tmp_path, setup_daemon):
    # The ports stay held until the tour has ended: nothing else on the machine is given them meanwhile.
    with held_ports(3) as (daemon_port, receiver_port, setup_port):
        _run_the_tour(tmp_path, setup_daemon, daemon_port, receiver_port, setup_port)


def _run_the_tour(tmp_path, setup_daemon, daemon_port, receiver_port, setup_port):
    script = "set -euo pipefail\n" + "\n".join(_tour_blocks())
    script = script.replace("3018", str(daemon_port)).replace("9999", str(receiver_port))
    script = script.replace("3008", str(setup_port))  # the set-up daemon's port, if the tour were to use it
    script = script.replace(". .venv/bin/activate", f'export PATH="{Path(sys.executable).parent}:$PATH"')
    env = {key: os.environ[key] for key in ("HOME", "LANG", "PATH") if key in os.environ}
    env.update(NEXUS_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))  # the default data directory
    work = tmp_path / "work"
    work.mkdir()
    with _setup_daemon(env, setup_port) if setup_daemon else contextlib.nullcontext():
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            # Ten seconds on a quiet machine; the bound is for a tour stuck in one of its wait loops, with
            # room for a machine running other suites at once.
            output, _ = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            output, _ = proc.communicate()
            output = "THE TOUR DID NOT FINISH; it got as far as:\n" + output
        finally:
            try:  # whatever the tour left running, had it failed half-way (it kills its own jobs at the end)
                os.killpg(proc.pid, 15)
            except ProcessLookupError:
                pass
    log = (work / "daemon.log").read_text() if (work / "daemon.log").exists() else ""
    received_log = (work / "received.log").read_text() if (work / "received.log").exists() else ""
    assert proc.returncode == 0, (
        f"{output[-4000:]}\n--- daemon.log:\n{log[-2000:]}\n--- received.log:\n{received_log[-1000:]}"
    )
    assert "status=success&integrationId=" in output and "Traceback" not in output
    assert "webhook.delivered" in output
    assert re.search(r"post\.created\s+DELIVERED\s+1", output) and re.search(r"webhook\.test\s+DELIVERED\s+1", output)
    received = (work / "received.log").read_text()
    assert '"type":"webhook.test"' in received and '"postId":"p1"' in received
