"""`nexusctl integrations ...` against real SQLite and PostgreSQL.

What an operator sees: the JSON shape (the API's camelCase, never a token),
filters, keyset paging by following the printed cursor, piped tables, the
exit code and one `error: CODE: ...` line for every refusal, and deletes
that take webhooks, deliveries and sync logs with them (and nothing else).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import uuid

import pytest

from nexusctl.db.models import Integration, IntegrationSyncLog, OutboxEvent, Webhook, WebhookDelivery
from nexusctl.db.secrets import seal
from nexusctl.enums import Provider

INTEGRATION_KEYS = {
    "id",
    "userId",
    "organizationId",
    "provider",
    "name",
    "isActive",
    "tokenType",
    "expiresAt",
    "scope",
    "metadata",
    "lastSyncAt",
    "lastError",
    "refreshFailures",
    "refreshRetryAt",
    "createdAt",
    "updatedAt",
}
HEADER = "ID\tPROVIDER\tNAME\tUSER\tACTIVE\tEXPIRES\tLAST SYNC\tLAST ERROR"
MISSING = "00000000-0000-0000-0000-000000000000"
T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def _error_line(result) -> str:
    """The one `error:` line on stderr; no traceback anywhere, nothing on stdout."""
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def _clean(result, *plaintexts):
    text = result.stdout + result.stderr
    assert "nx1." not in text
    for plain in plaintexts:
        assert plain not in text


def _cursor(result) -> str | None:
    lines = [line for line in result.stderr.splitlines() if line.startswith("more: add --cursor ")]
    assert len(lines) <= 1, result.stderr
    return lines[0].split()[-1] if lines else None


def _ids(result) -> list[str]:
    assert result.exit_code == 0, result.stdout + result.stderr
    return [item["id"] for item in json.loads(result.stdout)]


# --- list --------------------------------------------------------------------


def test_list_json_is_the_api_shape_without_tokens(cli, make_integration):
    row = make_integration(
        provider=Provider.INSTAGRAM,
        name="@maker",
        scope=["basic", "publish_content"],
        access_token="AT-plaintext-1",
        refresh_token="RT-plaintext-1",
    )
    result = cli("integrations", "list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [d["id"] for d in data] == [str(row.id)]
    item = data[0]
    assert set(item) == INTEGRATION_KEYS
    assert item["provider"] == "INSTAGRAM" and item["name"] == "@maker" and item["isActive"] is True
    assert item["userId"] == str(row.user_id) and item["metadata"] == {} and item["lastError"] is None
    assert item["scope"] == ["basic", "publish_content"]
    assert item["createdAt"].endswith("Z") and item["updatedAt"].endswith("Z")
    assert not {"accessToken", "refreshToken", "access_token", "refresh_token"} & set(item)
    _clean(result, "AT-plaintext-1", "RT-plaintext-1", "plaintext")


def test_list_of_nothing_is_an_empty_array_and_a_bare_header(cli):
    assert cli("integrations", "list", "--json").stdout == "[]\n"
    table = cli("integrations", "list")
    assert table.exit_code == 0 and table.stdout == HEADER + "\n"


@pytest.fixture
def population(make_integration):
    """Two users, two providers, active and inactive: every filter has something to drop."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    rows = {
        "a_slack": make_integration(user_id=alice, provider=Provider.SLACK),
        "a_slack_off": make_integration(user_id=alice, provider=Provider.SLACK, is_active=False),
        "a_discord": make_integration(user_id=alice, provider=Provider.DISCORD),
        "b_slack": make_integration(user_id=bob, provider=Provider.SLACK),
        "b_discord_off": make_integration(user_id=bob, provider=Provider.DISCORD, is_active=False),
    }
    return alice, bob, {name: str(row.id) for name, row in rows.items()}


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--user", "ALICE"], {"a_slack", "a_slack_off", "a_discord"}),
        (["--provider", "SLACK"], {"a_slack", "a_slack_off", "b_slack"}),
        (["--active"], {"a_slack", "a_discord", "b_slack"}),
        (["--inactive"], {"a_slack_off", "b_discord_off"}),
        (["--user", "BOB", "--provider", "discord", "--inactive"], {"b_discord_off"}),
        (["-u", "ALICE", "-p", "Slack", "--active"], {"a_slack"}),
        (["--user", "BOB", "--provider", "INSTAGRAM"], set()),
    ],
)
def test_list_filters(cli, population, args, expected):
    alice, bob, ids = population
    args = [{"ALICE": alice, "BOB": bob}.get(a, a) for a in args]
    assert set(_ids(cli("integrations", "list", *args, "--json"))) == {ids[name] for name in expected}


