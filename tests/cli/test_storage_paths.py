"""A SQLite file or a data directory that cannot be made is a clear error, not exit 1 with a traceback.

``DATABASE_URL=sqlite:////etc/hostname/x.db`` (a file where the directory should be), ``sqlite:////proc/x.db``
(a directory no file can be made in) and ``NEXUS_DATA_DIR=/etc/hostname`` each ended every command as
INTERNAL_ERROR (FileExistsError, FileNotFoundError, NotADirectoryError). Now: DATABASE_UNAVAILABLE (exit 4)
with the OS's reason for the database, CONFIG_ERROR (exit 3) naming NEXUS_DATA_DIR for the data directory,
and `nexusctl doctor` reports either as a failed check.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.ports import free_port
from typer.testing import CliRunner

from nexusctl.cli.main import app


def _doctor_failures() -> dict[str, str]:
    result = CliRunner().invoke(app, ["doctor", "--json"], catch_exceptions=False)
    assert result.exit_code == 7 and "Traceback" not in result.stdout + result.stderr, result.stderr
    return {f["check"]: f["detail"] for f in json.loads(result.stdout) if f["status"] == "fail"}


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "plain-file"
    path.write_text("not a directory\n")
    return path


@pytest.mark.parametrize("under", ["x.db", "deeper/x.db"])
@pytest.mark.parametrize("command", [("integrations", "list"), ("db", "migrate"), ("db", "status")])
def test_a_sqlite_file_under_a_file_is_database_unavailable(cli, monkeypatch, a_file, under, command):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{a_file}/{under}")
    result = cli(*command)
    assert result.exit_code == 4, (result.exit_code, result.stderr)
    assert result.stderr.startswith("error: DATABASE_UNAVAILABLE: "), result.stderr
    assert "not a directory" in result.stderr.lower(), result.stderr
    monkeypatch.setenv("PORT", str(free_port()))
    assert f"{a_file} is not a directory" in _doctor_failures()["database"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no file can be made")
def test_a_sqlite_file_where_none_can_be_made_is_database_unavailable(cli, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "sqlite:////proc/nexusctl-test.db")
    result = cli("db", "migrate")
    assert result.exit_code == 4, (result.exit_code, result.stderr)
    assert "DATABASE_UNAVAILABLE" in result.stderr and "No such file or directory" in result.stderr, result.stderr


def test_a_data_directory_that_is_a_file_is_a_config_error_naming_it(cli, db_url, monkeypatch, a_file):
    monkeypatch.setenv("NEXUS_DATA_DIR", str(a_file))  # the database is elsewhere: the development key goes here
    monkeypatch.delenv("ENCRYPTION_KEY", raising=False)
    for command in (("integrations", "list"), ("db", "status")):
        result = cli(*command)
        assert result.exit_code == 3, (command, result.exit_code, result.stderr)
        assert result.stderr.startswith(f"error: CONFIG_ERROR: NEXUS_DATA_DIR: {a_file} is not a directory"), (
            result.stderr
        )
    monkeypatch.setenv("PORT", str(free_port()))
    assert "NEXUS_DATA_DIR" in _doctor_failures()["config"]
