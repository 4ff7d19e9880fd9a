"""`nexusctl doctor` on SQLite and PostgreSQL: a healthy setup passes, each broken thing fails with its hint.

Every failure is real: an empty database, a closed PostgreSQL or Redis port,
data written under another key, a provider with half its credentials, a
relative PUBLIC_URL, a port held by a plain HTTP server. A failing check is
exit 7 (CHECKS_FAILED); a warning alone is exit 0. No run prints a secret.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import sqlite3
import threading

import pytest
from support import daemons
from support.ports import closed_port, free_port
from typer.testing import CliRunner

from nexusctl.cli.main import app
from nexusctl.crypto import key_id

OTHER_KEY = bytes(range(50, 82))
SLACK_SECRET = "slack-client-secret-do-not-print"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture(autouse=True)
def healthy_env(clean_env, monkeypatch):
    """A port nothing listens on, and one provider fully configured."""
    monkeypatch.setenv("PORT", str(free_port()))
    monkeypatch.setenv("SLACK_CLIENT_ID", "slack-client-id")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", SLACK_SECRET)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "signing-secret-never-printed")


def doctor(*args):
    """Run `nexusctl doctor --json`; returns (result, findings)."""
    result = CliRunner().invoke(app, ["doctor", "--json", *args], catch_exceptions=False)
    assert "Traceback" not in result.stdout + result.stderr
    findings = json.loads(result.stdout)
    assert all(set(f) == {"check", "status", "detail", "hint"} for f in findings)
    assert all(f["status"] in ("ok", "warn", "fail") for f in findings)
    assert all(f["hint"] for f in findings if f["status"] != "ok")  # anything not ok says how to fix it
    return result, findings


def only(findings, check: str) -> dict:
    matching = [f for f in findings if f["check"] == check]
    assert len(matching) == 1, findings
    return matching[0]


def failed(result, findings) -> list[str]:
    names = [f["check"] for f in findings if f["status"] == "fail"]
    if names:
        assert result.exit_code == 7, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("error: CHECKS_FAILED: ")
    else:
        assert result.exit_code == 0, result.stderr
    return names


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


# --- healthy -------------------------------------------------------------------


def test_a_healthy_setup_passes_with_every_check(db_url, make_integration, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    make_integration(access_token="at-never-printed")
    result, findings = doctor()
    assert failed(result, findings) == [], findings
    assert [f["check"] for f in findings] == [
        "config",
        "database",
        "migrations",
        "encryption",
        "redis",
        "provider SLACK",
        "public-url",
        "frontend-url",
        "daemon-port",
    ]
    assert all(f["status"] == "ok" for f in findings), findings
    assert "decrypts integrations.access_token" in only(findings, "encryption")["detail"]
    assert "answers PING" in only(findings, "redis")["detail"]
    assert_no_secret(result.stdout + result.stderr, "at-never-printed", SLACK_SECRET, os.environ["ENCRYPTION_KEY"])


def test_plain_output_is_one_line_per_check_and_exit_0(db_url):
    result = CliRunner().invoke(app, ["doctor"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["ok", "config"]
    assert [line.split()[0] for line in lines] == ["ok"] * len(lines)
    assert "all checks passed" in result.stderr
    assert_no_secret(result.stdout + result.stderr, SLACK_SECRET, os.environ["ENCRYPTION_KEY"])


def test_no_stored_secret_yet_is_ok(db_url):
    result, findings = doctor()
    assert failed(result, findings) == []
    assert "no stored secret yet" in only(findings, "encryption")["detail"]


def test_a_value_under_an_old_key_listed_in_encryption_old_keys_is_ok(db_url, make_integration, monkeypatch):
    make_integration()
    monkeypatch.setenv("ENCRYPTION_OLD_KEYS", os.environ["ENCRYPTION_KEY"])
    monkeypatch.setenv("ENCRYPTION_KEY", b64(OTHER_KEY))  # mid-rotation
    result, findings = doctor()
    assert failed(result, findings) == [] and only(findings, "encryption")["status"] == "ok"


def test_no_provider_configured_is_a_warning_and_exit_0(db_url, monkeypatch):
    monkeypatch.delenv("SLACK_CLIENT_ID")
    monkeypatch.delenv("SLACK_CLIENT_SECRET")
    result, findings = doctor()
    assert failed(result, findings) == []
    assert only(findings, "providers")["status"] == "warn"


# --- each failure, for real ------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def unmigrated_url(request, tmp_path, monkeypatch):
    """A reachable database without the schema."""
    if request.param == "sqlite":
        path = tmp_path / "empty.db"
        sqlite3.connect(path).close()
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("empty_postgres_url")
    monkeypatch.setenv("DATABASE_URL", url)
    return url


def test_an_unmigrated_database_fails_with_migrate_as_the_fix(unmigrated_url):
    result, findings = doctor()
    assert failed(result, findings) == ["migrations"]
    migrations = only(findings, "migrations")
    assert "no nexusctl schema yet" in migrations["detail"] and migrations["hint"] == "run `nexusctl db migrate`"
    assert only(findings, "database")["status"] == "ok"
    assert only(findings, "encryption")["status"] == "warn"  # not checked without a schema


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_unreachable_database_fails_without_its_password(kind, monkeypatch, tmp_path):
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'nowhere' / 'nexusctl.db'}"
    else:
        url = f"postgresql://postgres:pw-never-printed@127.0.0.1:{closed_port()}/nexus"
    monkeypatch.setenv("DATABASE_URL", url)
    result, findings = doctor()
    assert failed(result, findings) == ["database"]
    database = only(findings, "database")
    assert ("does not exist yet" if kind == "sqlite" else "cannot reach the database") in database["detail"]
    assert "DATABASE_URL" in database["hint"]
    assert only(findings, "migrations")["status"] == "warn"
    assert_no_secret(result.stdout + result.stderr, "pw-never-printed")
    assert not (tmp_path / "nowhere").exists()  # doctor creates nothing


def test_the_database_password_is_never_printed(postgres_url, monkeypatch):
    url = postgres_url.replace("postgres@", "postgres:pw-never-printed@")  # trust auth ignores it
    monkeypatch.setenv("DATABASE_URL", url)
    result, findings = doctor()
    assert failed(result, findings) == []
    assert "***" in only(findings, "database")["detail"]
    assert_no_secret(result.stdout + result.stderr, "pw-never-printed")


def test_redis_on_a_closed_port_fails(db_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{closed_port()}/9")
    result, findings = doctor()
    assert failed(result, findings) == ["redis"]
    redis = only(findings, "redis")
    assert "cannot reach" in redis["detail"] and "REDIS_URL" in redis["hint"]


def test_a_wrong_encryption_key_for_stored_data_fails(db_url, make_integration, monkeypatch):
    row = make_integration(access_token="at-never-printed")
    written_with = key_id(base64.b64decode(os.environ["ENCRYPTION_KEY"]))
    monkeypatch.setenv("ENCRYPTION_KEY", b64(OTHER_KEY))
    result, findings = doctor()
    assert failed(result, findings) == ["encryption"]
    encryption = only(findings, "encryption")
    assert written_with in encryption["detail"] and str(row.id) in encryption["detail"]
    assert "ENCRYPTION_KEY" in encryption["hint"] and "ENCRYPTION_OLD_KEYS" in encryption["hint"]
    assert_no_secret(result.stdout + result.stderr, "at-never-printed", b64(OTHER_KEY))


def test_a_stored_value_that_is_no_ciphertext_fails_without_a_crash(db_url, make_integration, database):
    row = make_integration(access_token="at-never-printed")
    database.execute_sql(
        "UPDATE integrations SET access_token = 'not-a-ciphertext' WHERE id = %s"
        if database.param == "%s"
        else "UPDATE integrations SET access_token = 'not-a-ciphertext' WHERE id = ?",
        (row.id.hex if database.param == "?" else str(row.id),),
    )
    result, findings = doctor()
    assert failed(result, findings) == ["encryption"]
    encryption = only(findings, "encryption")
    assert "not in a known encrypted format" in encryption["detail"] and str(row.id) in encryption["detail"]
    assert_no_secret(result.stdout + result.stderr, "not-a-ciphertext")


def test_a_webhook_secret_is_tried_when_there_is_no_integration_token(db_url, make_integration, monkeypatch):
    from nexusctl.db.models import Integration, Webhook

    row = make_integration()
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    webhook = CliRunner().invoke(
        app,
        ["webhooks", "create", "--integration", str(row.id), "--url", "http://127.0.0.1:9/hook", "-e", "*", "--json"],
        catch_exceptions=False,
    )
    assert webhook.exit_code == 0, webhook.stderr
    Integration.update(access_token=None, refresh_token=None).execute()
    assert Webhook.select().count() == 1
    monkeypatch.setenv("ENCRYPTION_KEY", b64(OTHER_KEY))
    result, findings = doctor()
    assert failed(result, findings) == ["encryption"]
    assert "webhooks.secret" in only(findings, "encryption")["detail"]
    assert_no_secret(result.stdout + result.stderr, json.loads(webhook.stdout)["secret"])


def test_an_api_key_provider_shows_no_oauth_callback(db_url, monkeypatch):
    """SendGrid connects with a pasted API key: no browser comes back, so there is nothing to register."""
    monkeypatch.setenv("SENDGRID_CLIENT_ID", "sendgrid-api-key")  # what the emulators export
    monkeypatch.setenv("SENDGRID_CLIENT_SECRET", "unused-secret-value")
    result, findings = doctor()
    sendgrid = only(findings, "provider SENDGRID")
    assert sendgrid["status"] == "ok" and "callback" in sendgrid["detail"]
    assert "/integrations/oauth/callback/" not in sendgrid["detail"]
    assert "/integrations/oauth/callback/slack" in only(findings, "provider SLACK")["detail"]
    shown = CliRunner().invoke(app, ["providers", "show", "SENDGRID", "--json"], catch_exceptions=False)
    assert shown.exit_code == 0 and json.loads(shown.stdout)["callbackUrl"] is None


def test_a_provider_with_a_client_id_but_no_secret_fails(db_url, monkeypatch):
    monkeypatch.delenv("SLACK_CLIENT_SECRET")
    monkeypatch.setenv("TIKTOK_ADS_CLIENT_ID", "app-id")
    monkeypatch.setenv("TIKTOK_ADS_CLIENT_SECRET", "tiktok-ads-secret")
    result, findings = doctor()
    assert failed(result, findings) == ["provider SLACK"]
    slack = only(findings, "provider SLACK")
    assert "SLACK_CLIENT_SECRET not set" in slack["detail"] and "SLACK_CLIENT_SECRET" in slack["hint"]
    assert only(findings, "provider TIKTOK_ADS")["status"] == "ok"
    assert "provider TIKTOK" not in [f["check"] for f in findings]
    assert_no_secret(result.stdout, "tiktok-ads-secret")


def test_google_ads_without_its_developer_token_is_a_warning(db_url, monkeypatch):
    monkeypatch.setenv("GOOGLE_ADS_CLIENT_ID", "google-client")
    monkeypatch.setenv("GOOGLE_ADS_CLIENT_SECRET", "google-secret")
    result, findings = doctor()
    assert failed(result, findings) == []
    google = only(findings, "provider GOOGLE_ADS")
    assert google["status"] == "warn" and google["hint"] == "set GOOGLE_ADS_DEVELOPER_TOKEN"
    monkeypatch.setenv("GOOGLE_ADS_DEVELOPER_TOKEN", "dev-token-never-printed")
    result, findings = doctor()
    assert only(findings, "provider GOOGLE_ADS")["status"] == "ok"
    assert_no_secret(result.stdout, "dev-token-never-printed", "google-secret")


def test_a_malformed_provider_endpoint_fails_that_provider(db_url, monkeypatch):
    monkeypatch.setenv("SLACK_TOKEN_URL", "slack.example.com/token")
    result, findings = doctor()
    assert failed(result, findings) == ["provider SLACK"]
    assert "SLACK_TOKEN_URL" in only(findings, "provider SLACK")["detail"]


@pytest.mark.parametrize("value", ["nexus.example.com/callbacks", "/relative"])
def test_a_non_absolute_public_url_fails(db_url, monkeypatch, value):
    monkeypatch.setenv("PUBLIC_URL", value)
    result, findings = doctor()
    assert failed(result, findings) == ["public-url"]
    public = only(findings, "public-url")
    assert "not an absolute http(s) URL" in public["detail"] and "PUBLIC_URL" in public["hint"]
    assert only(findings, "provider SLACK")["status"] == "ok"  # the other checks still ran


def test_production_needs_https_urls_and_a_jwt_secret(db_url, monkeypatch):
    monkeypatch.setenv("NODE_ENV", "production")
    monkeypatch.setenv("PUBLIC_URL", "http://nexus.example.com")
    monkeypatch.setenv("FRONTEND_URL", "https://app.example.com")
    result, findings = doctor()
    assert sorted(failed(result, findings)) == ["config", "public-url"]
    assert "JWT_SECRET" in only(findings, "config")["detail"]
    assert "https" in only(findings, "public-url")["hint"]
    monkeypatch.setenv("JWT_SECRET", "jwt-secret-never-printed")
    monkeypatch.setenv("PUBLIC_URL", "https://nexus.example.com")
    result, findings = doctor()
    assert failed(result, findings) == []
    assert_no_secret(result.stdout, "jwt-secret-never-printed")


def test_production_without_database_and_frontend_urls_fails_and_without_redis_warns(db_url, monkeypatch):
    monkeypatch.setenv("NODE_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", "jwt-secret-never-printed")
    monkeypatch.setenv("PUBLIC_URL", "https://nexus.example.com")
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.delenv("REDIS_URL", raising=False)
    result, findings = doctor()
    assert sorted(failed(result, findings)) == ["database", "frontend-url"]
    assert only(findings, "database")["detail"].startswith("DATABASE_URL: not set")
    assert only(findings, "frontend-url")["detail"].startswith("FRONTEND_URL: not set")
    redis = only(findings, "redis")
    assert redis["status"] == "warn" and "REDIS_URL" in redis["detail"] + redis["hint"]
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("FRONTEND_URL", "https://app.example.com")
    result, findings = doctor()
    assert failed(result, findings) == [] and only(findings, "redis")["status"] == "warn"


def test_every_bad_variable_is_named_not_only_the_first(db_url, monkeypatch):
    monkeypatch.setenv("WEBHOOK_TIMEOUT", "soon")
    monkeypatch.setenv("RETENTION_DAYS", "0")
    result, findings = doctor()
    assert failed(result, findings) == ["config", "config"]
    details = " ".join(f["detail"] for f in findings if f["check"] == "config")
    assert "WEBHOOK_TIMEOUT" in details and "RETENTION_DAYS" in details
    assert only(findings, "database")["status"] == "ok"  # the rest still ran on what was valid


class _NotTheDaemon(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_port_taken_by_something_else_fails(db_url, monkeypatch):
    server = http.server.HTTPServer(("127.0.0.1", 0), _NotTheDaemon)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("PORT", str(server.server_address[1]))
        result, findings = doctor()
    finally:
        server.shutdown()
        server.server_close()
    assert failed(result, findings) == ["daemon-port"]
    port = only(findings, "daemon-port")
    assert "not the nexusctl daemon" in port["detail"] and "PORT" in port["hint"]


def test_a_running_daemon_on_the_port_is_ok(sqlite_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    daemon = daemons.launch(dict(os.environ), int(os.environ["PORT"]), tmp_path / "daemon.log", probe="/health")
    try:
        result, findings = doctor()
    finally:
        daemons.stop(daemon, 15)
    assert failed(result, findings) == []
    assert "a nexusctl daemon answers" in only(findings, "daemon-port")["detail"]


def test_slack_without_its_signing_secret_is_a_warning(db_url, monkeypatch):
    """Slash commands cannot be verified without it (issue 18): said, never failed, never printed."""
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    result, findings = doctor()
    assert failed(result, findings) == []
    slack = only(findings, "provider SLACK")
    assert slack["status"] == "warn" and slack["hint"] == "set SLACK_SIGNING_SECRET"
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "signing-secret-never-printed")
    result, findings = doctor()
    assert only(findings, "provider SLACK")["status"] == "ok"
    assert_no_secret(result.stdout, "signing-secret-never-printed")


def test_tiktok_endpoints_of_both_kinds_of_app_are_checked_whatever_tiktok_app_says(db_url, monkeypatch):
    """Each TikTok connection keeps the kind of app it was made with (metadata.provider.tiktokApp), so the
    endpoints of both kinds are in use whatever TIKTOK_APP (the default for new connections) says."""
    monkeypatch.setenv("TIKTOK_CLIENT_ID", "tiktok-client-key")
    monkeypatch.setenv("TIKTOK_CLIENT_SECRET", "tiktok-secret-never-printed")
    result, findings = doctor()
    tiktok = only(findings, "provider TIKTOK")
    assert tiktok["status"] == "ok" and "both kinds of TikTok app" in tiktok["detail"], tiktok

    monkeypatch.setenv("NODE_ENV", "production")
    monkeypatch.setenv("PUBLIC_URL", "https://nexus.example.com")
    monkeypatch.setenv("FRONTEND_URL", "https://app.example.com")
    monkeypatch.setenv("JWT_SECRET", "jwt-secret-never-printed")
    for kind in ("AUTH", "TOKEN", "API", "REVOKE"):  # clean_env's closed local port is http
        monkeypatch.setenv(f"TIKTOK_{kind}_URL", f"https://tiktok.example.com/{kind.lower()}")
    assert only(doctor()[1], "provider TIKTOK")["status"] == "ok"
    monkeypatch.setenv("TIKTOK_APP", "business")
    # The Login Kit API, which the Login Kit connections made before TIKTOK_APP changed still call.
    monkeypatch.setenv("TIKTOK_API_URL", "http://open.tiktok.internal")
    result, findings = doctor()
    tiktok = only(findings, "provider TIKTOK")
    assert tiktok["status"] == "warn" and "override(s) API are http" in tiktok["detail"], tiktok
    assert tiktok["hint"] == "use https for TIKTOK_API_URL, or unset it"

    monkeypatch.setenv("TIKTOK_API_URL", "https://open.tiktok.internal")
    monkeypatch.setenv("TIKTOK_APP", "login_kit")
    monkeypatch.setenv("TIKTOK_BUSINESS_URL", "http://business.tiktok.internal")  # the business connections'
    result, findings = doctor()
    tiktok = only(findings, "provider TIKTOK")
    assert tiktok["status"] == "warn" and tiktok["hint"] == "use https for TIKTOK_BUSINESS_URL, or unset it", tiktok
    assert_no_secret(result.stdout, "tiktok-secret-never-printed", "jwt-secret-never-printed")


def test_tiktoks_business_app_has_credentials_of_its_own_which_doctor_checks(db_url, monkeypatch):
    """The TikTok API for Business app is an app of its own at TikTok (TIKTOK_BUSINESS_CLIENT_ID / _SECRET, apart
    from the Login Kit app's TIKTOK_CLIENT_ID / _SECRET): half of it set fails; TIKTOK_APP naming a kind without
    its client is a warning (a connect choosing no kind is refused); either kind alone is a configured TikTok."""
    monkeypatch.setenv("TIKTOK_BUSINESS_CLIENT_ID", "7000000000000000001")
    result, findings = doctor()
    assert failed(result, findings) == ["provider TIKTOK"]
    tiktok = only(findings, "provider TIKTOK")
    assert tiktok["detail"] == "TIKTOK_BUSINESS_CLIENT_SECRET not set (the other half is)", tiktok
    assert tiktok["hint"].startswith("set TIKTOK_BUSINESS_CLIENT_SECRET"), tiktok

    monkeypatch.setenv("TIKTOK_BUSINESS_CLIENT_SECRET", "business-secret-never-printed")
    result, findings = doctor()
    tiktok = only(findings, "provider TIKTOK")  # business only, TIKTOK_APP's default login_kit without a client
    assert tiktok["status"] == "warn" and "TIKTOK_APP is login_kit" in tiktok["detail"], tiktok
    assert tiktok["hint"].startswith("set TIKTOK_CLIENT_ID and TIKTOK_CLIENT_SECRET"), tiktok
    monkeypatch.setenv("TIKTOK_APP", "business")
    tiktok = only(doctor()[1], "provider TIKTOK")
    assert tiktok["status"] == "ok", tiktok
    assert "login_kit connections refused until TIKTOK_CLIENT_ID and TIKTOK_CLIENT_SECRET are set" in tiktok["detail"]

    monkeypatch.setenv("TIKTOK_CLIENT_ID", "tiktok-client-key")
    monkeypatch.setenv("TIKTOK_CLIENT_SECRET", "tiktok-secret-never-printed")
    result, findings = doctor()
    tiktok = only(findings, "provider TIKTOK")
    assert tiktok["status"] == "ok" and "refused" not in tiktok["detail"], tiktok
    assert_no_secret(result.stdout, "business-secret-never-printed", "tiktok-secret-never-printed")


# --- TOKEN_REFRESH_WINDOW against the providers' token lifetimes ----------------


def test_a_refresh_window_as_long_as_a_providers_tokens_live_is_a_warning(db_url, monkeypatch):
    """HubSpot's access tokens live 30 min and Google's 1 h: with a 2 h window each fresh token is already due,
    and every sweep would refresh it again. Slack's (12 h) and Discord's (7 d) are fine; X's (2 h) are not
    named, X has no credentials here."""
    for provider in ("HUBSPOT", "YOUTUBE", "DISCORD"):
        monkeypatch.setenv(f"{provider}_CLIENT_ID", f"{provider.lower()}-client")
        monkeypatch.setenv(f"{provider}_CLIENT_SECRET", f"{provider.lower()}-secret")
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "bot-token")
    monkeypatch.setenv("TOKEN_REFRESH_WINDOW", "2h")
    result, findings = doctor()
    assert failed(result, findings) == []  # a warning: exit 0
    config = only(findings, "config")
    assert config["status"] == "warn"
    assert config["detail"] == (
        "TOKEN_REFRESH_WINDOW=2h is not shorter than the access-token lifetime of HUBSPOT (30m), YOUTUBE (1h): "
        "every refresh sweep refreshes each of their tokens again"
    )
    assert config["hint"] == "set TOKEN_REFRESH_WINDOW below 30m, such as 15m (the default is 10m)"

    plain = CliRunner().invoke(app, ["doctor"], catch_exceptions=False)
    assert plain.exit_code == 0 and "1 warning(s)" in plain.stderr
    assert plain.stdout.splitlines()[0].startswith("warn  config")

    monkeypatch.setenv("TOKEN_REFRESH_WINDOW", "15m")
    result, findings = doctor()
    assert only(findings, "config")["status"] == "ok"


def test_the_window_is_compared_with_the_configured_providers_only(db_url, monkeypatch):
    """Slack (12 h with token rotation) is the only provider with credentials: 11h is fine, 12h is not."""
    monkeypatch.setenv("TOKEN_REFRESH_WINDOW", "11h")
    _, findings = doctor()
    assert only(findings, "config")["status"] == "ok"
    monkeypatch.setenv("TOKEN_REFRESH_WINDOW", "12h")
    _, findings = doctor()
    config = only(findings, "config")
    assert config["status"] == "warn" and "lifetime of SLACK (12h): every" in config["detail"]
    assert config["hint"] == "set TOKEN_REFRESH_WINDOW below 12h, such as 6h (the default is 10m)"


def test_the_daemon_logs_the_too_wide_refresh_window_once_at_start(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("HUBSPOT_CLIENT_ID", "hubspot-client")
    monkeypatch.setenv("HUBSPOT_CLIENT_SECRET", "hubspot-secret")
    monkeypatch.setenv("TOKEN_REFRESH_WINDOW", "1h")
    monkeypatch.setenv("LOG_FORMAT", "text")
    port, process = daemons.start_on_free_port(lambda port: dict(os.environ), lambda port: tmp_path / "daemon.log")
    daemons.stop(process)
    log = (tmp_path / "daemon.log").read_text()
    assert process.returncode == 0, log
    warning = (
        "warning: TOKEN_REFRESH_WINDOW=1h is not shorter than the access-token lifetime of HUBSPOT (30m): every "
        "refresh sweep refreshes each of their tokens again; set TOKEN_REFRESH_WINDOW below 30m, such as 15m"
    )
    assert log.count(warning) == 1, log
    assert "hubspot-secret" not in log and "Traceback" not in log


def test_a_token_refresh_run_from_cron_warns_of_the_too_wide_window(db_url, monkeypatch):
    """`nexusctl jobs run token-refresh` (the cron way, no daemon whose start-up log would say it) warns on stderr,
    runs anyway (exit 0, its JSON on stdout unchanged), and says nothing once the window is narrower."""
    monkeypatch.setenv("HUBSPOT_CLIENT_ID", "hubspot-client")
    monkeypatch.setenv("HUBSPOT_CLIENT_SECRET", "hubspot-secret")
    monkeypatch.setenv("TOKEN_REFRESH_WINDOW", "1h")
    wide = CliRunner().invoke(app, ["jobs", "run", "token-refresh", "--json"], catch_exceptions=False)
    assert wide.exit_code == 0, wide.output
    assert (
        "warning: TOKEN_REFRESH_WINDOW=1h is not shorter than the access-token lifetime of HUBSPOT (30m): every "
        "refresh sweep refreshes each of their tokens again; set TOKEN_REFRESH_WINDOW below 30m, such as 15m"
    ) in wide.stderr
    assert json.loads(wide.stdout)["refreshed"] == 0
    assert "hubspot-secret" not in wide.output

    monkeypatch.setenv("TOKEN_REFRESH_WINDOW", "10m")
    narrow = CliRunner().invoke(app, ["jobs", "run", "token-refresh", "--json"], catch_exceptions=False)
    assert narrow.exit_code == 0 and "TOKEN_REFRESH_WINDOW" not in narrow.stderr, narrow.stderr
