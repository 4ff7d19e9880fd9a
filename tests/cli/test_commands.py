"""The CLI as an operator uses it: data on stdout, one error line with a code, exit codes."""

from __future__ import annotations

import base64
import json
import os
import re
import uuid

import pytest

from nexusctl.crypto import Keyring
from nexusctl.db import migrate
from nexusctl.db.models import Integration, IntegrationSyncLog, OutboxEvent, Webhook, WebhookDelivery
from nexusctl.db.secrets import seal, unseal
from nexusctl.enums import Provider, SyncStatus

# This version's migrations, in order, from the directory the runner reads.
MIGRATIONS = sorted(p.stem for p in migrate.MIGRATIONS_DIR.glob("[0-9]*.py"))


def _error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_list_filters_and_pages_through_cursors(cli, make_integration):
    user = uuid.uuid4()
    rows = [make_integration(user_id=user, provider=Provider.SLACK if i % 2 else Provider.DISCORD) for i in range(7)]
    make_integration(provider=Provider.SLACK)  # someone else's
    seen, args = [], ["integrations", "list", "--user", user, "--limit", 3, "--json"]
    while True:
        result = cli(*args)
        assert result.exit_code == 0, result.output
        seen += [item["id"] for item in json.loads(result.stdout)]
        more = [line for line in result.stderr.splitlines() if "--cursor" in line]
        if not more:
            break
        args = ["integrations", "list", "--user", user, "--limit", 3, "--json", "--cursor", more[0].split()[-1]]
    assert seen == [str(r.id) for r in reversed(rows)]
    slack = json.loads(cli("integrations", "list", "--user", user, "--provider", "slack", "--json").stdout)
    assert {item["provider"] for item in slack} == {"SLACK"} and len(slack) == 3


def test_active_filter(cli, make_integration):
    on, off = make_integration(), make_integration(is_active=False)
    assert [i["id"] for i in json.loads(cli("integrations", "list", "--inactive", "--json").stdout)] == [str(off.id)]
    assert [i["id"] for i in json.loads(cli("integrations", "list", "--active", "--json").stdout)] == [str(on.id)]


@pytest.mark.parametrize(
    "args, code, exit_code",
    [
        (["integrations", "list", "--provider", "myspace"], "INVALID_PROVIDER", 2),
        (["integrations", "list", "--user", "bob"], "VALIDATION_ERROR", 2),
        (["integrations", "list", "--cursor", "zzz"], "VALIDATION_ERROR", 2),
        (["integrations", "list", "--limit", "0"], "VALIDATION_ERROR", 2),
        (["integrations", "show", "not-a-uuid"], "VALIDATION_ERROR", 2),
        (["integrations", "show", "00000000-0000-0000-0000-000000000000"], "INTEGRATION_NOT_FOUND", 10),
        (
            ["integrations", "update", "00000000-0000-0000-0000-000000000000", "--name", "x"],
            "INTEGRATION_NOT_FOUND",
            10,
        ),
        (["integrations", "delete", "00000000-0000-0000-0000-000000000000", "--yes"], "INTEGRATION_NOT_FOUND", 10),
        (["sync", "logs", "00000000-0000-0000-0000-000000000000"], "INTEGRATION_NOT_FOUND", 10),
        (["sync", "logs", "nope"], "VALIDATION_ERROR", 2),
    ],
)
def test_errors_are_one_line_with_the_code(cli, args, code, exit_code):
    result = cli(*args)
    assert result.exit_code == exit_code, result.output
    assert f"error: {code}:" in _error_line(result)
    assert result.stdout == ""


def test_show_prints_the_record_without_tokens(cli, make_integration):
    row = make_integration(access_token="ACCESS-SHOW", refresh_token="REFRESH-SHOW", scope=["x"])
    data = json.loads(cli("integrations", "show", row.id, "--json").stdout)
    assert data["id"] == str(row.id) and data["scope"] == ["x"] and data["expiresAt"] is None
    plain = cli("integrations", "show", row.id)
    assert plain.exit_code == 0 and re.search(rf"^id\s+{row.id}$", plain.stdout, re.M)
    for output in (json.dumps(data), plain.output):
        assert "ACCESS-SHOW" not in output and "REFRESH-SHOW" not in output and "nx1." not in output


