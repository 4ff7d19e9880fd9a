"""Binding the models to SQLite (embedded default) or PostgreSQL (scale-out).

Every model points at ``database_proxy``; ``open_database(url)`` builds the
real database from ``DATABASE_URL`` and ``bind(db)`` attaches it. The two
database classes below map our portable field types (``TIMESTAMPTZ``,
``TEXTARRAY``) onto each engine's native type.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import peewee
from playhouse.pool import PooledPostgresqlDatabase

from nexusctl.errors import ConfigError, DatabaseUnavailable

database_proxy = peewee.DatabaseProxy()


class NexusSqliteDatabase(peewee.SqliteDatabase):
    field_types = {**peewee.SqliteDatabase.field_types, "TIMESTAMPTZ": "DATETIME", "TEXTARRAY": "TEXT"}

    def _connect(self):
        # The file holds every encrypted token and webhook secret: owner only, like the key files.
        # Made here, before SQLite would create it under the umask (0644); SQLite gives the
        # -wal, -shm and -journal files it creates later the database file's mode.
        if self.database != ":memory:" and not self.database.startswith("file:"):
            self._create_file()
        return super()._connect()

    def _create_file(self) -> None:
        # An OSError here (a directory that cannot be made, a file where a directory should be, /proc) is an
        # OperationalError like SQLite's own "unable to open database file", so every caller that reports an
        # unusable database (check_connection: DATABASE_UNAVAILABLE, exit 4; doctor) reports this one too.
        parent = Path(self.database).parent
        try:
            parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # a directory made here: owner only
        except FileExistsError:  # mkdir's word for a file where the directory should be
            raise peewee.OperationalError(
                f"cannot create the database file {self.database}: {parent} is not a directory"
            ) from None
        except OSError as exc:
            raise peewee.OperationalError(f"cannot create the directory {parent}: {exc.strerror}") from None
        try:
            os.close(os.open(self.database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise peewee.OperationalError(f"cannot create the database file {self.database}: {exc.strerror}") from None

    def begin(self, lock_type=None):
        # BEGIN IMMEDIATE: a transaction takes the write lock up front, so two
        # processes' transactions queue on busy_timeout. A deferred one that
        # read first and then writes fails at once with "database is locked"
        # when another process wrote meanwhile (SQLite cannot wait there).
        return super().begin(lock_type or "IMMEDIATE")


class NexusPostgresDatabase(PooledPostgresqlDatabase):
    field_types = {
        **PooledPostgresqlDatabase.field_types,
        "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE",
        "TEXTARRAY": "TEXT[]",
    }

    def _connect(self):
        conn = super()._connect()
        # jsonb and json columns (a delivery's payload, an event's data) read with orjson, a fifth of the standard
        # library's CPU: decoding the payloads of a claim's rows was 8% of the busy delivery worker's time holding
        # the GIL (py-spy --gil, bench/delivery_ab.py). Imported here, for start-up: a SQLite process loads neither.
        from psycopg2 import extras

        loads = _json_reader()
        extras.register_default_jsonb(conn, loads=loads)
        extras.register_default_json(conn, loads=loads)
        # Sessions speak UTC whatever the server's default is, so timestamps
        # read back as the instant that was written.
        with conn.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
        conn.commit()
        return conn

    # A transaction's BEGIN goes with its first statement, not as a round trip of its own. peewee runs psycopg2
    # in autocommit mode and sends BEGIN by itself when ``atomic()`` opens: one more trip to the server, and in
    # a daemon thread each trip also waits for the GIL when it wakes (up to the 5 ms switch interval while the
    # event loop's thread holds it): the delivery worker's BEGIN took 1.4 ms of an 8.6 ms claim trip in its
    # thread, on a server that spends microseconds on it (tests/db/test_round_trips.py). Kept per thread with
    # the connection it was for: a BEGIN still pending when the transaction ends means no statement ran, and
    # COMMIT or ROLLBACK has nothing to end (none is sent). A cursor taken by other code (``cursor()``, e.g.
    # ``executemany``) sends the pending BEGIN first, so nothing runs outside the transaction it was written in.
    def begin(self, isolation_level=None):
        isolation_level = isolation_level or self._isolation_level
        statement = "BEGIN"
        if isolation_level:
            statement += " TRANSACTION ISOLATION LEVEL " + self._adapter.isolation_level_str(isolation_level)
        if self.is_closed():
            self.connect()
        self._state.pending_begin = (self._state.conn, statement)

    def _take_begin(self) -> str | None:
        pending = getattr(self._state, "pending_begin", None)
        if pending is None:
            return None
        self._state.pending_begin = None
        return pending[1] if pending[0] is self._state.conn else None

    def execute_sql(self, sql, params=None):
        statement = self._take_begin()
        if statement is not None:
            sql = f"{statement}; {sql}"
        return super().execute_sql(sql, params)

    def cursor(self, named_cursor=None):
        statement = self._take_begin()
        if statement is not None:
            super().cursor().execute(statement)
        return super().cursor(named_cursor)

    def commit(self):
        if self._take_begin() is None:
            super().commit()

    def rollback(self):
        if self._take_begin() is None:
            super().rollback()


SQLITE_PRAGMAS = {
    # WAL lets the CLI read while the daemon writes; busy_timeout makes a
    # second writer wait instead of failing at once.
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 5000,
    "synchronous": "normal",
}


def _json_reader():
    """Reads a json/jsonb value as the standard library does, at a fifth of its CPU (nexusctl.jsontext: orjson),
    for each PostgreSQL connection."""
    from nexusctl import jsontext  # here for start-up speed: a SQLite process never loads orjson

    return jsontext.loads


def open_database(url: str, pool_size: int = 10) -> peewee.Database:
    """A database for a sqlite:/// or postgresql:// URL (validated by config)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative.db, sqlite:////absolute.db, sqlite:///:memory:
        path = unquote(parts.path[1:])  # its directory is made on connecting (NexusSqliteDatabase._create_file)
        return NexusSqliteDatabase(path, pragmas=SQLITE_PRAGMAS)
    if peewee.psycopg2 is None:
        # Not installed, or kept out by nexusctl.cli.entry in a process started for SQLite.
        raise ConfigError(
            "DATABASE_URL: PostgreSQL needs psycopg2, which this process has not loaded "
            "(install psycopg2-binary; a `nexusctl` started with a SQLite DATABASE_URL never loads it)"
        )
    options = dict(parse_qsl(parts.query))
    # libpq takes any connection parameter as a query parameter too (``postgresql:///db?host=/var/run/postgresql``,
    # the usual Unix-socket form; ``?user=``, ``?password=``, ``?port=``, ``?dbname=``), and one given there wins
    # over the URL's own part, as in libpq. Passed twice to the driver, they were a TypeError on every command.
    database = options.pop("dbname", None) or unquote(parts.path.lstrip("/"))
    host = options.pop("host", None) or parts.hostname or None
    port = options.pop("port", None) or parts.port or None
    user = options.pop("user", None) or (unquote(parts.username) if parts.username else None)
    password = options.pop("password", None) or (unquote(parts.password) if parts.password else None)
    return NexusPostgresDatabase(
        database,
        host=host,
        port=port,
        user=user,
        password=password,
        max_connections=pool_size,
        stale_timeout=300,
        timeout=10,  # wait this long for a free pooled connection
        connect_timeout=int(options.pop("connect_timeout", 5)),
        **options,
    )


