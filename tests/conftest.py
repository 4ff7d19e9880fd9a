"""Shared fixtures: a clean environment, real databases, real Redis.

- Every test starts with none of the variables nexusctl reads, a private
  data directory and a fixed test ENCRYPTION_KEY.
- ``db_url`` is parametrised over SQLite and PostgreSQL: each test gets a
  fresh, migrated database (a copied template file on SQLite; on PostgreSQL
  a ``CREATE DATABASE ... TEMPLATE`` clone, emptied and reused by the next
  test when its schema is untouched: tests/pg_pool.py) and DATABASE_URL
  points at it, so the CLI and the daemon use it too.
- Without PostgreSQL or Redis the suites that need them are skipped with the
  reason (pytest -rs prints it). ``NEXUSCTL_TEST_REQUIRE=postgres,redis``
  (set by .ci/run) turns a missing service into a failure instead.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from nexusctl import clock as product_clock
from nexusctl import config


def _redis_url_of_this_worker() -> str:
    """The test Redis (NEXUSCTL_TEST_REDIS_URL); under pytest-xdist, a database of each worker's own (the one named
    less the worker's number), set in the environment for the daemons and CLIs the tests start: the tests empty
    their database before and after (``redis_url``), which must not empty another worker's under its test."""
    url = os.environ.get("NEXUSCTL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    if worker.isdigit() and int(worker):
        base, _, number = url.rpartition("/")
        if not number.isdigit() or int(number) < int(worker):
            raise RuntimeError(f"NEXUSCTL_TEST_REDIS_URL {url!r}: under xdist, end it in a database number >= workers")
        url = f"{base}/{int(number) - int(worker)}"
        os.environ["NEXUSCTL_TEST_REDIS_URL"] = url
    return url


TEST_KEY = base64.b64encode(bytes(range(32))).decode()
POSTGRES_URL = os.environ.get("NEXUSCTL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = _redis_url_of_this_worker()
REQUIRED = {s.strip() for s in os.environ.get("NEXUSCTL_TEST_REQUIRE", "").split(",") if s.strip()}
RUN_ID = uuid.uuid4().hex[:8]

# Fixtures several suites share, registered here once: the provider emulators and tests/support's.
pytest_plugins = ["emulators.fixtures", "support.fixtures"]


def _unavailable(service: str, reason: str):
    if service in REQUIRED:
        pytest.fail(f"{service} is required (NEXUSCTL_TEST_REQUIRE) but unavailable: {reason}", pytrace=False)
    variable = {"postgres": "NEXUSCTL_TEST_POSTGRES_URL", "redis": "NEXUSCTL_TEST_REDIS_URL"}[service]
    pytest.skip(f"{service} unavailable ({reason}); point {variable} at one to run this suite")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No stray configuration leaks in; each test has its own data directory."""
    for name in config.variable_names():
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith(("NEXUS_", "JWT_", "WEBHOOK_")) or name in ("LOG_FORMAT", "NO_COLOR"):
            monkeypatch.delenv(name, raising=False)
    # No test reaches a real provider: every endpoint points at a closed local port
    # unless the test points it at an emulator.
    from nexusctl.enums import Provider

    for provider in Provider:
        for kind in ("AUTH", "TOKEN", "API", "REVOKE"):
            monkeypatch.setenv(f"{provider.value}_{kind}_URL", "http://127.0.0.1:9/")
    data_dir = tmp_path / "data"
    monkeypatch.setenv("NEXUS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ENCRYPTION_KEY", TEST_KEY)
    monkeypatch.setenv("NODE_ENV", "test")
    product_clock.reload()  # the product's clock reads its setting once per process: this test's environment
    yield data_dir


# --- PostgreSQL ------------------------------------------------------------


def _pg_url_for(dbname: str) -> str:
    parts = urlsplit(POSTGRES_URL)
    return urlunsplit(parts._replace(path="/" + dbname))


def _pg_admin():
    import psycopg2

    parts = urlsplit(POSTGRES_URL)
    conn = psycopg2.connect(
        dbname=parts.path.lstrip("/"),
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username,
        password=parts.password,
        connect_timeout=3,
    )
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def pg_template():
    """A migrated PostgreSQL database to clone per test (None if unavailable)."""
    try:
        admin = _pg_admin()
    except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        yield exc
        return
    name = f"nx_tpl_{RUN_ID}"
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    _migrate(_pg_url_for(name))
    yield name
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def _migrate(url: str) -> None:
    from nexusctl.db import migrate
    from nexusctl.db.database import open_database

    db = open_database(url)
    migrate.migrate(db)
    db.close()
    if hasattr(db, "close_all"):
        db.close_all()


@contextlib.contextmanager
def _scratch_postgres(prefix: str):
    """CREATE a throwaway empty database, DROP it afterwards."""
    name = f"{prefix}_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    admin = _pg_admin()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url_for(name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _require_postgres(pg_template) -> None:
    if isinstance(pg_template, Exception):
        text = str(pg_template).strip()
        _unavailable("postgres", text.splitlines()[0] if text else type(pg_template).__name__)


@pytest.fixture(scope="session")
def pg_pool(pg_template):
    """Migrated databases recycled between tests (tests/pg_pool.py says when one is not)."""
    if isinstance(pg_template, Exception):
        yield None
        return
    from pg_pool import PostgresPool

    admin = _pg_admin()
    pool = PostgresPool(admin, pg_template, _pg_url_for, RUN_ID)
    yield pool
    pool.close()
    admin.close()


@pytest.fixture
def postgres_url(pg_template, pg_pool):
    """A fresh, migrated PostgreSQL database for this test: no rows, the template's schema."""
    _require_postgres(pg_template)
    name = pg_pool.take()
    try:
        yield _pg_url_for(name)
    finally:
        pg_pool.give_back(name)


@pytest.fixture
def empty_postgres_url(pg_template):
    """A PostgreSQL database with no schema at all."""
    _require_postgres(pg_template)
    with _scratch_postgres("nx_e") as url:
        yield url


# --- SQLite ----------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    _migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(sqlite_template, tmp_path) -> str:
    path = tmp_path / "nexusctl.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


# --- Either ----------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, monkeypatch) -> str:
    """A fresh migrated database of each kind; DATABASE_URL points at it."""
    url = request.getfixturevalue(f"{request.param}_url")
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture
def database(db_url):
    """The models bound to this test's database."""
    from nexusctl.db.database import bind, open_database

    db = bind(open_database(db_url))
    db.connect(reuse_if_open=True)
    yield db
    db.close()
    if hasattr(db, "close_idle"):
        # Not close_all: a daemon app the test started before this fixture (an `api` fixture) has its
        # worker threads querying through this database (the last one bound) until the app is torn
        # down after us; closing a connection under a running query aborts the process in libpq.
        db.close_idle()


@pytest.fixture
def settings(clean_env):
    return config.load()


@pytest.fixture
def keyring(settings):
    from nexusctl.crypto import keyring_from_settings

    return keyring_from_settings(settings)


# --- Redis -----------------------------------------------------------------


@pytest.fixture
def redis_url():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        _unavailable("redis", f"{REDIS_URL}: {type(exc).__name__}")
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


# --- Helpers ---------------------------------------------------------------


@pytest.fixture
def make_integration(database, keyring):
    """Insert an integration with real encrypted tokens; returns the row."""
    from nexusctl.db.models import Integration
    from nexusctl.db.secrets import seal
    from nexusctl.enums import Provider

    def make(**fields):
        access = fields.pop("access_token", f"at-{uuid.uuid4().hex}")
        refresh = fields.pop("refresh_token", f"rt-{uuid.uuid4().hex}")
        row = Integration(
            user_id=fields.pop("user_id", uuid.uuid4()),
            provider=fields.pop("provider", Provider.SLACK),
            name=fields.pop("name", "@someone"),
            **fields,
        )
        seal(keyring, row, "access_token", access)
        seal(keyring, row, "refresh_token", refresh)
        row.save(force_insert=True)
        return row

    return make


@pytest.fixture
def cli(db_url):
    """Run nexusctl in-process; returns the CliRunner result (stdout and stderr apart)."""
    from typer.testing import CliRunner

    from nexusctl.cli.main import app

    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def pg_database(postgres_url, monkeypatch):
    """The models bound to a fresh PostgreSQL database (PostgreSQL-only tests)."""
    from nexusctl.db.database import bind, open_database

    monkeypatch.setenv("DATABASE_URL", postgres_url)
    db = bind(open_database(postgres_url))
    db.connect(reuse_if_open=True)
    yield db
    db.close()
    db.close_all()
