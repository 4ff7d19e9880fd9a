"""Versioned migrations: pending detection, applying, refusing a database that is behind."""

from __future__ import annotations

import shutil
import threading

import pytest

from db import migrate
from db.database import open_database
from nexusctl.errors import SchemaBehind

PROBE_MIGRATION = '''"""Adds a probe column."""
from peewee import TextField


def up(migrator, db):
    migrator.migrate(migrator.add_column("integrations", "probe", TextField(null=True)))
'''


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}" if request.param == "sqlite" else request.getfixturevalue("empty_postgres_url")
    db = open_database(url)
    yield db
    db.close()
    if hasattr(db, "close_all"):
        db.close_all()


@pytest.fixture
def newer_code(monkeypatch, tmp_path):
    """This version of the code plus one migration the database has not seen."""
    directory = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, directory, ignore=shutil.ignore_patterns("__pycache__"))
    (directory / "0002_add_probe.py").write_text(PROBE_MIGRATION)
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", directory)


def test_an_empty_database_is_refused_until_migrated(empty_db):
    assert migrate.pending(empty_db) == ["0001_initial"]
    with pytest.raises(SchemaBehind) as info:
        migrate.ensure_current(empty_db)
    assert "nexusctl db migrate" in info.value.message
    assert migrate.migrate(empty_db) == ["0001_initial"]
    assert migrate.migrate(empty_db) == []
    migrate.ensure_current(empty_db)
    [status] = migrate.status(empty_db)
    assert status.name == "0001_initial" and status.applied_at is not None and status.known


def test_a_new_migration_makes_the_database_behind(database, newer_code):
    with pytest.raises(SchemaBehind) as info:
        migrate.ensure_current(database)
    assert "0002_add_probe" in info.value.message and "nexusctl db migrate" in info.value.message
    assert migrate.migrate(database) == ["0002_add_probe"]
    assert "probe" in {c.name for c in database.get_columns("integrations")}
    migrate.ensure_current(database)


def test_a_database_migrated_by_newer_code_still_runs(database, newer_code, monkeypatch, caplog):
    migrate.migrate(database)
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", migrate.Path(__file__).resolve().parents[2] / "db" / "migrations")
    migrate.ensure_current(database)
    assert "0002_add_probe" in caplog.text and "newer nexusctl" in caplog.text


@pytest.mark.postgres
def test_concurrent_migrate_applies_once(empty_postgres_url):
    results, errors = [], []

    def run():
        db = open_database(empty_postgres_url)
        try:
            results.append(migrate.migrate(db))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            db.close_all()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(results) == [[], [], ["0001_initial"]]