def is_postgres(db: peewee.Database | None = None) -> bool:
    """Whether ``db`` (default: the bound database) is PostgreSQL; sees through ``database_proxy``.

    A DatabaseProxy is not itself a PostgresqlDatabase, so callers passing ``database_proxy``
    must get the answer for the database it points at (else every PostgreSQL-only path,
    NOTIFY and FOR UPDATE SKIP LOCKED among them, is silently skipped).
    """
    if db is None or isinstance(db, peewee.DatabaseProxy):
        db = database_proxy.obj if db is None else db.obj
    return isinstance(db, peewee.PostgresqlDatabase)


def bind(db: peewee.Database) -> peewee.Database:
    """Point every model at ``db``."""
    database_proxy.initialize(db)
    return db


DEADLOCK_RETRIES = 3


def is_deadlock(exc: BaseException) -> bool:
    """PostgreSQL aborted this transaction to break a deadlock (SQLSTATE 40P01); peewee wraps the driver's error."""
    for cause in (exc, *(exc.args[:1] if isinstance(exc, peewee.PeeweeException) else ()), exc.__context__):
        if getattr(cause, "pgcode", None) == "40P01":
            return True
    return False


def retry_deadlocks(transaction):
    """Run ``transaction()`` (one whole transaction) again when PostgreSQL chose it as a deadlock victim.

    The victim's work is rolled back and the other transaction goes on, so running it again is
    safe and is PostgreSQL's own advice; after DEADLOCK_RETRIES tries the error is raised.
    """
    for attempt in range(1, DEADLOCK_RETRIES + 1):
        try:
            return transaction()
        except peewee.OperationalError as exc:
            if attempt == DEADLOCK_RETRIES or not is_deadlock(exc):
                raise


