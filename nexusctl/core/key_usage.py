"""Which encryption keys the stored secrets are under, against the keys this process has.

During a key rotation a process still on the old configuration meets values
under a key it was never given. That is not a broken secret and not a provider
failure: the process leaves the work to one that has the key and says so, once
per key id (``warn_once``), and ``/ready`` and ``doctor`` report the mismatch
(``KeySweep`` for the daemon's /ready, ``missing_key_ids`` for doctor).

The stored form starts ``nx1.<kid>.``, so the key ids in use come from one
SUBSTR per secret column, without decrypting anything. ``missing_key_ids``
reads every row (complete, for a one-off doctor run); ``KeySweep`` reads at
most ``SWEEP_ROWS`` rows of each table per step, by primary key from where
the last step stopped, so a probe every few seconds costs the same on any
table size.
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

SWEEP_ROWS = 2000  # rows of each table with secrets that one KeySweep step reads

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


class KeySweep:
    """The key ids stored secrets are under, learnt a bounded step at a time.

    Each ``step`` reads the key-id prefixes of at most ``rows`` rows of each table with secrets, in primary
    key order (the primary key index: no scan), carrying on from where the last step stopped and starting
    over after the last row. The answer is what the last complete pass saw plus what the current one has seen
    so far: a table of up to ``rows`` rows is read whole every step, as ``missing_key_ids`` would; a bigger
    one is covered in ``ceil(n / rows)`` steps (a pass): a key id that appears is noticed within one pass,
    one that goes away (``keys rotate`` finished) within two.
    """

    def __init__(self, models=ALL_MODELS, rows: int = SWEEP_ROWS):
        self._tables = list(models_with_secrets(models))
        self._rows = rows
        self._lock = threading.Lock()  # two probes at once must not interleave their passes
        self._after: dict = {}  # model -> the last primary key read in this pass (absent: from the start)
        self._seen: dict = {}  # model -> key ids seen in this pass
        self._passed: dict = {}  # model -> key ids of the last complete pass

    def step(self) -> set[str]:
        """Read the next rows of every table with secrets; the key ids in use as far as known."""
        width = _PREFIX + _KID + 1  # "nx1.<kid>."
        with self._lock:
            for model, columns in self._tables:
                query = model.select(model.id, *[fn.SUBSTR(getattr(model, c), 1, width) for c in columns])
                if model in self._after:
                    query = query.where(model.id > self._after[model])
                rows = list(query.order_by(model.id).limit(self._rows).tuples())
                seen = self._seen.setdefault(model, set())
                seen.update(kid for row in rows for value in row[1:] if value and (kid := key_id_prefix(value)))
                if len(rows) < self._rows:  # the end of the table: the pass is complete
                    self._passed[model], self._seen[model] = seen, set()
                    self._after.pop(model, None)
                else:
                    self._after[model] = rows[-1][0]
            return set().union(*self._passed.values(), *self._seen.values())

    def missing(self, keyring: Keyring) -> set[str]:
        """Key ids in use, as far as known after one more step, that ``keyring`` lacks."""
        return self.step() - set(keyring.key_ids)


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
