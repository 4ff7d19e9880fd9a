"""Settings from the environment, with the spec's variable names.

``load()`` is the one entry point. It validates every value and raises
``ConfigError`` with one line that names the variable; it never echoes a
secret value back. In development it creates the data directory and a
per-machine encryption key on first use, so `nexusctl daemon` runs on a
fresh machine with no configuration at all.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, NamedTuple
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from nexusctl import clock
from nexusctl.enums import Provider
from nexusctl.errors import ConfigError

log = logging.getLogger(__name__)

NODE_ENVS = ("development", "production", "test")
KEY_BYTES = 32
DEV_KEY_FILE = "encryption.key"
DEV_JWT_FILE = "jwt.secret"
DEFAULT_DB_FILE = "nexusctl.db"
# Seconds after each failed attempt (Svix's open-source schedule): 8 attempts over ~27 h.
DEFAULT_RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)


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


ENDPOINT_KINDS = ("AUTH", "TOKEN", "API", "REVOKE")
# Endpoints only some providers have, overridable the same way (<PROVIDER>_<KIND>_URL): Google Ads' API is
# googleads.googleapis.com (GOOGLE_ADS_API_URL), so its who-am-I (OpenID userinfo) has a URL of its own.
# YouTube Analytics is youtubeanalytics.googleapis.com, apart from the Data API (YOUTUBE_ANALYTICS_URL).
EXTRA_ENDPOINT_KINDS = {Provider.GOOGLE_ADS: ("USERINFO",), Provider.YOUTUBE: ("ANALYTICS",)}
# Scopes a provider grants only to apps it approved (partner programmes, per-app reviews): the service asks
# for one only when the operator says the app has it (<PROVIDER>_APPROVED_SCOPES), since asking without the
# approval makes the provider refuse the whole consent. Why each needs approval: providers/scopes.py.
APPROVAL_SCOPES = {
    Provider.LINKEDIN: ("r_member_social", "r_member_postAnalytics"),
    Provider.PAYPAL: ("https://uri.paypal.com/services/reporting/search/read",),
    Provider.SHOPIFY: ("read_all_orders",),
}


# Settings and ProviderCredentials are NamedTuples, not frozen dataclasses: @dataclass generates
# and compiles their methods at import, 20 M instructions of every command's start (6 M now).
class ProviderCredentials(NamedTuple):
    client_id: str | None
    client_secret: Secret | None
    # <PROVIDER>_AUTH_URL / _TOKEN_URL / _API_URL / _REVOKE_URL: sandboxes and emulators.
    endpoints: Mapping[str, str] = MappingProxyType({})
    # <PROVIDER>_APPROVED_SCOPES: approval-only scopes (APPROVAL_SCOPES) the provider granted this app.
    approved_scopes: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret)

    def missing(self, provider: Provider) -> list[str]:
        """The variables still to set before this provider can connect."""
        names = []
        if not self.client_id:
            names.append(f"{provider.value}_CLIENT_ID")
        if not self.client_secret:
            names.append(f"{provider.value}_CLIENT_SECRET")
        return names


class Settings(NamedTuple):
    node_env: str
    port: int
    data_dir: Path
    database_url: Secret  # may carry a password
    database_pool_size: int
    redis_url: Secret | None
    encryption_key: Secret  # base64, 32 bytes once decoded
    old_encryption_keys: tuple[Secret, ...]
    encryption_key_source: str  # "ENCRYPTION_KEY" or the dev key file's path
    frontend_url: str
    providers: Mapping[Provider, ProviderCredentials] = MappingProxyType({})
    jwt_secret: Secret | None = None  # HS256 shared with the user service
    jwt_public_key: str | None = None  # PEM: RS256 or ES256 tokens
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_max_age: float = 86400.0  # a token whose exp - iat exceeds this is refused (absurd lifetimes)
    log_format: str = "text"  # or "json"
    public_url: str = "http://localhost:3008"  # where providers send the user back
    allowed_redirect_origins: tuple[str, ...] = ()  # FRONTEND_URL's origin is always allowed
    webhook_timeout: float = 15.0
    http_header_timeout: float = 10.0  # a connection whose request has not arrived by then is dropped
    http_body_timeout: float = 30.0  # a request body not fully read by then is answered 408 and the connection closed
    webhook_retry_schedule: tuple[int, ...] = DEFAULT_RETRY_SCHEDULE
    webhook_allowed_networks: tuple = ()  # ipaddress networks exempt from the SSRF guard
    webhook_concurrency: int = 50
    webhook_concurrency_per_endpoint: int = 16
    token_refresh_window: float = 600.0  # seconds before expiry the sweep refreshes a token
    refresh_sweep_seconds: float = 60.0  # how often the daemon sweeps
    refresh_sweep_batch: int = 500  # integrations claimed per pass; full passes follow each other at once
    refresh_sweep_concurrency: int = 5  # refreshes in flight at once during a sweep (provider calls)
    # Long-lived tokens (Facebook, Instagram) are renewed this far ahead; a token that cannot be
    # renewed gets one integration.error warning this far ahead.
    token_expiry_warning: float = 7 * 86400.0
    health_check_seconds: float = 60.0  # how often the daemon checks the integrations whose health check is due
    health_recheck_seconds: float = 900.0  # an integration nothing happened to is checked again after this
    retention_days: int = 30  # finished deliveries and sync logs older than this are purged
    events_stream: str = "nexus.events"  # where the outbox relay publishes (with REDIS_URL)
    events_stream_maxlen: int = 1_000_000  # approximate cap on the stream's length (XADD MAXLEN ~)
    events_consume_streams: tuple[str, ...] = ("nexus.events",)  # read by the consumer group; () = off
    events_consumer_group: str = "nexusctl"
    events_claim_idle: float = 60.0  # a dead consumer's entry is taken over after this many seconds
    sync_rate_limit_budget: float = 120.0  # seconds a sync run may wait out rate limits before it stops
    discord_bot_token: Secret | None = None  # Discord posts to channels as the application's bot
    slack_signing_secret: Secret | None = None  # verifies Slack's requests (slash commands): X-Slack-Signature
    google_ads_developer_token: Secret | None = None  # the developer-token header every Google Ads API call needs
    google_ads_login_customer_id: str | None = None  # 10 digits: the manager account the calls go through
    sync_poll_seconds: float = 30.0  # how often the daemon starts scheduled syncs and recovers stalled ones
    publish_processing_seconds: float = 900.0  # how long a publish waits for the provider to process a video

    @property
    def is_production(self) -> bool:
        return self.node_env == "production"

    @property
    def database_kind(self) -> str:
        return "postgresql" if self.database_url.get().startswith("postgres") else "sqlite"

    def redacted_database_url(self) -> str:
        return redact_url(self.database_url.get())


def default_data_dir(env: Mapping[str, str]) -> Path:
    if env.get("NEXUS_DATA_DIR"):
        return Path(env["NEXUS_DATA_DIR"]).expanduser()
    xdg = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "nexusctl"


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def decode_key(value: str, variable: str) -> bytes:
    """Decode a base64 key of exactly 32 bytes, or fail naming the variable."""
    # Accept the standard and the URL-safe alphabet, padded or not.
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"{variable}: not valid base64; generate a key with `nexusctl keys generate`"
        ) from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(
            f"{variable}: must encode exactly {KEY_BYTES} bytes (got {len(raw)}); "
            "generate a key with `nexusctl keys generate`"
        )
    return raw


def generate_key() -> str:
    """A new random key in the form ENCRYPTION_KEY expects."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise ConfigError naming the bad variable."""
    env = os.environ if env is None else env
    node_env = _node_env(env)
    if node_env == "production" and env.get(clock.ENV, "").strip():
        raise ConfigError(f"{clock.ENV}: a test facility that moves the service's clock; refused when "
                          "NODE_ENV=production (unset it)")
    data_dir = default_data_dir(env)
    values = dict(
        node_env=node_env,
        port=_port(env),
        data_dir=data_dir,
        database_url=Secret(_database_url(env, data_dir)),
        database_pool_size=_positive_int(env, "DATABASE_POOL_SIZE", 10),
        redis_url=_redis_url(env),
        old_encryption_keys=_old_keys(env),
        frontend_url=_http_url(env, "FRONTEND_URL", "http://localhost:3000"),
        providers=_providers(env),
        jwt_secret=Secret(env["JWT_SECRET"]) if env.get("JWT_SECRET", "").strip() else None,
        jwt_public_key=_public_key(env),
        jwt_issuer=env.get("JWT_ISSUER", "").strip() or None,
        jwt_audience=env.get("JWT_AUDIENCE", "").strip() or None,
        jwt_max_age=_duration(env, "JWT_MAX_AGE", 86400.0),
        log_format=_choice(env, "LOG_FORMAT", ("text", "json")),
        public_url=_http_url(env, "PUBLIC_URL", f"http://localhost:{_port(env)}"),
        allowed_redirect_origins=_origins(env, "ALLOWED_REDIRECT_ORIGINS"),
        webhook_timeout=_seconds(env, "WEBHOOK_TIMEOUT", 15.0),
        http_header_timeout=_seconds(env, "HTTP_HEADER_TIMEOUT", 10.0),
        http_body_timeout=_seconds(env, "HTTP_BODY_TIMEOUT", 30.0),
        webhook_retry_schedule=_schedule(env, "WEBHOOK_RETRY_SCHEDULE"),
        webhook_allowed_networks=_networks(env, "WEBHOOK_ALLOWED_NETWORKS"),
        webhook_concurrency=_positive_int(env, "WEBHOOK_CONCURRENCY", 50),
        webhook_concurrency_per_endpoint=_positive_int(env, "WEBHOOK_CONCURRENCY_PER_ENDPOINT", 16),
        token_refresh_window=_duration(env, "TOKEN_REFRESH_WINDOW", 600.0),
        refresh_sweep_seconds=_duration(env, "REFRESH_SWEEP_INTERVAL", 60.0),
        refresh_sweep_batch=_positive_int(env, "REFRESH_SWEEP_BATCH", 500),
        refresh_sweep_concurrency=_positive_int(env, "REFRESH_SWEEP_CONCURRENCY", 5),
        token_expiry_warning=_duration(env, "TOKEN_EXPIRY_WARNING", 7 * 86400.0),
        health_check_seconds=_duration(env, "HEALTH_CHECK_INTERVAL", 60.0),
        health_recheck_seconds=_duration(env, "HEALTH_RECHECK", 900.0),
        retention_days=_positive_int(env, "RETENTION_DAYS", 30),
        events_stream=_stream_names(env, "EVENTS_STREAM", "nexus.events", allow_none=False)[0],
        events_stream_maxlen=_positive_int(env, "EVENTS_STREAM_MAXLEN", 1_000_000),
        events_consume_streams=_stream_names(env, "EVENTS_CONSUME_STREAMS", "nexus.events", allow_none=True),
        events_consumer_group=_stream_names(env, "EVENTS_CONSUMER_GROUP", "nexusctl", allow_none=False)[0],
        events_claim_idle=_duration(env, "EVENTS_CLAIM_IDLE", 60.0),
        sync_rate_limit_budget=_duration(env, "SYNC_RATE_LIMIT_BUDGET", 120.0),
        sync_poll_seconds=_duration(env, "SYNC_POLL_INTERVAL", 30.0),
        publish_processing_seconds=_duration(env, "PUBLISH_PROCESSING_TIMEOUT", 900.0),
        discord_bot_token=Secret(env["DISCORD_BOT_TOKEN"].strip()) if env.get("DISCORD_BOT_TOKEN", "").strip() else None,
        slack_signing_secret=_optional_secret(env, "SLACK_SIGNING_SECRET"),
        google_ads_developer_token=_developer_token(env, "GOOGLE_ADS_DEVELOPER_TOKEN"),
        google_ads_login_customer_id=_customer_id(env, "GOOGLE_ADS_LOGIN_CUSTOMER_ID"),
    )
    # Last: in development this may create the key file, which must not
    # happen for a configuration that is going to be refused anyway.
    key, source = _encryption_key(env, node_env, data_dir)
    return Settings(encryption_key=Secret(key), encryption_key_source=source, **values)


