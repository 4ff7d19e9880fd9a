"""Who is calling: bearer JWTs from the user service.

HS256 with JWT_SECRET, or RS256/ES256 with JWT_PUBLIC_KEY; ``exp`` is
required; JWT_ISSUER / JWT_AUDIENCE are checked when set. The user is
``sub``; a ``roles`` claim (a list of strings) containing ``admin`` or
``service`` reaches every user's data, and only then may ``sub`` be a name
rather than a user id (a service token: ``sub=content-service``).

Strict where lenience would let one token stand for another: ``sub`` is a
user only in the canonical spelling (lowercase, hyphenated), any other UUID
spelling (uppercase, braces, no hyphens, ``urn:uuid:``) is refused, as is a
``roles`` string; a token carrying ``iat`` whose ``exp - iat`` exceeds
JWT_MAX_AGE (default 24 h) is refused. A token without ``iat`` is still
accepted (some user services omit it): only its ``exp`` bounds it.

PyJWT does the verification (algorithm pinning, exp/iss/aud), which is
exactly the code we should not write ourselves.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import dataclass

import jwt

from nexusctl.config import Settings, jwt_signing_secret
from nexusctl.errors import ConfigError, Forbidden, Unauthorized

ELEVATED_ROLES = frozenset({"admin", "service"})
LEEWAY_SECONDS = 30
VERIFIED_MAX = 4096  # verified tokens remembered per process (the oldest goes first)
MALFORMED_TOKEN = "invalid token: not a well-formed JWT"  # one fixed answer, whatever the decoder said


@dataclass(frozen=True)
class Principal:
    subject: str
    user_id: uuid.UUID | None
    roles: frozenset[str]

    @property
    def elevated(self) -> bool:
        return bool(self.roles & ELEVATED_ROLES)

    def owns(self, user_id) -> bool:
        return self.elevated or (self.user_id is not None and self.user_id == user_id)

    def require_user(self, user_id) -> None:
        """For routes naming a user: only that user or an elevated role."""
        if not self.owns(user_id):
            raise Forbidden("you may only act on your own integrations")


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        if settings.jwt_public_key:
            # start-up: cryptography loads only with JWT_PUBLIC_KEY set (the CLI's `token mint` imports this)
            from cryptography.hazmat.primitives.asymmetric import rsa
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            self._key = load_pem_public_key(settings.jwt_public_key.encode())
            self._algorithms = ["RS256"] if isinstance(self._key, rsa.RSAPublicKey) else ["ES256"]
        else:
            self._key = jwt_signing_secret(settings).get()
            self._algorithms = ["HS256"]
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._max_age = settings.jwt_max_age
        # Tokens verified already (by SHA-256, never the token itself) -> (principal, until when it is accepted):
        # a caller sends the same token again and again, and PyJWT's decode was ~9% of a proxied call's CPU. A
        # token is only ever accepted until its own exp (+ the same leeway decode allows); nothing else about
        # a verified token can change (the key is fixed for the process's life).
        self._verified: dict[bytes, tuple[Principal, float]] = {}

    def verify_headers(self, headers) -> Principal:
        """``verify`` of a request's one Authorization header. Two are ambiguous (the first was used, where a
        proxy in front may have checked the other): refused, whatever they hold."""
        given = headers.getall("Authorization", [])
        if len(given) > 1:
            raise Unauthorized("more than one Authorization header: send one (Authorization: Bearer <jwt>)")
        return self.verify(given[0] if given else None)

    def verify(self, header: str | None) -> Principal:
        if not header:
            raise Unauthorized("missing bearer token (Authorization: Bearer <jwt>)")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be `Bearer <jwt>`")
        key = hashlib.sha256(token.strip().encode()).digest()
        known = self._verified.get(key)
        if known is not None and time.time() < known[1]:
            return known[0]
        principal, exp = self._decode(token)
        if len(self._verified) >= VERIFIED_MAX:
            self._verified.pop(next(iter(self._verified)))  # the oldest
        self._verified[key] = (principal, exp + LEEWAY_SECONDS)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token.strip(),
                self._key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidSignatureError:  # a DecodeError to PyJWT, but a well-formed JWT signed with another key
            raise Unauthorized("invalid token: the signature does not verify") from None
        except jwt.DecodeError as exc:
            if _NUMERIC_DATE_CLAIM.search(str(exc)):  # a signed token whose exp or nbf PyJWT cannot read as a number
                raise Unauthorized(_NUMERIC_DATE_MESSAGE) from None
            # Not even a JWT (bad base64, a header that is not JSON): PyJWT's message would quote its
            # decoder's ("'utf-8' codec can't decode byte 0xff...", "Expecting value: line 1...").
            raise Unauthorized(MALFORMED_TOKEN) from None
        except jwt.InvalidTokenError as exc:
            # PyJWT's messages name the failed check, never the token itself.
            raise Unauthorized(f"invalid token: {exc}") from None
        _check_lifetime(claims, self._max_age)
        return _principal(claims), float(claims["exp"])


# exp, iat and nbf are NumericDates (RFC 7519 2): JSON numbers of seconds. PyJWT checks them with int(), which
# also takes "1765000000", true and 1.5e9; a string got past it and then failed our arithmetic (a 500).
_NUMERIC_DATES = ("exp", "iat", "nbf")
_NUMERIC_DATE_MAX = 253402300799  # 9999-12-31T23:59:59Z: the last second a date can show
_NUMERIC_DATE_CLAIM = re.compile(r"\((exp|iat|nbf)\)")
_NUMERIC_DATE_MESSAGE = "invalid token: exp, iat and nbf must be JSON numbers of seconds since 1970 (NumericDate)"


def _check_numeric_dates(claims: dict) -> None:
    for name in _NUMERIC_DATES:
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Unauthorized(
                f"invalid token: {name} must be a JSON number of seconds since 1970 (NumericDate), not {_kind(value)}"
            )
        if not (0 <= value <= _NUMERIC_DATE_MAX):  # NaN compares false too; a huge int never becomes a float
            raise Unauthorized(f"invalid token: {name} must be a date between 1970 and 9999 in seconds (NumericDate)")


def _kind(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), "null")


def _check_lifetime(claims: dict, max_age: float) -> None:
    _check_numeric_dates(claims)
    iat, exp = claims.get("iat"), claims["exp"]  # numbers (iat when present): checked just above
    if iat is not None and exp - iat > max_age:
        raise Unauthorized(
            f"invalid token: its lifetime (exp - iat = {int(exp - iat)} s) exceeds JWT_MAX_AGE ({int(max_age)} s)"
        )


def _principal(claims: dict) -> Principal:
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized("invalid token: roles must be a list of strings")
    subject = claims["sub"]
    if not isinstance(subject, str):
        raise Unauthorized("invalid token: sub must be a string")
    try:
        user_id = uuid.UUID(subject)
    except ValueError:
        user_id = None
    if user_id is not None and str(user_id) != subject:
        # Another spelling of a user id (uppercase, braces, urn:uuid:...) is not that user.
        raise Unauthorized("invalid token: sub must be a user id in canonical form (lowercase, hyphenated)")
    principal = Principal(subject, user_id, frozenset(roles))
    if user_id is None and not principal.elevated:
        raise Unauthorized("invalid token: sub must be a user id (UUID)")
    return principal


def mint(settings: Settings, *, subject: str, roles: list[str], ttl_seconds: int) -> str:
    """An HS256 token signed with the configured (or development) secret."""
    if settings.jwt_public_key and settings.jwt_secret is None:
        raise ConfigError(
            "JWT_SECRET: not set; with JWT_PUBLIC_KEY the tokens are minted by the user service, not here"
        )
    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + ttl_seconds}
    if roles:
        claims["roles"] = roles
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, jwt_signing_secret(settings).get(), algorithm="HS256")
