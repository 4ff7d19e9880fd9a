"""Settings from the environment, with the spec's variable names.

``load()`` is the one entry point. It validates every value and raises
``ConfigError`` with one line that names the variable; it never echoes a
secret value back. In development it creates the data directory and a
per-machine encryption key on first use, so `nexusctl daemon` runs on a
fresh machine with no configuration at all.

Every variable is declared once, in ``nexusctl.config_table.TABLE`` (name, attribute,
parser, default, help, secret or not); ``Settings``, ``load`` and ``variable_names``
are made from it here. The rules between variables (production requirements, the
development JWT secret) follow the table.
"""

from __future__ import annotations

import base64
import logging
import os
from collections import namedtuple
from typing import Mapping

from nexusctl.config_providers import (  # noqa: F401 - re-exported: the rest of nexusctl imports them from here
    APPROVAL_SCOPES,
    ENDPOINT_KINDS,
    EXTRA_ENDPOINT_KINDS,
    ProviderCredentials,
    credential_variables,
    endpoint_kinds,
)
from nexusctl.config_table import (  # noqa: F401 - re-exported
    DEFAULT_DB_FILE,
    DEV_JWT_FILE,
    DEV_KEY_FILE,
    TABLE,
    Family,
    Variable,
    dev_secret,
)
from nexusctl.config_values import (  # noqa: F401 - re-exported
    KEY_BYTES,
    MAX_DURATION,
    MAX_DURATION_TEXT,
    NODE_ENVS,
    Secret,
    decode_key,
    generate_key,
    origin_of,
    parse_duration,
    redact_url,
)
from nexusctl.errors import ConfigError

log = logging.getLogger(__name__)

# Attributes that are no variable of their own: where the encryption key came from.
DERIVED_FIELDS = ("encryption_key_source",)  # "ENCRYPTION_KEY" or the development key file's path


# A plain namedtuple made from the table: no dataclass (which generates and compiles its methods at
# import) and no typing.NamedTuple (which compiles each string annotation): every command's start reads
# this module. The attributes and their parsers: config_table.TABLE.
class Settings(namedtuple("_SettingsFields", [entry.field for entry in TABLE] + list(DERIVED_FIELDS))):
    __slots__ = ()

    @property
    def is_production(self) -> bool:
        return self.node_env == "production"

    @property
    def database_kind(self) -> str:
        return "postgresql" if self.database_url.get().startswith("postgres") else "sqlite"

    def redacted_database_url(self) -> str:
        return redact_url(self.database_url.get())


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise ConfigError naming the bad variable."""
    env = os.environ if env is None else env
    values, later = {}, []
    for entry in TABLE:
        if isinstance(entry, Family):
            values[entry.field] = entry.load(env)
            continue
        raw = env.get(entry.name, "")
        if raw.strip():
            values[entry.field] = _value(entry, raw if not entry.strip else raw.strip())
        elif callable(entry.default):
            later.append(entry)
        else:
            values[entry.field] = None if entry.default is None else _value(entry, entry.default)
    # Defaults made from other settings, once every given value is valid; last, the one that writes a
    # file (the development key), which must not appear for a configuration that is refused anyway.
    for entry in sorted(later, key=lambda e: getattr(e.default, "creates_file", False)):
        values[entry.field] = _value(entry, entry.default(values, env))
    if values["node_env"] == "production" and values["clock_file"]:
        raise ConfigError(
            "NEXUSCTL_CLOCK_FILE: a test facility that moves the service's clock; refused when "
            "NODE_ENV=production (unset it)"
        )
    given = env.get("ENCRYPTION_KEY", "").strip()
    values["encryption_key_source"] = "ENCRYPTION_KEY" if given else str(values["data_dir"] / DEV_KEY_FILE)
    return Settings(**values)


def _value(entry: Variable, text: str):
    value = entry.parse(text, entry.name)
    if not entry.secret:
        return value
    return tuple(Secret(item) for item in value) if isinstance(value, tuple) else Secret(value)


def variable_names() -> list[str]:
    """Every environment variable load() reads: the tests clear them all."""
    names = []
    for entry in TABLE:
        names += entry.names() if isinstance(entry, Family) else [entry.name]
    return names


def variables() -> list[Variable]:
    """The table's single variables (families apart), in the docs' order."""
    return [entry for entry in TABLE if isinstance(entry, Variable)]


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
        raise ConfigError(
            f"{', '.join(missing)}: required when NODE_ENV=production (no development default: "
            "set DATABASE_URL=postgresql://... and FRONTEND_URL=https://...)"
        )


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