@pytest.mark.parametrize("spelling", ["slack", "SLACK", "sLaCk", " slack "])
def test_provider_filter_ignores_case_and_spaces(cli, population, spelling):
    _, _, ids = population
    found = _ids(cli("integrations", "list", "--provider", spelling, "--json"))
    assert sorted(found) == sorted([ids["a_slack"], ids["a_slack_off"], ids["b_slack"]])


@pytest.mark.parametrize("count", [7, 6])
def test_paging_follows_the_printed_cursor_newest_first(cli, make_integration, count):
    # Two pairs share a created_at: the id breaks the tie, and no row is lost or repeated.
    stamps = [T0 + dt.timedelta(minutes=m) for m in (0, 1, 1, 2, 3, 3, 4)[:count]]
    rows = [make_integration(created_at=at, updated_at=at) for at in stamps]
    expected = [str(r.id) for r in sorted(rows, key=lambda r: (r.created_at, r.id.hex), reverse=True)]
    seen, pages, cursor = [], [], None
    for _ in range(count + 1):  # bounded: a cursor that never ends fails the test
        result = cli("integrations", "list", "--limit", 3, "--json", *(["--cursor", cursor] if cursor else []))
        page = _ids(result)
        pages.append(len(page))
        seen += page
        cursor = _cursor(result)
        if cursor is None:
            break
    assert cursor is None, "paging never ended"
    assert seen == expected and len(set(seen)) == count
    assert pages == ([3, 3, 1] if count == 7 else [3, 3])


def test_cursor_paging_works_with_tables_too(cli, make_integration):
    rows = [make_integration(created_at=T0 + dt.timedelta(seconds=i)) for i in range(3)]
    first = cli("integrations", "list", "--limit", 2)
    assert first.exit_code == 0 and "--cursor" not in first.stdout
    body = first.stdout.splitlines()
    assert body[0] == HEADER and [line.split("\t")[0] for line in body[1:]] == [str(rows[2].id), str(rows[1].id)]
    rest = cli("integrations", "list", "--limit", 2, "--cursor", _cursor(first))
    assert [line.split("\t")[0] for line in rest.stdout.splitlines()[1:]] == [str(rows[0].id)]
    assert _cursor(rest) is None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "args, code",
    [
        (["--provider", "myspace"], "INVALID_PROVIDER"),
        (["--provider", ""], "INVALID_PROVIDER"),
        (["--user", "bob"], "VALIDATION_ERROR"),
        (["--user", "1234"], "VALIDATION_ERROR"),
        (["--cursor", "zzz"], "VALIDATION_ERROR"),
        (["--cursor", _b64(b"null")], "VALIDATION_ERROR"),
        (["--cursor", _b64(b'["yesterday", "x"]')], "VALIDATION_ERROR"),
        (["--cursor", _b64(b'["2024-01-01T00:00:00+00:00", "not-a-uuid"]')], "VALIDATION_ERROR"),
        (["--cursor", _b64(b"[1, 2, 3]")], "VALIDATION_ERROR"),
        (["--cursor", _b64(b"\xff\xfe\x00")], "VALIDATION_ERROR"),
        (["--limit", "0"], "VALIDATION_ERROR"),
        (["--limit", "1001"], "VALIDATION_ERROR"),
        (["--limit", "ten"], "VALIDATION_ERROR"),
    ],
)
def test_list_rejects_bad_input_with_exit_2(cli, make_integration, args, code):
    make_integration()
    result = cli("integrations", "list", *args)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert _error_line(result).startswith(f"error: {code}: ")


