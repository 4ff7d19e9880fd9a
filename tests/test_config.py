"""Configuration: the spec's variables, defaults, and one clear line per bad value."""

from __future__ import annotations

import base64
import logging
import stat

import pytest

from nexusctl import config, config_values
from nexusctl.enums import Provider
from nexusctl.errors import ConfigError

GOOD_KEY = base64.b64encode(b"k" * 32).decode()


def env(**values):
    return {k: v for k, v in values.items() if v is not None}


def test_defaults_run_with_no_configuration(tmp_path):
    settings = config.load(env(NEXUS_DATA_DIR=str(tmp_path)))
    assert settings.node_env == "development"
    assert settings.port == 3008
    assert settings.database_url.get() == f"sqlite:///{tmp_path / 'nexusctl.db'}"
    assert settings.database_kind == "sqlite"
    assert settings.redis_url is None
    assert settings.frontend_url == "http://localhost:3000"


def test_data_dir_follows_xdg_when_not_set(tmp_path):
    settings = config.load(env(XDG_DATA_HOME=str(tmp_path), ENCRYPTION_KEY=GOOD_KEY))
    assert settings.data_dir == tmp_path / "nexusctl"


def test_postgres_url_selects_postgres():
    settings = config.load(env(DATABASE_URL="postgresql://u:pw@db.internal:5432/nexus", ENCRYPTION_KEY=GOOD_KEY))
    assert settings.database_kind == "postgresql"
    assert settings.redacted_database_url() == "postgresql://u:***@db.internal:5432/nexus"
    assert "pw" not in repr(settings)


