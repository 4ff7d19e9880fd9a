"""AES-256-GCM encryption of stored secrets, with a keyring for rotation.

Stored form (ASCII, so it fits a text column on every database):

    nx1.<kid>.<base64url(nonce || ciphertext || tag)>

- ``nx1`` is the format version; ``kid`` is 8 hex characters identifying the
  key (derived from the key, so operators never have to name keys).
- The nonce is 96 random bits, fresh for every value.
- The associated data binds the value to its place: ``nx1.<kid>|table|row|column``.
  A ciphertext copied into another row or column, or with its key id edited,
  fails to decrypt instead of yielding someone else's token.

The readable ``nx1.<kid>.`` prefix also lets key rotation find the values
still under an old key with a plain ``NOT LIKE`` filter.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from typing import Iterable

from nexusctl.config import DEV_KEY_FILE, decode_key
from nexusctl.errors import ConfigError, DecryptionFailed, KeyNotConfigured

VERSION = "nx1"
NONCE_BYTES = 12


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key; reveals nothing usable about it."""
    return hashlib.sha256(b"nexusctl key id\x00" + key).hexdigest()[:8]


@dataclass(frozen=True)
class Place:
    """Where a secret lives: it becomes the associated data."""

    table: str
    row_id: str
    column: str

    def aad(self, kid: str) -> bytes:
        return f"{VERSION}.{kid}|{self.table}|{self.row_id}|{self.column}".encode()


class Keyring:
    """The current key encrypts; every configured key decrypts."""

    def __init__(self, current: bytes, older: Iterable[bytes] = ()) -> None:
        if len(current) != 32:
            raise ValueError("AES-256 needs a 32-byte key")
        # Imported here, for start-up speed: commands that only read rows (`integrations list`) start without it.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.current_kid = key_id(current)
        self._ciphers = {self.current_kid: AESGCM(current)}
        for key in older:
            self._ciphers.setdefault(key_id(key), AESGCM(key))

    def __repr__(self) -> str:
        return f"Keyring(current={self.current_kid!r}, keys={sorted(self._ciphers)!r})"

    @property
    def key_ids(self) -> frozenset[str]:
        """The ids of every key this keyring opens (current and old)."""
        return frozenset(self._ciphers)

    @property
    def current_prefix(self) -> str:
        """The prefix every value encrypted under the current key starts with."""
        return f"{VERSION}.{self.current_kid}."

    def encrypt(self, plaintext: str, place: Place) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.current_kid].encrypt(nonce, plaintext.encode("utf-8"), place.aad(self.current_kid))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{self.current_prefix}{body}"

    def decrypt(self, stored: str, place: Place) -> str:
        kid = self.key_id_of(stored, place)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise KeyNotConfigured(missing_key_message(kid), keyId=kid)
        # start-up: cryptography loads only when a key is used
        from cryptography.exceptions import InvalidTag

        body = stored.split(".", 2)[2]
        try:
            blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], place.aad(kid))
            return plain.decode("utf-8")
        except (InvalidTag, ValueError):
            raise DecryptionFailed(
                f"{place.table}.{place.column} of {place.row_id} failed authentication "
                "(wrong key, or the value was altered or moved from another row)"
            ) from None

    def key_id_of(self, stored: str, place: Place) -> str:
        parts = stored.split(".", 2)
        if len(parts) != 3 or parts[0] != VERSION or len(parts[1]) != 8:
            raise DecryptionFailed(f"{place.table}.{place.column} of {place.row_id} is not in a known encrypted format")
        return parts[1]

    def needs_rotation(self, stored: str | None) -> bool:
        return stored is not None and not stored.startswith(self.current_prefix)


def missing_key_message(kid: str) -> str:
    """What to do about a value under a key this process lacks (no table or row names: it reaches API clients)."""
    return (
        f"a stored secret is under encryption key {kid}, which this process does not have (a key rotation is "
        "under way): restart it with the new ENCRYPTION_KEY and the previous key in ENCRYPTION_OLD_KEYS "
        "(README: key rotation)"
    )


def key_id_prefix(stored: str) -> str | None:
    """The key id a stored value names, without checking it further (None if it is not in our format)."""
    parts = stored.split(".", 2)
    return parts[1] if len(parts) == 3 and parts[0] == VERSION and len(parts[1]) == 8 else None


def keyring_from_settings(settings, *, extra: Iterable[bytes] = ()) -> Keyring:
    """Build the keyring from the validated settings (current key + old keys, + ``extra`` old keys)."""
    current = decode_key(settings.encryption_key.get(), "ENCRYPTION_KEY")
    older = [decode_key(k.get(), "ENCRYPTION_OLD_KEYS") for k in settings.old_encryption_keys]
    return Keyring(current, [*older, *extra])


def development_key_left_behind(settings) -> tuple[bytes, str] | None:
    """(key, path) of the development key file ``<data dir>/encryption.key`` when ENCRYPTION_KEY is set instead
    and names another key: what the secrets written before ENCRYPTION_KEY was set are under (the README's dev
    set-up, then its rotation recipe). None when there is no such file, or it holds no valid key. Never creates it.
    """
    if settings.encryption_key_source != "ENCRYPTION_KEY":
        return None
    path = settings.data_dir / DEV_KEY_FILE
    try:
        key = decode_key(path.read_text(), f"ENCRYPTION_KEY (from {path})")
    except (OSError, UnicodeDecodeError, ConfigError):
        return None
    if key == decode_key(settings.encryption_key.get(), "ENCRYPTION_KEY"):
        return None
    return key, str(path)
