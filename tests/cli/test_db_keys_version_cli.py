"""`nexusctl db ...`, `nexusctl keys ...` and `nexusctl version` on SQLite and PostgreSQL.

- db: `status`/`--check`/`migrate` on a migrated, an empty and a behind
  database; every data command refuses a schema that is behind with exit 5.
- keys: `generate` prints one fresh 32-byte key; `rotate` re-encrypts every
  stored secret under ENCRYPTION_KEY exactly once, `--dry-run` changes
  nothing, and a value no configured key opens is exit 30 naming the key id.
- version: the same version everywhere, with or without a valid configuration.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from support.ports import closed_port, free_port
from typer.testing import CliRunner

from nexusctl import __version__
from nexusctl.cli.main import app
from nexusctl.crypto import Keyring, key_id
from nexusctl.db import migrate
from nexusctl.db.models import Integration, Webhook
from nexusctl.db.secrets import seal, unseal
from nexusctl.enums import Provider

# This version's migrations, in order, from the directory the runner reads.
MIGRATIONS = sorted(p.stem for p in migrate.MIGRATIONS_DIR.glob("[0-9]*.py"))
OLD, NEW, STRANGER = bytes(range(100, 132)), bytes(range(140, 172)), bytes(range(180, 212))
SOME_ID = "00000000-0000-0000-0000-000000000000"
DATA_COMMANDS = [
    ["integrations", "list"],
    ["integrations", "list", "--json"],
    ["integrations", "show", SOME_ID],
    ["integrations", "update", SOME_ID, "--name", "x"],
    ["integrations", "delete", SOME_ID, "--yes"],
    ["sync", "logs", SOME_ID],
    ["keys", "rotate"],
]


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture
def run():
    """nexusctl in-process against whatever DATABASE_URL the test set (if any)."""
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _error_line(result) -> str:
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- db ----------------------------------------------------------------------


def test_status_of_a_migrated_database(cli, db_url):
    result = cli("db", "status", "--json")
    assert result.exit_code == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["pending"] == [] and status["database"] == db_url
    rows = status["migrations"]
    assert [(row["name"], row["applied"], row["known"]) for row in rows] == [(name, True, True) for name in MIGRATIONS]
    assert all(row["appliedAt"] for row in rows)
    check = cli("db", "status", "--check")
    lines = check.stdout.splitlines()
    assert check.exit_code == 0 and lines[0] == "MIGRATION\tSTATE\tAPPLIED AT" and len(lines) == 1 + len(MIGRATIONS)
    for line, name in zip(lines[1:], MIGRATIONS, strict=True):
        assert line.startswith(f"{name}\tapplied\t"), line
    assert "up to date" in check.stderr
    again = cli("db", "migrate")
    assert again.exit_code == 0 and "Nothing to apply" in again.stderr and again.stdout == ""
    assert json.loads(cli("db", "migrate", "--json").stdout)["applied"] == []


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path, monkeypatch):
    """A database without any schema; DATABASE_URL points at it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty' / 'x.db'}"
    else:
        url = request.getfixturevalue("empty_postgres_url")
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.mark.parametrize("args", DATA_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_every_data_command_refuses_an_empty_database(run, empty_url, args):
    result = run(*args)
    assert result.exit_code == 5, result.stdout + result.stderr
    line = _error_line(result)
    assert line.startswith("error: SCHEMA_OUTDATED: ") and "`nexusctl db migrate`" in line
    assert result.stdout == ""
    assert json.loads(run("db", "status", "--json").stdout)["pending"] == MIGRATIONS  # nothing created


def test_migrate_an_empty_database_then_use_it(run, empty_url):
    status = run("db", "status", "--json")
    assert status.exit_code == 0
    body = json.loads(status.stdout)
    assert body["pending"] == MIGRATIONS
    assert [(m["name"], m["applied"], m["appliedAt"]) for m in body["migrations"]] == [
        (n, False, None) for n in MIGRATIONS
    ]
    check = run("db", "status", "--check")
    assert check.exit_code == 5 and "SCHEMA_OUTDATED" in _error_line(check) and "nexusctl db migrate" in check.stderr
    first = run("db", "migrate")
    assert first.exit_code == 0 and f"Applied {len(MIGRATIONS)} migration(s)" in first.stderr
    assert all(name in first.stderr for name in MIGRATIONS)
    second = run("db", "migrate")
    assert second.exit_code == 0 and "Nothing to apply" in second.stderr
    assert run("db", "status", "--check").exit_code == 0
    listed = run("integrations", "list", "--json")
    assert listed.exit_code == 0 and listed.stdout == "[]\n"


def test_migrate_json_names_what_it_applied(run, empty_url):
    assert json.loads(run("db", "migrate", "--json").stdout)["applied"] == MIGRATIONS
    assert json.loads(run("db", "migrate", "--json").stdout)["applied"] == []


def test_a_database_behind_the_code_is_refused_until_migrated(cli, make_integration, monkeypatch, tmp_path):
    row = make_integration()
    newer = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, newer, ignore=shutil.ignore_patterns("__pycache__"))
    probe = f"{int(MIGRATIONS[-1][:4]) + 1:04d}_add_probe"  # from a later version
    (newer / f"{probe}.py").write_text(
        "from peewee import TextField\n\n\ndef up(migrator, db):\n"
        "    migrator.migrate(migrator.add_column('integrations', 'probe', TextField(null=True)))\n"
    )
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", newer)
    refused = cli("integrations", "show", row.id)
    assert refused.exit_code == 5
    line = _error_line(refused)
    assert "SCHEMA_OUTDATED" in line and probe in line and "`nexusctl db migrate`" in line
    assert json.loads(cli("db", "status", "--json").stdout)["pending"] == [probe]
    assert cli("db", "status", "--check").exit_code == 5
    assert json.loads(cli("db", "migrate", "--json").stdout)["applied"] == [probe]
    assert json.loads(cli("integrations", "show", row.id, "--json").stdout)["id"] == str(row.id)