def _node_env(env: Mapping[str, str]) -> str:
    value = env.get("NODE_ENV", "").strip() or "development"
    if value not in NODE_ENVS:
        raise ConfigError(f"NODE_ENV: {value!r} is not one of {', '.join(NODE_ENVS)}")
    return value


def _port(env: Mapping[str, str]) -> int:
    value = env.get("PORT", "").strip() or "3008"
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ConfigError(f"PORT: {value!r} is not a port number (1-65535)")
    return int(value)


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or choices[0]
    if value not in choices:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(choices)}")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip() or str(default)
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{name}: {value!r} is not a positive whole number")
    return int(value)


def _database_url(env: Mapping[str, str], data_dir: Path) -> str:
    url = env.get("DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{data_dir / DEFAULT_DB_FILE}"
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if not parts.path.lstrip("/"):
            raise ConfigError("DATABASE_URL: sqlite URL has no file path (use sqlite:///path/to/file.db)")
        return url
    if parts.scheme in ("postgresql", "postgres"):
        if not parts.path.strip("/"):
            raise ConfigError(
                f"DATABASE_URL: {redact_url(url)} names no database (use postgresql://user@host:5432/dbname)"
            )
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ConfigError(f"DATABASE_URL: {redact_url(url)} has an invalid port") from None
        timeout = dict(parse_qsl(parts.query)).get("connect_timeout", "5")
        if not timeout.isdigit():
            raise ConfigError(f"DATABASE_URL: connect_timeout {timeout!r} is not a whole number of seconds")
        return url
    raise ConfigError(
        f"DATABASE_URL: unsupported scheme {parts.scheme or '(none)'!r}; "
        "use sqlite:///path/to/file.db or postgresql://user@host:5432/dbname"
    )


def _redis_url(env: Mapping[str, str]) -> Secret | None:
    url = env.get("REDIS_URL", "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"REDIS_URL: unsupported scheme {parts.scheme or '(none)'!r}; use redis://host:6379/0"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(f"REDIS_URL: {redact_url(url)} names no host")
    return Secret(url)


def _http_url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}: {value!r} is not an http(s) URL with a host")
    return value.rstrip("/")


def _encryption_key(env: Mapping[str, str], node_env: str, data_dir: Path) -> tuple[str, str]:
    value = env.get("ENCRYPTION_KEY", "").strip()
    if value:
        decode_key(value, "ENCRYPTION_KEY")
        return value, "ENCRYPTION_KEY"
    if node_env == "production":
        raise ConfigError(
            "ENCRYPTION_KEY: required when NODE_ENV=production; "
            "generate one with `nexusctl keys generate` and keep it in your secret store"
        )
    path = data_dir / DEV_KEY_FILE
    return _dev_key(path), str(path)


def _dev_key(path: Path) -> str:
    """Read the development encryption key, creating it (mode 0600) the first time."""
    key, created = dev_secret(path, generate_key, lambda text: decode_key(text, f"ENCRYPTION_KEY (from {path})"))
    if created:
        log.warning(
            "ENCRYPTION_KEY is not set: generated a development key in %s. "
            "Set ENCRYPTION_KEY (see `nexusctl keys generate`) before production use.",
            path,
        )
    return key


def dev_secret(path: Path, generate, check) -> tuple[str, bool]:
    """A per-machine development secret in the data directory: (value, created now)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text().strip()
        check(text)
        return text, False
    except OSError as exc:
        raise ConfigError(f"NEXUS_DATA_DIR: cannot create {path.parent}: {exc.strerror}") from None
    value = generate()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value, True


# The spec requires these; outside production they default to SQLite in the data directory and
# http://localhost:3000, which in production would mean a database no other daemon shares and users
# sent back to a machine that is not theirs. Checked by `nexusctl daemon` and `nexusctl doctor` only:
# the other commands are an operator's tools and work on whatever database they are pointed at.
PRODUCTION_REQUIRED = ("DATABASE_URL", "FRONTEND_URL")


def missing_for_production(env: Mapping[str, str]) -> list[str]:
    """The variables NODE_ENV=production needs set explicitly that are not (in any other mode: none)."""
    if env.get("NODE_ENV", "").strip() != "production":
        return []
    return [name for name in PRODUCTION_REQUIRED if not env.get(name, "").strip()]


def require_production_settings(env: Mapping[str, str]) -> None:
    """Refuse a production daemon whose DATABASE_URL or FRONTEND_URL would be a development default."""
    missing = missing_for_production(env)
    if missing:
        raise ConfigError(f"{', '.join(missing)}: required when NODE_ENV=production (no development default: "
                          "set DATABASE_URL=postgresql://... and FRONTEND_URL=https://...)")


def jwt_signing_secret(settings: "Settings") -> Secret:
    """The HS256 secret: JWT_SECRET, or in development one generated into the data directory."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret
    if settings.is_production:
        raise ConfigError("JWT_SECRET: required when NODE_ENV=production (or JWT_PUBLIC_KEY for RS256/ES256 tokens)")
    path = settings.data_dir / DEV_JWT_FILE
    value, created = dev_secret(path, lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(), lambda text: None)
    if created:
        log.warning("JWT_SECRET is not set: generated a development secret in %s", path)
    return Secret(value)


def _public_key(env: Mapping[str, str]) -> str | None:
    value = env.get("JWT_PUBLIC_KEY", "").strip()
    if not value:
        return None
    if not value.startswith("-----BEGIN"):
        try:
            value = Path(value).expanduser().read_text()
        except OSError as exc:
            raise ConfigError(f"JWT_PUBLIC_KEY: neither a PEM key nor a readable file ({exc.strerror})") from None
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(value.encode())
    except ValueError:
        raise ConfigError("JWT_PUBLIC_KEY: not a valid PEM public key") from None
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise ConfigError("JWT_PUBLIC_KEY: must be an RSA (RS256) or EC P-256 (ES256) public key")
    return value


def _old_keys(env: Mapping[str, str]) -> tuple[Secret, ...]:
    raw = env.get("ENCRYPTION_OLD_KEYS", "")
    keys = []
    for position, item in enumerate(filter(None, (k.strip() for k in raw.split(","))), start=1):
        decode_key(item, f"ENCRYPTION_OLD_KEYS (key #{position})")
        keys.append(Secret(item))
    return tuple(keys)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1
    if not 0 < seconds <= 300:
        raise ConfigError(f"{name}: {value!r} is not a number of seconds between 0 and 300")
    return seconds


def parse_duration(text: str) -> float | None:
    """`90`, `90s`, `10m`, `1h`, `2d` -> seconds; None if it is not one."""
    text = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        value = float(number) * unit
    except ValueError:
        return None
    return value if value > 0 else None


def _duration(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name, "").strip()
    if not value:
        return default
    seconds = parse_duration(value)
    if seconds is None:
        raise ConfigError(f"{name}: {value!r} is not a duration like 600, 90s, 10m or 1h")
    return seconds


STREAM_NAME_MAX = 200


def _stream_names(env: Mapping[str, str], name: str, default: str, *, allow_none: bool) -> tuple[str, ...]:
    """Comma-separated Redis stream (or group) names; `none` turns consuming off where allowed."""
    value = env.get(name, "").strip() or default
    if allow_none and value.lower() == "none":
        return ()
    names = tuple(item.strip() for item in value.split(","))
    if not allow_none and len(names) != 1:
        raise ConfigError(f"{name}: {value!r} must be one name")
    for item in names:
        if not item or len(item) > STREAM_NAME_MAX or any(ch.isspace() or not ch.isprintable() for ch in item):
            raise ConfigError(f"{name}: {value!r} is not a list of names without spaces (at most "
                              f"{STREAM_NAME_MAX} characters each)")
    return names


def _schedule(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    value = env.get(name, "").strip()
    if not value:
        return DEFAULT_RETRY_SCHEDULE
    items = [item.strip() for item in value.split(",")]
    if not all(item.isdigit() for item in items) or len(items) > 50:
        raise ConfigError(f"{name}: {value!r} is not a comma-separated list of whole seconds (at most 50)")
    return tuple(int(item) for item in items)


def _networks(env: Mapping[str, str], name: str) -> tuple:
    import ipaddress

    networks = []
    for item in filter(None, (n.strip() for n in env.get(name, "").split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not a network like 127.0.0.1/32 or 10.0.0.0/8") from None
    return tuple(networks)


def origin_of(url: str) -> str:
    """scheme://host[:port], lower-cased, default ports dropped: how origins compare."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port and port != default else "")


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    origins = []
    for item in filter(None, (o.strip() for o in env.get(name, "").split(","))):
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
            raise ConfigError(f"{name}: {item!r} is not an origin like https://app.example.com")
        origins.append(origin_of(item))
    return tuple(origins)


def _optional_secret(env: Mapping[str, str], name: str) -> Secret | None:
    value = env.get(name, "").strip()
    return Secret(value) if value else None


def _developer_token(env: Mapping[str, str], name: str) -> Secret | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in value) or len(value) > 200:
        raise ConfigError(f"{name}: not a developer token (printable characters without spaces, at most 200)")
    return Secret(value)


def _customer_id(env: Mapping[str, str], name: str) -> str | None:
    """A Google Ads customer id: 10 digits, written 123-456-7890 or 1234567890 (sent without dashes)."""
    value = env.get(name, "").strip()
    if not value:
        return None
    digits = value.replace("-", "")
    if not (digits.isascii() and digits.isdigit() and len(digits) == 10):
        raise ConfigError(f"{name}: {value!r} is not a Google Ads customer id (10 digits, e.g. 123-456-7890)")
    return digits


def _providers(env: Mapping[str, str]) -> dict[Provider, ProviderCredentials]:
    creds = {}
    for provider in Provider:
        client_id = env.get(f"{provider.value}_CLIENT_ID", "").strip() or None
        secret = env.get(f"{provider.value}_CLIENT_SECRET", "").strip() or None
        endpoints = {}
        for kind in ENDPOINT_KINDS + EXTRA_ENDPOINT_KINDS.get(provider, ()):
            name = f"{provider.value}_{kind}_URL"
            value = env.get(name, "").strip()
            if value:
                parts = urlsplit(value.replace("{shop}", "shop"))
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise ConfigError(f"{name}: {value!r} is not an http(s) URL with a host")
                endpoints[kind] = value.rstrip("/") if kind == "API" else value
        creds[provider] = ProviderCredentials(client_id, Secret(secret) if secret else None, endpoints,
                                              _approved_scopes(env, provider))
    return creds


def _approved_scopes(env: Mapping[str, str], provider: Provider) -> tuple[str, ...]:
    name = f"{provider.value}_APPROVED_SCOPES"
    given = [s for s in env.get(name, "").replace(",", " ").split() if s]
    known = APPROVAL_SCOPES.get(provider, ())
    unknown = [s for s in given if s not in known]
    if unknown:
        raise ConfigError(f"{name}: {', '.join(unknown)} is not a scope {provider.value} approves per app "
                          f"(known: {', '.join(known) or 'none'})")
    return tuple(s for s in known if s in given)


def variable_names() -> list[str]:
    """Every environment variable load() reads: the tests clear them all."""
    names = [
        "NODE_ENV", "PORT", "NEXUS_DATA_DIR", "DATABASE_URL", "DATABASE_POOL_SIZE",
        "REDIS_URL", "ENCRYPTION_KEY", "ENCRYPTION_OLD_KEYS", "FRONTEND_URL",
        "JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_MAX_AGE", "LOG_FORMAT",
        "PUBLIC_URL", "ALLOWED_REDIRECT_ORIGINS", "WEBHOOK_TIMEOUT", "WEBHOOK_RETRY_SCHEDULE", "HTTP_HEADER_TIMEOUT",
        "HTTP_BODY_TIMEOUT",
        "WEBHOOK_ALLOWED_NETWORKS", "WEBHOOK_CONCURRENCY", "WEBHOOK_CONCURRENCY_PER_ENDPOINT",
        "TOKEN_REFRESH_WINDOW", "REFRESH_SWEEP_INTERVAL", "REFRESH_SWEEP_BATCH", "REFRESH_SWEEP_CONCURRENCY",
        "TOKEN_EXPIRY_WARNING", "RETENTION_DAYS",
        "EVENTS_STREAM", "EVENTS_STREAM_MAXLEN", "EVENTS_CONSUME_STREAMS", "EVENTS_CONSUMER_GROUP", "EVENTS_CLAIM_IDLE",
        "SYNC_RATE_LIMIT_BUDGET", "SYNC_POLL_INTERVAL", "DISCORD_BOT_TOKEN", "HEALTH_CHECK_INTERVAL", "HEALTH_RECHECK",
        "SLACK_SIGNING_SECRET", "NEXUSCTL_CLOCK_FILE",
        "GOOGLE_ADS_DEVELOPER_TOKEN", "GOOGLE_ADS_LOGIN_CUSTOMER_ID",
    ]
    for provider in Provider:
        names += [f"{provider.value}_CLIENT_ID", f"{provider.value}_CLIENT_SECRET"]
        names += [f"{provider.value}_{kind}_URL" for kind in ENDPOINT_KINDS + EXTRA_ENDPOINT_KINDS.get(provider, ())]
    names += [f"{provider.value}_APPROVED_SCOPES" for provider in APPROVAL_SCOPES]
    return names
