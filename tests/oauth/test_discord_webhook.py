"""Discord channel webhooks: connect with webhook.incoming, publish through it, delete it (issue 18, item 2).

Through `nexusctl daemon` (SQLite and PostgreSQL) and the Discord emulator,
with no DISCORD_BOT_TOKEN at all: the user asks for the optional
``webhook.incoming`` scope at initiate, picks a channel on Discord's consent
screen, and Discord's token answer carries the webhook. Its token is stored
encrypted (the row holds neither it nor the URL in plain text), a publish
without ``metadata.publishChannel`` posts through it (no bot call), and
deleting the integration deletes the webhook at Discord, best effort.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from emulators.testkit import call
from test_publish_targets import _publish

CHANNEL, GUILD = "910000000000000077", "900000000000000070"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def daemon(request, emulators, tmp_path_factory, pg_template, stack_launcher):
    with stack_launcher(request.param, tmp_path_factory.mktemp("discord-webhook"), emulators, pg_template) as stack:
        assert "DISCORD_BOT_TOKEN" not in stack.env
        yield stack


def _connect_with_webhook(stack) -> tuple[uuid.UUID, str, dict]:
    """A new user connects Discord asking for webhook.incoming and picks CHANNEL: (user, integration, webhook)."""
    dc = stack.emulators["DISCORD"]
    dc.choose_webhook_channel(CHANNEL, GUILD)
    user = uuid.uuid4()
    result = stack.connect("DISCORD", user, scopes=["webhook.incoming"])
    assert result["status"] == "success", result
    [hook] = [h for h in dc.records_of("webhooks") if h["channel_id"] == CHANNEL]
    return user, result["integrationId"], hook


def _row_text(stack, integration: str) -> str:
    rows = stack.sql("SELECT * FROM integrations WHERE id = %s", integration)
    assert len(rows) == 1
    return " ".join(str(value) for value in rows[0])


def test_the_scope_is_asked_for_only_on_request(daemon, fresh_emulators):
    user = uuid.uuid4()
    plain = daemon.initiate("DISCORD", user).json()["data"]["authorizationUrl"]
    assert parse_qs(urlsplit(plain).query)["scope"] == ["identify guilds"]
    asked = daemon.initiate("DISCORD", user, scopes=["webhook.incoming"]).json()["data"]["authorizationUrl"]
    assert parse_qs(urlsplit(asked).query)["scope"] == ["identify guilds webhook.incoming"]
    refused = daemon.initiate("SLACK", user, scopes=["webhook.incoming"])
    assert refused.status == 400 and refused.json()["error"]["code"] == "VALIDATION_ERROR", refused.text
    assert "SLACK offers these optional scopes: none" in refused.json()["error"]["message"]
    unknown = daemon.initiate("DISCORD", user, scopes=["bot"])
    assert unknown.status == 400 and unknown.json()["error"]["code"] == "VALIDATION_ERROR", unknown.text


def test_the_webhook_is_stored_encrypted_and_shown_without_its_token(daemon, fresh_emulators):
    user, integration, hook = _connect_with_webhook(daemon)
    stored = _row_text(daemon, integration)
    assert hook["token"] not in stored and f"webhooks/{hook['id']}/" not in stored
    [(sealed,)] = daemon.sql("SELECT channel_webhook_token FROM integrations WHERE id = %s", integration)
    assert sealed and hook["token"] not in sealed
    shown = daemon.api("GET", f"/integrations/{integration}", user=user)
    assert shown.status == 200, shown.text
    assert shown.json()["data"]["metadata"]["provider"]["webhook"] == {
        "id": hook["id"],
        "channelId": CHANNEL,
        "guildId": GUILD,
        "name": "Nexus",
    }
    assert "webhook.incoming" in shown.json()["data"]["scope"]
    assert hook["token"] not in shown.text and hook["token"] not in daemon.logs()


def test_publishing_goes_through_the_webhook_without_the_bot(daemon, fresh_emulators):
    dc = daemon.emulators["DISCORD"]
    user, _integration, hook = _connect_with_webhook(daemon)
    status, metadata, error = _publish(daemon, user, "Through the channel webhook")
    assert status == "COMPLETED", error
    [message] = [m for m in dc.records_of("messages") if m.get("webhook_id") == hook["id"]]
    assert message["channel_id"] == CHANNEL
    assert message["content"] == f"Through the channel webhook\nhttps://nexus.test/p/{metadata['content']['contentId']}"
    assert dc.calls["execute_webhook"] == 1
    assert dc.calls["create_message"] == 0 and dc.calls["channel"] == 0  # no bot call at all
    assert metadata["result"]["messageId"] == message["id"], metadata
    assert hook["token"] not in json.dumps(metadata) and hook["token"] not in daemon.logs()


def test_a_webhook_deleted_in_discord_fails_the_publish_saying_so(daemon, fresh_emulators):
    dc = daemon.emulators["DISCORD"]
    user, _integration, hook = _connect_with_webhook(daemon)
    assert (
        call("DELETE", f"{dc.emu.base_url}/discord/discord.com/api/v10/webhooks/{hook['id']}/{hook['token']}").status
        == 204
    )  # the user removes it in the channel's settings
    status, _metadata, error = _publish(daemon, user, "into the void")
    assert status == "FAILED" and "channel webhook" in error and "reconnect" in error, error
    assert hook["token"] not in error


def test_deleting_the_integration_deletes_the_webhook_at_discord(daemon, fresh_emulators):
    dc = daemon.emulators["DISCORD"]
    user, integration, hook = _connect_with_webhook(daemon)
    deleted = daemon.api("DELETE", f"/integrations/{integration}", user=user)
    assert deleted.status == 200, deleted.text
    assert dc.calls["delete_webhook"] == 1
    assert [h for h in dc.records_of("webhooks") if h["id"] == hook["id"]] == []


def test_a_discord_failure_never_blocks_the_delete(daemon, fresh_emulators):
    dc = daemon.emulators["DISCORD"]
    user, integration, hook = _connect_with_webhook(daemon)
    dc.fail_next("delete_webhook", 503)
    deleted = daemon.api("DELETE", f"/integrations/{integration}", user=user)
    assert deleted.status == 200, deleted.text
    assert daemon.api("GET", f"/integrations/{integration}", user=user).status == 404
    assert "removing the DISCORD channel webhook of integration" in daemon.logs()
    assert hook["token"] not in daemon.logs()


def test_reconnecting_with_a_new_webhook_deletes_the_old_one_and_without_keeps_it(daemon, fresh_emulators):
    dc = daemon.emulators["DISCORD"]
    user, integration, first = _connect_with_webhook(daemon)
    again = daemon.connect("DISCORD", user)  # no webhook.incoming: the stored webhook stays
    assert again["integrationId"] == integration
    shown = daemon.api("GET", f"/integrations/{integration}", user=user).json()["data"]
    assert shown["metadata"]["provider"]["webhook"]["id"] == first["id"]

    dc.choose_webhook_channel("910000000000000088", GUILD)
    third = daemon.connect("DISCORD", user, scopes=["webhook.incoming"])
    assert third["integrationId"] == integration
    remaining = [h["id"] for h in dc.records_of("webhooks")]
    assert first["id"] not in remaining and len(remaining) == 1
    shown = daemon.api("GET", f"/integrations/{integration}", user=user).json()["data"]
    assert shown["metadata"]["provider"]["webhook"]["channelId"] == "910000000000000088"
    status, _metadata, error = _publish(daemon, user, "into the new channel")
    assert status == "COMPLETED", error
    assert [m["channel_id"] for m in dc.records_of("messages")] == ["910000000000000088"]


def test_the_cli_asks_for_the_webhook_and_lists_the_capability(daemon, fresh_emulators):
    dc = daemon.emulators["DISCORD"]
    dc.choose_webhook_channel(CHANNEL, GUILD)
    printed = daemon.cli(
        "integrations",
        "connect",
        "DISCORD",
        "--user",
        uuid.uuid4(),
        "--scope",
        "webhook.incoming",
        "--redirect-uri",
        "http://app.nexus.test/cli-done",
    )
    assert printed.returncode == 0, printed.stderr
    at_provider = call("GET", printed.stdout.strip())
    assert at_provider.status == 302, at_provider.text
    final = call("GET", at_provider.location)
    assert final.status == 302 and "status=success" in final.location, final.location
    assert [h["channel_id"] for h in dc.records_of("webhooks")] == [CHANNEL]

    shown = daemon.cli("providers", "show", "DISCORD", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["optionalScopes"] == ["webhook.incoming"] and "webhooks" in data["capabilities"]
    [webhook] = [a for a in data["actions"] if a["name"] == "publish.webhook"]
    assert (webhook["capability"], webhook["scopes"], webhook["optional"]) == ("webhooks", ["webhook.incoming"], True)
    slack = json.loads(daemon.cli("providers", "show", "SLACK", "--json").stdout)
    assert slack["actions"][0]["name"] == "slack.command" and "commands" in slack["scopes"]