def test_update(cli, make_integration):
    row = make_integration(name="before", metadata={"old": True})
    result = cli(
        "integrations", "update", row.id, "--name", "after", "--inactive", "--metadata", '{"team": "growth"}', "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["name"], data["isActive"], data["metadata"]) == ("after", False, {"team": "growth"})
    assert data["updatedAt"] > data["createdAt"]
    assert "Updated integration" in result.stderr


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--metadata", "{bad json"], "metadata is not valid JSON"),
        (["--metadata", "[1, 2]"], "metadata must be a JSON object"),
        ([], "nothing to update"),
    ],
)
def test_update_rejects_bad_input_and_changes_nothing(cli, make_integration, extra, fragment):
    row = make_integration(name="same")
    result = cli("integrations", "update", row.id, *extra)
    assert result.exit_code == 2 and fragment in _error_line(result)
    assert Integration.get_by_id(row.id).name == "same"


def _with_children(row):
    hook = Webhook.create(integration=row, url="https://example.com/h")
    WebhookDelivery.create(webhook=hook, event="media.created", payload={})
    IntegrationSyncLog.create(integration=row, action="fetch_posts")


def test_delete_needs_yes_without_a_terminal(cli, make_integration):
    row = make_integration()
    result = cli("integrations", "delete", row.id)
    assert result.exit_code == 2 and "--yes" in _error_line(result)
    assert Integration.select().where(Integration.id == row.id).exists()


def _disconnected(row) -> int:
    """How many integration.disconnected events the outbox holds for this integration."""
    return (
        OutboxEvent.select()
        .where((OutboxEvent.type == "integration.disconnected") & (OutboxEvent.integration_id == row.id))
        .count()
    )


