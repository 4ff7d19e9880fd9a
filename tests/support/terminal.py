"""nexusctl as a person at a terminal runs it, or as a script does: stderr on a pseudo-terminal, or all piped."""

from __future__ import annotations

import os
import pty
import select
import subprocess

from support.daemons import NEXUSCTL

ANSI = "\x1b["  # the start of every escape sequence: none may reach a pipe


def stderr_on_pty(args, env) -> tuple[int, str, str]:
    """Run nexusctl with stderr on a terminal and stdout piped; returns (code, stdout, screen)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(NEXUSCTL), *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
        close_fds=True,
    )
    os.close(follower)
    screen = b""
    while True:  # until the child closes its end (EOF or EIO on Linux)
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            proc.kill()
            raise AssertionError(f"no output for 30 s: {screen!r}")
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    stdout = proc.stdout.read().decode()
    code = proc.wait(timeout=30)
    os.close(leader)
    return code, stdout, screen.decode(errors="replace")


def piped_run(args, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(NEXUSCTL), *map(str, args)], capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL
    )
