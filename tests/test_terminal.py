"""What a person at a terminal sees: prompts, colour, NO_COLOR, plain output when piped."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import uuid

import pytest
from support.daemons import NEXUSCTL
from support.daemons import stop as stop_daemon
from support.ports import closed_port
from support.terminal import ANSI, piped_run, stderr_on_pty  # noqa: F401 - old names, kept for importers
from support.waiting import wait_for

from nexusctl.cli.output import Output
from nexusctl.cli.webhooks import REPLAY_BATCH


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


def test_control_characters_reach_a_terminal_escaped(monkeypatch):
    # On a terminal, rich drops BEL and CR itself but passes ESC through: a value could retitle the window.
    stream = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("NO_COLOR", "1")
    output = Output()
    evil = "evil\x1b]0;pwned\x07\x1b[2J\u009b"
    output.table([{"name": evil}], [("name", "NAME")])
    output.record({"name": evil, "metadata": {"k": evil}})
    output.error(f"refused {evil}")
    text = stream.getvalue()
    assert not any(ch in text for ch in "\x1b\x07\u009b"), text
    assert text.count("evil\\x1b]0;pwned\\x07\\x1b[2J") == 3 and "\\u001b" in text


def _run_on_pty(args, answer: str, env) -> tuple[int, str]:
    """Run nexusctl with a real terminal on stdin/stdout, answer its prompt."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(NEXUSCTL), *args], stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True
    )
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
    from nexusctl.db.models import Integration

    row = make_integration(name="@prompted")
    code, screen = _run_on_pty(["integrations", "delete", str(row.id)], answer, dict(os.environ))
    assert code == 0, screen
    assert "Delete integration" in screen and "@prompted" in screen
    assert Integration.select().where(Integration.id == row.id).exists() is kept
    assert ("Nothing deleted" in screen) is kept


# --- colour and progress on a real terminal, and none in scripts ----------------

SGR = re.compile(r"\x1b\[[0-9;]*m")  # colour and bold: what NO_COLOR turns off


def terminal_env(**changes) -> dict:
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"}
    env.pop("FORCE_COLOR", None)
    env.update(changes)
    return env


def test_error_lines_are_coloured_only_on_a_terminal_without_no_color(db_url):
    args = ["integrations", "show", "not-a-uuid"]
    code, stdout, screen = stderr_on_pty(args, terminal_env())
    assert code == 2 and stdout == "" and "error: VALIDATION_ERROR" in screen
    assert SGR.search(screen)
    code, _, screen = stderr_on_pty(args, terminal_env(NO_COLOR="1"))
    assert code == 2 and "error: VALIDATION_ERROR" in screen and not SGR.search(screen)
    code, _, screen = stderr_on_pty([*args, "--no-color"], terminal_env())
    assert code == 2 and "error: VALIDATION_ERROR" in screen and not SGR.search(screen)
    piped = piped_run(args, terminal_env())
    assert piped.returncode == 2 and ANSI not in piped.stderr and piped.stderr.startswith("error: VALIDATION_ERROR")


# One more than a replay batch: the replay crosses a page boundary (a row counted twice or skipped there shows in
# the count), as a replay of thousands does, for the cost of 501 failing deliveries rather than 1,203.
FAILED_COUNT = REPLAY_BATCH + 1
SINCE = "2000-01-01T00:00:00Z"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def failed_deliveries(request, emulators, tmp_path_factory, pg_template, stack_launcher):
    """Two webhooks of a user whose receivers are gone (closed ports), each with FAILED_COUNT FAILED deliveries,
    reached as users reach them: a connect through the emulators, the webhooks made through the API, the events
    emitted in bulk (`nexusctl events emit --file`) and the daemon's own attempts (one immediate retry,
    WEBHOOK_RETRY_SCHEDULE=0, then FAILED). Then the daemon stops, so what a replay queues stays queued for the
    test to see. One webhook per test ("bar", "dry-run"): neither sees what the other's replays did.

    Yields (stack, {test: webhook id}, the CLI's environment on a terminal)."""
    settings = {
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "WEBHOOK_RETRY_SCHEDULE": "0",
        "WEBHOOK_CONCURRENCY": "100",  # many sends at once to one receiver: the failures take seconds
        "WEBHOOK_CONCURRENCY_PER_ENDPOINT": "100",
    }
    work = tmp_path_factory.mktemp("replay")
    with stack_launcher(request.param, work, emulators, pg_template, settings) as stack:
        user = uuid.uuid4()
        connected = stack.connect("DISCORD", user)
        assert connected["status"] == "success", connected
        integration = connected["integrationId"]
        hooks = {}
        for name in ("bar", "dry-run"):
            url = f"http://127.0.0.1:{closed_port()}/hook"
            made = stack.api(
                "POST",
                "/integrations/webhooks",
                user=user,
                body={"integrationId": integration, "url": url, "events": ["post.*"]},
            )
            assert made.status == 201, made.text
            hooks[name] = made.json()["data"]["id"]
        events = work / "events.ndjson"
        line = {"integrationId": integration, "type": "post.created"}
        events.write_text("".join(json.dumps({**line, "data": {"n": n}}) + "\n" for n in range(FAILED_COUNT)))
        emitted = stack.cli("events", "emit", "--file", events)
        assert emitted.returncode == 0, emitted.stderr
        for hook in hooks.values():
            wait_for(
                lambda hook=hook: statuses(stack, hook) == {"FAILED": FAILED_COUNT},
                60,
                f"{FAILED_COUNT} deliveries to fail at a gone receiver",
                interval=0.2,
            )
        stop_daemon(stack.process)
        yield stack, hooks, {**stack.env, "TERM": "xterm-256color", "COLUMNS": "100"}