def test_unknown_provider_lists_the_choices(cli):
    line = _error_line(cli("integrations", "list", "--provider", "myspace"))
    assert "'myspace'" in line and "INSTAGRAM" in line and "DISCORD" in line


def test_piped_table_is_tab_separated_with_a_header(cli, make_integration):
    row = make_integration(name="has\ttab", is_active=False, scope=["a", "b"], last_error="token revoked")
    lines = cli("integrations", "list").stdout.splitlines()
    assert lines[0] == HEADER
    assert lines[1].split("\t") == [str(row.id), "SLACK", "has tab", str(row.user_id), "no", "-", "-", "token revoked"]
    assert len(lines) == 2


def test_piped_table_keeps_one_line_per_row_when_a_value_has_a_newline(cli, make_integration):
    make_integration(last_error='HTTP 401\n{"error": "invalid_token"}')
    lines = cli("integrations", "list").stdout.splitlines()
    assert len(lines) == 2 and all(len(line.split("\t")) == 8 for line in lines)


EVIL = "evil\x1b]0;pwned\x07\x1b[2J\u009b31m\rback\x7f"
ESCAPED = "evil\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\x0dback\\x7f"


def test_control_characters_in_values_are_shown_escaped_never_sent_to_the_terminal(cli, make_integration):
    # A provider's account name becomes the integration's name as it is (and rows from before the API
    # refused control characters keep theirs): list, show and top print them as \xNN escapes.
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    row = make_integration(name=EVIL, last_error="HTTP 500 \x1b[31mred", metadata={"k": EVIL}, expires_at=soon)
    for args in (("integrations", "list"), ("integrations", "show", row.id), ("top", "--once")):
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        text = result.stdout + result.stderr
        assert not any(ch in text for ch in "\x1b\x07\u009b\r\x7f"), (args, text)
        assert ESCAPED[: 13 if args[0] == "top" else None] in text, (args, text)  # top cuts long names (ids whole)
    shown = cli("integrations", "show", row.id).stdout
    assert "\\x1b[31mred" in shown and '"k": "evil\\x1b' in shown.replace("\\u001b", "\\x1b")
    # --json stays the exact JSON document: the same strings, escaped by JSON itself
    data = json.loads(cli("integrations", "show", row.id, "--json").stdout)
    assert data["name"] == EVIL and data["metadata"] == {"k": EVIL}


BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_bidi_controls_in_values_are_shown_escaped(cli, make_integration):
    # A right-to-left override reorders what follows it on the reader's screen ("invoice\u202egnp.exe" reads
    # "invoiceexe.png"): a provider's account name, or a row from before names refused them, shows it escaped.
    row = make_integration(name="invoice\u202egnp.exe", last_error="x" + BIDI)
    for args in (("integrations", "list"), ("integrations", "show", row.id)):
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        text = result.stdout + result.stderr
        assert not any(ch in text for ch in BIDI), (args, ascii(text))
        assert "invoice\\u202egnp.exe" in text and "\\u061c\\u200e\\u200f\\u202a" in text, (args, text)
    assert json.loads(cli("integrations", "show", row.id, "--json").stdout)["name"] == "invoice\u202egnp.exe"


# --- show --------------------------------------------------------------------


