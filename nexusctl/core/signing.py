"""Standard Webhooks signing (spec v1.0.0): what receivers verify.

Headers: ``webhook-id`` (the delivery id, the same on every retry, receivers
deduplicate on it), ``webhook-timestamp`` (unix seconds of this attempt) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``,
one entry per active secret, space separated (two during a rotation).
Secrets are ``whsec_`` + base64 of random bytes; the bytes are the HMAC key.
"""

from __future__ import annotations

import base64
import functools
import hmac
import os

PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec allows 24-64


def new_secret() -> str:
    return PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode("ascii")


@functools.lru_cache(maxsize=1024)
def key_of(secret: str) -> bytes:
    text = secret[len(PREFIX) :] if secret.startswith(PREFIX) else secret
    return base64.b64decode(text + "=" * (-len(text) % 4))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    # hmac.digest: OpenSSL's one-shot HMAC (hmac.new builds a Python object and two hash copies per call);
    # the key's bytes are decoded once per secret (key_of is cached).
    digest = hmac.digest(key_of(secret), signed, "sha256")
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secrets: list[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, message_id, timestamp, body) for s in secrets),
        "content-type": "application/json",
    }