def statuses(stack, hook: str) -> dict:
    rows = stack.sql("SELECT status, COUNT(*) FROM webhook_deliveries WHERE webhook_id = %s GROUP BY status", hook)
    return dict(rows)


def test_replay_shows_a_bar_on_a_terminal_and_one_line_in_scripts(failed_deliveries):
    stack, hooks, env = failed_deliveries
    hook = hooks["bar"]
    failed = ["webhooks", "replay", hook, "--since", SINCE, "--status", "FAILED"]
    code, stdout, screen = stderr_on_pty([*failed, "--json"], env)
    assert code == 0, screen
    assert "queueing deliveries" in screen and f"/{FAILED_COUNT}" in screen  # the bar, with its total
    assert f"Queued {FAILED_COUNT} deliveries again" in screen
    assert json.loads(stdout) == {"webhookId": hook, "queued": FAILED_COUNT, "skipped": 0, "dryRun": False}
    assert statuses(stack, hook) == {"PENDING": FAILED_COUNT}

    # Queued again, whatever their status now (no --status): the same count each time.
    every = failed[:-2]
    code, _, screen = stderr_on_pty(every, {**env, "NO_COLOR": "1"})
    assert code == 0 and "queueing deliveries" in screen and f"Queued {FAILED_COUNT}" in screen
    assert not SGR.search(screen)  # the bar still moves, without colour

    piped = piped_run(every, env)
    assert piped.returncode == 0 and piped.stdout == ""
    assert piped.stderr == f"Queued {FAILED_COUNT} deliveries again\n"  # the summary alone: no bar, no escapes

    code, stdout, screen = stderr_on_pty([*every, "-q"], env)
    assert code == 0 and screen == "" and stdout == ""  # -q: nothing at all, even on a terminal
    assert statuses(stack, hook) == {"PENDING": FAILED_COUNT}


def test_replay_dry_run_counts_and_queues_nothing(failed_deliveries):
    stack, hooks, env = failed_deliveries
    hook = hooks["dry-run"]
    piped = piped_run(["webhooks", "replay", hook, "--since", SINCE, "--status", "FAILED", "--dry-run", "--json"], env)
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["queued"] == FAILED_COUNT
    assert f"Would queue {FAILED_COUNT} deliveries again" in piped.stderr
    assert statuses(stack, hook) == {"FAILED": FAILED_COUNT}
    # Without --status every page still matches after its update: the keyset moves on, no row twice.
    everything = piped_run(["webhooks", "replay", hook, "--since", SINCE, "--json"], env)
    assert json.loads(everything.stdout)["queued"] == FAILED_COUNT
    assert statuses(stack, hook) == {"PENDING": FAILED_COUNT}


def test_key_rotation_shows_a_bar_on_a_terminal_and_one_line_in_scripts(db_url, make_integration, monkeypatch):
    import base64

    from nexusctl.crypto import Keyring
    from nexusctl.db.models import Integration
    from nexusctl.db.secrets import unseal

    old = os.environ["ENCRYPTION_KEY"]
    for _ in range(3):
        make_integration()
    new = base64.b64encode(b"n" * 32).decode()
    env = terminal_env(ENCRYPTION_KEY=new, ENCRYPTION_OLD_KEYS=old)
    piped = piped_run(["keys", "rotate", "--dry-run"], env)
    assert piped.returncode == 0 and piped.stdout == ""
    assert piped.stderr.startswith("Would re-encrypt 6 secret(s)") and ANSI not in piped.stderr

    code, stdout, screen = stderr_on_pty(["keys", "rotate", "--batch-size", "1"], env)
    assert code == 0, screen
    assert "re-encrypting" in screen and "/3" in screen  # three rows, one per batch
    assert "Re-encrypted 6 secret(s)" in screen and stdout == ""
    keyring = Keyring(base64.b64decode(new))
    for row in Integration.select():
        assert unseal(keyring, row, "access_token").startswith("at-")


def _colours(screen: str) -> bool:
    """Any SGR foreground or background colour (bold and dim are not colours, as NO_COLOR defines it)."""
    params = [p for codes in SGR.findall(screen) for p in codes[2:-1].split(";") if p.isdigit()]
    return any(30 <= int(p) <= 49 or 90 <= int(p) <= 107 for p in params)


def test_help_follows_no_color_too():
    # typer renders --help with rich; on a terminal it is coloured unless NO_COLOR says not
    # (typer keeps bold and dim, which no-color.org allows).
    code, screen = _run_on_pty(["integrations", "list", "--help"], "", terminal_env())
    assert code == 0 and "Example:" in screen and _colours(screen)
    code, screen = _run_on_pty(["integrations", "list", "--help"], "", terminal_env(NO_COLOR="1"))
    assert code == 0 and "Example:" in screen and not _colours(screen)
    piped = piped_run(["integrations", "list", "--help"], terminal_env())
    assert piped.returncode == 0 and "Example:" in piped.stdout and ANSI not in piped.stdout
