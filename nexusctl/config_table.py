"""The settings table: every environment variable nexusctl reads, declared once.

One entry per variable: its name, the ``Settings`` attribute it fills, the parser that
validates it (``nexusctl.config_values``), its default, whether it is a secret, and the
help text. ``config.Settings``, ``config.load``, ``config.variable_names``, doctor's
count, README's configuration table and the ENVIRONMENT section of nexusctl(1) are all
derived from ``TABLE`` (README and man page by ``python -m nexusctl.cli.docgen``).

Adding a setting is one entry in ``TABLE`` (its place there is its row in the docs), then
``python -m nexusctl.cli.docgen`` to rewrite README and man page, e.g.::

    Variable("METRICS_PORT", "metrics_port", v.port, None, "Serve /metrics on this port. Unset: no metrics."),

and the code reads ``settings.metrics_port``. A parser the value needs that is not in
``config_values`` goes there (``(text, name) -> value``, ConfigError starting with the name).

Defaults are written as the variable's text and go through the same parser as a value
from the environment, so the docs show exactly what the code uses. A default that depends
on other variables is a function ``(values, env) -> text`` (``values``: the attributes
already loaded); ``None`` (or ``""`` for lists) means unset. Parsers never echo a secret.

No ``from __future__ import annotations`` here: typing.NamedTuple compiles every string
annotation at import, and this module is read by every command's start.
"""

import logging
import os
from pathlib import Path
from typing import Callable, Mapping, NamedTuple, Union

from nexusctl import config_values as v
from nexusctl.config_providers import load_providers, provider_variable_names
from nexusctl.errors import ConfigError

log = logging.getLogger("nexusctl.config")

DEV_KEY_FILE = "encryption.key"
DEV_JWT_FILE = "jwt.secret"
DEFAULT_DB_FILE = "nexusctl.db"

Default = Union[str, None, Callable[[dict, Mapping[str, str]], str]]


class Variable(NamedTuple):
    name: str  # the environment variable
    field: str  # the Settings attribute it fills
    parse: Callable[[str, str], object]  # (text, name) -> value; ConfigError naming the variable
    default: Default  # text parsed like a value; a function of other settings; None: unset
    help: str  # README and man page (markdown: `code`, [links](#anchor))
    shown: str = ""  # the default as the docs say it, when the default is not a plain text
    secret: bool = False  # the value is wrapped in config_values.Secret and never echoed
    strip: bool = True  # False: the parser gets the text as set (blank still means unset)

    def default_text(self) -> str:
        if self.shown:
            return self.shown
        return f"`{self.default}`" if isinstance(self.default, str) and self.default else "unset"


class Family(NamedTuple):
    """Variables made per provider (or per anything): loaded together into one attribute."""

    field: str
    names: Callable[[], list]  # every variable of the family
    load: Callable[[Mapping[str, str]], object]  # env -> the attribute's value; ConfigError naming the variable
    docs: tuple  # README / man rows: (names, default, help)


# --- defaults that depend on other settings -------------------------------------------


def default_data_dir(values: dict, env: Mapping[str, str]) -> str:
    xdg = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(xdg) / "nexusctl")


def default_database_url(values: dict, env: Mapping[str, str]) -> str:
    return f"sqlite:///{values['data_dir'] / DEFAULT_DB_FILE}"


def default_public_url(values: dict, env: Mapping[str, str]) -> str:
    return f"http://localhost:{values['port']}"


def development_encryption_key(values: dict, env: Mapping[str, str]) -> str:
    """Production refuses to run without ENCRYPTION_KEY; development generates one (mode 0600) once."""
    if values["node_env"] == "production":
        raise ConfigError(
            "ENCRYPTION_KEY: required when NODE_ENV=production; "
            "generate one with `nexusctl keys generate` and keep it in your secret store"
        )
    path = values["data_dir"] / DEV_KEY_FILE
    key, created = dev_secret(path, v.generate_key, lambda text: v.decode_key(text, f"ENCRYPTION_KEY (from {path})"))
    if created:
        log.warning(
            "ENCRYPTION_KEY is not set: generated a development key in %s. "
            "Set ENCRYPTION_KEY (see `nexusctl keys generate`) before production use.",
            path,
        )
    return key


# It writes a file, which must not happen for a configuration that is going to be refused
# anyway: config.load runs it after every other variable has been validated.
development_encryption_key.creates_file = True


