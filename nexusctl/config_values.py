"""How one environment variable's text becomes a value: the parsers the settings table names.

Each parser takes ``(text, name)``: the variable's text (stripped, never empty: an unset
variable takes its default instead) and its name, and returns the value or raises
``ConfigError`` with one line that starts with the name. A parser of a secret never puts
the text in its message (a URL's password is redacted). Parsers are plain functions,
and the few that take options (``choice``) are made once, when the table is built: the
table is read by every command's start, so nothing here compiles or generates code.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit, urlunsplit

from nexusctl.errors import ConfigError

KEY_BYTES = 32
STREAM_NAME_MAX = 200
# The longest duration any setting, option or field takes: 100 years. Far beyond any real window,
# schedule or retention, and far inside what a date can be moved by (datetime stops at year 9999, and
# timedelta at 999999999 days): past it `now + window` was an OverflowError, a 500 or exit 1.
MAX_DURATION_DAYS = 36525
MAX_DURATION = MAX_DURATION_DAYS * 86400.0
MAX_DURATION_TEXT = "at most 100 years"
# The largest whole number an integer setting takes where nothing tighter applies: PostgreSQL's integer.
MAX_WHOLE = 2**31 - 1


class Secret:
    """A value that must not be printed: repr and str hide it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# --- helpers other modules use too ------------------------------------------------------


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe for messages and logs: the userinfo's, and the value of any query
    parameter that names a secret (``?password=``, which libpq and redis-py take, ``sslpassword``, ``token``...)."""
    url = _redact_query(url)
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket: still no password shown, whatever the URL holds
        return re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


# Query parameters whose value is a secret: any name holding one of these words (compared without case, ``-`` and
# ``_``), or one of the short names.
_SECRET_WORDS = ("password", "passwd", "secret", "token", "apikey", "credential", "signature")
_SECRET_NAMES = frozenset({"pass", "pwd", "key", "auth", "sig"})
_QUERY_PARAM = re.compile(r"([?&;])([^=&;#]*)=([^&;#]*)")


def _redact_query(url: str) -> str:
    """``url`` with the values of its secret query parameters (``_SECRET_WORDS``) replaced by ``***``; the rest of
    the text as it was."""
    if "?" not in url:
        return url
    head, sep, tail = url.partition("?")
    query, hash_, fragment = ("?" + tail).partition("#")

    def masked(found: re.Match) -> str:
        name = unquote(found[2]).lower().replace("-", "").replace("_", "")
        if name in _SECRET_NAMES or any(word in name for word in _SECRET_WORDS):
            return f"{found[1]}{found[2]}=***"
        return found[0]

    return head + _QUERY_PARAM.sub(masked, query) + hash_ + fragment


def decode_key(value: str, variable: str) -> bytes:
    """Decode a base64 key of exactly 32 bytes, or fail naming the variable."""
    # Accept the standard and the URL-safe alphabet, padded or not.
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{variable}: not valid base64; generate a key with `nexusctl keys generate`") from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(
            f"{variable}: must encode exactly {KEY_BYTES} bytes (got {len(raw)}); "
            "generate a key with `nexusctl keys generate`"
        )
    return raw


def generate_key() -> str:
    """A new random key in the form ENCRYPTION_KEY expects."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)", re.ASCII)
_SECONDS = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float | None:
    """`90`, `90s`, `10m`, `1h`, `2d` -> seconds; None if it is not one, or is longer than MAX_DURATION.

    Every duration a user gives (settings, CLI options, `metadata.syncSchedule`) is read here, so this
    bound is the one that keeps each of them inside what a date can be moved by.
    """
    # ASCII digits[.digits] and a unit only: float() also read '١٢', '1e5', '1_000', '+5' and ' 5'.
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        return None
    value = float(found[1]) * _DURATION_UNITS[found[2] or "s"]
    return value if 0 < value <= MAX_DURATION else None  # NaN fails both comparisons


