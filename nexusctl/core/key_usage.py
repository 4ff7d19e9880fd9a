"""Which encryption keys the stored secrets are under, against the keys this process has.

During a key rotation a process still on the old configuration meets values
under a key it was never given. That is not a broken secret and not a provider
failure: the process leaves the work to one that has the key and says so, once
per key id (``warn_once``), and ``/ready`` and ``doctor`` report the mismatch
(``missing_key_ids``).

The stored form starts ``nx1.<kid>.``, so the key ids in use come from one
SUBSTR per secret column, without decrypting anything.
"""

from __future__ import annotations

import logging
import threading

from peewee import fn

from nexusctl.crypto import VERSION, Keyring, key_id_prefix, missing_key_message
from nexusctl.db.models import ALL_MODELS
from nexusctl.db.secrets import models_with_secrets
from nexusctl.errors import KeyNotConfigured

log = logging.getLogger(__name__)

_PREFIX = len(VERSION) + 1  # "nx1."
_KID = 8

_warned: set[str] = set()
_warned_lock = threading.Lock()


def missing_key_ids(keyring: Keyring, models=ALL_MODELS) -> set[str]:
    """Key ids that stored secrets are under and ``keyring`` lacks (empty when it opens everything).

    One query per secret column, returning only the foreign ids: the usual answer is no rows.
    """
    known = sorted(keyring.key_ids)
    missing: set[str] = set()
    for model, columns in models_with_secrets(models):
        for column in columns:
            field = getattr(model, column)
            kid = fn.SUBSTR(field, _PREFIX + 1, _KID)
            query = (
                model.select(kid.alias("kid"))
                .distinct()
                .where(field.is_null(False) & (fn.SUBSTR(field, 1, _PREFIX) == f"{VERSION}.") & kid.not_in(known))
            )
            missing.update(row for (row,) in query.tuples())
    return missing


def warn_once(kid: str, what: str) -> bool:
    """Log one plain warning per missing key id for this process; True the first time."""
    with _warned_lock:
        if kid in _warned:
            return False
        _warned.add(kid)
    log.warning(
        "%s: %s; until then this daemon leaves that work to daemons that have the key", what, missing_key_message(kid)
    )
    return True


def require_keys(keyring: Keyring, model, row_id, columns) -> None:
    """Raise KeyNotConfigured if a secret of the row is under a key ``keyring`` lacks (reads only the key ids):
    work that would fail on it is refused before it starts."""
    stored = model.select(*[getattr(model, c) for c in columns]).where(model.id == row_id).tuples().first() or ()
    for value in stored:
        kid = None if value is None else key_id_prefix(value)
        if kid is not None and kid not in keyring.key_ids:
            warn_once(kid, f"{model._meta.table_name} {row_id}")
            raise KeyNotConfigured(missing_key_message(kid), keyId=kid)
