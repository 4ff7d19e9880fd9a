"""AES-256-GCM keyring: fresh nonces, bound to their place, old keys still open."""

from __future__ import annotations

import base64
import os

import pytest

from nexusctl.crypto import NONCE_BYTES, Keyring, Place, key_id
from nexusctl.errors import DecryptionFailed

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
HERE = Place("integrations", "0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10", "access_token")


def _nonce(stored: str) -> bytes:
    body = stored.split(".", 2)[2]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))[:NONCE_BYTES]


def test_round_trip_and_format():
    ring = Keyring(KEY_A)
    stored = ring.encrypt("ya29.token-ü", HERE)
    assert stored.startswith(f"nx1.{key_id(KEY_A)}.")
    assert "token" not in stored
    assert ring.decrypt(stored, HERE) == "ya29.token-ü"


def test_nonce_is_never_reused_across_10k_encryptions():
    ring = Keyring(KEY_A)
    nonces = {_nonce(ring.encrypt("same plaintext", HERE)) for _ in range(10_000)}
    assert len(nonces) == 10_000


def test_same_plaintext_gives_different_ciphertexts():
    ring = Keyring(KEY_A)
    assert ring.encrypt("t", HERE) != ring.encrypt("t", HERE)


@pytest.mark.parametrize(
    "elsewhere",
    [
        Place("integrations", "11111111-2222-3333-4444-555555555555", "access_token"),  # another row
        Place("integrations", HERE.row_id, "refresh_token"),  # another column
        Place("webhooks", HERE.row_id, "access_token"),  # another table
    ],
)
def test_ciphertext_only_opens_where_it_was_written(elsewhere):
    ring = Keyring(KEY_A)
    stored = ring.encrypt("secret-token-value", HERE)
    with pytest.raises(DecryptionFailed) as info:
        ring.decrypt(stored, elsewhere)
    assert "secret-token-value" not in info.value.message
    assert stored not in info.value.message


def test_tampered_ciphertext_fails():
    ring = Keyring(KEY_A)
    stored = ring.encrypt("secret", HERE)
    flipped = stored[:-2] + ("A" if stored[-2] != "A" else "B") + stored[-1]
    with pytest.raises(DecryptionFailed):
        ring.decrypt(flipped, HERE)


def test_editing_the_key_id_fails_even_with_both_keys():
    ring = Keyring(KEY_A, [KEY_B])
    stored = ring.encrypt("secret", HERE)
    forged = stored.replace(key_id(KEY_A), key_id(KEY_B), 1)
    with pytest.raises(DecryptionFailed):
        ring.decrypt(forged, HERE)


def test_old_keys_decrypt_and_current_key_encrypts():
    old = Keyring(KEY_A)
    stored_old = old.encrypt("legacy", HERE)
    rotated = Keyring(KEY_B, [KEY_A])
    assert rotated.decrypt(stored_old, HERE) == "legacy"
    assert rotated.needs_rotation(stored_old)
    fresh = rotated.encrypt("new", HERE)
    assert fresh.startswith(rotated.current_prefix) and not rotated.needs_rotation(fresh)
    assert not rotated.needs_rotation(None)


def test_unknown_key_names_the_key_id_and_says_what_to_do():
    stored = Keyring(KEY_A).encrypt("secret", HERE)
    with pytest.raises(DecryptionFailed) as info:
        Keyring(KEY_B).decrypt(stored, HERE)
    assert key_id(KEY_A) in info.value.message
    assert "ENCRYPTION_OLD_KEYS" in info.value.message


@pytest.mark.parametrize("garbage", ["plaintext-token", "nx1.abc.def", "nx2.00000000.AAAA", ""])
def test_values_not_in_our_format_are_refused(garbage):
    with pytest.raises(DecryptionFailed):
        Keyring(KEY_A).decrypt(garbage, HERE)


def test_key_must_be_256_bits():
    with pytest.raises(ValueError):
        Keyring(os.urandom(16))


def test_repr_shows_key_ids_only():
    text = repr(Keyring(KEY_A, [KEY_B]))
    assert key_id(KEY_A) in text and KEY_A.hex() not in text
