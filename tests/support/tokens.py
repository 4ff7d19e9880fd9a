"""Bearer tokens (HS256 JWTs) as the daemon verifies them (JWT_SECRET, ``sub``, ``roles``, ``exp``)."""

from __future__ import annotations

import time

import jwt

from nexusctl import config

# The secret of the daemons tests/oauth and tests/fault start (support.stack).
JWT_SECRET = "oauth-suite-secret-" + "x" * 24


def configured_secret() -> str:
    """The JWT secret this test's environment configures: what an in-process daemon app verifies with."""
    return config.jwt_signing_secret(config.load()).get()


def mint(subject, *roles: str, ttl: int = 3600, secret: str = JWT_SECRET, algorithm: str = "HS256", **claims) -> str:
    """A token for ``subject`` with ``roles`` (none: no ``roles`` claim), expiring in ``ttl`` seconds
    (negative: already expired); ``claims`` add to or override the standard ones."""
    body = {"sub": str(subject), "exp": int(time.time()) + ttl}
    if roles:
        body["roles"] = list(roles)
    body.update(claims)
    return jwt.encode(body, secret, algorithm=algorithm)


def auth_header(subject, *roles: str, **options) -> dict[str, str]:
    """``{"Authorization": "Bearer <mint(...)>"}``."""
    return {"Authorization": f"Bearer {mint(subject, *roles, **options)}"}
