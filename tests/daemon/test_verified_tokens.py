"""The daemon remembers tokens it verified (nexusctl.daemon.auth.TokenVerifier): never past their exp."""

from __future__ import annotations

import time

import jwt
import pytest

from nexusctl import config
from nexusctl.daemon import auth
from nexusctl.errors import Unauthorized

SECRET = "s" * 40


@pytest.fixture
def verifier(tmp_path):
    return auth.TokenVerifier(config.load({"NEXUS_DATA_DIR": str(tmp_path), "JWT_SECRET": SECRET}))


def token(exp: float, sub="0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10", secret=SECRET) -> str:
    return "Bearer " + jwt.encode({"sub": sub, "exp": int(exp)}, secret, algorithm="HS256")


def test_a_remembered_token_is_refused_once_it_expires(verifier, monkeypatch):
    exp = time.time() + 60
    good = token(exp)
    assert str(verifier.verify(good).user_id) == "0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10"
    assert verifier.verify(good).user_id is not None  # remembered
    monkeypatch.setattr(auth.time, "time", lambda: exp + auth.LEEWAY_SECONDS + 1)
    monkeypatch.setattr(jwt.api_jwt, "datetime", _Later(exp + auth.LEEWAY_SECONDS + 1), raising=False)
    with pytest.raises(Unauthorized, match="expired"):
        verifier.verify(good)


def test_remembering_one_token_never_admits_another(verifier):
    exp = time.time() + 60
    assert verifier.verify(token(exp)).user_id is not None
    forged = token(exp, secret="x" * 40)
    with pytest.raises(Unauthorized):
        verifier.verify(forged)
    header, payload, signature = token(exp)[len("Bearer ") :].split(".")
    with pytest.raises(Unauthorized):  # the same claims under a changed signature
        verifier.verify(f"Bearer {header}.{payload}.{signature[:-2]}AA")


class _Later:
    """PyJWT's ``datetime`` with ``now`` moved to ``at`` (epoch seconds)."""

    def __init__(self, at: float) -> None:
        import datetime as dt

        self._dt, self._at = dt, at

    def now(self, tz=None):
        return self._dt.datetime.fromtimestamp(self._at, tz)

    def __getattr__(self, name):
        return getattr(self._dt.datetime, name)
