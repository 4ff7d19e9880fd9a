"""Sealing and opening the encrypted columns of a row.

The associated data is the row's table, id and column, so a ciphertext only
opens in the place it was written for.
"""

from __future__ import annotations

import functools
import uuid
from typing import Iterator

import peewee

from nexusctl.crypto import Keyring, Place
from nexusctl.db.fields import EncryptedTextField


def place_of(row: peewee.Model, column: str) -> Place:
    row_id = row.id
    # The id's canonical text; a UUID already is one (parsed again, it cost ~4 µs a seal or unseal).
    text = str(row_id) if type(row_id) is uuid.UUID else str(uuid.UUID(str(row_id)))
    return Place(row._meta.table_name, text, column)


def seal(keyring: Keyring, row: peewee.Model, column: str, plaintext: str | None) -> None:
    """Set ``row.<column>`` to the ciphertext of ``plaintext`` (None clears it)."""
    _check_secret_column(row, column)
    value = None if plaintext is None else keyring.encrypt(plaintext, place_of(row, column))
    setattr(row, column, value)


def unseal(keyring: Keyring, row: peewee.Model, column: str) -> str | None:
    """The plaintext of ``row.<column>``; raises DecryptionFailed if it won't open."""
    _check_secret_column(row, column)
    stored = getattr(row, column)
    return None if stored is None else keyring.decrypt(stored, place_of(row, column))


def secret_columns(model: type[peewee.Model]) -> list[str]:
    return [f.name for f in model._meta.sorted_fields if isinstance(f, EncryptedTextField)]


def public_fields(model: type[peewee.Model]) -> list[peewee.Field]:
    """Every column but the encrypted ones: what reads that show data should load."""
    return [f for f in model._meta.sorted_fields if not isinstance(f, EncryptedTextField)]


def models_with_secrets(models) -> Iterator[tuple[type[peewee.Model], list[str]]]:
    for model in models:
        columns = secret_columns(model)
        if columns:
            yield model, columns


@functools.lru_cache(maxsize=None)
def _secret_names(model: type[peewee.Model]) -> frozenset:
    return frozenset(secret_columns(model))  # once per model: this check runs on every seal and unseal


def _check_secret_column(row: peewee.Model, column: str) -> None:
    if column not in _secret_names(type(row)):
        raise ValueError(f"{type(row).__name__}.{column} is not an encrypted column")
