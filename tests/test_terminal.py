"""What a person at a terminal sees: prompts, colour, NO_COLOR, plain output when piped."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nexusctl.cli.output import Output

NEXUSCTL = Path(sys.executable).parent / "nexusctl"
ANSI = "\x1b["


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _render(monkeypatch, no_color_env: bool, **kwargs) -> str:
    stream = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", stream)
    if no_color_env:
        monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("FORCE_COLOR", "1")
    output = Output(**kwargs)
    output.table([{"id": "a", "ok": True}], [("id", "ID"), ("ok", "OK")])
    return stream.getvalue()


def test_table_on_a_terminal_uses_colour(monkeypatch):
    assert ANSI in _render(monkeypatch, no_color_env=False)


def test_no_color_env_and_flag_turn_colour_off(monkeypatch):
    assert ANSI not in _render(monkeypatch, no_color_env=True)
    assert ANSI not in _render(monkeypatch, no_color_env=False, no_color=True)


def test_piped_table_is_tab_separated(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    Output().table([{"id": "a\tb", "ok": None}], [("id", "ID"), ("ok", "OK")])
    assert stream.getvalue() == "ID\tOK\na b\t-\n"


def _run_on_pty(args, answer: str, env) -> tuple[int, str]:
    """Run nexusctl with a real terminal on stdin/stdout, answer its prompt."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([str(NEXUSCTL), *args], stdin=follower, stdout=follower, stderr=follower,
                            env=env, close_fds=True)
    os.close(follower)
    seen, deadline, answered = b"", time.monotonic() + 30, False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if not answered and b"[y/N]" in seen:
                os.write(leader, answer.encode() + b"\n")
                answered = True
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=10)
    os.close(leader)
    return code, seen.decode(errors="replace")


@pytest.mark.parametrize("answer, kept", [("n", True), ("y", False)])
def test_delete_asks_on_a_terminal(db_url, make_integration, answer, kept):
    from db.models import Integration

    row = make_integration(name="@prompted")
    code, screen = _run_on_pty(["integrations", "delete", str(row.id)], answer, dict(os.environ))
    assert code == 0, screen
    assert "Delete integration" in screen and "@prompted" in screen
    assert Integration.select().where(Integration.id == row.id).exists() is kept
    assert ("Nothing deleted" in screen) is kept