def test_a_database_ahead_of_the_code_still_works_with_a_warning(cli, make_integration, database):
    make_integration()
    database.execute_sql("INSERT INTO schema_migrations (name, applied) VALUES ('0099_future', CURRENT_TIMESTAMP)")
    listed = cli("integrations", "list", "--json")
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == 1
    assert "0099_future" in listed.stderr and "newer" in listed.stderr
    status = json.loads(cli("db", "status", "--json").stdout)
    assert status["pending"] == [] and {m["name"]: m["known"] for m in status["migrations"]}["0099_future"] is False


@pytest.mark.postgres
def test_status_never_shows_the_database_password(run, postgres_url, monkeypatch):
    with_password = postgres_url.replace("postgres@", "postgres:pw-Sekr1t@", 1)
    assert with_password != postgres_url
    monkeypatch.setenv("DATABASE_URL", with_password)  # trust auth: the password is ignored
    result = run("db", "status", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["database"] == postgres_url.replace("postgres@", "postgres:***@", 1)
    assert "pw-Sekr1t" not in result.stdout + result.stderr


def test_an_unreachable_database_is_exit_4_without_the_password(run, monkeypatch):
    port = closed_port()
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres:pw-Sekr1t@127.0.0.1:{port}/none?connect_timeout=2")
    for args in (["db", "status"], ["db", "migrate"], ["integrations", "list"]):
        result = run(*args)
        assert result.exit_code == 4, result.stderr
        line = _error_line(result)
        assert line.startswith("error: DATABASE_UNAVAILABLE: ") and str(port) in line
        assert "pw-Sekr1t" not in result.stdout + result.stderr


# --- keys generate -----------------------------------------------------------


def test_generate_prints_one_new_32_byte_key(run, monkeypatch):
    # No database and no valid configuration is needed to make a key.
    monkeypatch.setenv("NODE_ENV", "staging")
    monkeypatch.setenv("DATABASE_URL", "mysql://nope")
    first, second = run("keys", "generate"), run("keys", "generate")
    for result in (first, second):
        assert result.exit_code == 0 and result.stderr == ""
        assert result.stdout.endswith("\n") and len(result.stdout.splitlines()) == 1
        assert len(base64.b64decode(result.stdout.strip(), validate=True)) == 32
    assert first.stdout != second.stdout


def test_a_generated_key_is_accepted_as_encryption_key(run, monkeypatch, tmp_path):
    monkeypatch.setenv("ENCRYPTION_KEY", run("keys", "generate").stdout.strip())
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'k.db'}")
    assert run("db", "migrate").exit_code == 0


