"""The readiness checks, composed once: the database, its migrations, the encryption keys, Redis.

``GET /ready`` (nexusctl.daemon.health) and ``nexusctl doctor`` (nexusctl.core.doctor_services) both run
``compose`` and render its list: /ready as ``data.checks`` (each check's short ``state``) and one error line
naming every failure (``reason``), doctor as one line per check (``message`` and ``hint``). What differs is
only how each reaches the services: the daemon through its database threads, its Redis client and its
keyring; doctor through a database it opens from the settings and a Redis client of its own.

The order is the order an operator fixes things in: without a reachable, migrated database nothing is
learnt about the keys. No check returns or prints a secret: messages name hosts, row ids and key ids only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

import peewee

from nexusctl.db import migrate
from nexusctl.db.database import check_connection, describe_error

OK, WARN, FAIL = "ok", "warn", "fail"
MIGRATE_HINT = "run `nexusctl db migrate`"


@dataclass(frozen=True)
class Check:
    """One check's answer. Only ``fail`` makes the daemon not ready and doctor exit 7."""

    name: str
    outcome: str  # ok, warn or fail
    message: str  # what was found, one line
    hint: str = ""  # how to fix it; empty when ok
    state: str | None = "ok"  # the short form /ready lists under data.checks; None: /ready leaves it out
    reason: str = ""  # the daemon's words for a failure in /ready's error message (default: message)

    @property
    def failed(self) -> bool:
        return self.outcome == FAIL


def not_checked(name: str, because: str, state: str | None = None) -> Check:
    return Check(
        name,
        WARN,
        f"not checked: {because} is not usable (see above)",
        "fix the failure above first",
        state=state,
    )


def check_database(label: str, rows: list[migrate.MigrationStatus], error: BaseException | None = None) -> list[Check]:
    """The ``database`` and ``migrations`` checks from what ``read_status`` returned, or the error it raised
    (any failure to reach the database)."""
    if error is not None:
        message = getattr(error, "message", None) or f"cannot reach the database {label}: {describe_error(error)}"
        return [
            Check(
                "database",
                FAIL,
                message,
                "start the database server, or fix DATABASE_URL (host, port, name, user)",
                state="failing",
            ),
            not_checked("migrations", "the database", state="unknown"),
        ]
    checks = [Check("database", OK, f"{label} reachable")]
    pending = [m.name for m in rows if m.known and m.applied_at is None]
    unknown = [m.name for m in rows if not m.known]
    if pending:
        known = sum(1 for m in rows if m.known)
        what = "no nexusctl schema yet" if len(pending) == known else f"{len(pending)} of {known} migrations pending"
        checks.append(
            Check(
                "migrations",
                FAIL,
                f"{what} ({', '.join(pending)})",
                MIGRATE_HINT,
                state=f"{len(pending)} pending",
                reason=f"{len(pending)} pending, {MIGRATE_HINT}",
            )
        )
    elif unknown:  # still usable: the daemon stays ready
        checks.append(
            Check(
                "migrations",
                WARN,
                f"applied by a newer nexusctl: {', '.join(unknown)}",
                "upgrade this nexusctl to the version that migrated the database",
            )
        )
    else:
        checks.append(Check("migrations", OK, f"all {len(rows)} applied"))
    return checks


def check_keys(missing: set[str] | frozenset[str], have: set[str] | frozenset[str], ok: str) -> Check:
    """The ``encryption`` check from the key ids stored secrets are under and these settings lack."""
    if not missing:
        return Check("encryption", OK, ok)
    ids = ", ".join(sorted(missing))
    return Check(
        "encryption",
        FAIL,
        f"stored secrets are under key(s) {ids}, which these settings do not have "
        f"(they have {', '.join(sorted(have))}): a daemon with them cannot use those values",
        "give every daemon the new ENCRYPTION_KEY and the previous key in ENCRYPTION_OLD_KEYS, then "
        "restart it (README: key rotation)",
        state=f"missing key(s) {ids}",
        reason=f"stored secrets are under key(s) {ids} that this daemon does not have; restart it with the new "
        "ENCRYPTION_KEY and the previous key in ENCRYPTION_OLD_KEYS",
    )


def check_redis(label: str | None, error: BaseException | None = None, *, production: bool = False) -> Check:
    """The ``redis`` check: ``label`` None when REDIS_URL is not set, ``error`` what PING raised if it failed."""
    if label is None:
        if production:  # allowed, but the spec requires Redis in production
            return Check(
                "redis",
                WARN,
                "REDIS_URL not set in production: OAuth states and events stay in the database",
                "set REDIS_URL=redis://host:6379/0 (the spec requires Redis in production)",
                state="not configured",
            )
        return Check(
            "redis", OK, "not configured: OAuth states and events stay in the database", state="not configured"
        )
    if error is not None:  # any failure means "not usable"
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return Check(
            "redis",
            FAIL,
            f"cannot reach {label}: {reason}",
            "start Redis, fix REDIS_URL, or unset it to run without Redis",
            state="failing",
            reason=f"unreachable ({type(error).__name__})",
        )
    return Check("redis", OK, f"{label} answers PING")


def read_status(db: peewee.Database, label: str) -> list[migrate.MigrationStatus]:
    """Connect (one clear line if that fails) and read which migrations are applied."""
    check_connection(db, label)
    return migrate.status(db)


def probe_database(db: peewee.Database, label: str) -> list[Check]:
    """``read_status`` and ``check_database`` in one call, in this thread."""
    try:
        return check_database(label, read_status(db, label))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database is the answer
        return check_database(label, [], exc)


async def compose(
    database: Callable[[], Awaitable[list[Check]]],
    encryption: Callable[[bool], Awaitable[Check]],
    redis: Callable[[], Awaitable[Check]],
) -> list[Check]:
    """database, migrations, encryption, redis, in that order; ``encryption(usable)`` is told whether the
    database was reachable and migrated (else it can only say it checked nothing)."""
    checks = list(await database())
    usable = len(checks) == 2 and not any(c.failed for c in checks)
    checks.append(await encryption(usable))
    checks.append(await redis())
    return checks