def origin_of(url: str) -> str:
    """scheme://host[:port], lower-cased, default ports dropped: how origins compare."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port and port != default else "")


# --- parsers: (text, name) -> value --------------------------------------------------


def text(value: str, name: str) -> str:
    return value


def path(value: str, name: str) -> Path:
    return Path(value).expanduser()


def choice(*choices: str):
    """A parser accepting one of ``choices`` (case-insensitive)."""

    def parse(value: str, name: str) -> str:
        value = value.lower()
        if value not in choices:
            raise ConfigError(f"{name}: {value!r} is not one of {', '.join(choices)}")
        return value

    parse.choices = choices
    return parse


def node_env(value: str, name: str) -> str:
    # Case-sensitive, unlike choice(): NODE_ENV is compared as written elsewhere (missing_for_production).
    if value not in NODE_ENVS:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(NODE_ENVS)}")
    return value


NODE_ENVS = ("development", "production", "test")


def _whole(value: str, low: int, high: int) -> int | None:
    """``value`` as a whole number in [low, high], else None. ASCII digits only: str.isdigit() also takes
    '²' and '١', which int() then refuses (a ValueError, not a ConfigError)."""
    if not (value.isascii() and value.isdigit()) or len(value) > 20:
        return None
    number = int(value)
    return number if low <= number <= high else None


def port(value: str, name: str) -> int:
    number = _whole(value, 1, 65535)
    if number is None:
        raise ConfigError(f"{name}: {value!r} is not a port number (1-65535)")
    return number


def positive_int(value: str, name: str) -> int:
    number = _whole(value, 1, MAX_WHOLE)
    if number is None:
        raise ConfigError(f"{name}: {value!r} is not a positive whole number (at most {MAX_WHOLE})")
    return number


def days(value: str, name: str) -> int:
    """A whole number of days, 1 to MAX_DURATION_DAYS."""
    number = _whole(value, 1, MAX_DURATION_DAYS)
    if number is None:
        raise ConfigError(
            f"{name}: {value!r} is not a whole number of days from 1 to {MAX_DURATION_DAYS} ({MAX_DURATION_TEXT})"
        )
    return number


def seconds(value: str, name: str) -> float:
    """A short timeout: a number of seconds in (0, 300], in ASCII digits (float() also reads '١٢' and '1e2')."""
    number = float(value.strip()) if _SECONDS.fullmatch(value.strip()) else -1
    if not 0 < number <= 300:
        raise ConfigError(f"{name}: {value!r} is not a number of seconds more than 0 and at most 300")
    return number


def duration(value: str, name: str) -> float:
    number = parse_duration(value)
    if number is None:
        raise ConfigError(f"{name}: {value!r} is not a duration like 600, 90s, 10m or 1h ({MAX_DURATION_TEXT})")
    return number


def split_url(value: str, name: str, shown: str | None = None) -> SplitResult:
    """urlsplit(value), or a ConfigError naming the variable. urlsplit raises ValueError on an unclosed IPv6
    bracket ("http://[::1") and .port on a port that is not a number: either ended every command as exit 1."""
    shown = redact_url(shown or value)
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ConfigError(f"{name}: {shown} is not a valid URL (an IPv6 host's '[' or ']' is unmatched)") from None
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"{name}: {shown} has an invalid port") from None
    return parts


def http_url(value: str, name: str) -> str:
    parts = split_url(value, name)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}: {redact_url(value)!r} is not an http(s) URL with a host")
    return value.rstrip("/")


def database_url(url: str, name: str) -> str:
    parts = split_url(url, name)
    if parts.scheme == "sqlite":
        if not parts.path.lstrip("/"):
            raise ConfigError(f"{name}: sqlite URL has no file path (use sqlite:///path/to/file.db)")
        return url
    if parts.scheme in ("postgresql", "postgres"):
        query = dict(parse_qsl(parts.query))
        if not parts.path.strip("/") and not query.get("dbname"):
            raise ConfigError(f"{name}: {redact_url(url)} names no database (use postgresql://user@host:5432/dbname)")
        timeout = query.get("connect_timeout", "5")
        if _whole(timeout, 0, MAX_WHOLE) is None:
            raise ConfigError(f"{name}: connect_timeout {timeout!r} is not a whole number of seconds")
        return url
    raise ConfigError(
        f"{name}: unsupported scheme {parts.scheme or '(none)'!r}; "
        "use sqlite:///path/to/file.db or postgresql://user@host:5432/dbname"
    )


def redis_url(url: str, name: str) -> str:
    parts = split_url(url, name)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"{name}: unsupported scheme {parts.scheme or '(none)'!r}; use redis://host:6379/0")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(f"{name}: {redact_url(url)} names no host")
    return url


def encryption_key(value: str, name: str) -> str:
    decode_key(value, name)
    return value


def old_keys(value: str, name: str) -> tuple[str, ...]:
    keys = []
    for position, item in enumerate(filter(None, (k.strip() for k in value.split(","))), start=1):
        decode_key(item, f"{name} (key #{position})")
        keys.append(item)
    return tuple(keys)


def public_key(value: str, name: str) -> str:
    """PEM text, or a file holding it: an RSA or EC public key."""
    if not value.startswith("-----BEGIN"):
        try:
            value = Path(value).expanduser().read_text()
        except OSError as exc:
            raise ConfigError(f"{name}: neither a PEM key nor a readable file ({exc.strerror})") from None
    # Only when the variable is set, for start-up speed: cryptography is not part of a read command's start.
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(value.encode())
    except ValueError:
        raise ConfigError(f"{name}: not a valid PEM public key") from None
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise ConfigError(f"{name}: must be an RSA (RS256) or EC P-256 (ES256) public key")
    return value


def stream_name(value: str, name: str) -> str:
    """One Redis stream (or consumer group) name."""
    return stream_names(value, name, allow_none=False)[0]


def stream_names(value: str, name: str, allow_none: bool = True) -> tuple[str, ...]:
    """Comma-separated Redis stream names; `none` turns consuming off."""
    if allow_none and value.lower() == "none":
        return ()
    names = tuple(item.strip() for item in value.split(","))
    if not allow_none and len(names) != 1:
        raise ConfigError(f"{name}: {value!r} must be one name")
    for item in names:
        if not item or len(item) > STREAM_NAME_MAX or any(ch.isspace() or not ch.isprintable() for ch in item):
            raise ConfigError(
                f"{name}: {value!r} is not a list of names without spaces (at most {STREAM_NAME_MAX} characters each)"
            )
    return names


def schedule(value: str, name: str) -> tuple[int, ...]:
    items = [_whole(item.strip(), 0, int(MAX_DURATION)) for item in value.split(",")]
    if None in items or len(items) > 50:
        raise ConfigError(
            f"{name}: {value!r} is not a comma-separated list of whole seconds (at most 50, each {MAX_DURATION_TEXT})"
        )
    return tuple(items)


def networks(value: str, name: str) -> tuple:
    """The networks of a comma-separated list (host bits allowed: 10.0.0.1/8 is 10.0.0.0/8)."""
    found = []
    for item in filter(None, (n.strip() for n in value.split(","))):
        try:
            found.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not a network like 127.0.0.1/32 or 10.0.0.0/8") from None
    return tuple(found)


def origins(value: str, name: str) -> tuple[str, ...]:
    found = []
    for item in filter(None, (o.strip() for o in value.split(","))):
        parts = split_url(item, name)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
            raise ConfigError(f"{name}: {redact_url(item)!r} is not an origin like https://app.example.com")
        found.append(origin_of(item))
    return tuple(found)


def developer_token(value: str, name: str) -> str:
    if any(ch.isspace() or not ch.isprintable() for ch in value) or len(value) > 200:
        raise ConfigError(f"{name}: not a developer token (printable characters without spaces, at most 200)")
    return value


def shared_secret(value: str, name: str) -> str:
    """A secret shared with another program over an HTTP header: 32 to 200 printable ASCII characters without
    spaces (never echoed)."""
    if not (32 <= len(value) <= 200) or not all(ch.isascii() and ch.isprintable() and ch != " " for ch in value):
        raise ConfigError(f"{name}: must be 32 to 200 printable ASCII characters without spaces (e.g. 64 hex digits)")
    return value


def customer_id(value: str, name: str) -> str:
    """A Google Ads customer id: 10 digits, written 123-456-7890 or 1234567890 (sent without dashes)."""
    digits = value.replace("-", "")
    if not (digits.isascii() and digits.isdigit() and len(digits) == 10):
        raise ConfigError(f"{name}: {value!r} is not a Google Ads customer id (10 digits, e.g. 123-456-7890)")
    return digits
