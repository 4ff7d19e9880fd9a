"""Re-encrypting stored secrets under the current key (`nexusctl keys rotate`).

Works in batches of rows ordered by id, selecting only values that are not
yet under the current key, so it is resumable: stop it anywhere, run it
again, and it carries on with what is left. Each value is rewritten only if
it still holds the ciphertext that was read (a concurrent change wins).
Pending OAuth flows in Redis (REDIS_URL) are rotated too, with a
compare-and-set that keeps their TTL: else dropping the old key would break
every connection started before the rotation.
"""

from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, field
from functools import reduce
from typing import Callable

from peewee import fn

from nexusctl.core.oauth_states import RedisStates
from nexusctl.crypto import Keyring
from nexusctl.db.database import database_proxy
from nexusctl.db.models import ALL_MODELS
from nexusctl.db.secrets import models_with_secrets, place_of
from nexusctl.errors import DecryptionFailed, KeyNotConfigured, RedisUnavailable
from nexusctl.redisconn import open_client

log = logging.getLogger(__name__)

BATCH_SIZE = 500


@dataclass
class RotationReport:
    key_id: str
    rewritten: int = 0  # values re-encrypted (or that would be, with dry_run)
    failed: int = 0  # values no configured key opens
    failures: list[str] = field(default_factory=list)  # first few messages, no secrets
    by_table: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "currentKeyId": self.key_id,
            "rewritten": self.rewritten,
            "failed": self.failed,
            "failures": self.failures,
            "byTable": self.by_table,
        }


def _stale(model, columns, keyring: Keyring):
    """Rows with at least one secret not under the current key."""
    prefix = keyring.current_prefix
    # SUBSTR compares exactly (LIKE/ILIKE would fold case on some engines).
    conditions = [
        getattr(model, c).is_null(False) & (fn.SUBSTR(getattr(model, c), 1, len(prefix)) != prefix) for c in columns
    ]
    return model.select(model.id, *[getattr(model, c) for c in columns]).where(reduce(operator.or_, conditions))


def count_stale(keyring: Keyring, models=ALL_MODELS) -> int:
    return sum(_stale(m, cols, keyring).count() for m, cols in models_with_secrets(models))


def rotate(
    keyring: Keyring,
    *,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    models=ALL_MODELS,
    progress: Callable[[int], None] | None = None,
) -> RotationReport:
    report = RotationReport(keyring.current_kid)
    for model, columns in models_with_secrets(models):
        table = model._meta.table_name
        last_id = None
        while True:
            query = _stale(model, columns, keyring).order_by(model.id).limit(batch_size)
            if last_id is not None:
                query = query.where(model.id > last_id)
            rows = list(query)
            if not rows:
                break
            with database_proxy.atomic():
                for row in rows:
                    report.by_table[table] = report.by_table.get(table, 0) + _rotate_row(
                        keyring, model, row, columns, report, dry_run
                    )
            last_id = rows[-1].id
            if progress:
                progress(len(rows))
    report.rewritten = sum(report.by_table.values())
    return report


REDIS_FLOWS = "oauth_states (Redis)"


def rotate_redis_flows(settings, keyring: Keyring, report: RotationReport, *, dry_run: bool = False) -> None:
    """Re-encrypt the pending OAuth flows kept in Redis; adds to ``report``."""
    # start-up: asyncio and redis load only to rotate the flows kept in Redis
    import asyncio

    from redis.exceptions import RedisError

    async def run() -> tuple[int, int]:
        client = open_client(settings.redis_url.get(), socket_timeout=5)
        try:
            return await RedisStates(keyring, client).rotate(dry_run=dry_run)
        finally:
            await client.aclose()

    try:
        rewritten, failed = asyncio.run(run())
    except RedisError as exc:
        raise RedisUnavailable(
            f"Redis (where pending OAuth flows live) is unreachable: {type(exc).__name__}; check REDIS_URL"
        ) from None
    if rewritten:
        report.by_table[REDIS_FLOWS] = rewritten
        report.rewritten += rewritten
    if failed:
        report.failed += failed
        report.failures.append(
            f"{failed} pending OAuth flow(s) in Redis are under no configured key (they expire within 10 minutes)"
        )


def _rotate_row(keyring, model, row, columns, report, dry_run) -> int:
    changes, guards = {}, [model.id == row.id]
    for column in columns:
        stored = getattr(row, column)
        if not keyring.needs_rotation(stored):
            continue
        place = place_of(row, column)
        try:
            plaintext = keyring.decrypt(stored, place)
        except DecryptionFailed as exc:
            report.failed += 1
            if len(report.failures) < 20:
                report.failures.append(
                    f"{place.table}.{place.column} of {place.row_id} is encrypted with key {exc.details['keyId']}, "
                    "which is not configured (add it to ENCRYPTION_OLD_KEYS)"
                    if isinstance(exc, KeyNotConfigured)
                    else exc.message
                )
            continue
        changes[getattr(model, column)] = keyring.encrypt(plaintext, place)
        guards.append(getattr(model, column) == stored)
    if not changes or dry_run:
        return len(changes)
    updated = model.update(changes).where(*guards).execute()
    return len(changes) if updated else 0