# --- keys rotate -------------------------------------------------------------


@pytest.fixture
def under_old_key(database, monkeypatch):
    """8 secrets (and 3 NULLs) sealed under OLD; then ENCRYPTION_KEY=NEW, ENCRYPTION_OLD_KEYS=OLD."""
    old, plain = Keyring(OLD), {}
    for i in range(4):
        row = Integration(user_id=uuid.uuid4(), provider=Provider.SLACK, name=f"i{i}")
        seal(old, row, "access_token", f"access-{i}")
        seal(old, row, "refresh_token", f"refresh-{i}" if i % 2 else None)
        row.save(force_insert=True)
        plain[(Integration, row.id, "access_token")] = f"access-{i}"
        plain[(Integration, row.id, "refresh_token")] = f"refresh-{i}" if i % 2 else None
        if i < 3:
            hook = Webhook(integration=row, url="https://example.com/h")
            seal(old, hook, "secret", f"whsec-{i}" if i != 1 else None)
            hook.save(force_insert=True)
            plain[(Webhook, hook.id, "secret")] = f"whsec-{i}" if i != 1 else None
    monkeypatch.setenv("ENCRYPTION_KEY", b64(NEW))
    monkeypatch.setenv("ENCRYPTION_OLD_KEYS", b64(OLD))
    return plain


def _stored(plain) -> dict:
    return {(m, i, c): getattr(m.get_by_id(i), c) for (m, i, c) in plain}


def test_rotate_dry_run_counts_and_changes_nothing(cli, under_old_key):
    before = _stored(under_old_key)
    result = cli("keys", "rotate", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "currentKeyId": key_id(NEW),
        "rewritten": 8,
        "failed": 0,
        "failures": [],
        "byTable": {"integrations": 6, "webhooks": 2},
        "dryRun": True,
    }
    text = cli("keys", "rotate", "--dry-run")
    assert text.stdout == "" and f"Would re-encrypt 8 secret(s) under key {key_id(NEW)}" in text.stderr
    assert _stored(under_old_key) == before


