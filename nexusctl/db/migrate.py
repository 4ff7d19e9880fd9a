"""Versioned schema migrations (playhouse.migrations) and the "behind" check.

Migration scripts live in ``nexusctl/db/migrations/NNNN_name.py`` and are applied in
order by ``nexusctl db migrate``. Every other command calls
``ensure_current`` first and refuses to run against a database that lacks a
migration this version needs.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import peewee

from nexusctl.db.database import is_postgres
from nexusctl.errors import ConfigError, SchemaBehind

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
HISTORY_TABLE = "schema_migrations"
# Serialises `db migrate` across processes on PostgreSQL (any fixed number works).
_MIGRATE_LOCK_ID = 0x6E657875
# On SQLite: a thread lock plus an flock on a file beside the database, so two
# migrating processes (or threads) never both read "pending" and both apply.
_SQLITE_MIGRATE_LOCK = threading.Lock()


@dataclass(frozen=True)
class MigrationStatus:
    name: str
    applied_at: datetime | None
    known: bool  # False: recorded in the database, but this version has no such file

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "applied": self.applied_at is not None,
            # playhouse records local time without a zone: shown in UTC with Z, as every other timestamp.
            "appliedAt": (
                self.applied_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if self.applied_at else None
            ),
            "known": self.known,
        }


def _runner(db: peewee.Database):
    # Imported here: playhouse.migrations (with the schema migrator and argparse) is only needed to list or
    # apply migrations, not for the check every other command makes (start-up speed).
    from playhouse.migrations import Runner

    return Runner(db, str(MIGRATIONS_DIR), table_name=HISTORY_TABLE)


def known_names() -> list[str]:
    """The migrations this version ships, found the way playhouse.migrations finds them."""
    return sorted(path.stem for path in MIGRATIONS_DIR.glob("[0-9]*.py"))


def _applied_names(db: peewee.Database) -> set[str]:
    if not db.table_exists(HISTORY_TABLE):
        return set()
    return {name for (name,) in db.execute_sql(f"SELECT name FROM {HISTORY_TABLE}")}


def status(db: peewee.Database) -> list[MigrationStatus]:
    return [MigrationStatus(m.name, m.applied, m.path is not None) for m in _runner(db).status()]


def pending(db: peewee.Database) -> list[str]:
    return [m.name for m in status(db) if m.known and m.applied_at is None]


def migrate(db: peewee.Database) -> list[str]:
    """Apply every pending migration; returns the names applied."""
    if not is_postgres(db):
        with _sqlite_migrate_lock(db):
            return _runner(db).up()
    with db.connection_context():
        _require_postgres_version(db)
        db.execute_sql("SELECT pg_advisory_lock(%s)", (_MIGRATE_LOCK_ID,))
        try:
            return _runner(db).up()
        finally:
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (_MIGRATE_LOCK_ID,))


POSTGRES_OLDEST = 130000  # gen_random_uuid() is built in from 13 (the record of delivery outcomes makes ids with it)


def _require_postgres_version(db: peewee.Database) -> None:
    """Refuse an older PostgreSQL before anything is applied: a clear error now, not a failed statement later."""
    found = int(db.execute_sql("SHOW server_version_num").fetchone()[0])
    if found < POSTGRES_OLDEST:
        raise ConfigError(
            f"DATABASE_URL: PostgreSQL {found // 10000} is too old; nexusctl needs PostgreSQL "
            f"{POSTGRES_OLDEST // 10000} or newer"
        )


@contextmanager
def _sqlite_migrate_lock(db: peewee.Database):
    path = db.database
    with _SQLITE_MIGRATE_LOCK:
        if not path or path == ":memory:" or str(path).startswith("file:"):
            yield
            return
        # Owner only, like the database beside it (an empty file, but no reason to differ).
        with open(os.open(f"{path}.migrate-lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_current(db: peewee.Database) -> None:
    """Raise SchemaBehind unless every known migration has been applied."""
    known = known_names()
    applied = _applied_names(db)
    missing = [name for name in known if name not in applied]
    if missing:
        if len(missing) == len(known):
            raise SchemaBehind("the database has no nexusctl schema yet: run `nexusctl db migrate`")
        raise SchemaBehind(
            f"the database is behind this version of nexusctl ({len(missing)} pending "
            f"migration(s): {', '.join(missing)}): run `nexusctl db migrate`"
        )
    unknown = sorted(applied.difference(known))
    if unknown:
        log.warning(
            "the database has migrations this version does not know (%s): it was migrated by a newer nexusctl",
            ", ".join(unknown),
        )
