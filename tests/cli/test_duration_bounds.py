"""Durations and numbers beyond any sane bound, as users give them: refused with the field's or variable's name.

`99999999999d` or `1e308s` once reached `now + timedelta(...)` and ended in an OverflowError: exit 1
`INTERNAL_ERROR` on the command line, a 500 from the API (tests/daemon/test_api_integrations.py's BAD),
and, from a setting, `doctor` saying all was valid while every job failed. One bound, 100 years
(config_values.MAX_DURATION), holds for every duration nexusctl reads; whole-number settings have ranges.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from support.ports import free_port
from typer.testing import CliRunner

from nexusctl.cli.main import app

HUGE = "99999999999d"


@pytest.fixture(autouse=True)
def local_receivers(monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")


def _refused(result, code: int, name: str) -> str:
    text = result.stdout + result.stderr
    assert result.exit_code == code, text
    assert "Traceback" not in text and "INTERNAL_ERROR" not in text, text
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert name in line, line
    return line


def _hook(cli, integration) -> str:
    made = cli(
        "webhooks", "create", "--integration", integration.id, "--url", "http://127.0.0.1:9/hook", "-e", "*", "--json"
    )
    assert made.exit_code == 0, made.stderr
    return json.loads(made.stdout)["id"]


@pytest.mark.parametrize("value", [HUGE, "1e308s", "3000000d", "inf", "nan", "36526d"])
def test_an_option_beyond_100_years_is_a_validation_error_naming_the_option(cli, make_integration, value):
    integration = make_integration()
    hook = _hook(cli, integration)
    for args, name in (
        (("webhooks", "replay", hook, "--since", value, "--dry-run"), "--since"),
        (("webhooks", "replay", hook, "--since", value), "--since"),
        (("events", "list", "--since", value), "--since"),
        (("integrations", "refresh", "--expiring-within", value), "--expiring-within"),
    ):
        line = _refused(cli(*args), 2, name)
        assert line.startswith("error: VALIDATION_ERROR: ") and "at most 100 years" in line, line


@pytest.mark.parametrize("schedule", [HUGE, "3000000d", "1e308s", "36526d"])
def test_a_sync_schedule_beyond_100_years_is_refused_and_changes_nothing(cli, make_integration, schedule):
    row = make_integration(metadata={"keep": True})
    before = json.loads(cli("integrations", "show", row.id, "--json").stdout)
    result = cli("integrations", "update", row.id, "--metadata", json.dumps({"syncSchedule": schedule}))
    line = _refused(result, 2, "syncSchedule")
    assert line.startswith("error: VALIDATION_ERROR: ") and "at most 100 years" in line, line
    assert json.loads(cli("integrations", "show", row.id, "--json").stdout) == before


def test_durations_at_the_bound_are_taken(cli, make_integration):
    row = make_integration()
    hook = _hook(cli, row)
    assert cli("events", "emit", row.id, "post.created").exit_code == 0
    replayed = cli("webhooks", "replay", hook, "--since", "36525d", "--dry-run")
    assert replayed.exit_code == 0 and "Would queue 1 deliveries again" in replayed.stderr, replayed.stderr
    assert cli("events", "list", "--since", "36525d").exit_code == 0
    updated = cli("integrations", "update", row.id, "--metadata", '{"syncSchedule": "36525d"}', "--json")
    assert updated.exit_code == 0, updated.stderr
    assert json.loads(updated.stdout)["metadata"]["syncSchedule"] == "36525d"


JOB_SETTINGS = [
    ("TOKEN_REFRESH_WINDOW", HUGE, "token-refresh"),
    ("TOKEN_EXPIRY_WARNING", HUGE, "token-refresh"),
    ("HEALTH_RECHECK", HUGE, "integration-health"),
    ("TOKEN_EXPIRY_WARNING", "1e308s", "integration-health"),
    ("RETENTION_DAYS", "999999999", "housekeeping"),
    ("RETENTION_DAYS", "36526", "housekeeping"),
]


def _doctor_failures(monkeypatch) -> str:
    """What doctor's failing checks say (`config`, or the check a variable belongs to: `database`...)."""
    monkeypatch.setenv("PORT", str(free_port()))
    result = CliRunner().invoke(app, ["doctor", "--json"], catch_exceptions=False)
    assert result.exit_code == 7 and "Traceback" not in result.stdout + result.stderr, result.stderr
    findings = json.loads(result.stdout)
    return " ".join(f["detail"] for f in findings if f["status"] == "fail")