def test_show_json_matches_the_list_entry(cli, make_integration):
    row = make_integration(
        metadata={"team": "growth"},
        token_type="Bearer",
        access_token="SHOW-AT",
        expires_at=dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
    )
    result = cli("integrations", "show", row.id, "--json")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert set(shown) == INTEGRATION_KEYS
    assert shown == json.loads(cli("integrations", "list", "--json").stdout)[0]
    assert (shown["tokenType"], shown["metadata"], shown["expiresAt"]) == (
        "Bearer",
        {"team": "growth"},
        "2030-01-02T03:04:05Z",
    )
    _clean(result, "SHOW-AT")
    record = cli("integrations", "show", row.id)
    keys = [line.split()[0] for line in record.stdout.splitlines()]
    assert keys == list(shown) and f"{row.id}" in record.stdout
    _clean(record, "SHOW-AT")


def test_show_accepts_an_id_in_upper_case_or_with_spaces(cli, make_integration):
    row = make_integration()
    assert json.loads(cli("integrations", "show", f" {str(row.id).upper()} ", "--json").stdout)["id"] == str(row.id)


def test_show_unknown_is_10_and_a_bad_id_is_2(cli, make_integration):
    make_integration()
    missing = cli("integrations", "show", MISSING)
    assert missing.exit_code == 10 and _error_line(missing).startswith("error: INTEGRATION_NOT_FOUND: ")
    assert MISSING in missing.stderr
    for bad in ("not-a-uuid", "1", "'; DROP TABLE integrations; --"):
        result = cli("integrations", "show", bad)
        assert result.exit_code == 2 and _error_line(result).startswith("error: VALIDATION_ERROR: ")
    assert Integration.select().count() == 1


# --- update ------------------------------------------------------------------


def test_update_name_active_and_metadata_replaced_whole(cli, make_integration):
    row = make_integration(name="before", metadata={"a": 1, "b": {"c": 2}})
    before = json.loads(cli("integrations", "show", row.id, "--json").stdout)
    renamed = cli("integrations", "update", row.id, "--name", "  after  ", "--json")
    assert renamed.exit_code == 0, renamed.stderr
    data = json.loads(renamed.stdout)
    assert data["name"] == "after" and data["metadata"] == {"a": 1, "b": {"c": 2}} and data["isActive"] is True
    assert data["updatedAt"] > before["updatedAt"] and data["createdAt"] == before["createdAt"]
    off = json.loads(cli("integrations", "update", row.id, "--inactive", "--json").stdout)
    assert off["isActive"] is False and off["name"] == "after" and off["updatedAt"] > data["updatedAt"]
    meta = json.loads(
        cli("integrations", "update", row.id, "--active", "--metadata", '{"team": "größe", "n": [1]}', "--json").stdout
    )
    assert meta["metadata"] == {"team": "größe", "n": [1]} and meta["isActive"] is True
    assert json.loads(cli("integrations", "show", row.id, "--json").stdout) == meta  # it was stored
    stored = Integration.get_by_id(row.id)
    assert (stored.name, stored.is_active, stored.metadata) == ("after", True, {"team": "größe", "n": [1]})
    cleared = json.loads(cli("integrations", "update", row.id, "--metadata", "{}", "--json").stdout)
    assert cleared["metadata"] == {}


