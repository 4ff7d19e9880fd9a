"""The flags and verbs the consistency pass added, as a script uses them."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from nexusctl.db.models import IntegrationSyncLog, Webhook, WebhookDelivery
from nexusctl.enums import SyncStatus


@pytest.fixture(autouse=True)
def local_receivers(monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")


def _hook(cli, integration) -> dict:
    made = cli(
        "webhooks", "create", "--integration", integration.id, "--url", "http://127.0.0.1:9/hook", "-e", "*", "--json"
    )
    assert made.exit_code == 0, made.stderr
    return json.loads(made.stdout)


def test_webhook_delete_previews_and_refuses_without_yes_in_scripts(cli, make_integration):
    hook = _hook(cli, make_integration())
    assert cli("webhooks", "test", hook["id"]).exit_code == 0
    preview = cli("webhooks", "delete", hook["id"], "--dry-run", "--json")
    assert preview.exit_code == 0, preview.stderr
    assert json.loads(preview.stdout) == {"id": hook["id"], "deleted": False, "deliveriesDeleted": 1, "dryRun": True}
    assert "Would delete webhook" in preview.stderr
    refused = cli("webhooks", "delete", hook["id"])  # CliRunner's stdin is no terminal
    assert refused.exit_code == 2 and "pass --yes" in refused.stderr
    assert Webhook.select().count() == 1 and WebhookDelivery.select().count() == 1
    missing = cli("webhooks", "delete", "00000000-0000-0000-0000-000000000000", "--dry-run")
    assert missing.exit_code == 11  # WEBHOOK_NOT_FOUND, before any question
    assert cli("webhooks", "delete", hook["id"], "--yes").exit_code == 0
    assert Webhook.select().count() == 0


def test_webhook_test_and_redeliver_print_the_delivery(cli, make_integration):
    hook = _hook(cli, make_integration())
    queued = cli("webhooks", "test", hook["id"], "--json")
    assert queued.exit_code == 0, queued.stderr
    delivery = json.loads(queued.stdout)
    assert delivery["event"] == "webhook.test" and delivery["status"] == "PENDING"
    assert delivery["webhookId"] == hook["id"] and delivery["id"] == str(WebhookDelivery.get().id)
    WebhookDelivery.update(status="FAILED").execute()
    again = json.loads(cli("webhooks", "redeliver", delivery["id"], "--json").stdout)
    assert again["id"] == delivery["id"] and again["status"] == "PENDING"


def test_keys_generate_and_token_mint_json(cli):
    key = json.loads(cli("keys", "generate", "--json").stdout)["key"]
    assert len(base64.b64decode(key)) == 32
    minted = cli("token", "mint", "--role", "admin", "--subject", "ops", "--ttl", "600", "--json")
    assert minted.exit_code == 0, minted.stderr
    data = json.loads(minted.stdout)
    claims = jwt.decode(data["token"], options={"verify_signature": False})
    assert claims["sub"] == data["subject"] == "ops" and data["roles"] == ["admin"]
    assert data["expiresAt"].endswith("Z") and claims["exp"] - claims["iat"] == 600
    assert minted.stderr.count(data["token"]) == 0  # the secret goes to stdout only


def test_sync_show_and_list(cli, make_integration):
    row = make_integration()
    log = IntegrationSyncLog.create(integration=row, action="fetch_posts", status=SyncStatus.FAILED, error="boom")
    shown = cli("sync", "show", log.id, "--json")
    assert shown.exit_code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["id"] == str(log.id) and data["status"] == "FAILED" and data["error"] == "boom"
    assert [r["id"] for r in json.loads(cli("sync", "list", row.id, "--json").stdout)] == [str(log.id)]
    assert cli("sync", "show", "00000000-0000-0000-0000-000000000000").exit_code == 12  # SYNC_LOG_NOT_FOUND
    assert cli("sync", "show", "nope").exit_code == 2


def test_jobs_show(cli):
    assert cli("jobs", "run", "housekeeping").exit_code == 0
    shown = cli("jobs", "show", "housekeeping", "--json")
    assert shown.exit_code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["name"] == "housekeeping" and data["lastFinishedAt"] is not None
    assert data == next(j for j in json.loads(cli("jobs", "list", "--json").stdout) if j["name"] == "housekeeping")
    assert cli("jobs", "show", "nope").exit_code == 2
