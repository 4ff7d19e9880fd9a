"""The doctor's checks of what the settings point at: database, Redis, the key, the port.

Each takes the ``Loaded`` settings of ``nexusctl.core.doctor`` and returns
findings; each has a short timeout, so a doctor run against a dead network
still ends in seconds. The encryption check decrypts one stored value and
keeps only whether it worked: the plaintext is never returned or printed.
"""

from __future__ import annotations

import asyncio
import errno
import http.client
import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

import peewee

from nexusctl import config
from nexusctl.config import redact_url
from nexusctl.core import doctor, readiness
from nexusctl.core.doctor import Loaded
from nexusctl.core.key_usage import missing_key_ids
from nexusctl.core.readiness import FAIL, OK, Check, not_checked
from nexusctl.crypto import keyring_from_settings
from nexusctl.db.database import bind, open_database
from nexusctl.db.models import Integration, OAuthState, Webhook
from nexusctl.db.secrets import unseal
from nexusctl.errors import KeyNotConfigured, NexusError

NETWORK_TIMEOUT = 2.0
DAEMON_HOST = "127.0.0.1"  # `nexusctl daemon`'s default --host


def open_checked_database(loaded: Loaded) -> tuple[peewee.Database | None, list[Check]]:
    """The database if it is reachable and migrated (else None), with the two findings."""
    refused = loaded.error_for("DATABASE_URL", "DATABASE_POOL_SIZE")
    if refused:
        return None, [
            Check("database", FAIL, refused[1], f"fix {refused[0]} (README: Configuration)"),
            not_checked("migrations", "the database"),
        ]
    settings = loaded.settings
    if settings is None:
        return None, [not_checked("database", "the configuration")]
    if "DATABASE_URL" in config.missing_for_production(loaded.env):
        return None, [
            Check(
                "database",
                FAIL,
                "DATABASE_URL: not set, and NODE_ENV=production has no default (the daemon refuses to start)",
                "set DATABASE_URL=postgresql://user@host:5432/dbname",
            ),
            not_checked("migrations", "the database"),
        ]
    label = settings.redacted_database_url()
    url = settings.database_url.get()
    if settings.database_kind == "sqlite":
        path = unquote(urlsplit(url).path[1:])
        if path != ":memory:" and not Path(path).exists():
            if blocked := _uncreatable(Path(path)):
                return None, [
                    Check("database", FAIL, f"{label}: the file cannot be created: {blocked}", "fix DATABASE_URL"),
                    not_checked("migrations", "the database"),
                ]
            return None, [
                Check(
                    "database",
                    FAIL,
                    f"{label}: the file does not exist yet",
                    "run `nexusctl db migrate` (it creates the file), or fix DATABASE_URL",
                ),
                not_checked("migrations", "the database"),
            ]
    db = open_database(url, 1)
    findings = readiness.probe_database(db, label)
    if any(f.failed for f in findings):
        _close(db)
        return None, findings
    return db, findings


def _uncreatable(path: Path) -> str | None:
    """Why ``nexusctl db migrate`` could not create the file at ``path``, as far as can be told without trying:
    the nearest existing directory above it is a file, or not one this user may write in. None if it looks fine."""
    above = path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        return f"{above} is not a directory"
    if not os.access(above, os.W_OK | os.X_OK):
        return f"{above} is not writable by this user"
    return None


def check_encryption(loaded: Loaded, db: peewee.Database | None) -> Check:
    refused = loaded.error_for("ENCRYPTION_KEY", "ENCRYPTION_OLD_KEYS")
    if refused:
        hint = (
            "set ENCRYPTION_KEY from your secret store (a new one for a new database: `nexusctl keys generate`)"
            if "required" in refused[1]
            else f"set {refused[0]} to base64 of 32 bytes (`nexusctl keys generate`)"
        )
        return Check("encryption", FAIL, refused[1], hint)
    if loaded.settings is None or loaded.placeholder_key:
        return not_checked("encryption", "the configuration")
    if db is None:
        return not_checked("encryption", "the database")

    bind(db)
    keyring = keyring_from_settings(loaded.settings)
    source = loaded.settings.encryption_key_source
    sample = _one_stored_secret()
    if sample is None:
        return Check("encryption", OK, f"key {keyring.current_kid} from {source}; no stored secret yet to try")
    row, column = sample

    table = row._meta.table_name
    try:
        unseal(keyring, row, column)  # the plaintext is dropped at once
    except NexusError as exc:
        detail = (
            f"{table}.{column} of {row.id} is encrypted with key {exc.details['keyId']}, which is not configured"
            if isinstance(exc, KeyNotConfigured)
            else exc.message
        )
        return Check(
            "encryption",
            FAIL,
            detail,
            "set ENCRYPTION_KEY to the key this data was written with (the old one goes in "
            "ENCRYPTION_OLD_KEYS during a rotation)",
        )

    return readiness.check_keys(
        missing_key_ids(keyring),
        keyring.key_ids,
        f"key {keyring.current_kid} from {source} decrypts {table}.{column} of {row.id}",
    )