def test_update_without_json_reports_on_stderr_and_prints_the_record(cli, make_integration):
    row = make_integration(access_token="UPD-AT")
    result = cli("integrations", "update", row.id, "--name", "renamed")
    assert result.exit_code == 0 and f"Updated integration {row.id}" in result.stderr
    assert any(line.split() == ["name", "renamed"] for line in result.stdout.splitlines())
    _clean(result, "UPD-AT")


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--metadata", "{bad json"], "metadata"),
        (["--metadata", "[1, 2]"], "metadata must be a JSON object"),
        (["--metadata", "null"], "metadata must be a JSON object"),
        (["--metadata", '"text"'], "metadata must be a JSON object"),
        (["--metadata", ""], "metadata"),
        (["--name", ""], "name"),
        (["--name", "   "], "name"),
        (["--name", "x" * 256], "name"),
        (["--name", "evil\x1b]0;pwned\x07\x1b[2J"], "name contains a control character (\\u001b)"),
        (["--name", "csi\u009b2J"], "name contains a control character (\\u009b)"),
        (["--name", "invoice\u202egnp.exe"], "name contains a control character (\\u202e)"),
        (["--name", "a\u2069b"], "name contains a control character (\\u2069)"),
        (["--name", "two\nlines"], "name contains a control character (\\u000a)"),
        ([], "nothing to update"),
    ],
)
def test_update_rejects_bad_input_and_changes_nothing(cli, make_integration, extra, fragment):
    row = make_integration(name="same", metadata={"keep": True})
    before = json.loads(cli("integrations", "show", row.id, "--json").stdout)
    result = cli("integrations", "update", row.id, *extra)
    assert result.exit_code == 2
    line = _error_line(result)
    assert line.startswith("error: VALIDATION_ERROR: ") and fragment in line
    assert json.loads(cli("integrations", "show", row.id, "--json").stdout) == before


def test_update_unknown_is_10_and_bad_id_is_2(cli):
    missing = cli("integrations", "update", MISSING, "--name", "x")
    assert missing.exit_code == 10 and "INTEGRATION_NOT_FOUND" in _error_line(missing)
    bad = cli("integrations", "update", "nope", "--inactive")
    assert bad.exit_code == 2 and "VALIDATION_ERROR" in _error_line(bad)


# --- delete ------------------------------------------------------------------


@pytest.fixture
def family(make_integration, keyring):
    """An integration with 2 webhooks, 3 deliveries, 2 sync logs, and a bystander with its own."""

    def children(row, secret):
        hooks = []
        for n in range(2):
            hook = Webhook(integration=row, url=f"https://example.com/h{n}")
            seal(keyring, hook, "secret", secret if n == 0 else None)
            hook.save(force_insert=True)
            hooks.append(hook)
        for hook, n in ((hooks[0], 2), (hooks[1], 1)):
            for _ in range(n):
                WebhookDelivery.create(webhook=hook, event="media.created", payload={"n": 1})
        for _ in range(2):
            IntegrationSyncLog.create(integration=row, action="fetch_posts")

    doomed, bystander = make_integration(name="doomed"), make_integration(name="bystander")
    children(doomed, "whsec_doomed")
    children(bystander, "whsec_bystander")
    return doomed, bystander


def _counts():
    return (
        Integration.select().count(),
        Webhook.select().count(),
        WebhookDelivery.select().count(),
        IntegrationSyncLog.select().count(),
    )


def _disconnected(row) -> int:
    """How many integration.disconnected events the outbox holds for this integration."""
    return (
        OutboxEvent.select()
        .where((OutboxEvent.type == "integration.disconnected") & (OutboxEvent.integration_id == row.id))
        .count()
    )


def test_delete_without_yes_and_without_a_terminal_refuses(cli, family):
    doomed, _ = family
    result = cli("integrations", "delete", doomed.id)
    assert result.exit_code == 2 and "--yes" in _error_line(result)
    assert _counts() == (2, 4, 6, 4)


def test_delete_dry_run_reports_counts_and_keeps_everything(cli, family):
    doomed, bystander = family
    text = cli("integrations", "delete", doomed.id, "--dry-run")
    assert text.exit_code == 0 and text.stdout == ""
    assert f"Would delete integration {doomed.id}" in text.stderr
    assert "2 webhook(s), 3 deliveries and 2 sync log(s)" in text.stderr
    as_json = cli("integrations", "delete", doomed.id, "--dry-run", "--yes", "--json")
    assert json.loads(as_json.stdout) == {
        "id": str(doomed.id),
        "deleted": False,
        "dryRun": True,
        "webhooksDeleted": 2,
        "deliveriesDeleted": 3,
        "syncLogsDeleted": 2,
        "revoked": None,
    }
    assert _counts() == (2, 4, 6, 4)
    assert _disconnected(doomed) == _disconnected(bystander) == 0  # a dry run records no event