def test_development_key_is_generated_once_with_mode_0600(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    first = config.load(env(NEXUS_DATA_DIR=str(tmp_path)))
    key_file = tmp_path / config.DEV_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(config.decode_key(first.encryption_key.get(), "x")) == 32
    assert "ENCRYPTION_KEY is not set" in caplog.text
    assert first.encryption_key.get() not in caplog.text
    caplog.clear()
    second = config.load(env(NEXUS_DATA_DIR=str(tmp_path)))
    assert second.encryption_key == first.encryption_key
    assert "ENCRYPTION_KEY" not in caplog.text  # warned once, at generation


def test_production_refuses_to_start_without_a_key(tmp_path):
    with pytest.raises(ConfigError) as info:
        config.load(env(NODE_ENV="production", NEXUS_DATA_DIR=str(tmp_path)))
    assert info.value.message.startswith("ENCRYPTION_KEY: required when NODE_ENV=production")
    assert not (tmp_path / config.DEV_KEY_FILE).exists()


def test_production_accepts_a_configured_key():
    settings = config.load(env(NODE_ENV="production", ENCRYPTION_KEY=GOOD_KEY))
    assert settings.is_production and settings.encryption_key_source == "ENCRYPTION_KEY"


def test_urlsafe_and_unpadded_keys_are_accepted():
    raw = bytes(range(200, 232))
    urlsafe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert config.decode_key(urlsafe, "ENCRYPTION_KEY") == raw


@pytest.mark.parametrize(
    "name, value, fragment",
    [
        ("NODE_ENV", "staging", "NODE_ENV: 'staging' is not one of"),
        ("PORT", "abc", "PORT: 'abc' is not a port number"),
        ("PORT", "70000", "PORT: '70000'"),
        ("PORT", "0", "PORT: '0'"),
        ("DATABASE_URL", "mysql://localhost/db", "DATABASE_URL: unsupported scheme 'mysql'"),
        ("DATABASE_URL", "not a url", "DATABASE_URL: unsupported scheme"),
        ("DATABASE_URL", "postgresql://localhost", "DATABASE_URL: postgresql://localhost names no database"),
        (
            "DATABASE_URL",
            "postgresql://u:hunter2@h:99999/db",
            "DATABASE_URL: postgresql://u:***@h:99999/db has an invalid port",
        ),
        ("DATABASE_URL", "sqlite://", "DATABASE_URL: sqlite URL has no file path"),
        ("DATABASE_URL", "postgresql://h/db?connect_timeout=soon", "DATABASE_URL: connect_timeout 'soon'"),
        ("DATABASE_POOL_SIZE", "-1", "DATABASE_POOL_SIZE: '-1' is not a positive whole number"),
        ("REDIS_URL", "http://localhost", "REDIS_URL: unsupported scheme 'http'"),
        ("REDIS_URL", "redis://", "REDIS_URL: redis:// names no host"),
        ("ENCRYPTION_KEY", base64.b64encode(b"short").decode(), "ENCRYPTION_KEY: must encode exactly 32 bytes (got 5)"),
        ("ENCRYPTION_KEY", "!!!not-base64!!!", "ENCRYPTION_KEY: not valid base64"),
        (
            "ENCRYPTION_OLD_KEYS",
            f"{GOOD_KEY},nope",
            "ENCRYPTION_OLD_KEYS (key #2): must encode exactly 32 bytes (got 3)",
        ),
        ("ENCRYPTION_OLD_KEYS", f"{GOOD_KEY},@@@@", "ENCRYPTION_OLD_KEYS (key #2): not valid base64"),
        ("FRONTEND_URL", "ftp://files", "FRONTEND_URL: 'ftp://files' is not an http(s) URL"),
        ("PUBLIC_URL", "nexus.example.com", "PUBLIC_URL: 'nexus.example.com' is not an http(s) URL"),
        (
            "ALLOWED_REDIRECT_ORIGINS",
            "https://ok.example,https://x.example/path",
            "ALLOWED_REDIRECT_ORIGINS: 'https://x.example/path' is not an origin",
        ),
        ("SLACK_TOKEN_URL", "slack.local/token", "SLACK_TOKEN_URL: 'slack.local/token' is not an http(s) URL"),
        ("SHOPIFY_AUTH_URL", "file:///{shop}/x", "SHOPIFY_AUTH_URL:"),
    ],
)
def test_bad_values_name_the_variable(tmp_path, name, value, fragment):
    values = {"NEXUS_DATA_DIR": str(tmp_path), "ENCRYPTION_KEY": GOOD_KEY, name: value}
    with pytest.raises(ConfigError) as info:
        config.load(values)
    assert fragment in info.value.message
    assert "\n" not in info.value.message
    assert "hunter2" not in info.value.message


def test_a_bad_key_is_never_echoed(tmp_path):
    secret_looking = base64.b64encode(b"sixteen byte key").decode()
    with pytest.raises(ConfigError) as info:
        config.load({"ENCRYPTION_KEY": secret_looking, "NEXUS_DATA_DIR": str(tmp_path)})
    assert secret_looking not in info.value.message


def test_every_provider_reads_its_credentials():
    values = {"ENCRYPTION_KEY": GOOD_KEY}
    for provider in Provider:
        values[f"{provider.value}_CLIENT_ID"] = f"id-{provider.value}"
        values[f"{provider.value}_CLIENT_SECRET"] = f"secret-{provider.value}"
    settings = config.load(values)
    assert len(settings.providers) == 20
    for provider in Provider:
        creds = settings.providers[provider]
        assert creds.configured and creds.client_id == f"id-{provider.value}"
        assert creds.client_secret.get() == f"secret-{provider.value}"
    assert "secret-" not in repr(settings)


def test_half_configured_provider_is_not_configured():
    settings = config.load({"ENCRYPTION_KEY": GOOD_KEY, "SLACK_CLIENT_ID": "abc"})
    assert settings.providers[Provider.SLACK].client_id == "abc"
    assert not settings.providers[Provider.SLACK].configured
    assert not settings.providers[Provider.DISCORD].configured


def test_variable_names_cover_what_load_reads():
    names = config.variable_names()
    for expected in (
        "NODE_ENV",
        "PORT",
        "DATABASE_URL",
        "REDIS_URL",
        "ENCRYPTION_KEY",
        "FRONTEND_URL",
        "TIKTOK_CLIENT_ID",
        "TIKTOK_BUSINESS_CLIENT_ID",  # TikTok's other kind of app: an app of its own, with its own credentials
        "TIKTOK_BUSINESS_CLIENT_SECRET",
        "DISCORD_CLIENT_SECRET",
    ):
        assert expected in names


def test_tiktoks_two_kinds_of_app_have_a_client_each():
    settings = config.load(
        {
            "ENCRYPTION_KEY": GOOD_KEY,
            "TIKTOK_CLIENT_ID": "awkit",
            "TIKTOK_CLIENT_SECRET": "kit-secret",
            "TIKTOK_BUSINESS_CLIENT_ID": "7000000000000000001",
            "TIKTOK_BUSINESS_CLIENT_SECRET": "business-secret",
        }
    )
    creds = settings.providers[Provider.TIKTOK]
    assert (creds.client_id, creds.client_secret.get()) == ("awkit", "kit-secret")
    business = creds.of_app("business")
    assert (business.client_id, business.client_secret.get()) == ("7000000000000000001", "business-secret")
    assert business.endpoints == creds.endpoints and creds.of_app("login_kit") is creds
    unset = config.load({"ENCRYPTION_KEY": GOOD_KEY, "TIKTOK_CLIENT_ID": "awkit", "TIKTOK_CLIENT_SECRET": "s"})
    missing = unset.providers[Provider.TIKTOK].of_app("business").missing(Provider.TIKTOK)
    assert missing == ["TIKTOK_BUSINESS_CLIENT_ID", "TIKTOK_BUSINESS_CLIENT_SECRET"]


def test_a_refused_configuration_creates_no_key_file(tmp_path):
    with pytest.raises(ConfigError):
        config.load({"NEXUS_DATA_DIR": str(tmp_path), "PORT": "abc"})
    assert not (tmp_path / config.DEV_KEY_FILE).exists()


def test_jwt_settings(tmp_path):
    settings = config.load(
        {"ENCRYPTION_KEY": GOOD_KEY, "JWT_SECRET": "x" * 40, "JWT_ISSUER": "iss", "JWT_AUDIENCE": "aud"}
    )
    assert settings.jwt_secret.get() == "x" * 40 and "x" * 40 not in repr(settings)
    assert (settings.jwt_issuer, settings.jwt_audience) == ("iss", "aud")


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----", "not a valid PEM public key"),
        ("/no/such/key.pem", "neither a PEM key nor a readable file"),
    ],
)
def test_bad_jwt_public_key(value, fragment):
    with pytest.raises(ConfigError) as info:
        config.load({"ENCRYPTION_KEY": GOOD_KEY, "JWT_PUBLIC_KEY": value})
    assert info.value.message.startswith("JWT_PUBLIC_KEY: ") and fragment in info.value.message