def _one_stored_secret():
    """One row holding an encrypted value, by primary key (cheap on any table size)."""
    for model, column in ((Integration, "access_token"), (Webhook, "secret"), (OAuthState, "secret")):
        field = getattr(model, column)
        row = model.select(model.id, field).where(field.is_null(False)).order_by(model.id).limit(1).first()
        if row is not None:
            return row, column
    return None


def check_redis(loaded: Loaded) -> Check:
    refused = loaded.error_for("REDIS_URL")
    if refused:
        return Check("redis", FAIL, refused[1], "set REDIS_URL=redis://host:6379/0, or unset it to run without")
    settings = loaded.settings
    if settings is None:
        return not_checked("redis", "the configuration")
    if settings.redis_url is None:
        return readiness.check_redis(None, production=settings.is_production)
    import redis  # here, not at the top: start-up speed of the other commands (redis is only needed here)

    label = redact_url(settings.redis_url.get())
    client = redis.Redis.from_url(
        settings.redis_url.get(), socket_connect_timeout=NETWORK_TIMEOUT, socket_timeout=NETWORK_TIMEOUT
    )
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable": the core words it
        return readiness.check_redis(label, exc)
    finally:
        client.close()
    return readiness.check_redis(label)


def check_daemon_port(loaded: Loaded) -> Check:
    """PORT free for `nexusctl daemon`, or taken by a daemon answering /health."""
    refused = loaded.error_for("PORT")
    if refused:
        return Check("daemon-port", FAIL, refused[1], "set PORT to a number from 1 to 65535")
    if loaded.settings is None:
        return not_checked("daemon-port", "the configuration")
    port = loaded.settings.port
    address = f"{DAEMON_HOST}:{port}"
    probe = socket.socket()
    # As aiohttp binds: SO_REUSEADDR, so a port only in TIME_WAIT counts as free.
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((DAEMON_HOST, port))
        return Check("daemon-port", OK, f"{address} is free for `nexusctl daemon` (no daemon running here)")
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            return Check(
                "daemon-port",
                FAIL,
                f"cannot listen on {address}: {exc.strerror}",
                "pick a PORT above 1023, or run the daemon with the right to bind it",
            )
    finally:
        probe.close()
    if _daemon_answers(f"http://{address}/health"):
        return Check("daemon-port", OK, f"a nexusctl daemon answers on {address}")
    return Check(
        "daemon-port",
        FAIL,
        f"{address} is taken by something that is not the nexusctl daemon",
        f"stop what listens on port {port} (`ss -ltnp 'sport = :{port}'`), or set PORT to a free port",
    )


def _daemon_answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via HTTP_PROXY
    try:
        with opener.open(url, timeout=NETWORK_TIMEOUT) as reply:
            body = json.loads(reply.read(4096))
    except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError):
        return False
    return isinstance(body, dict) and body.get("success") is True and (body.get("data") or {}).get("status") == "ok"


def _close(db: peewee.Database) -> None:
    db.close()
    if hasattr(db, "close_all"):
        db.close_all()


def diagnose(env) -> list[Check]:
    """Every check, in the order an operator would fix things (the readiness checks composed by the core)."""
    loaded = doctor.load_settings(env)
    findings = doctor.check_config(loaded)
    opened: list[peewee.Database | None] = [None]

    async def database() -> list[Check]:
        opened[0], database_findings = open_checked_database(loaded)
        return database_findings

    async def encryption(usable: bool) -> Check:
        return check_encryption(loaded, opened[0] if usable else None)

    async def redis() -> Check:
        return check_redis(loaded)

    try:
        findings += asyncio.run(readiness.compose(database, encryption, redis))
    finally:
        if opened[0] is not None:
            _close(opened[0])
    findings += doctor.check_providers(loaded)
    findings += [doctor.check_url(loaded, "PUBLIC_URL"), doctor.check_url(loaded, "FRONTEND_URL")]
    findings.append(check_daemon_port(loaded))
    return findings