def test_delete_yes_cascades_to_its_rows_only(cli, family):
    doomed, bystander = family
    result = cli("integrations", "delete", doomed.id, "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "id": str(doomed.id),
        "deleted": True,
        "webhooksDeleted": 2,
        "deliveriesDeleted": 3,
        "syncLogsDeleted": 2,
        "revoked": False,
    }
    assert f"Deleted integration {doomed.id}" in result.stderr
    _clean(result, "whsec_doomed")
    assert _counts() == (1, 2, 3, 2)
    assert [i.id for i in Integration.select()] == [bystander.id]
    assert {h.integration_id for h in Webhook.select()} == {bystander.id}
    assert {log.integration_id for log in IntegrationSyncLog.select()} == {bystander.id}
    assert {d.webhook.integration_id for d in WebhookDelivery.select()} == {bystander.id}
    assert (_disconnected(doomed), _disconnected(bystander)) == (1, 0)
    again = cli("integrations", "delete", doomed.id, "--yes")
    assert again.exit_code == 10 and "INTEGRATION_NOT_FOUND" in _error_line(again)
    assert _disconnected(doomed) == 1  # the refused second delete recorded nothing


def test_delete_no_revoke_skips_the_provider(cli, family):
    doomed, _ = family
    result = cli("integrations", "delete", doomed.id, "--yes", "--no-revoke", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["revoked"] is None and "revocation" not in result.stderr
    assert _disconnected(doomed) == 1


def test_delete_bad_or_unknown_id(cli, family):
    assert cli("integrations", "delete", "not-a-uuid", "--yes").exit_code == 2
    assert cli("integrations", "delete", MISSING, "--dry-run").exit_code == 10
    assert _counts() == (2, 4, 6, 4)


# --- secrets never leave the database ------------------------------------------


def test_no_command_prints_a_token_and_the_database_holds_only_ciphertext(
    cli, make_integration, keyring, db_url, database
):
    canaries = ["CANARY-ACCESS-7f3a", "CANARY-REFRESH-7f3a", "CANARY-WHSEC-7f3a"]
    row = make_integration(access_token=canaries[0], refresh_token=canaries[1], last_error="boom")
    hook = Webhook(integration=row, url="https://example.com/h")
    seal(keyring, hook, "secret", canaries[2])
    hook.save(force_insert=True)
    IntegrationSyncLog.create(integration=row, action="fetch_posts", error="boom")
    for args in (
        ["integrations", "list"],
        ["integrations", "list", "--json"],
        ["-vv", "integrations", "list"],
        ["integrations", "show", row.id],
        ["-vv", "integrations", "show", row.id, "--json"],
        ["-vv", "integrations", "update", row.id, "--name", "n", "--json"],
        ["sync", "logs", row.id, "--json"],
        ["-vv", "sync", "logs", row.id],
        ["-vv", "db", "status", "--json"],
        ["-vv", "keys", "rotate", "--dry-run", "--json"],
        ["-vv", "integrations", "delete", row.id, "--dry-run", "--json"],
    ):
        result = cli(*args)
        assert result.exit_code == 0, (args, result.stderr)
        _clean(result, *canaries)
    if db_url.startswith("sqlite"):
        path = db_url.removeprefix("sqlite:///")
        raw = b"".join(open(p, "rb").read() for p in (path, path + "-wal") if os.path.exists(p))
        assert b"nx1." in raw  # the ciphertext is there, so this is the right file
    else:
        raw = "".join(
            database.execute_sql(f"SELECT row_to_json(t)::text FROM {table} t").fetchone()[0]
            for table in ("integrations", "webhooks")
        ).encode()
        assert raw.count(b"nx1.") == 3
    for plain in canaries:
        assert plain.encode() not in raw