def test_development_jwt_secret_is_made_once_and_production_requires_one(tmp_path):
    dev = config.load({"ENCRYPTION_KEY": GOOD_KEY, "NEXUS_DATA_DIR": str(tmp_path)})
    first = config.jwt_signing_secret(dev)
    assert stat.S_IMODE((tmp_path / config.DEV_JWT_FILE).stat().st_mode) == 0o600
    assert config.jwt_signing_secret(dev) == first
    prod = config.load({"ENCRYPTION_KEY": GOOD_KEY, "NODE_ENV": "production", "NEXUS_DATA_DIR": str(tmp_path / "p")})
    with pytest.raises(ConfigError) as info:
        config.jwt_signing_secret(prod)
    assert info.value.message.startswith("JWT_SECRET: required when NODE_ENV=production")


def test_public_url_follows_port_and_origins_are_normalised(tmp_path):
    base = {"NEXUS_DATA_DIR": str(tmp_path), "ENCRYPTION_KEY": GOOD_KEY}
    assert config.load({**base, "PORT": "4100"}).public_url == "http://localhost:4100"
    settings = config.load(
        {
            **base,
            "PUBLIC_URL": "https://nexus.example.com/",
            "ALLOWED_REDIRECT_ORIGINS": "https://App.Example.com:443, http://localhost:5173",
        }
    )
    assert settings.public_url == "https://nexus.example.com"
    assert settings.allowed_redirect_origins == ("https://app.example.com", "http://localhost:5173")


def test_provider_endpoint_overrides(tmp_path):
    settings = config.load(
        {
            "NEXUS_DATA_DIR": str(tmp_path),
            "ENCRYPTION_KEY": GOOD_KEY,
            "PAYPAL_TOKEN_URL": "https://api-m.sandbox.paypal.com/v1/oauth2/token",
            "SALESFORCE_AUTH_URL": "https://test.salesforce.com/services/oauth2/authorize",
            "SHOPIFY_API_URL": "http://127.0.0.1:9000/shopify/{shop}/",
        }
    )
    assert settings.providers[Provider.PAYPAL].endpoints == {
        "TOKEN": "https://api-m.sandbox.paypal.com/v1/oauth2/token"
    }
    assert settings.providers[Provider.SHOPIFY].endpoints["API"] == "http://127.0.0.1:9000/shopify/{shop}"
    assert settings.providers[Provider.SLACK].missing(Provider.SLACK) == ["SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"]


# --- The settings table (nexusctl/config_table.py) ---------------------------------------


def test_each_setting_is_declared_once_and_settings_has_exactly_the_tables_attributes():
    from nexusctl.config_table import TABLE, Family

    names = config.variable_names()
    assert len(names) == len(set(names))
    fields = [entry.field for entry in TABLE]
    assert len(fields) == len(set(fields))
    assert list(config.Settings._fields) == fields + list(config.DERIVED_FIELDS)
    assert sum(isinstance(entry, Family) for entry in TABLE) == 1  # the provider credentials
    for entry in config.variables():
        assert entry.help.strip() and entry.name == entry.name.upper(), entry.name
    from nexusctl.core.doctor import OWNED

    assert set(OWNED) <= set(names)  # doctor's checks name variables of the table


