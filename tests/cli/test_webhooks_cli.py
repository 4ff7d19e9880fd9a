"""`nexusctl webhooks` and `nexusctl events emit` against real databases."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid

import pytest

from nexusctl.db.models import OutboxEvent, Webhook, WebhookDelivery
from nexusctl.enums import DeliveryStatus


@pytest.fixture(autouse=True)
def local_receivers(monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")


def _create(cli, integration, *events):
    args = ["webhooks", "create", "--integration", integration.id, "--url", "http://127.0.0.1:9/hook", "--json"]
    for event in events or ("post.*",):
        args += ["-e", event]
    made = cli(*args)
    assert made.exit_code == 0, made.stderr
    return json.loads(made.stdout)


def test_create_shows_the_secret_once_and_emit_queues_deliveries(cli, make_integration):
    integration = make_integration()
    hook = _create(cli, integration, "post.*")
    assert hook["secret"].startswith("whsec_") and hook["events"] == ["post.*"]
    shown = cli("webhooks", "show", hook["id"], "--json")
    assert shown.exit_code == 0 and hook["secret"] not in shown.stdout
    emitted = cli("events", "emit", integration.id, "post.created", "--data", '{"mediaId": "m1"}', "--json")
    assert emitted.exit_code == 0, emitted.stderr
    assert json.loads(emitted.stdout)["deliveriesQueued"] == 1
    skipped = cli("events", "emit", integration.id, "review.created", "--json")
    assert json.loads(skipped.stdout)["deliveriesQueued"] == 0
    listed = cli("webhooks", "deliveries", hook["id"], "--json")
    rows = json.loads(listed.stdout)
    assert [r["event"] for r in rows] == ["post.created"] and rows[0]["status"] == "PENDING"
    assert rows[0]["payload"]["data"]["mediaId"] == "m1"


def test_data_cannot_name_another_user_in_the_delivery(cli, make_integration, tmp_path):
    integration = make_integration()
    hook = _create(cli, integration, "post.*")
    spoof = json.dumps({"userId": "6f1c2a9e-0000-4000-8000-000000000001", "n": 1})
    assert cli("events", "emit", integration.id, "post.created", "--data", spoof).exit_code == 0
    path = tmp_path / "events.ndjson"
    path.write_text(
        json.dumps({"integrationId": str(integration.id), "type": "post.updated", "data": json.loads(spoof)})
    )
    assert cli("events", "emit", "--file", str(path)).exit_code == 0
    rows = json.loads(cli("webhooks", "deliveries", hook["id"], "--json").stdout)
    assert [r["payload"]["data"]["userId"] for r in rows] == [str(integration.user_id)] * 2
    assert [e.data["userId"] for e in OutboxEvent.select()] == [str(integration.user_id)] * 2


def test_emit_from_a_file_of_json_lines_answers_each_line(cli, make_integration, tmp_path):
    integration = make_integration()
    _create(cli, integration, "post.*")
    lines = [{"integrationId": str(integration.id), "type": "post.created", "data": {"n": n}} for n in range(3)]
    lines.insert(1, {"integrationId": str(integration.id), "type": "webhook.delivered"})  # reserved
    text = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n\n"
    path = tmp_path / "events.ndjson"
    path.write_text(text)
    emitted = cli("events", "emit", "--file", str(path), "--json")
    assert emitted.exit_code == 2, emitted.stderr  # some lines were refused: VALIDATION_ERROR's, not 1 (a bug)
    summary = json.loads(emitted.stdout)
    assert (summary["emitted"], summary["deliveriesQueued"], summary["refused"]) == (3, 3, 2)
    assert [r["line"] for r in summary["results"]] == [1, 2, 3, 4, 5]
    assert summary["results"][1]["error"]["code"] == "VALIDATION_ERROR" and "line 5" in emitted.stderr
    payloads = sorted(d.payload["data"]["n"] for d in WebhookDelivery.select())
    assert payloads == [0, 1, 2]
    path.write_text(json.dumps({"integrationId": "00000000-0000-0000-0000-000000000000", "type": "post.created"}))
    unknown = cli("events", "emit", "--file", str(path))  # refused for another reason: still refused input
    assert unknown.exit_code == 2 and "INTEGRATION_NOT_FOUND" in unknown.stderr, unknown.stderr
    assert cli("events", "emit", "--file", str(path), integration.id, "post.created").exit_code == 2
    assert cli("events", "emit").exit_code == 2


def test_emit_to_an_inactive_integration_is_refused(cli, make_integration, tmp_path):
    """`events emit` to an integration switched off (`integrations update --inactive`) is refused, INTEGRATION_INACTIVE
    (exit 15), nothing queued; with --file that line is refused (exit 2, as for any refused line) and the others
    go. Before, both were emitted and queued to its webhooks."""
    integration, other = make_integration(), make_integration()
    hook = _create(cli, integration, "post.*")
    assert cli("integrations", "update", integration.id, "--inactive").exit_code == 0
    refused = cli("events", "emit", integration.id, "post.created")
    assert refused.exit_code == 15 and "INTEGRATION_INACTIVE" in refused.stderr, refused.stderr
    assert "inactive" in refused.stderr and "integrations update ID --active" in refused.stderr, refused.stderr
    path = tmp_path / "events.ndjson"
    path.write_text(
        "".join(json.dumps({"integrationId": str(i.id), "type": "post.created"}) + "\n" for i in (integration, other))
    )
    emitted = cli("events", "emit", "--file", str(path), "--json")
    assert emitted.exit_code == 2, emitted.stderr
    summary = json.loads(emitted.stdout)
    assert (summary["emitted"], summary["refused"]) == (1, 1), summary
    assert (
        summary["results"][0]["error"]["code"] == "INTEGRATION_INACTIVE"
        and "line 1: INTEGRATION_INACTIVE" in emitted.stderr
    )
    assert [e.integration_id for e in OutboxEvent.select()] == [other.id]
    assert json.loads(cli("webhooks", "deliveries", hook["id"], "--json").stdout) == []
    assert cli("integrations", "update", integration.id, "--active").exit_code == 0
    assert json.loads(cli("events", "emit", integration.id, "post.created", "--json").stdout)["deliveriesQueued"] == 1


def test_emit_from_a_file_with_refused_lines_says_how_to_send_only_those_again(cli, make_integration, tmp_path):
    """Found by a reviewer: with some lines refused (exit 2) nothing said that the others were emitted, and the
    natural retry, the whole file again once fixed, emitted each good line twice. The summary now ends with how
    to send only the refused lines; doing as it says emits every line once."""
    integration = make_integration()
    _create(cli, integration, "post.*")
    lines = [json.dumps(line) for line in _lines(integration, 6)]
    lines[1], lines[4] = "not json", '{"integrationId": "%s", "type": "post.created", "data": {"n": 4' % integration.id
    path = tmp_path / "my events.ndjson"
    path.write_text("\n".join(lines) + "\n")
    emitted = cli("events", "emit", "--file", str(path))
    assert emitted.exit_code == 2, emitted.stderr
    hint = emitted.stderr.splitlines()[-1]
    assert hint == (
        f"2 lines refused, the others emitted: fix and send only those again (e.g. sed -n '2p;5p' '{path}' > "
        "refused.ndjson, fix it, then --file refused.ndjson); the whole file again would emit the others twice"
    ), emitted.stderr
    as_json = cli("events", "emit", "--file", str(path), "--json")  # (each good line a second time here)
    assert [r["line"] for r in json.loads(as_json.stdout)["results"] if "error" in r] == [2, 5]
    # As it says: the two lines picked (sed), fixed, sent alone.
    command = hint.split("e.g. ")[1].split(" > ")[0]
    refused = tmp_path / "refused.ndjson"
    picked = subprocess.run(command, shell=True, check=True, capture_output=True, text=True).stdout.splitlines()
    assert picked == [lines[1], lines[4]]
    refused.write_text(json.dumps(_lines(integration, 2)[1]) + "\n" + lines[4] + "}}\n")  # both fixed
    assert cli("events", "emit", "--file", str(refused)).exit_code == 0
    assert sorted(e.data["n"] for e in OutboxEvent.select()) == sorted([0, 2, 3, 5] * 2 + [1, 4])
    # From stdin (no file to pick lines from) or with many refused: the warnings name them.
    stdin = cli("events", "emit", "--file", "-", input="nope\n")
    assert stdin.exit_code == 2 and stdin.stderr.splitlines()[-1] == (
        "line 1 refused, the others emitted: fix and send only those again (the lines the warnings above name); "
        "the whole input again would emit the others twice"
    ), stdin.stderr
    many = cli("events", "emit", "--file", "-", input="nope\n" * 21)
    assert "(the lines the warnings above name)" in many.stderr.splitlines()[-1], many.stderr


def test_the_limit_of_an_event_s_data_is_the_one_help_and_readme_state(cli, make_integration, tmp_path):
    """Found by a reviewer: data over 256 KiB is refused (VALIDATION_ERROR, 400 from the API), but neither the
    README nor `events emit --help` said there was a limit. Both say it now, and it is the limit enforced."""
    from pathlib import Path

    integration = make_integration()
    _create(cli, integration, "post.*")
    helped = cli("events", "emit", "--help")
    assert "data is a JSON object of at most 256 KiB" in " ".join(helped.stdout.split()), helped.stdout
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| POST | `/integrations/")]
    for route in ("`/integrations/:id/events`", "`/integrations/events`"):
        assert "256 KiB" in next(row for row in rows if f"| {route} |" in row), route
    limit = 256 * 1024  # 262,144 characters of the data's JSON text, as README says
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"x": "a" * (limit - len('{"x": ""}'))}))
    assert cli("events", "emit", integration.id, "post.created", "--data", f"@{path}").exit_code == 0
    path.write_text(json.dumps({"x": "a" * (limit + 1 - len('{"x": ""}'))}))
    over = cli("events", "emit", integration.id, "post.created", "--data", f"@{path}")
    assert over.exit_code == 2 and "VALIDATION_ERROR: data is over 256 KiB" in over.stderr, over.stderr
    assert '("data is over 256 KiB")' in readme  # the message README quotes is the one printed


def test_emit_from_a_file_refuses_a_line_over_1_mib_and_emits_the_others(cli, make_integration, tmp_path):
    """A line is read up to 1 MiB (1,048,576 bytes): a longer one is refused by that bound, in MiB."""
    integration = make_integration()
    _create(cli, integration, "post.*")
    good = json.dumps({"integrationId": str(integration.id), "type": "post.created", "data": {"n": 1}})
    path = tmp_path / "events.ndjson"
    path.write_text(good + "\n" + "x" * (1024 * 1024 + 1) + "\n" + good + "\n")
    emitted = cli("events", "emit", "--file", str(path), "--json")
    assert emitted.exit_code == 2, emitted.stderr
    results = json.loads(emitted.stdout)["results"]
    assert [r["line"] for r in results if "error" in r] == [2]
    assert "the line is over 1 MiB" in results[1]["error"]["message"], results[1]
    assert OutboxEvent.select().count() == 2


def test_emit_from_a_file_refuses_a_line_that_is_not_utf8_and_emits_the_others(cli, make_integration, tmp_path):
    integration = make_integration()
    _create(cli, integration, "post.*")
    # Past the first batch of 500, so a crash there would leave the first batch emitted and no summary.
    lines = [
        b'{"integrationId": "%s", "type": "post.created", "data": {"n": %d}}' % (str(integration.id).encode(), n)
        for n in range(600)
    ]
    lines[549] = lines[549].replace(b"}}", b', "s": "\xff"}}')
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    emitted = cli("events", "emit", "--file", str(path), "--json")
    assert emitted.exit_code == 2, emitted.stderr  # refused input, not 1 (INTERNAL_ERROR)
    assert "line 550: VALIDATION_ERROR" in emitted.stderr and "not UTF-8" in emitted.stderr, emitted.stderr
    summary = json.loads(emitted.stdout)
    assert (summary["emitted"], summary["refused"]) == (599, 1)
    assert "Emitted 599 events" in emitted.stderr
    assert WebhookDelivery.select().count() == 599
    # A UTF-16 file: refused line by line (its first line says what it is), nothing emitted, the summary printed.
    path.write_text('{"integrationId": "%s", "type": "post.created"}\n' % integration.id, encoding="utf-16")
    utf16 = cli("events", "emit", "--file", str(path))
    assert utf16.exit_code == 2 and "line 1: VALIDATION_ERROR" in utf16.stderr and "UTF-16" in utf16.stderr, (
        utf16.stderr
    )
    assert "Emitted 0 events" in utf16.stderr and WebhookDelivery.select().count() == 599


def _lines(integration, count, event_type="post.created"):
    return [{"integrationId": str(integration.id), "type": event_type, "data": {"n": n}} for n in range(count)]


@contextlib.contextmanager
def _write_locked(db_url):
    """Another process holds the SQLite database's write lock (``sqlite3 file.db 'BEGIN IMMEDIATE; ...'`` left
    open) until the block ends."""
    path = db_url.removeprefix("sqlite:///")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.read()",
            path,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        yield
    finally:
        holder.communicate("", timeout=10)


def _database_goes_away(db_url):
    """What makes the database unusable in the middle of a command, as a user meets it: on PostgreSQL the
    command's connection ended by the server (as when it stops); on SQLite another process holding the write
    lock (the command's write waits busy_timeout, 5 s, then fails). Returns what ends it (SQLite's lock)."""
    from nexusctl.db.database import database_proxy

    if db_url.startswith("sqlite"):
        locked = _write_locked(db_url)
        locked.__enter__()
        return lambda: locked.__exit__(None, None, None)
    import psycopg2

    pid = database_proxy.connection().get_backend_pid()
    admin = psycopg2.connect(db_url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
    admin.close()
    return lambda: None


@pytest.mark.parametrize("as_json", [False, True])
def test_emit_from_a_file_stopped_by_an_error_says_what_was_emitted(
    cli, make_integration, tmp_path, monkeypatch, as_json, db_url
):
    """Found by a reviewer: `--file` stopped by a database error after its first two batches printed no summary
    (exit 1), yet 1,000 events were committed: a retry of the file sent them twice. It now says how far it got.
    Found by the next review: it then ended with INTERNAL_ERROR (exit 1, "report it") for the database gone
    midway (PostgreSQL stopped, SQLite locked by another process): that is DATABASE_UNAVAILABLE, exit 4, as when
    the database is down before the command starts."""
    from nexusctl.core import events

    integration = make_integration()
    _create(cli, integration, "post.*")
    lines = [json.dumps(line) for line in _lines(integration, 1200)]
    lines[599] = "not json"  # refused: one of the lines done
    lines[1099] = "not json either"  # refused, but after the stop: not reported (a retry reports it)
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\n")
    real, calls, back = events.emit_many, [], []

    def third_fails(items, **kwargs):
        calls.append(len(items))
        if len(calls) == 3:
            back.append(_database_goes_away(db_url))
        return real(items, **kwargs)

    monkeypatch.setattr(events, "emit_many", third_fails)
    stopped = cli("events", "emit", "--file", str(path), *(["--json"] if as_json else []))
    back.pop()()
    assert stopped.exit_code == 4, stopped.stderr
    messages = stopped.stderr.splitlines()
    assert messages[0].startswith("warning: line 600: VALIDATION_ERROR"), messages
    assert messages[1] == (
        "warning: stopped at line 1002: lines 1-1001 are done (1000 events emitted, 1000 deliveries queued, "
        f"1 refused); nothing from line 1002 on was emitted: send only those again (tail -n +1002 {path})"
    ), messages
    assert messages[2].startswith("error: DATABASE_UNAVAILABLE: ") and len(messages) == 3, messages
    assert ("is locked: another process" if db_url.startswith("sqlite") else "lost the database") in messages[2]
    assert "Traceback" not in stopped.stderr and "INTERNAL_ERROR" not in stopped.stderr
    assert OutboxEvent.select().count() == 1000
    if as_json:
        summary = json.loads(stopped.stdout)
        assert (summary["emitted"], summary["refused"], summary["stoppedAtLine"]) == (1000, 1, 1002)
        assert [r["line"] for r in summary["results"]] == list(range(1, 1002))
    # The rest, sent again as it says: every line emitted once.
    monkeypatch.setattr(events, "emit_many", real)
    rest = tmp_path / "rest.ndjson"
    rest.write_text("\n".join(lines[1001:]) + "\n")
    assert cli("events", "emit", "--file", str(rest)).exit_code == 2  # its refused line
    assert sorted(e.data["n"] for e in OutboxEvent.select()) == [n for n in range(1200) if n not in (599, 1099)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_database_locked_by_another_process_is_database_unavailable(cli, make_integration, tmp_path, db_url):
    """Found by a reviewer: with another process holding SQLite's write lock, `events emit`, `events emit --file`
    and `webhooks test` waited 5 s and ended with INTERNAL_ERROR (exit 1, "report it"): it is the database being
    unavailable, DATABASE_UNAVAILABLE (exit 4), as the daemon answers (503) in the same case."""
    integration = make_integration()
    hook = _create(cli, integration, "post.*")
    path = tmp_path / "events.ndjson"
    path.write_text(json.dumps({"integrationId": str(integration.id), "type": "post.created"}) + "\n")
    with _write_locked(db_url):
        for args in (
            ("events", "emit", integration.id, "post.created"),
            ("events", "emit", "--file", str(path)),
            ("webhooks", "test", hook["id"]),
        ):
            locked = cli(*args)
            assert locked.exit_code == 4, (args, locked.stderr)
            assert locked.stderr.splitlines()[-1] == (
                f"error: DATABASE_UNAVAILABLE: the database {db_url} is locked: another process has held its "
                "write lock for over 5 s (a long transaction?); try again once it lets go"
            ), locked.stderr
    assert WebhookDelivery.select().count() == 0
    assert cli("events", "emit", integration.id, "post.created").exit_code == 0  # the lock gone


def test_emit_from_a_file_warns_in_line_order(cli, make_integration, tmp_path):
    integration = make_integration()
    _create(cli, integration, "post.*")
    lines = [json.dumps(line) for line in _lines(integration, 4)]
    lines[0] = json.dumps({"integrationId": str(integration.id), "type": "webhook.failed"})  # refused when sent
    lines[1] = "{"  # refused when read
    lines[3] = json.dumps({"integrationId": str(uuid.uuid4()), "type": "post.created"})  # refused when sent
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\nnope\n")
    emitted = cli("events", "emit", "--file", str(path))
    assert emitted.exit_code == 2, emitted.stderr
    warned = [int(line.split()[2].rstrip(":")) for line in emitted.stderr.splitlines() if line.startswith("warning")]
    assert warned == [1, 2, 4, 5], emitted.stderr


def test_emit_from_a_file_takes_a_utf8_bom_at_its_start(cli, make_integration, tmp_path):
    integration = make_integration()
    _create(cli, integration, "post.*")
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(json.dumps(line) for line in _lines(integration, 2)) + "\n", encoding="utf-8-sig")
    emitted = cli("events", "emit", "--file", str(path))
    assert emitted.exit_code == 0 and "Emitted 2 events" in emitted.stderr, emitted.stderr
    assert "utf-8-sig" not in emitted.stderr


def test_data_with_file_is_refused(cli, make_integration, tmp_path):
    integration = make_integration()
    line = json.dumps({"integrationId": str(integration.id), "type": "post.x"}) + "\n"
    refused = cli("events", "emit", "--file", "-", "--data", '{"lost": true}', input=line)
    assert refused.exit_code == 2 and "--data" in refused.stderr and "VALIDATION_ERROR" in refused.stderr
    assert OutboxEvent.select().count() == 0


def test_replay_and_redeliver_requeue(cli, make_integration):
    integration = make_integration()
    hook = _create(cli, integration, "*")
    cli("events", "emit", integration.id, "post.created")
    WebhookDelivery.update(status=DeliveryStatus.FAILED).execute()
    replayed = cli("webhooks", "replay", hook["id"], "--since", "2000-01-01T00:00:00Z", "--status", "FAILED")
    assert replayed.exit_code == 0 and "Queued 1 deliveries again" in replayed.stderr
    assert WebhookDelivery.get().status == DeliveryStatus.PENDING
    delivery = WebhookDelivery.get()
    WebhookDelivery.update(status=DeliveryStatus.DELIVERED).execute()
    assert cli("webhooks", "redeliver", delivery.id).exit_code == 0
    assert WebhookDelivery.get().status == DeliveryStatus.PENDING
    assert cli("webhooks", "replay", hook["id"], "--since", "yesterday").exit_code == 2
    WebhookDelivery.update(status=DeliveryStatus.FAILED).execute()
    recent = cli("webhooks", "replay", hook["id"], "--since", "1h", "--status", "FAILED")  # as `events list --since`
    assert recent.exit_code == 0 and "Queued 1 deliveries again" in recent.stderr, recent.stderr
    assert WebhookDelivery.get().status == DeliveryStatus.PENDING


def test_redeliver_and_replay_to_an_inactive_webhook_are_refused(cli, make_integration):
    integration = make_integration()
    hook = _create(cli, integration, "*")
    cli("events", "emit", integration.id, "post.created")
    delivery = WebhookDelivery.get()
    WebhookDelivery.update(status=DeliveryStatus.FAILED).execute()
    assert cli("webhooks", "update", hook["id"], "--inactive").exit_code == 0
    for refused in (
        cli("webhooks", "redeliver", delivery.id),
        cli("webhooks", "replay", hook["id"], "--since", "2000-01-01T00:00:00Z"),
        # The dry run predicts the real one: the same refusal, not "Would queue 1 deliveries again".
        cli("webhooks", "replay", hook["id"], "--since", "2000-01-01T00:00:00Z", "--dry-run"),
        cli("webhooks", "replay", hook["id"], "--since", "1h", "--dry-run", "--json"),
    ):
        assert refused.exit_code == 14, refused.stderr  # WEBHOOK_INACTIVE
        assert "WEBHOOK_INACTIVE" in refused.stderr and "--active" in refused.stderr, refused.stderr
        assert "Would queue" not in refused.stderr and refused.stdout == "", refused.stdout + refused.stderr
    assert WebhookDelivery.get().status == DeliveryStatus.FAILED  # nothing queued to wait forever
    assert cli("webhooks", "update", hook["id"], "--active").exit_code == 0
    counted = cli("webhooks", "replay", hook["id"], "--since", "2000-01-01T00:00:00Z", "--dry-run")
    assert counted.exit_code == 0 and "Would queue 1 deliveries again" in counted.stderr, counted.stderr
    assert cli("webhooks", "redeliver", delivery.id).exit_code == 0
    assert WebhookDelivery.get().status == DeliveryStatus.PENDING


def test_rotate_update_test_delete(cli, make_integration):
    integration = make_integration()
    hook = _create(cli, integration)
    rotated = json.loads(cli("webhooks", "rotate-secret", hook["id"], "--json").stdout)
    assert rotated["secret"] != hook["secret"]
    assert cli("webhooks", "test", hook["id"]).exit_code == 0
    assert WebhookDelivery.get().event == "webhook.test"
    updated = json.loads(cli("webhooks", "update", hook["id"], "--inactive", "--json").stdout)
    assert updated["isActive"] is False
    gone = cli("webhooks", "delete", hook["id"], "--yes", "--json")
    assert gone.exit_code == 0 and json.loads(gone.stdout)["deliveriesDeleted"] == 1
    assert cli("webhooks", "show", hook["id"]).exit_code == 11  # WEBHOOK_NOT_FOUND


def test_bad_input(cli, make_integration):
    integration = make_integration()
    for url in (
        "http://10.1.2.3/x",
        "http://169.254.169.254/",
        "gopher://x",
        "http://127.0.0.1:9/\x1b]0;x\x07",
        "http://127.0.0.1:9/\u202egnp.exe",  # a right-to-left override: the URL would read other than it is
    ):
        bad = cli("webhooks", "create", "--integration", integration.id, "--url", url, "-e", "*")
        assert bad.exit_code == 2 and "VALIDATION_ERROR" in bad.stderr, (url, bad.stderr)
        assert "\u202e" not in bad.stderr, bad.stderr  # the refusal quotes no raw override either
    assert cli("events", "emit", integration.id, "Not A Type").exit_code == 2
    assert cli("events", "emit", integration.id, "post.created", "--data", "[1]").exit_code == 2
    assert cli("events", "emit", "not-a-uuid", "post.created").exit_code == 2
    assert OutboxEvent.select().where(OutboxEvent.type == "post.created").count() == 0
    for forged in ("analytics.fetched", "comment.created", "media.created", "integration.synced"):
        refused = cli("events", "emit", integration.id, forged)
        assert refused.exit_code == 2 and forged in refused.stderr and "VALIDATION_ERROR" in refused.stderr, forged
        assert OutboxEvent.select().where(OutboxEvent.type == forged).count() == 0


def test_emit_reads_data_from_a_file_or_stdin(cli, make_integration, tmp_path):
    integration = make_integration()
    _create(cli, integration, "*")
    path = tmp_path / "event.json"
    path.write_text('{"mediaId": "from-file"}')
    assert cli("events", "emit", integration.id, "post.created", "--data", f"@{path}").exit_code == 0
    assert (
        cli(
            "events", "emit", integration.id, "post.created", "--data", "-", input='{"mediaId": "from-stdin"}'
        ).exit_code
        == 0
    )
    missing = cli("events", "emit", integration.id, "post.created", "--data", "@/nonexistent.json")
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    bom = tmp_path / "bom.json"
    bom.write_bytes(b'\xef\xbb\xbf{"mediaId": "with-bom"}')
    assert cli("events", "emit", integration.id, "post.created", "--data", f"@{bom}").exit_code == 0
    ids = sorted(d.payload["data"]["mediaId"] for d in WebhookDelivery.select())
    assert ids == ["from-file", "from-stdin", "with-bom"]


@pytest.mark.parametrize(
    "raw, message",
    [
        ('{"caption": "café"}'.encode("latin-1"), "is not UTF-8 (byte 0xe9 at position 16)"),
        ('{"caption": "café"}'.encode("utf-16"), "UTF-16"),
    ],
)
@pytest.mark.parametrize("command", [("emit", None, "post.created"), ("ingest", "user.deleted")])
def test_data_that_is_not_utf8_is_refused_from_a_file_or_stdin(cli, make_integration, tmp_path, raw, message, command):
    """Found by a reviewer: `--data @latin1.json` was INTERNAL_ERROR (an unexpected UnicodeDecodeError), exit 1;
    `--data -` said "unpaired surrogate". Both are refused input now, naming the byte, as `--file` does."""
    integration = make_integration()
    args = ["events", *[str(integration.id) if a is None else a for a in command]]
    path = tmp_path / "data.json"
    path.write_bytes(raw)
    for data, stdin in ((f"@{path}", None), ("-", raw)):
        refused = cli(*args, "--data", data, input=stdin)
        assert refused.exit_code == 2, refused.stderr
        error = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
        assert len(error) == 1 and "VALIDATION_ERROR" in error[0] and message in error[0], refused.stderr
    nameless = cli(*args, "--data", "@")
    assert nameless.exit_code == 2 and "names no file" in nameless.stderr, nameless.stderr
    assert OutboxEvent.select().count() == 0


def test_create_without_events_is_a_usage_error_and_creates_nothing(cli, make_integration):
    integration = make_integration()
    refused = cli("webhooks", "create", "--integration", integration.id, "--url", "http://127.0.0.1:9/hook")
    assert refused.exit_code == 2, refused.stderr
    assert "VALIDATION_ERROR" in refused.stderr and "--event" in refused.stderr
    assert Webhook.select().count() == 0
    everything = _create(cli, integration, "*")  # subscribing to everything is said out loud
    assert everything["events"] == ["*"]


def test_test_to_an_inactive_webhook_is_refused_and_queues_nothing(cli, make_integration):
    hook = _create(cli, make_integration())
    assert cli("webhooks", "update", hook["id"], "--inactive").exit_code == 0
    refused = cli("webhooks", "test", hook["id"], "--json")
    assert refused.exit_code == 14, refused.stderr
    assert "WEBHOOK_INACTIVE" in refused.stderr and "--active" in refused.stderr and refused.stdout == ""
    assert WebhookDelivery.select().count() == 0
    assert cli("webhooks", "update", hook["id"], "--active").exit_code == 0
    assert cli("webhooks", "test", hook["id"]).exit_code == 0  # enabled again, it is sent
    assert WebhookDelivery.get().event == "webhook.test"


@pytest.mark.parametrize("event", ["webhook.failed", "webhook.delivered", "webhook.*", "webhook.test"])
def test_webhook_events_cannot_be_subscribed_to(cli, make_integration, event):
    # The service never delivers webhook.* events to webhooks (a delivery about a delivery would loop):
    # a subscription to them would be accepted and never deliver anything.
    integration = make_integration()
    refused = cli(
        "webhooks", "create", "--integration", integration.id, "--url", "http://127.0.0.1:9/hook", "-e", event
    )
    assert refused.exit_code == 2 and "VALIDATION_ERROR" in refused.stderr, refused.stderr
    assert "events list" in refused.stderr and "loop" in refused.stderr and event in refused.stderr
    assert Webhook.select().count() == 0
    hook = _create(cli, integration, "post.*")
    changed = cli("webhooks", "update", hook["id"], "-e", "post.*", "-e", event)
    assert changed.exit_code == 2 and "VALIDATION_ERROR" in changed.stderr, changed.stderr
    assert Webhook.get().events == ["post.*"]


def test_a_webhook_stored_with_webhook_events_still_loads_and_works(cli, make_integration, keyring):
    # Rows written before such subscriptions were refused: shown, listed, updated and deleted as before.
    from nexusctl.db.secrets import seal

    integration = make_integration()
    row = Webhook(integration=integration, url="http://127.0.0.1:9/hook", events=["webhook.failed", "post.*"])
    seal(keyring, row, "secret", "whsec_" + "A" * 43)
    row.save(force_insert=True)
    shown = json.loads(cli("webhooks", "show", row.id, "--json").stdout)
    assert shown["events"] == ["webhook.failed", "post.*"]
    assert cli("webhooks", "list", "--integration", integration.id).exit_code == 0
    assert cli("webhooks", "update", row.id, "--inactive").exit_code == 0
    assert cli("events", "emit", integration.id, "post.created").exit_code == 0
    assert cli("webhooks", "update", row.id, "-e", "post.*").exit_code == 0
    assert Webhook.get().events == ["post.*"]


def test_list_for_an_unknown_integration_is_integration_not_found(cli, make_integration):
    """As `sync list`: exit 10, not an empty table that reads as "no webhooks yet"."""
    integration = make_integration()
    hook = _create(cli, integration)
    unknown = "00000000-0000-0000-0000-000000000000"
    listed = cli("webhooks", "list", "--integration", unknown)
    assert listed.exit_code == 10 and "INTEGRATION_NOT_FOUND" in listed.stderr, listed.stdout + listed.stderr
    assert cli("sync", "list", unknown).exit_code == 10
    mine = cli("webhooks", "list", "--integration", str(integration.id), "--json")
    assert mine.exit_code == 0 and [h["id"] for h in json.loads(mine.stdout)] == [hook["id"]]


def test_webhooks_per_integration_and_deliveries_per_emit_are_bounded(cli, make_integration, tmp_path, monkeypatch):
    integration = make_integration()
    monkeypatch.setenv("WEBHOOKS_PER_INTEGRATION_MAX", "2")
    _create(cli, integration, "*")
    _create(cli, integration, "*")
    third = cli("webhooks", "create", "--integration", integration.id, "--url", "http://127.0.0.1:9/h", "-e", "*")
    assert third.exit_code == 2 and "VALIDATION_ERROR" in third.stderr, third.stderr
    assert "WEBHOOKS_PER_INTEGRATION_MAX" in third.stderr
    assert Webhook.select().count() == 2
    # Four events to two webhooks: 8 deliveries, over the 3 one transaction may queue. --file sends the batch in
    # smaller parts (one event, 2 deliveries, each): every line emitted.
    monkeypatch.setenv("EMIT_DELIVERIES_MAX", "3")
    path = tmp_path / "events.ndjson"
    line = json.dumps({"integrationId": str(integration.id), "type": "post.created"})
    path.write_text((line + "\n") * 4)
    emitted = cli("events", "emit", "--file", str(path), "--json")
    assert emitted.exit_code == 0, emitted.stderr
    assert json.loads(emitted.stdout)["deliveriesQueued"] == 8 and WebhookDelivery.select().count() == 8
    # One event over the bound alone: its line is refused, with the bound named; nothing written.
    monkeypatch.setenv("EMIT_DELIVERIES_MAX", "1")
    refused = cli("events", "emit", "--file", str(path))
    assert refused.exit_code == 2 and "line 4: PAYLOAD_TOO_LARGE" in refused.stderr, refused.stderr
    assert "EMIT_DELIVERIES_MAX" in refused.stderr and "Emitted 0 events" in refused.stderr
    single = cli("events", "emit", integration.id, "post.created")
    assert single.exit_code == 42 and "PAYLOAD_TOO_LARGE" in single.stderr, single.stderr
    assert "this event would go to 2 matching webhooks (2 deliveries)" in single.stderr, single.stderr
    assert "(1, EMIT_DELIVERIES_MAX)" in single.stderr and "fewer events" not in single.stderr
    assert WebhookDelivery.select().count() == 8 and OutboxEvent.select().count() == 4


def test_update_with_nothing_to_change_names_the_flags(cli, make_integration):
    """Review: it said "give url, events, isActive or metadata", the API's fields (and no --metadata exists)."""
    hook = _create(cli, make_integration())
    refused = cli("webhooks", "update", hook["id"])
    assert refused.exit_code == 2 and "VALIDATION_ERROR" in refused.stderr, refused.stderr
    assert "nothing to update: give --url, --event (-e), --active or --inactive" in refused.stderr, refused.stderr
    assert "isActive" not in refused.stderr and "metadata" not in refused.stderr