@pytest.mark.parametrize("batch", ["1", "3", "500"])
def test_rotate_rewrites_every_secret_once(cli, under_old_key, batch):
    result = cli("keys", "rotate", "--json", "--batch-size", batch)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rewritten"] == sum(v is not None for v in under_old_key.values()) == 8
    assert (report["failed"], report["dryRun"], report["currentKeyId"]) == (0, False, key_id(NEW))
    new_only = Keyring(NEW)  # the old key is no longer needed
    for (model, row_id, column), plaintext in under_old_key.items():
        row = model.get_by_id(row_id)
        if plaintext is None:
            assert getattr(row, column) is None
        else:
            assert getattr(row, column).startswith(new_only.current_prefix)
            assert unseal(new_only, row, column) == plaintext
    after = _stored(under_old_key)
    again = cli("keys", "rotate", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["rewritten"] == 0
    assert _stored(under_old_key) == after
    text = cli("keys", "rotate")
    assert text.exit_code == 0 and f"Re-encrypted 0 secret(s) under key {key_id(NEW)}" in text.stderr


def test_a_value_under_an_unconfigured_key_fails_the_run_but_not_the_others(cli, under_old_key):
    stray_key = next(k for k in under_old_key if k[2] == "access_token")
    stray = Integration.get_by_id(stray_key[1])
    seal(Keyring(STRANGER), stray, "access_token", "stranger-plaintext")
    stray.save()
    stray_value = stray.access_token
    result = cli("keys", "rotate", "--json", "--batch-size", "1")
    assert result.exit_code == 30
    report = json.loads(result.stdout)
    assert (report["rewritten"], report["failed"]) == (7, 1)
    [failure] = report["failures"]
    assert key_id(STRANGER) in failure and str(stray.id) in failure and "ENCRYPTION_OLD_KEYS" in failure
    assert "error: DECRYPTION_FAILED: 1 secret(s)" in result.stderr and key_id(STRANGER) in result.stderr
    assert "Traceback" not in result.stderr
    for text in (result.stdout, result.stderr):
        assert "stranger-plaintext" not in text and "nx1." not in text and b64(STRANGER) not in text
    assert Integration.get_by_id(stray.id).access_token == stray_value
    new_only = Keyring(NEW)
    for (model, row_id, column), plaintext in under_old_key.items():
        if plaintext is not None and (model, row_id, column) != stray_key:
            assert unseal(new_only, model.get_by_id(row_id), column) == plaintext
    again = cli("keys", "rotate", "--json")
    assert again.exit_code == 30 and (json.loads(again.stdout)["rewritten"], json.loads(again.stdout)["failed"]) == (
        0,
        1,
    )


def test_a_value_moved_from_another_row_is_refused(cli, under_old_key):
    first, second = [k[1] for k in under_old_key if k[2] == "access_token"][:2]
    moved = Integration.get_by_id(first).access_token
    Integration.update(access_token=moved).where(Integration.id == second).execute()
    result = cli("keys", "rotate", "--json")
    assert result.exit_code == 30
    report = json.loads(result.stdout)
    assert (report["rewritten"], report["failed"]) == (7, 1) and "failed authentication" in report["failures"][0]
    assert str(second) in report["failures"][0]
    assert Integration.get_by_id(second).access_token == moved


def test_without_the_old_key_nothing_is_rewritten(cli, under_old_key, monkeypatch):
    monkeypatch.delenv("ENCRYPTION_OLD_KEYS")
    before = _stored(under_old_key)
    result = cli("keys", "rotate", "--json")
    assert result.exit_code == 30
    report = json.loads(result.stdout)
    assert (report["rewritten"], report["failed"]) == (0, 8)
    assert all(key_id(OLD) in message for message in report["failures"])
    assert _stored(under_old_key) == before


def test_the_sqlite_file_and_its_companions_are_owner_only(tmp_path):
    """README's path: `nexusctl db migrate` on a fresh data dir, then the daemon (WAL and SHM), under umask 022."""
    import os
    import stat
    import time
    import urllib.request

    data = tmp_path / "fresh" / "data"
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}
    port = free_port()
    env.update(NEXUS_DATA_DIR=str(data), NODE_ENV="development", PORT=str(port))
    nexusctl = [sys.executable, "-m", "nexusctl"]

    def modes() -> dict:
        return {p.name: stat.S_IMODE(p.stat().st_mode) for p in [data, *data.iterdir()]}

    previous = os.umask(0o022)  # the usual default: what the files got before
    try:
        migrated = subprocess.run(
            [*nexusctl, "-q", "db", "migrate"], env=env, capture_output=True, text=True, timeout=120
        )
        assert migrated.returncode == 0, migrated.stderr
        after_migrate = modes()
        daemon = subprocess.Popen([*nexusctl, "daemon"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finally:
        os.umask(previous)
    try:
        deadline = time.monotonic() + 30
        # Both companions: SQLite makes them one after the other (seen on a loaded machine: the -wal without the -shm).
        while not ((data / "nexusctl.db-wal").exists() and (data / "nexusctl.db-shm").exists()):
            assert daemon.poll() is None and time.monotonic() < deadline, daemon.stderr.read().decode()[-2000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2)
            except OSError:
                time.sleep(0.1)  # polling for readiness, not waiting for luck
        running = modes()
    finally:
        daemon.terminate()
        daemon.wait(20)
    assert after_migrate["nexusctl.db"] == 0o600 and after_migrate["data"] == 0o700, after_migrate
    assert {"nexusctl.db-wal", "nexusctl.db-shm"} <= set(running), running
    assert all(mode == 0o600 for name, mode in running.items() if name != "data"), running
    assert running["data"] == 0o700


# --- version -----------------------------------------------------------------


def test_version_everywhere_agrees(run, monkeypatch):
    monkeypatch.setenv("NODE_ENV", "staging")  # a broken configuration does not matter
    assert importlib.metadata.version("nexusctl") == __version__
    plain, flag = run("version"), run("--version")
    assert plain.exit_code == flag.exit_code == 0
    assert plain.stdout == flag.stdout == f"nexusctl {__version__}\n"
    info = json.loads(run("version", "--json").stdout)
    assert set(info) == {"version", "python", "peewee"} and info["version"] == __version__
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))