@pytest.mark.parametrize("variable, value, job", JOB_SETTINGS)
def test_a_setting_beyond_its_range_is_a_config_error_naming_it_and_doctor_flags_it(
    cli, make_integration, monkeypatch, variable, value, job
):
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    make_integration(expires_at=soon)  # something for the job to work on
    monkeypatch.setenv(variable, value)
    line = _refused(cli("jobs", "run", job), 3, variable)
    assert line.startswith(f"error: CONFIG_ERROR: {variable}: "), line
    assert variable in _doctor_failures(monkeypatch)


@pytest.mark.parametrize(
    "variable, value",
    [
        ("WEBHOOK_RETRY_SCHEDULE", "5,99999999999"),
        ("REFRESH_SWEEP_INTERVAL", HUGE),
        ("JWT_MAX_AGE", "1e308s"),
        ("DATABASE_POOL_SIZE", "99999999999999999999999"),
        ("REFRESH_SWEEP_BATCH", "²"),  # a digit to str.isdigit(), not to int(): was a ValueError
    ],
)
def test_other_settings_out_of_range_are_flagged_by_doctor(db_url, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    assert variable in _doctor_failures(monkeypatch)


def test_settings_at_their_bound_let_every_job_run(cli, make_integration, monkeypatch):
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    make_integration(expires_at=soon)
    for variable in ("TOKEN_REFRESH_WINDOW", "TOKEN_EXPIRY_WARNING", "HEALTH_RECHECK"):
        monkeypatch.setenv(variable, "36525d")
    monkeypatch.setenv("RETENTION_DAYS", "36525")
    for job in ("token-refresh", "integration-health", "housekeeping"):
        result = cli("jobs", "run", job)
        text = result.stdout + result.stderr
        assert "INTERNAL_ERROR" not in text and "Traceback" not in text, (job, text)
        assert result.exit_code in (0, 22), (job, text)  # 22: the refresh reached no provider (port 9)


# float() read each of these: an exponent, an underscore, Arabic-Indic or fullwidth digits, a sign.
NOT_ASCII_DURATIONS = ["1e5h", "1_000s", "\u0661\u0662s", "\uff11\uff10m", "+5s"]


@pytest.mark.parametrize("value", NOT_ASCII_DURATIONS)
def test_a_duration_is_ascii_digits_and_a_unit_only(cli, make_integration, monkeypatch, value):
    row = make_integration()
    line = _refused(cli("events", "list", "--since", value), 2, "--since")
    assert line.startswith("error: VALIDATION_ERROR: "), line
    line = _refused(cli("integrations", "refresh", "--expiring-within", value), 2, "--expiring-within")
    line = _refused(
        cli("integrations", "update", row.id, "--metadata", json.dumps({"syncSchedule": value})), 2, "syncSchedule"
    )
    monkeypatch.setenv("REFRESH_SWEEP_INTERVAL", value)
    line = _refused(cli("integrations", "list"), 3, "REFRESH_SWEEP_INTERVAL")
    assert line.startswith("error: CONFIG_ERROR: REFRESH_SWEEP_INTERVAL: ") and "not a duration like" in line, line


@pytest.mark.parametrize("value", ["0", "0.0", "301", "1e2", "\u0661\u0662", "-5"])
def test_a_short_timeout_outside_its_range_says_the_range_it_has(cli, monkeypatch, value):
    """WEBHOOK_TIMEOUT=0 was told "between 0 and 300", which 0 is; '١٢' and '1e2' were read by float()."""
    monkeypatch.setenv("WEBHOOK_TIMEOUT", value)
    line = _refused(cli("integrations", "list"), 3, "WEBHOOK_TIMEOUT")
    assert (
        line
        == f"error: CONFIG_ERROR: WEBHOOK_TIMEOUT: {value!r} is not a number of seconds more than 0 and at most 300"
    )