def test_delete_dry_run_then_yes(cli, make_integration):
    row = make_integration()
    _with_children(row)
    dry = cli("integrations", "delete", row.id, "--dry-run", "--json")
    assert dry.exit_code == 0 and json.loads(dry.stdout)["dryRun"] is True
    assert Integration.select().count() == 1
    assert _disconnected(row) == 0  # a dry run records nothing
    done = cli("integrations", "delete", row.id, "--yes", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {
        "id": str(row.id),
        "deleted": True,
        "webhooksDeleted": 1,
        "deliveriesDeleted": 1,
        "syncLogsDeleted": 1,
        "revoked": False,
    }
    # The provider (a closed port in tests) could not confirm the revoke: said, and deleted anyway.
    assert "did not confirm the revocation" in done.stderr
    assert Integration.select().count() == Webhook.select().count() == IntegrationSyncLog.select().count() == 0
    assert _disconnected(row) == 1


def test_sync_logs(cli, make_integration):
    row = make_integration()
    for status in (SyncStatus.COMPLETED, SyncStatus.FAILED, SyncStatus.COMPLETED):
        IntegrationSyncLog.create(integration=row, action="fetch_posts", status=status, items_processed=3)
    result = cli("sync", "logs", row.id, "--status", "failed", "--json")
    assert result.exit_code == 0, result.output
    [log] = json.loads(result.stdout)
    assert log["status"] == "FAILED" and log["integrationId"] == str(row.id) and log["itemsProcessed"] == 3
    table = cli("sync", "logs", row.id, "--limit", "2")
    assert table.stdout.splitlines()[0].startswith("ID\tACTION\tSTATUS") and len(table.stdout.splitlines()) == 3
    bad = cli("sync", "logs", row.id, "--status", "DONE")
    assert bad.exit_code == 2 and "unknown sync status" in _error_line(bad)


def test_db_status_and_migrate_on_a_migrated_database(cli):
    status = json.loads(cli("db", "status", "--json").stdout)
    assert status["pending"] == [] and [m["name"] for m in status["migrations"]] == MIGRATIONS
    assert cli("db", "status", "--check").exit_code == 0
    again = cli("db", "migrate")
    assert again.exit_code == 0 and "Nothing to apply" in again.stderr


def test_an_unmigrated_database_is_refused_until_migrate(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    refused = cli("integrations", "list")
    assert refused.exit_code == 5 and "nexusctl db migrate" in _error_line(refused)
    assert cli("db", "status", "--check").exit_code == 5
    applied = cli("db", "migrate", "--json")
    assert json.loads(applied.stdout)["applied"] == MIGRATIONS
    assert cli("integrations", "list", "--json").stdout.strip() == "[]"


def test_keys_generate(cli):
    first, second = cli("keys", "generate").stdout.strip(), cli("keys", "generate").stdout.strip()
    assert len(base64.b64decode(first)) == 32 and first != second


def test_keys_rotate_from_the_cli(cli, make_integration, monkeypatch, keyring):
    rows = [make_integration(access_token=f"tok-{i}", refresh_token=None) for i in range(3)]
    old_key = os.environ["ENCRYPTION_KEY"]
    new_key = cli("keys", "generate").stdout.strip()
    monkeypatch.setenv("ENCRYPTION_KEY", new_key)
    monkeypatch.setenv("ENCRYPTION_OLD_KEYS", old_key)
    dry = json.loads(cli("keys", "rotate", "--dry-run", "--json").stdout)
    assert dry["rewritten"] == 3 and dry["dryRun"] is True
    result = cli("keys", "rotate", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["rewritten"] == 3
    new_ring = Keyring(base64.b64decode(new_key))
    assert [unseal(new_ring, Integration.get_by_id(r.id), "access_token") for r in rows] == ["tok-0", "tok-1", "tok-2"]
    # Without the key that sealed a value, rotate says which key is missing and exits 30.
    stray = Integration.get_by_id(rows[0].id)
    seal(Keyring(bytes(range(200, 232))), stray, "access_token", "orphan")
    stray.save()
    failed = cli("keys", "rotate")
    assert failed.exit_code == 30 and "DECRYPTION_FAILED" in failed.stderr
    assert stray.access_token.split(".")[1] in failed.stderr and "orphan" not in failed.output


def test_version(cli):
    assert cli("version").stdout.startswith("nexusctl ")
    assert set(json.loads(cli("version", "--json").stdout)) == {"version", "python", "peewee"}
    assert cli("--version").exit_code == 0


def test_no_command_leaks_a_token(cli, make_integration):
    row = make_integration(access_token="LEAK-CANARY-A", refresh_token="LEAK-CANARY-R")
    IntegrationSyncLog.create(integration=row, action="fetch_posts")
    outputs = [
        cli(*args).output
        for args in (
            ["integrations", "list"],
            ["integrations", "list", "--json"],
            ["integrations", "show", row.id],
            ["integrations", "show", row.id, "--json"],
            ["sync", "logs", row.id, "--json"],
            ["-vv", "integrations", "update", row.id, "--name", "n", "--json"],
            ["-vv", "keys", "rotate", "--dry-run"],
            ["integrations", "delete", row.id, "--yes", "--json"],
        )
    ]
    assert not [o for o in outputs if "LEAK-CANARY" in o or "nx1." in o]


def test_providers_show_lists_each_actions_scopes_and_what_the_consent_asks(cli, monkeypatch):
    plain = json.loads(cli("providers", "show", "LINKEDIN", "--json").stdout)
    assert "r_member_social" not in plain["scopes"] and "w_member_social" in plain["scopes"]
    assert plain["actionScopes"]["fetch_posts"].startswith(
        "r_member_social (approval-only: set LINKEDIN_APPROVED_SCOPES"
    )
    monkeypatch.setenv("LINKEDIN_APPROVED_SCOPES", "r_member_social")
    approved = json.loads(cli("providers", "show", "LINKEDIN", "--json").stdout)
    assert "r_member_social" in approved["scopes"] and approved["actionScopes"]["fetch_posts"] == "r_member_social"
    slack = cli("providers", "show", "SLACK").stdout
    assert "groups:read" in slack and '"fetch_channels": "channels:read groups:read"' in slack


def test_providers_show_says_how_long_access_tokens_live_as_the_refresh_window_is_written(cli):
    """What doctor compares TOKEN_REFRESH_WINDOW with, shown where an operator looks a provider up."""
    lifetimes = {
        name: json.loads(cli("providers", "show", name, "--json").stdout)["tokenLifetime"]
        for name in ("HUBSPOT", "YOUTUBE", "FACEBOOK", "SENDGRID")
    }
    assert lifetimes == {"HUBSPOT": "30m", "YOUTUBE": "1h", "FACEBOOK": "60d", "SENDGRID": None}
    assert "tokenLifetime   30m" in cli("providers", "show", "HUBSPOT").stdout


def test_redis_down_is_its_own_error_not_the_databases(cli, monkeypatch):
    """The database is fine: the one line names Redis, with a code and an exit status of its own."""
    monkeypatch.setenv("SLACK_CLIENT_ID", "slack-id")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "slack-secret")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")  # nothing listens on port 9
    result = cli("integrations", "connect", "SLACK", "--user", "6f1c2a9e-0d4b-4f7e-9a51-2b8c3d4e5f60")
    assert result.exit_code == 8, result.stderr
    assert result.stderr.strip().startswith("error: REDIS_UNAVAILABLE: Redis (where OAuth states live) is unreachable")
    assert "DATABASE_UNAVAILABLE" not in result.stderr
