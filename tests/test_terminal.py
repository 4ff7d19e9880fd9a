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

import pytest
from support.daemons import NEXUSCTL
from support.terminal import ANSI, piped_run, stderr_on_pty  # noqa: F401 - old names, kept for importers

from nexusctl.cli.output import Output


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


@pytest.fixture
def failed_deliveries(db_url, make_integration):
    """A webhook with 1,203 FAILED deliveries: three pages of the replay's batches of 500, and a bit."""
    import datetime as dt
    import uuid

    from nexusctl import config
    from nexusctl.crypto import keyring_from_settings
    from nexusctl.db.models import Webhook, WebhookDelivery
    from nexusctl.db.secrets import seal
    from nexusctl.enums import DeliveryStatus

    integration = make_integration()
    hook = Webhook(integration=integration, url="https://example.com/h", events=["*"])
    seal(keyring_from_settings(config.load()), hook, "secret", "whsec-test")
    hook.save(force_insert=True)
    now = dt.datetime.now(dt.timezone.utc)
    rows = [
        {
            "id": uuid.uuid4(),
            "webhook": hook.id,
            "event": "media.created",
            "payload": {"n": i},
            "status": DeliveryStatus.FAILED,
            "next_attempt_at": None,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(1203)
    ]
    for start in range(0, len(rows), 200):
        WebhookDelivery.insert_many(rows[start : start + 200]).execute()
    return hook


def test_replay_shows_a_bar_on_a_terminal_and_one_line_in_scripts(failed_deliveries):
    from nexusctl.db.models import WebhookDelivery
    from nexusctl.enums import DeliveryStatus

    args = ["webhooks", "replay", failed_deliveries.id, "--since", "2000-01-01T00:00:00Z", "--status", "FAILED"]
    code, stdout, screen = stderr_on_pty([*args, "--json"], terminal_env())
    assert code == 0, screen
    assert "queueing deliveries" in screen and "/1203" in screen  # the bar, with its total
    assert "Queued 1203 deliveries again" in screen
    assert json.loads(stdout) == {"webhookId": str(failed_deliveries.id), "queued": 1203, "dryRun": False}
    assert WebhookDelivery.select().where(WebhookDelivery.status == DeliveryStatus.PENDING).count() == 1203

    WebhookDelivery.update(status=DeliveryStatus.FAILED).execute()
    code, _, screen = stderr_on_pty(args, terminal_env(NO_COLOR="1"))
    assert code == 0 and "queueing deliveries" in screen and "Queued 1203" in screen
    assert not SGR.search(screen)  # the bar still moves, without colour

    WebhookDelivery.update(status=DeliveryStatus.FAILED).execute()
    piped = piped_run(args, terminal_env())
    assert piped.returncode == 0 and piped.stdout == ""
    assert piped.stderr == "Queued 1203 deliveries again\n"  # the summary alone: no bar, no escapes

    WebhookDelivery.update(status=DeliveryStatus.FAILED).execute()
    code, stdout, screen = stderr_on_pty([*args, "-q"], terminal_env())
    assert code == 0 and screen == "" and stdout == ""  # -q: nothing at all, even on a terminal
    assert WebhookDelivery.select().where(WebhookDelivery.status == DeliveryStatus.PENDING).count() == 1203


def test_replay_dry_run_counts_and_queues_nothing(failed_deliveries):
    from nexusctl.db.models import WebhookDelivery
    from nexusctl.enums import DeliveryStatus

    piped = piped_run(
        ["webhooks", "replay", failed_deliveries.id, "--since", "2000-01-01T00:00:00Z", "--dry-run", "--json"],
        terminal_env(),
    )
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["queued"] == 1203 and "Would queue 1203 deliveries again" in piped.stderr
    assert WebhookDelivery.select().where(WebhookDelivery.status == DeliveryStatus.FAILED).count() == 1203
    # Without --status every page still matches after its update: the keyset moves on, no row twice.
    everything = piped_run(
        ["webhooks", "replay", failed_deliveries.id, "--since", "2000-01-01T00:00:00Z", "--json"], terminal_env()
    )
    assert json.loads(everything.stdout)["queued"] == 1203
    assert WebhookDelivery.select().where(WebhookDelivery.status == DeliveryStatus.PENDING).count() == 1203


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