def describe_error(exc: Exception) -> str:
    """The first line of a driver error: names host/port or file, never a password."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


PG_SERVER_GOING_AWAY = ("57P01", "57P02", "57P03")  # admin shutdown, crash shutdown, cannot connect now
SQLITE_UNAVAILABLE = ("database is locked", "unable to open", "disk i/o error", "database or disk is full")


def unreachable(exc: BaseException, postgres: bool) -> bool:
    """Whether a driver error (peewee's OperationalError or InterfaceError) says the database is away or locked,
    not that a statement is wrong: an outage (DATABASE_UNAVAILABLE), never a bug."""
    if not isinstance(exc, (peewee.OperationalError, peewee.InterfaceError)):
        return False
    if postgres:
        # psycopg2 raises OperationalError for lost, refused and closed connections (no SQLSTATE,
        # or class 08 / a server shutting down) but also for a deadlock, a statement timeout or a
        # serialization failure: those are not an outage and must not hide as one.
        original = getattr(exc, "orig", None) or exc.__context__ or exc  # peewee keeps psycopg2's own
        code = getattr(original, "pgcode", None)
        return code is None or code.startswith("08") or code in PG_SERVER_GOING_AWAY
    text = str(exc).lower()  # SQLite: a statement error is an OperationalError too
    return any(sign in text for sign in SQLITE_UNAVAILABLE)


def unavailable(exc: BaseException, label: str) -> DatabaseUnavailable | None:
    """The DATABASE_UNAVAILABLE a driver error raised in the middle of work stands for (``unreachable``), or None
    (a bug, or a statement's own error). ``label`` names the database (its URL without a password); the message
    is the driver's first line, which names host and port or file, never a password."""
    if not unreachable(exc, is_postgres()):
        return None
    if "database is locked" in str(exc).lower():
        return DatabaseUnavailable(
            f"the database {label} is locked: another process has held its write lock for over "
            f"{SQLITE_PRAGMAS['busy_timeout'] // 1000} s (a long transaction?); try again once it lets go"
        )
    return DatabaseUnavailable(f"lost the database {label}: {describe_error(exc)}")


def check_connection(db: peewee.Database, label: str) -> None:
    """Open a connection now, turning a driver error into one clear line."""
    try:
        db.connect(reuse_if_open=True)
        db.execute_sql("SELECT 1")
    except peewee.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot reach the database {label}: {describe_error(exc)}") from None
