"""Every provider connects end to end: real daemon, real database, the provider's emulator.

On SQLite (states in oauth_states) and on PostgreSQL with Redis (states in
Redis). After each connect the database holds no token in plaintext.
"""

from __future__ import annotations

import uuid

import pytest
from emulators.testkit import call
from support.callers import tenant_of

from nexusctl.providers.registry import SPECS
from nexusctl.providers.spec import ConnectKind

# Every provider connected through the browser (SendGrid's API key is pasted: tested below), from the specs.
OAUTH = [provider.value for provider, spec in SPECS.items() if spec.kind is not ConnectKind.API_KEY]


TOKEN_TYPES = {"SLACK": "bot", "WOOCOMMERCE": "Basic"}  # Slack's own token_type; WooCommerce's keys go as HTTP Basic


def dump(stack) -> str:
    """Everything stored about connections, as text: what an attacker with the database sees."""
    if stack.database_url.startswith("sqlite"):
        from pathlib import Path

        path = Path(stack.database_url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*")).decode("latin-1")
    rows = []
    for table in ("integrations", "oauth_states", "outbox_events"):
        rows += stack.sql(f"SELECT t::text FROM {table} t")
    return "\n".join(r[0] for r in rows)


@pytest.mark.parametrize("provider", OAUTH)
def test_every_provider_connects_end_to_end(stack, provider):
    emu = stack.emulators[provider]
    user = uuid.uuid4()
    result = stack.connect(provider, user, metadata={"source": "settings"}, **tenant_of(stack, provider))
    assert result["status"] == "success", result
    assert set(result) == {"status", "integrationId", "provider"}  # nothing secret in the redirect
    got = stack.api("GET", f"/integrations/{result['integrationId']}", user=user)
    data = got.json()["data"]
    assert got.status == 200 and data["provider"] == provider and data["isActive"] is True
    assert data["userId"] == str(user) and data["name"] and data["metadata"]["source"] == "settings"
    # The token's type, as the spec's tokenType means (Bearer, ...), never the header it is sent in.
    assert data["tokenType"] == TOKEN_TYPES.get(provider, "Bearer"), data["tokenType"]
    assert emu.calls["token"] + emu.calls["keys"] >= 1, dict(emu.calls)
    # At rest: ciphertext only; none of the tokens the provider issued appears anywhere.
    stored = dump(stack)
    issued = [t for t in emu.tokens]
    assert issued, "the emulator issued no token"
    assert not [t for t in issued if t in stored]
    (access,) = stack.sql("SELECT access_token FROM integrations WHERE id = %s", result["integrationId"])[0]
    assert access.startswith("nx1.")
    events = stack.sql("SELECT type FROM outbox_events WHERE integration_id = %s", result["integrationId"])
    assert ("integration.connected",) in events


def test_reconnecting_the_same_account_updates_the_integration(stack):
    user = uuid.uuid4()
    first = stack.connect("DISCORD", user)["integrationId"]
    second = stack.connect("DISCORD", user)["integrationId"]
    assert first == second
    listed = stack.api("GET", f"/integrations/user/{user}", user=user).json()["data"]
    assert [d["id"] for d in listed] == [first]
    events = stack.sql(
        "SELECT data FROM outbox_events WHERE integration_id = %s AND type = %s", first, "integration.connected"
    )
    assert len(events) == 2


def test_sendgrid_connects_with_an_api_key(stack):
    user = uuid.uuid4()
    key = stack.emulators.sendgrid_key()
    made = stack.api(
        "POST", "/integrations/api-key", user=user, body={"userId": str(user), "provider": "SENDGRID", "apiKey": key}
    )
    assert made.status == 201, made.text
    assert made.json()["data"]["provider"] == "SENDGRID" and key not in made.text
    bad = stack.api(
        "POST",
        "/integrations/api-key",
        user=user,
        body={"userId": str(user), "provider": "SENDGRID", "apiKey": "SG.wrong.key"},
    )
    assert bad.status == 400 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "apiKey" in bad.json()["error"]["message"] or "key" in bad.json()["error"]["message"]
    assert key not in dump(stack) and key not in stack.logs()


def test_sendgrid_from_the_cli_reads_the_key_from_a_file_or_stdin(stack, tmp_path):
    user = uuid.uuid4()
    key = stack.emulators.sendgrid_key()
    path = tmp_path / "key.txt"
    path.write_text(key + "\n")
    added = stack.cli("integrations", "add", "SENDGRID", "--user", user, "--api-key-file", path, "--json")
    assert added.returncode == 0, added.stderr
    assert key not in added.stdout + added.stderr
    piped = stack.cli("integrations", "add", "SENDGRID", "--user", user, "--api-key-file", "-", input=key)
    assert piped.returncode == 0, piped.stderr
    flag = stack.cli("integrations", "add", "SENDGRID", "--user", user, "--api-key", key)
    assert flag.returncode == 2  # no such flag: keys never go on a command line


def test_the_cli_prints_an_authorization_url_the_daemon_completes(stack):
    user = uuid.uuid4()
    printed = stack.cli(
        "integrations", "connect", "SLACK", "--user", user, "--redirect-uri", "http://app.nexus.test/cli-done"
    )
    assert printed.returncode == 0, printed.stderr
    url = printed.stdout.strip()
    at_provider = call("GET", url)
    assert at_provider.status == 302
    final = call("GET", at_provider.location)
    assert final.status == 302 and final.location.startswith("http://app.nexus.test/cli-done?status=success")


def test_provider_catalog_from_the_cli(stack):
    listed = stack.cli("providers", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    import json

    rows = {r["provider"]: r for r in json.loads(listed.stdout)}
    assert len(rows) == 20 and all(r["configured"] for r in rows.values())
    assert rows["TIKTOK_ADS"]["refresh"] == "none" and rows["TWITTER"]["pkce"] is True
    shown = json.loads(stack.cli("providers", "show", "shopify", "--json").stdout)
    assert shown["endpoints"]["token"]["overridden"] is True and shown["tenant"] == "shop"
    assert shown["callbackUrl"].endswith("/integrations/oauth/callback/shopify")