def dev_secret(path: Path, generate, check) -> tuple[str, bool]:
    """A per-machine development secret in the data directory: (value, created now)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:  # mkdir's word for a file where the directory should be
        raise ConfigError(f"NEXUS_DATA_DIR: {path.parent} is not a directory") from None
    except OSError as exc:
        raise ConfigError(f"NEXUS_DATA_DIR: cannot create {path.parent}: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            text = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:  # a directory or an unreadable file there: not a crash
            raise ConfigError(f"NEXUS_DATA_DIR: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        check(text)
        return text, False
    except OSError as exc:
        raise ConfigError(f"NEXUS_DATA_DIR: cannot create {path}: {exc.strerror}") from None
    value = generate()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value, True


# Providers named in the docs, in the table's order (README's wording).
_PROVIDER_NAMES = (
    "`TIKTOK`, `INSTAGRAM`, `FACEBOOK`, `YOUTUBE`, `TWITTER`, `LINKEDIN`, `HUBSPOT`, `SALESFORCE`, "
    "`SHOPIFY`, `WOOCOMMERCE`, `META_ADS`, `GOOGLE_ADS`, `TIKTOK_ADS`, `MAILCHIMP`, `SENDGRID`, "
    "`STRIPE`, `PAYPAL`, `ZAPIER`, `SLACK`, `DISCORD`"
)

PROVIDER_CREDENTIALS = Family(
    "providers",
    provider_variable_names,
    load_providers,
    (
        (
            "`<PROVIDER>_CLIENT_ID`, `<PROVIDER>_CLIENT_SECRET`",
            "unset",
            f"OAuth client of each provider: {_PROVIDER_NAMES}. TikTok's is its client key, TikTok Ads' its app id "
            "and secret, Stripe's `ca_…` client id and platform secret key. SendGrid (API keys) and WooCommerce (keys "
            "granted by the store) need none.",
        ),
        (
            "`<PROVIDER>_AUTH_URL`, `_TOKEN_URL`, `_API_URL`, `_REVOKE_URL`",
            "the provider's production endpoints",
            "Override an endpoint: sandboxes (`PAYPAL_TOKEN_URL=https://api-m.sandbox.paypal.com/v1/oauth2/token`, "
            "`SALESFORCE_AUTH_URL=https://test.salesforce.com/services/oauth2/authorize`) and emulators. Shopify URLs "
            "may contain `{shop}`. `nexusctl providers show P` prints the effective ones.",
        ),
        (
            "`GOOGLE_ADS_USERINFO_URL`",
            "`https://openidconnect.googleapis.com/v1/userinfo`",
            "Google Ads' account lookup (OpenID userinfo). `GOOGLE_ADS_API_URL` is the Google Ads API itself "
            "(`https://googleads.googleapis.com/v26`; the version is part of it), which its syncs read.",
        ),
        (
            "`TIKTOK_BUSINESS_URL`",
            "`https://business-api.tiktok.com`",
            "TikTok API for Business (connections with `tiktokApp` `business`): its `open_api/v1.3/tt_user/oauth2/` "
            "token endpoints and its `business/` API, where TikTok's comment endpoints are.",
        ),
        (
            "`TIKTOK_BUSINESS_CLIENT_ID`, `TIKTOK_BUSINESS_CLIENT_SECRET`",
            "unset",
            "The TikTok API for Business app's id and secret (TikTok for Business developer portal), apart from "
            "`TIKTOK_CLIENT_ID` / `_SECRET`, the Login Kit app's client key and secret: they are two apps at TikTok. "
            "Connections with `tiktokApp` `business` use it for their consent, code exchange, refreshes and "
            "revocation; without it such a connect is refused with `PROVIDER_NOT_CONFIGURED` naming it, as a Login "
            "Kit connect is without `TIKTOK_CLIENT_ID`.",
        ),
        (
            "`YOUTUBE_ANALYTICS_URL`",
            "`https://youtubeanalytics.googleapis.com`",
            "The YouTube Analytics API's host (`fetch_analytics`), apart from `YOUTUBE_API_URL`, the Data API.",
        ),
        (
            "`LINKEDIN_APPROVED_SCOPES`, `PAYPAL_APPROVED_SCOPES`, `SHOPIFY_APPROVED_SCOPES`",
            "unset",
            "Approval-only scopes the provider granted this app, space- or comma-separated: `r_member_social` "
            "(LinkedIn partners: `fetch_posts`), `r_member_postAnalytics` (LinkedIn partners: `fetch_analytics`), "
            "`https://uri.paypal.com/services/reporting/search/read` (PayPal partners: "
            "`fetch_transactions`), `read_all_orders` (Shopify: orders older than 60 days). Only then does the "
            "consent ask for them (without the approval the provider refuses the whole consent); see the scopes "
            "table under Syncs. Another value stops with `CONFIG_ERROR`.",
        ),
    ),
)

# Seconds after each failed attempt (Svix's open-source schedule): 8 attempts over ~27 h.
DEFAULT_RETRY_SCHEDULE = "5,300,1800,7200,18000,36000,36000"

TABLE = (
    Variable(
        "NODE_ENV",
        "node_env",
        v.node_env,
        "development",
        "`development`, `production` or `test`. Production requires `ENCRYPTION_KEY`; the daemon also refuses to "
        "start without `DATABASE_URL` and `FRONTEND_URL` (no development defaults), and warns without "
        "`REDIS_URL`.",
    ),
    Variable("PORT", "port", v.port, "3008", "Port of `nexusctl daemon` (`--port` overrides)."),
    Variable(
        "NEXUS_DATA_DIR",
        "data_dir",
        v.path,
        default_data_dir,
        "Where the SQLite file and the development key live. A directory nexusctl creates is mode 0700; the "
        "SQLite file it creates, and its `-wal`/`-shm`/journal files, 0600 (a file made by an older version keeps "
        "its mode: `chmod 600` it).",
        shown="`$XDG_DATA_HOME/nexusctl` (`~/.local/share/nexusctl`)",
    ),
    Variable(
        "DATABASE_URL",
        "database_url",
        v.database_url,
        default_database_url,
        "`sqlite:///path.db` (`sqlite:////abs/path.db`) or `postgresql://user:pass@host:5432/db` (pooled; "
        "PostgreSQL 13 or newer, `db migrate` refuses an older one). Required in production.",
        shown="`sqlite:///<data dir>/nexusctl.db`",
        secret=True,
    ),
    Variable("DATABASE_POOL_SIZE", "database_pool_size", v.positive_int, "10", "PostgreSQL connections per process."),
    Variable(
        "REDIS_URL",
        "redis_url",
        v.redis_url,
        None,
        "`redis://host:6379/0`. Unset: no Redis, everything in the database (in production a warning in the "
        "daemon's log and in `doctor`).",
        secret=True,
    ),
    Variable(
        "ENCRYPTION_KEY",
        "encryption_key",
        v.encryption_key,
        development_encryption_key,
        "Base64 of 32 random bytes (`nexusctl keys generate`). Without it in development, a key is generated "
        "once into `<data dir>/encryption.key` (mode 0600) with a warning.",
        shown="generated in development",
        secret=True,
    ),
    Variable(
        "ENCRYPTION_OLD_KEYS",
        "old_encryption_keys",
        v.old_keys,
        "",
        "Comma-separated older keys that still decrypt (during a rotation).",
        secret=True,
    ),
    Variable(
        "FRONTEND_URL",
        "frontend_url",
        v.http_url,
        "http://localhost:3000",
        "Frontend redirect base. Required in production.",
    ),
    Variable(
        "JWT_SECRET",
        "jwt_secret",
        v.text,
        None,
        "HS256 secret shared with the user service. Without it (and without `JWT_PUBLIC_KEY`) in development, "
        "one is generated into `<data dir>/jwt.secret` (mode 0600); production refuses to serve.",
        shown="generated in development",
        secret=True,
        strip=False,
    ),
    Variable(
        "JWT_PUBLIC_KEY",
        "jwt_public_key",
        v.public_key,
        None,
        "PEM text or a file path: verify RS256 (RSA) or ES256 (EC) tokens instead.",
    ),
    Variable("JWT_ISSUER", "jwt_issuer", v.text, None, "When set, tokens must carry this `iss`."),
    Variable("JWT_AUDIENCE", "jwt_audience", v.text, None, "When set, tokens must carry this `aud`."),
    Variable(
        "JWT_MAX_AGE",
        "jwt_max_age",
        v.duration,
        "24h",
        "Longest token lifetime accepted: a token whose `exp - iat` exceeds it is refused (401). A token without "
        "`iat` is bounded by its `exp` alone. `nexusctl token mint --ttl` may not exceed it.",
    ),
    Variable(
        "LOG_FORMAT",
        "log_format",
        v.choice("text", "json"),
        "text",
        "`json`: the daemon logs one JSON object per line (request logs carry `method`, `route`, `status`, "
        "`duration_ms`, `request_id`, and `error` for an answer whose body was cut short after its status went "
        "out).",
    ),
    Variable(
        "NEXUSCTL_EVENT_LOOP",
        "event_loop",
        v.choice("asyncio", "uvloop"),
        "asyncio",
        "The daemon's event loop: `asyncio` (the standard library's) or `uvloop` (libuv's; asyncio's where uvloop "
        "is not installed, as on Windows). uvloop saved no measurable CPU on the proxy and read routes "
        "(docs/benchmarks.md), and when the process runs out of files it drains the accept queue silently "
        "instead of pausing and logging `cannot accept connections`.",
    ),
    PROVIDER_CREDENTIALS,
    Variable(
        "GOOGLE_ADS_DEVELOPER_TOKEN",
        "google_ads_developer_token",
        v.developer_token,
        None,
        "The application's Google Ads developer token (API Center of the manager account), sent as "
        "`developer-token` on every Google Ads API call and never shown. Without it `fetch_campaigns` of Google "
        "Ads fails with `PROVIDER_NOT_CONFIGURED`.",
        secret=True,
    ),
    Variable(
        "GOOGLE_ADS_LOGIN_CUSTOMER_ID",
        "google_ads_login_customer_id",
        v.customer_id,
        None,
        "10 digits (`123-456-7890` or `1234567890`): the manager account the Google Ads calls go through "
        "(`login-customer-id`), when the users' accounts are reached through one.",
    ),
    Variable(
        "PUBLIC_URL",
        "public_url",
        v.http_url,
        default_public_url,
        "Where providers send the browser back: the callback is "
        "`{PUBLIC_URL}/integrations/oauth/callback/{provider}` (register it at each provider).",
        shown="`http://localhost:<PORT>`",
    ),
    Variable("WEBHOOK_TIMEOUT", "webhook_timeout", v.seconds, "15", "Seconds a receiver has to answer."),
    Variable(
        "HTTP_HEADER_TIMEOUT",
        "http_header_timeout",
        v.seconds,
        "10",
        "Seconds a client has to send a request's line and headers once it connects (or starts its next request "
        "on a kept-alive connection); slower connections are closed.",
    ),
    Variable(
        "HTTP_BODY_TIMEOUT",
        "http_body_timeout",
        v.seconds,
        "30",
        "Seconds a request's body has to arrive once its headers have; a slower body is answered 408 "
        "`REQUEST_TIMEOUT` and the connection closed.",
    ),
    Variable(
        "WEBHOOK_RETRY_SCHEDULE",
        "webhook_retry_schedule",
        v.schedule,
        DEFAULT_RETRY_SCHEDULE,
        "Seconds to wait after each failed attempt (±20% jitter); after the last, the delivery is `FAILED`.",
    ),
    Variable(
        "WEBHOOK_ALLOWED_NETWORKS",
        "webhook_allowed_networks",
        v.networks,
        "",
        "CIDRs exempt from the SSRF guard for every user-supplied URL, not only webhooks (development and tests, "
        "e.g. `127.0.0.1/32` for a local receiver or WooCommerce store). Otherwise loopback, private, "
        "link-local, metadata, multicast and reserved addresses are refused. See "
        "[Outbound requests](#outbound-requests-the-ssrf-guard).",
    ),
    Variable("WEBHOOK_CONCURRENCY", "webhook_concurrency", v.positive_int, "50", "Sends in flight per daemon."),
    Variable(
        "WEBHOOK_CONCURRENCY_PER_ENDPOINT",
        "webhook_concurrency_per_endpoint",
        v.positive_int,
        "16",
        "Sends in flight per webhook while it is slow, failing or not yet known: a slow receiver holds at most "
        "these, the others keep the rest. A webhook whose sends come back 2xx within a second (or half "
        "`WEBHOOK_TIMEOUT`, if less) borrows slots beyond it, step by step as each window of sends at its limit "
        "comes back so, up to `WEBHOOK_CONCURRENCY` less this; its first slow, non-2xx, timed-out or failed send "
        "brings it back to this at once (`nexus_webhook_endpoints_above_cap` on /metrics).",
    ),
    Variable(
        "WEBHOOKS_PER_INTEGRATION_MAX",
        "webhooks_per_integration_max",
        v.positive_int,
        "20",
        "Webhooks one integration may have, active or not (as GitHub's 20 per event of a repository): one more is "
        "refused `VALIDATION_ERROR`. Every matching webhook gets a delivery of each event, so this bounds the "
        "deliveries one event queues. Existing webhooks over a lowered limit stay.",
    ),
    Variable(
        "EMIT_DELIVERIES_MAX",
        "emit_deliveries_max",
        v.positive_int,
        "10000",
        "Deliveries one emit may queue, its events times their matching webhooks (`POST /integrations/events`, "
        "one batch of `events emit --file`): more is refused whole, `PAYLOAD_TOO_LARGE` 413, nothing written "
        "(`events emit --file` sends such a batch in smaller parts). The default lets a full batch of 500 events "
        "reach 20 webhooks each.",
    ),
    Variable(
        "TOKEN_REFRESH_WINDOW",
        "token_refresh_window",
        v.duration,
        "10m",
        "The daemon refreshes tokens that expire within this (`600`, `90s`, `10m`, `1h`). Keep it shorter than "
        "the providers' access tokens live (HubSpot 30 min; Google, YouTube and Shopify 1 h; X and TikTok 2 h): "
        "a fresh token inside the window is refreshed on every sweep (`doctor` and the daemon's log warn).",
    ),
    Variable(
        "REFRESH_SWEEP_INTERVAL",
        "refresh_sweep_seconds",
        v.duration,
        "60s",
        "How often the daemon looks for such tokens.",
    ),
    Variable(
        "REFRESH_SWEEP_BATCH",
        "refresh_sweep_batch",
        v.positive_int,
        "500",
        "Integrations a sweep pass claims; a full pass is followed at once by the next (within one interval for "
        "the daemon, until done for `integrations refresh --expiring-within`).",
    ),
    Variable(
        "REFRESH_SWEEP_CONCURRENCY",
        "refresh_sweep_concurrency",
        v.positive_int,
        "5",
        "Refreshes (provider calls) a sweep runs at once; raise it to refresh a large burst of expiring tokens "
        "faster, as far as the providers keep up.",
    ),
    Variable(
        "TOKEN_EXPIRY_WARNING",
        "token_expiry_warning",
        v.duration,
        "7d",
        "Facebook, Meta Ads and Instagram long-lived tokens (no refresh token) are renewed this long before they "
        "expire; a token that cannot be renewed gets one `integration.error` (`TOKEN_EXPIRING`) this long ahead.",
    ),
    Variable(
        "RETENTION_DAYS",
        "retention_days",
        v.days,
        "30",
        "Finished deliveries (with their attempts), sync logs and outbox events older than this many days (1 to "
        "36525) are purged hourly; pending work and events not yet published never.",
    ),
    Variable(
        "EVENTS_STREAM",
        "events_stream",
        v.stream_name,
        "nexus.events",
        "With `REDIS_URL`: the Redis Stream the daemon publishes its events to.",
    ),
    Variable(
        "EVENTS_STREAM_MAXLEN",
        "events_stream_maxlen",
        v.positive_int,
        "1000000",
        "The stream is trimmed to about this many entries (`XADD MAXLEN ~`).",
    ),
    Variable(
        "EVENTS_CONSUME_STREAMS",
        "events_consume_streams",
        v.stream_names,
        "nexus.events",
        "Comma-separated streams the daemon reads `user.deleted` and `content.published` from; `none` turns the "
        "consumer off.",
    ),
    Variable(
        "EVENTS_CONSUMER_GROUP",
        "events_consumer_group",
        v.stream_name,
        "nexusctl",
        "The consumer group all daemons share (each daemon is one consumer, `host:pid`).",
    ),
    Variable(
        "SYNC_RATE_LIMIT_BUDGET",
        "sync_rate_limit_budget",
        v.duration,
        "120s",
        "How long one sync run may wait out provider rate limits; beyond it the run ends `FAILED` "
        "(`RATE_LIMITED`) and the next run resumes from its cursor. A wait the integration's rate budget already "
        "holds (told to the API proxy or another run) that is longer defers the run instead: `PENDING` until the "
        "wait ends, then taken by the daemon's sync runner.",
    ),
    Variable(
        "TIKTOK_APP",
        "tiktok_app",
        v.choice("login_kit", "business"),
        "login_kit",
        "The kind of TikTok app a new TikTok connection is made with when the caller does not choose one "
        "(`metadata.provider.tiktokApp` at initiate, `integrations connect --tiktok-app`). `login_kit`: a TikTok "
        "for Developers app (Login Kit, Display and Content Posting APIs at open.tiktokapis.com): posts, analytics "
        "and publishing, no comments (that API has none). `business`: a TikTok API for Business app (TikTok "
        "Accounts API, its own client: `TIKTOK_BUSINESS_CLIENT_ID` / `_SECRET`): a TikTok business account "
        "authorizes at the same www.tiktok.com consent, tokens come from "
        "business-api.tiktok.com's `tt_user/oauth2/token/` (`TIKTOK_BUSINESS_URL`), and the connection offers "
        "comments (`fetch_comments`, replies; scopes `video.list`, `comment.list`, `comment.list.manage`) but not "
        "the Login Kit actions. A connect with a kind whose client is unset is refused with `PROVIDER_NOT_CONFIGURED`. "
        "Each connection keeps the kind it was made with (`metadata.provider.tiktokApp`), "
        "so both kinds live side by side and changing this touches no existing connection.",
    ),
    Variable(
        "DISCORD_BOT_TOKEN",
        "discord_bot_token",
        v.text,
        None,
        "The Discord application's bot token: publishing to Discord posts to `metadata.publishChannel` as this "
        "bot (add it to the server with the OAuth `bot` scope), only into a server the connected user is in and "
        "manages.",
        secret=True,
    ),
    Variable(
        "SLACK_SIGNING_SECRET",
        "slack_signing_secret",
        v.text,
        None,
        "The Slack app's Signing Secret (Basic Information > App Credentials): verifies the slash commands Slack "
        "posts to `/integrations/inbound/slack/commands`. Unset: every command is refused "
        "(`PROVIDER_NOT_CONFIGURED`). Never logged.",
        secret=True,
    ),
    Variable(
        "PROXY_FRONT_SECRET",
        "proxy_front_secret",
        v.shared_secret,
        None,
        "Shared with an optional C front of the provider API proxy (nginx, see "
        "[Provider API proxy](#provider-api-proxy)): the front sends it as `X-Nexus-Front-Secret` to "
        "`GET /integrations/:id/proxy-grant/*path`, which answers the exact provider URL and credential headers. "
        "32 to 200 printable characters (e.g. `openssl rand -hex 32`). Unset: that route does not exist. Never "
        "logged.",
        secret=True,
    ),
    Variable(
        "NEXUSCTL_CLOCK_FILE",
        "clock_file",
        v.text,
        None,
        "Test facility only: a file holding seconds added to the service's clock (token expiry, refresh windows, "
        "schedules, stored timestamps, and the waits for a provider: a throttle's, a reel's processing), re-read "
        "when it changes, so tests move time for running daemons and the provider emulators together. Refused when "
        "`NODE_ENV=production`; a daemon using it says so in its start-up log and `/ready` (`checks.clock`).",
    ),
    Variable(
        "SYNC_POLL_INTERVAL",
        "sync_poll_seconds",
        v.duration,
        "30s",
        "How often the daemon starts syncs whose `metadata.syncSchedule` has come and recovers runs a dead "
        "process left. A deferred run (`PENDING` with `runAfter`: a rate-limit wait, a video still processing) "
        "does not wait for it: the daemon's sync runner wakes at the earliest `runAfter` it knows of (its own "
        "deferrals, and those in the database as of its last pass).",
    ),
    Variable(
        "PUBLISH_PROCESSING_TIMEOUT",
        "publish_processing_seconds",
        v.duration,
        "15m",
        "How long a publish run waits for the provider to process its video (an Instagram reel) before it ends "
        "`FAILED`; meanwhile the run is deferred and looked at again.",
    ),
    Variable(
        "EVENTS_CLAIM_IDLE",
        "events_claim_idle",
        v.duration,
        "60s",
        "An entry a dead consumer left unacknowledged this long is taken over by another daemon.",
    ),
    Variable(
        "ALLOWED_REDIRECT_ORIGINS",
        "allowed_redirect_origins",
        v.origins,
        "",
        "Comma-separated origins (`https://app.example.com`) a connect flow may return to, besides "
        "`FRONTEND_URL`'s origin. Any other `redirectUri` is refused.",
    ),
    Variable(
        "HEALTH_CHECK_INTERVAL",
        "health_check_seconds",
        v.duration,
        "60s",
        "How often the daemon checks the integrations whose health check is due (at most 200 a run).",
    ),
    Variable(
        "HEALTH_RECHECK",
        "health_recheck_seconds",
        v.duration,
        "15m",
        "An integration nothing happened to is checked again after this (a failed refresh, a sync outcome, "
        "a reconnect, or an expiry coming within `TOKEN_EXPIRY_WARNING` makes it due sooner).",
    ),
)
