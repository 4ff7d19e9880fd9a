"""The doctor's checks of what the settings point at: database, Redis, the key, the port.

Each takes the ``Loaded`` settings of ``nexusctl.core.doctor`` and returns
findings; each has a short timeout, so a doctor run against a dead network
still ends in seconds. The encryption check decrypts one stored value and
keeps only whether it worked: the plaintext is never returned or printed.
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

import peewee

from nexusctl import config
from nexusctl.config import redact_url
from nexusctl.core import doctor
from nexusctl.core.doctor import FAIL, OK, WARN, Finding, Loaded
from nexusctl.core.key_usage import missing_key_ids
from nexusctl.crypto import keyring_from_settings
from nexusctl.db import migrate
from nexusctl.db.database import bind, check_connection, open_database
from nexusctl.db.models import Integration, OAuthState, Webhook
from nexusctl.db.secrets import unseal
from nexusctl.errors import KeyNotConfigured, NexusError

NETWORK_TIMEOUT = 2.0
DAEMON_HOST = "127.0.0.1"  # `nexusctl daemon`'s default --host


def open_checked_database(loaded: Loaded) -> tuple[peewee.Database | None, list[Finding]]:
    """The database if it is reachable and migrated (else None), with the two findings."""
    refused = loaded.error_for("DATABASE_URL", "DATABASE_POOL_SIZE")
    if refused:
        return None, [
            Finding("database", FAIL, refused[1], f"fix {refused[0]} (README: Configuration)"),
            _not_checked("migrations", "the database"),
        ]
    settings = loaded.settings
    if settings is None:
        return None, [_not_checked("database", "the configuration")]
    if "DATABASE_URL" in config.missing_for_production(loaded.env):
        return None, [
            Finding(
                "database",
                FAIL,
                "DATABASE_URL: not set, and NODE_ENV=production has no default (the daemon refuses to start)",
                "set DATABASE_URL=postgresql://user@host:5432/dbname",
            ),
            _not_checked("migrations", "the database"),
        ]
    label = settings.redacted_database_url()
    url = settings.database_url.get()
    if settings.database_kind == "sqlite":
        path = unquote(urlsplit(url).path[1:])
        if path != ":memory:" and not Path(path).exists():
            return None, [
                Finding(
                    "database",
                    FAIL,
                    f"{label}: the file does not exist yet",
                    "run `nexusctl db migrate` (it creates the file), or fix DATABASE_URL",
                ),
                _not_checked("migrations", "the database"),
            ]
    db = open_database(url, 1)
    try:
        check_connection(db, label)
    except NexusError as exc:
        _close(db)
        return None, [
            Finding(
                "database", FAIL, exc.message, "start the database server, or fix DATABASE_URL (host, port, name, user)"
            ),
            _not_checked("migrations", "the database"),
        ]
    findings = [Finding("database", OK, f"{label} reachable")]
    rows = migrate.status(db)
    pending = [m.name for m in rows if m.known and m.applied_at is None]
    unknown = [m.name for m in rows if not m.known]
    if pending:
        known = sum(1 for m in rows if m.known)
        what = "no nexusctl schema yet" if len(pending) == known else f"{len(pending)} of {known} migrations pending"
        findings.append(Finding("migrations", FAIL, f"{what} ({', '.join(pending)})", "run `nexusctl db migrate`"))
        _close(db)
        return None, findings
    if unknown:
        findings.append(
            Finding(
                "migrations",
                WARN,
                f"applied by a newer nexusctl: {', '.join(unknown)}",
                "upgrade this nexusctl to the version that migrated the database",
            )
        )
    else:
        findings.append(Finding("migrations", OK, f"all {len(rows)} applied"))
    return db, findings


def check_encryption(loaded: Loaded, db: peewee.Database | None) -> Finding:
    refused = loaded.error_for("ENCRYPTION_KEY", "ENCRYPTION_OLD_KEYS")
    if refused:
        hint = (
            "set ENCRYPTION_KEY from your secret store (a new one for a new database: `nexusctl keys generate`)"
            if "required" in refused[1]
            else f"set {refused[0]} to base64 of 32 bytes (`nexusctl keys generate`)"
        )
        return Finding("encryption", FAIL, refused[1], hint)
    if loaded.settings is None or loaded.placeholder_key:
        return _not_checked("encryption", "the configuration")
    if db is None:
        return _not_checked("encryption", "the database")

    bind(db)
    keyring = keyring_from_settings(loaded.settings)
    source = loaded.settings.encryption_key_source
    sample = _one_stored_secret()
    if sample is None:
        return Finding("encryption", OK, f"key {keyring.current_kid} from {source}; no stored secret yet to try")
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
        return Finding(
            "encryption",
            FAIL,
            detail,
            "set ENCRYPTION_KEY to the key this data was written with (the old one goes in "
            "ENCRYPTION_OLD_KEYS during a rotation)",
        )

    missing = sorted(missing_key_ids(keyring))
    if missing:  # the sample opened, but other values are under keys these settings lack: a rotation under way
        return Finding(
            "encryption",
            FAIL,
            f"stored secrets are under key(s) {', '.join(missing)}, which these settings do not have "
            f"(they have {', '.join(sorted(keyring.key_ids))}): a daemon with them cannot use those values",
            "give every daemon the new ENCRYPTION_KEY and the previous key in ENCRYPTION_OLD_KEYS, then "
            "restart it (README: key rotation)",
        )
    return Finding("encryption", OK, f"key {keyring.current_kid} from {source} decrypts {table}.{column} of {row.id}")


def _one_stored_secret():
    """One row holding an encrypted value, by primary key (cheap on any table size)."""
    for model, column in ((Integration, "access_token"), (Webhook, "secret"), (OAuthState, "secret")):
        field = getattr(model, column)
        row = model.select(model.id, field).where(field.is_null(False)).order_by(model.id).limit(1).first()
        if row is not None:
            return row, column
    return None


def check_redis(loaded: Loaded) -> Finding:
    refused = loaded.error_for("REDIS_URL")
    if refused:
        return Finding("redis", FAIL, refused[1], "set REDIS_URL=redis://host:6379/0, or unset it to run without")
    settings = loaded.settings
    if settings is None:
        return _not_checked("redis", "the configuration")
    if settings.redis_url is None:
        if settings.is_production:  # allowed, but the spec requires Redis in production
            return Finding(
                "redis",
                WARN,
                "REDIS_URL not set in production: OAuth states and events stay in the database",
                "set REDIS_URL=redis://host:6379/0 (the spec requires Redis in production)",
            )
        return Finding("redis", OK, "not configured: OAuth states and events stay in the database")
    import redis

    label = redact_url(settings.redis_url.get())
    client = redis.Redis.from_url(
        settings.redis_url.get(), socket_connect_timeout=NETWORK_TIMEOUT, socket_timeout=NETWORK_TIMEOUT
    )
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return Finding(
            "redis",
            FAIL,
            f"cannot reach {label}: {reason}",
            "start Redis, fix REDIS_URL, or unset it to run without Redis",
        )
    finally:
        client.close()
    return Finding("redis", OK, f"{label} answers PING")


def check_daemon_port(loaded: Loaded) -> Finding:
    """PORT free for `nexusctl daemon`, or taken by a daemon answering /health."""
    refused = loaded.error_for("PORT")
    if refused:
        return Finding("daemon-port", FAIL, refused[1], "set PORT to a number from 1 to 65535")
    if loaded.settings is None:
        return _not_checked("daemon-port", "the configuration")
    port = loaded.settings.port
    address = f"{DAEMON_HOST}:{port}"
    probe = socket.socket()
    # As aiohttp binds: SO_REUSEADDR, so a port only in TIME_WAIT counts as free.
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((DAEMON_HOST, port))
        return Finding("daemon-port", OK, f"{address} is free for `nexusctl daemon` (no daemon running here)")
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            return Finding(
                "daemon-port",
                FAIL,
                f"cannot listen on {address}: {exc.strerror}",
                "pick a PORT above 1023, or run the daemon with the right to bind it",
            )
    finally:
        probe.close()
    if _daemon_answers(f"http://{address}/health"):
        return Finding("daemon-port", OK, f"a nexusctl daemon answers on {address}")
    return Finding(
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


def _not_checked(check: str, because: str) -> Finding:
    return Finding(check, WARN, f"not checked: {because} is not usable (see above)", "fix the failure above first")


def _close(db: peewee.Database) -> None:
    db.close()
    if hasattr(db, "close_all"):
        db.close_all()


def diagnose(env) -> list[Finding]:
    """Every check, in the order an operator would fix things."""
    loaded = doctor.load_settings(env)
    findings = doctor.check_config(loaded)
    db, database_findings = open_checked_database(loaded)
    try:
        findings += database_findings
        findings.append(check_encryption(loaded, db))
    finally:
        if db is not None:
            _close(db)
    findings.append(check_redis(loaded))
    findings += doctor.check_providers(loaded)
    findings += [doctor.check_url(loaded, "PUBLIC_URL"), doctor.check_url(loaded, "FRONTEND_URL")]
    findings.append(check_daemon_port(loaded))
    return findings
