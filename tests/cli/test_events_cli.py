"""`nexusctl events list|tail|ingest` on real SQLite and PostgreSQL, with no Redis.

Without Redis the outbox is the record: `events list` pages it newest first
(by type, prefix, time and integration), `events tail` follows it, and
`events ingest` runs the platform-event handlers the consumer group runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from support import clock as shared_clock

from nexusctl.core import events
from nexusctl.db.database import database_proxy
from nexusctl.db.models import Integration, IntegrationSyncLog, OutboxEvent
from nexusctl.enums import Provider

NEXUSCTL = Path(sys.executable).parent / "nexusctl"


def _error_line(result) -> str:
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _record(integration, event_type: str, **data) -> OutboxEvent:
    with database_proxy.atomic():
        return events.record(event_type, integration, **data)


@pytest.fixture
def history(make_integration, monkeypatch, tmp_path):
    """Six events of two integrations an hour apart on the shared clock (oldest first), ending now."""
    advance = shared_clock.own_file(monkeypatch, tmp_path / "clock")  # `events tail` runs get it too
    first, second = make_integration(), make_integration(provider=Provider.DISCORD)
    kinds = [
        (first, "integration.connected"),
        (second, "integration.connected"),
        (first, "media.created"),
        (first, "integration.refreshed"),
        (second, "integration.error"),
        (first, "media.created"),
    ]
    rows = []
    for n, (integration, kind) in enumerate(kinds):
        if n:
            advance(3600)
        rows.append(_record(integration, kind, n=n))
    return first, second, rows


def test_list_is_newest_first_and_filters_by_type_prefix_time_and_integration(cli, history):
    first, second, rows = history
    listed = cli("events", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    items = json.loads(listed.stdout)
    assert [i["id"] for i in items] == [str(r.id) for r in reversed(rows)]
    assert set(items[0]) == {"id", "type", "occurredAt", "integrationId", "userId", "publishedAt", "payload"}
    assert items[0]["payload"]["n"] == 5 and items[0]["publishedAt"] is None  # no relay without Redis

    def types(*args):
        result = cli("events", "list", "--json", *args)
        assert result.exit_code == 0, result.stderr
        return [(i["type"], i["payload"]["n"]) for i in json.loads(result.stdout)]

    assert types("--type", "media.created") == [("media.created", 5), ("media.created", 2)]
    assert types("--type", "integration.*") == [
        ("integration.error", 4),
        ("integration.refreshed", 3),
        ("integration.connected", 1),
        ("integration.connected", 0),
    ]
    assert [n for _, n in types("--since", "150m")] == [5, 4, 3]
    since = (rows[4].created_at - dt.timedelta(seconds=1)).isoformat()
    assert [n for _, n in types("--since", since)] == [5, 4]
    assert [n for _, n in types("--integration", str(second.id))] == [4, 1]


def test_list_pages_with_a_cursor(cli, history):
    _, _, rows = history
    first_page = cli("events", "list", "--json", "--limit", "4")
    cursor = [line for line in first_page.stderr.splitlines() if line.startswith("more: add --cursor ")][0].split()[-1]
    rest = cli("events", "list", "--json", "--limit", "4", "--cursor", cursor)
    ids = [i["id"] for i in json.loads(first_page.stdout) + json.loads(rest.stdout)]
    assert ids == [str(r.id) for r in reversed(rows)]


@pytest.mark.parametrize(
    "args, message",
    [
        (("--type", "media*.x"), "wildcard is only allowed at the end"),
        (("--type", "a b"), "type must be an event name"),
        (("--since", "yesterday"), "is not a duration (1h, 30m, 2d) or an ISO time"),
        (("--integration", "nope"), "integration must be a UUID"),
    ],
)
def test_list_refuses_bad_filters_with_one_line(cli, database, args, message):
    result = cli("events", "list", *args)
    assert result.exit_code == 2
    assert message in _error_line(result) and result.stdout == ""


def test_tail_prints_the_latest_then_follows_new_events(history, db_url):
    first, _, rows = history
    tail = subprocess.Popen(
        [str(NEXUSCTL), "events", "tail", "--last", "2", "--exit-after", "2", "--timeout", "30s", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    try:
        shown = [json.loads(tail.stdout.readline()) for _ in range(2)]  # blocks until printed
        assert [s["id"] for s in shown] == [str(rows[4].id), str(rows[5].id)]
        later = [_record(first, "media.created", n=n) for n in (6, 7)]
        out, err = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 0, err
    followed = [json.loads(line) for line in out.splitlines()]
    assert [f["id"] for f in followed] == [str(r.id) for r in later]


def test_tail_interrupted_by_ctrl_c_exits_130(history):
    """Ctrl-C (SIGINT) ends a follow as it ends any command: exit 130, "interrupted" on stderr, not 0 as if the
    awaited events had come."""
    tail = subprocess.Popen(
        [str(NEXUSCTL), "events", "tail", "--last", "1", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    try:
        assert json.loads(tail.stdout.readline())["type"]  # following now: the look-back is printed
        tail.send_signal(signal.SIGINT)
        _, err = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err


def test_tail_times_out_with_exit_124_when_nothing_comes(cli, database):
    """124, as timeout(1): a script waiting for an event tells the wait running out from a bug (exit 1)."""
    result = cli("events", "tail", "--last", "0", "--exit-after", "1", "--timeout", "1s")
    assert result.exit_code == 124
    assert "timed out after 1s with 0 new events" in _error_line(result)


# --- ingest: the consumer's handlers without Redis --------------------------------------------


def test_ingest_user_deleted_removes_the_users_integrations_once(cli, make_integration):
    user = uuid.uuid4()
    doomed = [make_integration(user_id=user), make_integration(user_id=user, provider=Provider.DISCORD)]
    kept = make_integration()
    data = json.dumps({"userId": str(user)})
    result = cli("events", "ingest", "user.deleted", "--data", data, "--id", "evt-1", "--json")
    assert result.exit_code == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert sorted(outcome["integrationIds"]) == sorted(str(i.id) for i in doomed)
    # The providers are unreachable here: the integrations go anyway, and the answer says so.
    assert outcome["revokeFailures"] == 2 and "could not be revoked" in result.stderr
    assert not Integration.select().where(Integration.user_id == user).exists()
    assert Integration.select().where(Integration.id == kept.id).exists()
    disconnects = OutboxEvent.select().where(OutboxEvent.type == "integration.disconnected").count()
    assert disconnects == 2

    again = cli("events", "ingest", "user.deleted", "--data", data, "--id", "evt-1")
    assert again.exit_code == 0 and "was handled before: nothing changed" in again.stderr
    assert OutboxEvent.select().where(OutboxEvent.type == "integration.disconnected").count() == 2


def test_ingest_content_published_queues_publish_runs_for_capable_integrations(cli, make_integration, tmp_path):
    user = uuid.uuid4()
    discord = make_integration(user_id=user, provider=Provider.DISCORD)
    make_integration(user_id=user, provider=Provider.HUBSPOT)  # contacts and campaigns: nothing to publish
    make_integration(user_id=user, provider=Provider.SLACK, is_active=False)  # inactive: left alone
    payload = tmp_path / "content.json"
    payload.write_text(json.dumps({"userId": str(user), "contentId": "c-9", "title": "Hello"}))
    result = cli("events", "ingest", "content.published", "--data", f"@{payload}", "--json")
    assert result.exit_code == 0, result.stderr
    logs = list(IntegrationSyncLog.select())
    # Run at once (no daemon needed); the Discord integration names no channel, and the run says so.
    assert [(str(log.integration_id), log.action, log.status.value, log.resource_id) for log in logs] == [
        (str(discord.id), "publish", "FAILED", "c-9")
    ]
    assert logs[0].metadata["content"] == {"contentId": "c-9", "title": "Hello"}
    (item,) = json.loads(result.stdout)["syncLogs"]
    assert item["syncLogId"] == str(logs[0].id) and "metadata.publishChannel" in item["error"]
    assert "Published content c-9 to 0 of 1 integrations" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (("user.created", "--data", "{}"), "unknown event type 'user.created'"),
        (("user.deleted", "--data", "{oops"), "data is not valid JSON"),
        (("user.deleted", "--data", "[]"), "data must be a JSON object"),
        (("user.deleted", "--data", '{"userId": "x"}'), "payload.userId must be a UUID"),
        (
            ("content.published", "--data", '{"userId": "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"}'),
            "payload.contentId is required",
        ),
    ],
)
def test_ingest_refuses_bad_events_with_one_line(cli, database, args, message):
    result = cli("events", "ingest", *args)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert message in _error_line(result)


@pytest.mark.parametrize("command", ["list", "tail"])
def test_help_examples_quote_the_type_patterns_for_the_shell(command):
    # Unquoted, the shell expands integration.* against the files in the current directory.
    from typer.testing import CliRunner

    from nexusctl.cli.main import app

    text = CliRunner().invoke(app, ["events", command, "--help"], terminal_width=200).stdout
    examples = [line for line in text.splitlines() if "Example:" in line and "--type" in line]
    assert examples and all(re.search(r"--type '[^']+\*'", line) for line in examples), examples
