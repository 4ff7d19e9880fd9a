"""Versioned migrations: pending detection, applying, refusing a database that is behind."""

from __future__ import annotations

import shutil
import threading

import pytest

from nexusctl.db import migrate
from nexusctl.db.database import open_database
from nexusctl.errors import SchemaBehind

# This version's migrations, from the directory the runner reads.
MIGRATIONS = sorted(p.stem for p in migrate.MIGRATIONS_DIR.glob("[0-9]*.py"))
# A migration from a later version: numbered after everything shipped.
PROBE_NAME = f"{int(MIGRATIONS[-1][:4]) + 1:04d}_add_probe"

PROBE_MIGRATION = '''"""Adds a probe column."""
from peewee import TextField


def up(migrator, db):
    migrator.migrate(migrator.add_column("integrations", "probe", TextField(null=True)))
'''


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'empty.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("empty_postgres_url")
    )
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
    (directory / f"{PROBE_NAME}.py").write_text(PROBE_MIGRATION)
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", directory)


def test_an_empty_database_is_refused_until_migrated(empty_db):
    assert migrate.pending(empty_db) == MIGRATIONS
    with pytest.raises(SchemaBehind) as info:
        migrate.ensure_current(empty_db)
    assert "nexusctl db migrate" in info.value.message
    assert migrate.migrate(empty_db) == MIGRATIONS
    assert migrate.migrate(empty_db) == []
    migrate.ensure_current(empty_db)
    statuses = migrate.status(empty_db)
    assert [s.name for s in statuses] == MIGRATIONS
    assert all(s.applied_at is not None and s.known for s in statuses)


def test_a_new_migration_makes_the_database_behind(database, newer_code):
    with pytest.raises(SchemaBehind) as info:
        migrate.ensure_current(database)
    assert PROBE_NAME in info.value.message and "nexusctl db migrate" in info.value.message
    assert migrate.migrate(database) == [PROBE_NAME]
    assert "probe" in {c.name for c in database.get_columns("integrations")}
    migrate.ensure_current(database)


def test_a_database_migrated_by_newer_code_still_runs(database, newer_code, monkeypatch, caplog):
    migrate.migrate(database)
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", migrate.Path(__file__).resolve().parents[2] / "db" / "migrations")
    migrate.ensure_current(database)
    assert PROBE_NAME in caplog.text and "newer nexusctl" in caplog.text


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
    assert sorted(results) == [[], [], MIGRATIONS]
