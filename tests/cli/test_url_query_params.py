"""Connection settings given as a URL's query parameters: they work, and a secret among them is never printed.

Review: ``DATABASE_URL='postgresql:///review_db?host=/var/run/postgresql'`` (libpq's usual Unix-socket form;
``?user=`` and ``?password=`` too) made every command fail with ``INTERNAL_ERROR: unexpected TypeError`` (exit 1):
`db status`, `daemon`, `doctor` (the host was passed to the driver twice). And
``REDIS_URL='redis://127.0.0.1:6379/9?password=TopSecret1' nexusctl doctor`` printed the password: only a
userinfo password was masked, not one in the query.
"""

from __future__ import annotations

import json
import os
import urllib.request
from urllib.parse import urlsplit

import pytest
from support import daemons
from support.ports import closed_port, free_port
from typer.testing import CliRunner

from nexusctl.cli.main import app

PASSWORD = "pw-in-the-query-never-printed"


def _query_form(postgres_url: str, socket: bool) -> str:
    """The test database's URL with its host, port, user and a password as query parameters (trust auth ignores
    the password); the host a Unix socket's directory when ``socket``."""
    parts = urlsplit(postgres_url)
    host = parts.hostname
    if socket:
        import psycopg2

        with psycopg2.connect(postgres_url) as conn, conn.cursor() as cursor:
            cursor.execute("SHOW unix_socket_directories")
            directory = cursor.fetchone()[0].split(",")[0].strip()
        conn.close()
        if not directory or not os.path.exists(os.path.join(directory, f".s.PGSQL.{parts.port or 5432}")):
            pytest.skip("the test server has no Unix socket this process can reach")
        host = directory
    return f"postgresql://{parts.path}?host={host}&port={parts.port or 5432}&user={parts.username}&password={PASSWORD}"


@pytest.mark.postgres
@pytest.mark.parametrize("socket", [False, True], ids=["tcp", "unix-socket"])
def test_a_database_url_with_connection_parameters_in_its_query_works(postgres_url, monkeypatch, tmp_path, socket):
    def cli(*args):
        return CliRunner().invoke(app, list(args), catch_exceptions=False)

    url = _query_form(postgres_url, socket)
    assert url.startswith("postgresql:///") and "?host=" in url
    monkeypatch.setenv("DATABASE_URL", url)

    status = cli("db", "status", "--json")
    assert status.exit_code == 0, status.stderr
    assert json.loads(status.stdout)["pending"] == [], status.stdout
    assert PASSWORD not in status.stdout + status.stderr
    assert "password=***" in json.loads(status.stdout)["database"]

    monkeypatch.setenv("PORT", str(free_port()))
    doctor = cli("doctor", "--json")
    findings = {f["check"]: f for f in json.loads(doctor.stdout)}
    assert findings["database"]["status"] == "ok", findings["database"]
    assert findings["migrations"]["status"] == "ok", findings["migrations"]
    assert PASSWORD not in doctor.stdout + doctor.stderr

    env = {**os.environ, "DATABASE_URL": url, "LOG_FORMAT": "text"}
    port, process = daemons.start_on_free_port(lambda port: env, lambda port: tmp_path / f"daemon-{port}.log")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=10) as answer:
            assert answer.status == 200
    finally:
        daemons.stop(process)
    assert PASSWORD not in (tmp_path / f"daemon-{port}.log").read_text()


def test_a_redis_password_in_the_query_is_never_printed_by_doctor(cli, redis_url, monkeypatch):
    """On both databases (``cli`` runs on each): the line for a Redis that answers and for one that does not."""
    monkeypatch.setenv("PORT", str(free_port()))
    for url in (f"{redis_url}?password=TopSecret1", f"redis://127.0.0.1:{closed_port()}/9?password=TopSecret1"):
        monkeypatch.setenv("REDIS_URL", url)
        doctor = cli("doctor")
        assert "TopSecret1" not in doctor.stdout + doctor.stderr, doctor.stdout
        (line,) = [line for line in doctor.stdout.splitlines() if " redis " in line]
        assert "?password=***" in line, line


def test_no_other_url_setting_prints_a_secret_in_its_query_or_userinfo(cli, monkeypatch):
    """Doctor's PUBLIC_URL and FRONTEND_URL lines, and a refused URL setting's CONFIG_ERROR (exit 3), mask a
    password in the userinfo or a secret query parameter like the database's and Redis' (``redact_url``)."""
    monkeypatch.setenv("PORT", str(free_port()))
    monkeypatch.setenv("PUBLIC_URL", "http://127.0.0.1:3000/?token=Sekrit-Token-1")
    monkeypatch.setenv("FRONTEND_URL", "http://someone:Sekrit-Pass-2@127.0.0.1:3001")
    doctor = cli("doctor", "--json")
    findings = {f["check"]: f for f in json.loads(doctor.stdout)}
    assert findings["public-url"]["detail"] == (
        "PUBLIC_URL has a query or fragment (http://127.0.0.1:3000/?token=***)"
    ), findings["public-url"]
    assert findings["frontend-url"]["detail"].startswith("http://someone:***@127.0.0.1:3001 ")
    assert "Sekrit" not in doctor.stdout + doctor.stderr
    monkeypatch.delenv("PUBLIC_URL")
    monkeypatch.delenv("FRONTEND_URL")
    for variable in ("SLACK_API_URL", "ALLOWED_REDIRECT_ORIGINS"):
        monkeypatch.setenv(variable, "ftp://127.0.0.1/x?api_key=Sekrit-Key-3")
        refused = cli("integrations", "list")
        assert refused.exit_code == 3 and f"CONFIG_ERROR: {variable}: " in refused.stderr, refused.stderr
        assert "Sekrit" not in refused.stdout + refused.stderr and "api_key=***" in refused.stderr, refused.stderr
        monkeypatch.delenv(variable)


def test_a_configured_providers_callback_never_shows_public_urls_secret(cli, monkeypatch):
    """The callback URL is PUBLIC_URL's: doctor's line for a configured provider and `providers show` print it
    masked like PUBLIC_URL's own line (they printed a password in it whole; review of 2026-12-06)."""
    monkeypatch.setenv("PORT", str(free_port()))
    monkeypatch.setenv("SLACK_CLIENT_ID", "slack-client-id")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "slack-client-secret")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "slack-signing-secret")
    monkeypatch.setenv("SLACK_API_URL", "http://bot:Sekrit-Pass-5@127.0.0.1:9/api")
    for public in ("http://admin:Sekrit-Pass-4@127.0.0.1:3000", "http://127.0.0.1:3000/?token=Sekrit-Token-6"):
        monkeypatch.setenv("PUBLIC_URL", public)
        doctor = cli("doctor", "--json")
        (slack,) = [f for f in json.loads(doctor.stdout) if f["check"] == "provider SLACK"]
        assert "callback http://" in slack["detail"], slack
        shown = cli("providers", "show", "SLACK", "--json")
        assert shown.exit_code == 0, shown.stderr
        data = json.loads(shown.stdout)
        assert data["callbackUrl"].startswith("http://") and "***" in data["callbackUrl"], data["callbackUrl"]
        for output in (doctor, shown):
            assert "Sekrit" not in output.stdout + output.stderr, output.stdout