def test_python_dash_m_is_the_same_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "nexusctl", "version", "--json"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["version"] == __version__
    flag = subprocess.run([sys.executable, "-m", "nexusctl", "--version"], capture_output=True, text=True, timeout=60)
    assert flag.returncode == 0 and flag.stdout == f"nexusctl {__version__}\n"


def _readme_rotation_recipe() -> str:
    """The first sh block of README's "Token encryption and key rotation", as written."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Token encryption and key rotation", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("setup", ["development key file", "ENCRYPTION_KEY"])
def test_the_readmes_rotation_recipe_works_as_written(database, db_url, monkeypatch, tmp_path, setup):
    # The README's development set-up keeps the key in <data dir>/encryption.key with ENCRYPTION_KEY unset:
    # the recipe's ENCRYPTION_OLD_KEYS="$ENCRYPTION_KEY" is then empty, and `keys rotate` used to fail every
    # secret (DECRYPTION_FAILED, exit 30).
    from nexusctl import config
    from nexusctl.crypto import keyring_from_settings

    if setup == "development key file":
        monkeypatch.delenv("ENCRYPTION_KEY")
    before = keyring_from_settings(config.load())  # development: generates the key file, as the first run does
    plain = {}
    for i in range(3):
        row = Integration(user_id=uuid.uuid4(), provider=Provider.SLACK, name=f"i{i}")
        seal(before, row, "access_token", f"access-{i}")
        row.save(force_insert=True)
        plain[row.id] = f"access-{i}"
    env = {k: v for k, v in os.environ.items()}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["WEBHOOK_ALLOWED_NETWORKS"] = "127.0.0.1/32"
    made = subprocess.run(
        ["nexusctl", "webhooks", "create", "--integration", str(row.id), "--url", "http://127.0.0.1:9/h", "-e", "*"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    script = _readme_rotation_recipe() + 'printf "%s" "$ENCRYPTION_KEY" > "$NEW_KEY_OUT"\n'
    env["NEW_KEY_OUT"] = str(tmp_path / "new.key")
    ran = subprocess.run(["bash", "-e", "-c", script], env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert "Re-encrypted 4 secret(s)" in ran.stderr and "could not be decrypted" not in ran.stderr, ran.stderr
    after = Keyring(base64.b64decode((tmp_path / "new.key").read_text()))  # the new key alone
    assert after.current_kid != before.current_kid
    for row_id, text in plain.items():
        assert unseal(after, Integration.get_by_id(row_id), "access_token") == text
    assert unseal(after, Webhook.get(), "secret").startswith("whsec_")


def test_a_rotation_without_the_previous_key_says_how_to_give_it(cli, under_old_key, monkeypatch):
    monkeypatch.delenv("ENCRYPTION_OLD_KEYS")
    result = cli("keys", "rotate")
    assert result.exit_code == 30
    line = result.stderr.splitlines()[-1]  # after one line per secret that failed
    assert line.startswith("error: DECRYPTION_FAILED: ") and 'ENCRYPTION_OLD_KEYS="$OLD_KEY"' in line, line
