"""A URL setting that urllib cannot even split (an unclosed IPv6 bracket, a port that is not a number) is a
CONFIG_ERROR naming the variable (exit 3) for every command, and a failed check in `nexusctl doctor`.

urlsplit raises ValueError("Invalid IPv6 URL") on ``http://[::1``: it ended every command as exit 1
INTERNAL_ERROR, and doctor with it. A password in a database URL is never shown, split or not.
"""

from __future__ import annotations

import json

import pytest
from support.ports import free_port
from typer.testing import CliRunner

from nexusctl.cli.main import app

UNSPLITTABLE = [
    ("PUBLIC_URL", "http://[::1", "public-url"),
    ("FRONTEND_URL", "http://[::1", "frontend-url"),
    ("PUBLIC_URL", "http://nexus.example.com:port", "public-url"),
    ("REDIS_URL", "redis://[::1:6379/0", "redis"),
    ("DATABASE_URL", "postgresql://u:pw-never-shown@[::1:5432/x", "database"),
    ("DATABASE_URL", "postgresql://u:pw-never-shown@db]:5432/x", "database"),
    ("ALLOWED_REDIRECT_ORIGINS", "https://app.example.com,http://[::1", "config"),
    ("SLACK_API_URL", "http://[::1", "provider SLACK"),
    ("SHOPIFY_AUTH_URL", "https://[{shop}/x", "provider SHOPIFY"),
]


@pytest.mark.parametrize("variable, value, check", UNSPLITTABLE)
def test_an_unsplittable_url_setting_is_a_config_error_and_a_failed_doctor_check(
    cli, monkeypatch, variable, value, check
):
    monkeypatch.setenv(variable, value)
    result = cli("integrations", "list")
    assert result.exit_code == 3, (result.exit_code, result.stderr)
    assert result.stderr.startswith(f"error: CONFIG_ERROR: {variable}: "), result.stderr
    assert "Traceback" not in result.stderr and "pw-never-shown" not in result.stderr
    monkeypatch.setenv("PORT", str(free_port()))
    doctor = CliRunner().invoke(app, ["doctor", "--json"], catch_exceptions=False)
    assert doctor.exit_code == 7 and "Traceback" not in doctor.stdout + doctor.stderr, doctor.stderr
    failing = {f["check"]: f["detail"] for f in json.loads(doctor.stdout) if f["status"] == "fail"}
    assert variable in failing.get(check, ""), failing
    assert "pw-never-shown" not in doctor.stdout