def test_each_default_is_the_documented_text_read_by_the_variables_own_parser(tmp_path):
    settings = config.load({"NEXUS_DATA_DIR": str(tmp_path), "ENCRYPTION_KEY": GOOD_KEY})
    for entry in config.variables():
        if isinstance(entry.default, str):  # the docs show exactly this text; "" is an empty list
            value = getattr(settings, entry.field)
            assert value == entry.parse(entry.default, entry.name) or entry.secret, entry.name
            if entry.default:
                assert entry.default_text() == f"`{entry.default}`"
    assert (settings.jwt_max_age, settings.token_expiry_warning, settings.webhook_timeout) == (
        86400.0,
        7 * 86400.0,
        15.0,
    )


def test_setting_a_variable_changes_its_attribute():
    """Every single variable reaches the attribute the table names (none is read and dropped)."""
    other_key = base64.b64encode(b"o" * 32).decode()
    samples = {
        "NODE_ENV": "test",
        "PORT": "4001",
        "NEXUS_DATA_DIR": "/tmp/nexusctl-other",
        "DATABASE_URL": "sqlite:////tmp/x.db",
        "REDIS_URL": "redis://h:6379/0",
        "ENCRYPTION_KEY": other_key,
        "ENCRYPTION_OLD_KEYS": GOOD_KEY,
        "FRONTEND_URL": "https://f.example",
        "LOG_FORMAT": "json",
        "NEXUSCTL_EVENT_LOOP": "uvloop",
        "PUBLIC_URL": "https://p.example",
        "WEBHOOK_RETRY_SCHEDULE": "1,2",
        "WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8",
        "ALLOWED_REDIRECT_ORIGINS": "https://o.example",
        "EVENTS_STREAM": "s",
        "EVENTS_CONSUME_STREAMS": "none",
        "EVENTS_CONSUMER_GROUP": "g",
        "GOOGLE_ADS_LOGIN_CUSTOMER_ID": "123-456-7890",
        "TIKTOK_APP": "business",
        "PROXY_FRONT_SECRET": "f" * 64,
    }
    base_env = {"ENCRYPTION_KEY": GOOD_KEY, "NEXUS_DATA_DIR": "/tmp/nexusctl-never-created"}
    base = config.load(base_env)
    for entry in config.variables():
        if entry.name == "JWT_PUBLIC_KEY":
            continue  # needs a PEM key (test_bad_jwt_public_key covers its parser)
        value = samples.get(entry.name, "some-text" if entry.parse is config_values.text else "7")
        changed = config.load({**base_env, entry.name: value})
        assert getattr(changed, entry.field) != getattr(base, entry.field), entry.name


def test_the_proxy_fronts_secret_must_be_long_and_is_never_shown(tmp_path):
    env = {"ENCRYPTION_KEY": GOOD_KEY, "NEXUS_DATA_DIR": str(tmp_path)}
    for bad in ("short-secret", "x" * 201, "y" * 40 + " with a space"):
        with pytest.raises(ConfigError) as caught:
            config.load({**env, "PROXY_FRONT_SECRET": bad})
        assert caught.value.message.startswith("PROXY_FRONT_SECRET") and bad not in caught.value.message
    settings = config.load({**env, "PROXY_FRONT_SECRET": "a" * 64})
    assert settings.proxy_front_secret.get() == "a" * 64 and "a" * 64 not in repr(settings)


# Values each parser refuses somewhere: plain text, and URLs with the secret in the password.
SECRET_PROBES = (
    "s3cr3t-PROBE value\u00e9",
    "postgresql://u:PROBE@h:5432/",
    "redis://:PROBE@/0",
    "https://:PROBE@/",
    "sqlite:///?PROBE",
    "PROBE,PROBE",
)


@pytest.mark.parametrize("name", [e.name for e in config.variables() if e.secret])
@pytest.mark.parametrize("probe", SECRET_PROBES)
def test_a_secret_variable_is_never_echoed(name, probe, tmp_path):
    """Secrets are wrapped (repr hides them) and a refused one is not repeated in the message."""
    values = {"NEXUS_DATA_DIR": str(tmp_path), "ENCRYPTION_KEY": GOOD_KEY, name: probe}
    try:
        settings = config.load(values)
    except ConfigError as exc:
        assert exc.message.startswith(name) and "PROBE" not in exc.message
    else:
        assert "PROBE" not in repr(settings)
