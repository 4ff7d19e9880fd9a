"""The daemon's event loop: asyncio's own by default, uvloop when asked and installed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from nexusctl import config
from nexusctl.daemon.loop import kind, new_event_loop


def _made(choice: str) -> str:
    loop = new_event_loop(choice)
    try:
        return kind(loop)
    finally:
        loop.close()


def test_asyncio_by_default_and_uvloop_when_asked():
    assert config.load({"NEXUS_DATA_DIR": "/tmp/nexusctl-never-created"}).event_loop == "asyncio"
    assert _made("asyncio") == "asyncio"
    assert _made("uvloop") == "uvloop"  # a dependency on Linux (pyproject: every platform but Windows)


def test_without_uvloop_the_daemon_runs_asyncios_loop(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    with caplog.at_level("INFO", logger="nexusctl.daemon.loop"):
        assert _made("uvloop") == "asyncio"
    assert "uvloop is not installed" in caplog.text


def test_the_loop_runs_what_the_daemon_needs_of_it():
    """Signal handlers, add_reader and thread executors: asyncio API the daemon uses, on uvloop too."""
    loop = new_event_loop("uvloop")
    read, write = os.pipe()
    try:
        seen = []
        loop.add_signal_handler(signal.SIGUSR1, seen.append, "signal")
        loop.add_reader(read, lambda: seen.append(os.read(read, 1)))

        async def main():
            os.write(write, b"x")
            os.kill(os.getpid(), signal.SIGUSR1)
            seen.append(await asyncio.get_running_loop().run_in_executor(None, lambda: "thread"))
            async with asyncio.timeout(5):
                while len(seen) < 3:
                    await asyncio.sleep(0.01)

        loop.run_until_complete(main())
        assert sorted(map(str, seen)) == ["b'x'", "signal", "thread"]
    finally:
        loop.remove_reader(read)
        loop.remove_signal_handler(signal.SIGUSR1)
        loop.close()
        os.close(read)
        os.close(write)
