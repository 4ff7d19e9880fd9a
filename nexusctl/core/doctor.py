"""`nexusctl doctor`: is this installation able to run, and if not, what to change.

Each check returns ``Check`` lines (nexusctl.core.readiness: name, outcome, message, hint). The
configuration is read with ``config.load`` itself, repeatedly: each time it
refuses a variable, that variable is recorded and dropped, so one run names
every bad variable instead of only the first, and the other checks still run on
what is left. A variable whose check is its own (DATABASE_URL, REDIS_URL,
ENCRYPTION_KEY, PUBLIC_URL, FRONTEND_URL, PORT, <PROVIDER>_*) is reported by
that check, not twice.

The service checks (database, Redis, encryption, daemon port) are in
``nexusctl.core.doctor_services``. Nothing here prints or returns a secret:
details name variables, hosts, row ids and key ids only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

from nexusctl import config, config_values
from nexusctl.core import refresh_window
from nexusctl.core.readiness import FAIL, OK, WARN, Check
from nexusctl.enums import Provider
from nexusctl.errors import ConfigError
from nexusctl.providers.adapters import tiktok
from nexusctl.providers.registry import SPECS, adapter_for
from nexusctl.providers.spec import ConnectKind

_VARIABLE = re.compile(r"^([A-Z][A-Z0-9_]*)\b")
# Variables some other check reports (with its own hint), so `config` leaves them out. Every other
# variable of the settings table (config_table.TABLE) is reported by `config` when load() refuses it.
OWNED = {
    "DATABASE_URL": "database",
    "DATABASE_POOL_SIZE": "database",
    "REDIS_URL": "redis",
    "ENCRYPTION_KEY": "encryption",
    "ENCRYPTION_OLD_KEYS": "encryption",
    "PUBLIC_URL": "public-url",
    "FRONTEND_URL": "frontend-url",
    "PORT": "daemon-port",
}


@dataclass
class Loaded:
    """The settings doctor works on, and the variables load() refused on the way."""

    settings: config.Settings | None
    errors: dict[str, str]  # variable -> load()'s message (names the variable, never its value if secret)
    env: Mapping[str, str]
    placeholder_key: bool = False  # the real key was unusable: a throwaway one stands in

    def error_for(self, *names: str) -> tuple[str, str] | None:
        return next(((n, self.errors[n]) for n in names if n in self.errors), None)


def load_settings(env: Mapping[str, str]) -> Loaded:
    """config.load(), dropping each refused variable until it succeeds (or cannot)."""
    work, errors, placeholder = dict(env), {}, False
    for _ in range(len(config.variable_names()) + 2):
        try:
            return Loaded(config.load(work), errors, env, placeholder)
        except ConfigError as exc:
            match = _VARIABLE.match(exc.message)
            name = match.group(1) if match else "CONFIGURATION"
            if name in errors:
                break  # dropping it did not help: nothing more to learn
            errors[name] = exc.message
            if name in ("ENCRYPTION_KEY", "NEXUS_DATA_DIR"):
                # Never fall back to generating a development key somewhere else: a throwaway key
                # lets the other checks run, and the encryption check says it checked nothing.
                work["ENCRYPTION_KEY"], placeholder = config.generate_key(), True
            elif work.get(name, "").strip():
                work.pop(name)
            else:
                break
    return Loaded(None, errors, env, placeholder)


def check_config(loaded: Loaded) -> list[Check]:
    provider_variables = set().union(*(_variables_of(p) for p in Provider))
    own = {n: m for n, m in loaded.errors.items() if n not in OWNED and n not in provider_variables}
    findings = [Check("config", FAIL, message, _config_hint(name)) for name, message in own.items()]
    settings = loaded.settings
    if settings is None:
        if not findings:
            findings.append(
                Check(
                    "config",
                    FAIL,
                    "the configuration cannot be loaded",
                    "fix the variables named above (README: Configuration)",
                )
            )
        return findings
    if settings.is_production:
        findings += _production(settings)
    if (wide := refresh_window.too_wide(settings)) is not None:
        findings.append(Check("config", WARN, wide.message, wide.hint))
    if not findings:
        count = sum(1 for n in config.variable_names() if loaded.env.get(n, "").strip())
        validity = f"{len(loaded.errors)} refused, see below" if loaded.errors else "all valid"
        findings.append(Check("config", OK, f"{count} variable(s) set, {validity} (NODE_ENV={settings.node_env})"))
    return findings


def _config_hint(name: str) -> str:
    if name == "NEXUS_DATA_DIR":
        return "point NEXUS_DATA_DIR at a directory this user can write (or unset it)"
    return f"fix or unset {name} (README: Configuration lists each variable and its form)"


def _production(settings: config.Settings) -> list[Check]:
    """What NODE_ENV=production needs beyond valid values (ENCRYPTION_KEY: the encryption check)."""
    findings = []
    if settings.jwt_secret is None and settings.jwt_public_key is None:
        findings.append(
            Check(
                "config",
                FAIL,
                "JWT_SECRET: not set, and NODE_ENV=production refuses a generated one",
                "set JWT_SECRET (shared with the user service) or JWT_PUBLIC_KEY",
            )
        )
    if settings.webhook_allowed_networks:
        findings.append(
            Check(
                "config",
                WARN,
                "WEBHOOK_ALLOWED_NETWORKS exempts addresses from the SSRF guard in production",
                "unset WEBHOOK_ALLOWED_NETWORKS unless a receiver really is there",
            )
        )
    return findings


def check_url(loaded: Loaded, name: str) -> Check:
    """PUBLIC_URL / FRONTEND_URL: absolute http(s), https in production, nothing after the path."""
    check = name.lower().replace("_", "-")
    example = "https://nexus.example.com" if name == "PUBLIC_URL" else "https://app.example.com"
    default = (
        f"http://localhost:{loaded.settings.port if loaded.settings else 3008}"
        if name == "PUBLIC_URL"
        else "http://localhost:3000"
    )
    if name in config.missing_for_production(loaded.env):
        return Check(
            check,
            FAIL,
            f"{name}: not set, and NODE_ENV=production has no default (the daemon refuses to start)",
            f"set {name} to a full URL such as {example}",
        )
    value = loaded.env.get(name, "").strip() or default
    role = (
        "providers send the browser back to {value}/integrations/oauth/callback/<provider>"
        if name == "PUBLIC_URL"
        else "the default place users land after connecting"
    )
    shown = config_values.redact_url(value)  # a password in its userinfo or query is never printed
    try:
        parts = config_values.split_url(value, name)
    except ConfigError as exc:  # an unclosed IPv6 bracket, a port that is not a number: a failed check, no crash
        return Check(check, FAIL, exc.message, f"set {name} to a full URL such as {example}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Check(
            check,
            FAIL,
            f"{name}={shown!r} is not an absolute http(s) URL",
            f"set {name} to a full URL such as {example}",
        )
    production = bool(loaded.settings and loaded.settings.is_production)
    if production and parts.scheme != "https":
        return Check(check, FAIL, f"{name} is http in production", f"serve it over https and set {name}=https://...")
    if parts.query or parts.fragment:
        return Check(
            check, FAIL, f"{name} has a query or fragment ({shown})", f"set {name} to scheme://host[:port][/path] only"
        )
    if name == "PUBLIC_URL" and parts.path.strip("/"):
        return Check(
            check,
            WARN,
            f"{name} has a path ({parts.path}); callbacks go to "
            f"{shown.rstrip('/')}/integrations/oauth/callback/<provider>",
            "fine behind a proxy that strips the prefix; otherwise drop the path",
        )
    if production and parts.hostname in ("localhost", "127.0.0.1", "::1"):
        return Check(
            check, WARN, f"{name} points at {parts.hostname} in production", f"set {name} to the public address"
        )
    return Check(check, OK, f"{shown.rstrip('/')} ({role.format(value=shown.rstrip('/'))})")


def check_providers(loaded: Loaded) -> list[Check]:
    """Each provider with credentials (or a refused variable): both halves present, endpoints absolute."""
    settings, findings = loaded.settings, []
    for provider in Provider:
        check = f"provider {provider.value}"
        refused = [(n, m) for n, m in loaded.errors.items() if n in _variables_of(provider)]
        if refused:
            findings += [Check(check, FAIL, m, f"fix or unset {n} (an http(s) URL with a host)") for n, m in refused]
            continue
        if settings is None:
            continue
        creds = settings.providers[provider]
        # The provider's client and, for TikTok, that of its other kind of app (TIKTOK_BUSINESS_CLIENT_ID / _SECRET).
        clients = [creds, *creds.apps.values()]
        if not any(c.client_id or c.client_secret for c in clients):
            continue
        halves = [c.missing(provider) for c in clients if (c.client_id or c.client_secret) and c.missing(provider)]
        if halves and SPECS[provider].needs_credentials:
            findings += [
                Check(
                    check,
                    FAIL,
                    f"{' and '.join(missing)} not set (the other half is)",
                    f"set {missing[0]} from the provider's developer console, or unset both",
                )
                for missing in halves
            ]
            continue
        finding = _endpoints(provider, settings)
        if finding.outcome == OK and provider is Provider.TIKTOK:
            finding = _tiktok_clients(settings, finding)
        findings.append(_companion(provider, settings, finding) if finding.outcome == OK else finding)
    if settings is not None and not findings:
        findings.append(
            Check(
                "providers",
                WARN,
                "no provider has credentials: only SENDGRID and WOOCOMMERCE can connect",
                "set <PROVIDER>_CLIENT_ID and _CLIENT_SECRET (`nexusctl providers show P` names them)",
            )
        )
    return findings


def _tiktok_clients(settings: config.Settings, ok: Check) -> Check:
    """Which kinds of TikTok app can connect: each is an app of its own at TikTok, with its own client (Login Kit:
    TIKTOK_CLIENT_ID / _SECRET; TikTok API for Business: TIKTOK_BUSINESS_CLIENT_ID / _SECRET), and a connect with
    a kind whose client is unset is refused (PROVIDER_NOT_CONFIGURED). A warning when that is TIKTOK_APP's kind,
    the one a connect gets when it chooses none."""
    creds = settings.providers[Provider.TIKTOK]
    unset = {app: creds.of_app(app).missing(Provider.TIKTOK) for app in tiktok.APPS}
    unset = {app: names for app, names in unset.items() if names}
    default = settings.tiktok_app
    if default in unset:
        return Check(
            ok.name,
            WARN,
            f"TIKTOK_APP is {default} but that kind of TikTok app has no client: a TikTok connect that chooses no "
            f"kind is refused (PROVIDER_NOT_CONFIGURED)",
            f"set {' and '.join(unset[default])}, or set TIKTOK_APP to the kind whose client is set",
        )
    if unset:
        ((app, names),) = unset.items()
        return Check(ok.name, OK, f"{ok.message}; {app} connections refused until {' and '.join(names)} are set")
    return ok


def _variables_of(provider: Provider) -> set[str]:
    """Exactly this provider's variables, from the settings table's provider family."""
    return set(config.credential_variables(provider))


def _endpoint_urls(provider: Provider, settings: config.Settings) -> dict[str, str]:
    """Every endpoint a connection of ``provider`` may use, by kind. TikTok's are those of both kinds of TikTok
    app: each connection keeps the kind it was made with (metadata.provider.tiktokApp), whatever TIKTOK_APP says
    now, so a Login Kit connection uses TIKTOK_API_URL even where TIKTOK_APP=business. A kind whose URL differs
    between them is named with the app's (``TOKEN (business)``)."""
    apps = tiktok.APPS if provider is Provider.TIKTOK else (None,)
    found: dict[str, dict[str, str]] = {}  # kind -> app -> URL
    for app in apps:
        adapter = adapter_for(provider, settings, tiktok_app=app)
        for kind in config.endpoint_kinds(provider):
            url = adapter.url(kind, "shop.example.com")
            if url and "{" not in url:  # {instance_url}: known only per connection
                found.setdefault(kind, {})[app] = url
    urls = {}
    for kind, by_app in found.items():
        if len(set(by_app.values())) == 1:
            urls[kind] = next(iter(by_app.values()))
        else:
            urls.update({f"{kind} ({app})": url for app, url in by_app.items()})
    return urls


def _endpoints(provider: Provider, settings: config.Settings) -> Check:
    adapter = adapter_for(provider, settings)
    urls = _endpoint_urls(provider, settings)
    bad = [k for k, u in urls.items() if urlsplit(u).scheme not in ("http", "https") or not urlsplit(u).hostname]
    check = f"provider {provider.value}"
    if bad:
        return Check(
            check,
            FAIL,
            f"endpoint(s) {', '.join(bad)} not absolute http(s) URLs",
            f"fix {provider.value}_<KIND>_URL (`nexusctl providers show {provider.value}`)",
        )
    # The overrides themselves (each is used by some connection: TikTok's by one kind of app or both), not the
    # URLs made from them, so the hint names the variable to change.
    overrides = settings.providers[provider].endpoints
    plain = [k for k in config.endpoint_kinds(provider) if overrides.get(k, "").startswith("http:")]
    if settings.is_production and plain:
        return Check(
            check,
            WARN,
            f"endpoint override(s) {', '.join(plain)} are http in production",
            f"use https for {provider.value}_{plain[0]}_URL, or unset it",
        )
    if SPECS[provider].kind is ConnectKind.API_KEY:  # the user pastes a key: no browser comes back
        return Check(
            check, OK, f"{len(urls)} endpoint(s) well formed; connects with each user's API key (no OAuth callback)"
        )
    both = " (of both kinds of TikTok app, login_kit and business)" if provider is Provider.TIKTOK else ""
    callback = config_values.redact_url(adapter.redirect_uri)  # PUBLIC_URL's password or token never shown
    return Check(check, OK, f"credentials set, {len(urls)} endpoint(s) well formed{both}, callback {callback}")


# Providers whose connections work but one feature needs an application-wide token as well.
_COMPANIONS = {
    Provider.GOOGLE_ADS: (
        "google_ads_developer_token",
        "GOOGLE_ADS_DEVELOPER_TOKEN",
        "fetch_campaigns fails with PROVIDER_NOT_CONFIGURED",
    ),
    Provider.DISCORD: (
        "discord_bot_token",
        "DISCORD_BOT_TOKEN",
        "publishing to Discord as the bot fails (a channel webhook still posts)",
    ),
    Provider.SLACK: ("slack_signing_secret", "SLACK_SIGNING_SECRET", "Slack's slash commands are refused"),
}


def _companion(provider: Provider, settings: config.Settings, ok: Check) -> Check:
    if provider not in _COMPANIONS:
        return ok
    attribute, variable, effect = _COMPANIONS[provider]
    if getattr(settings, attribute) is not None:
        return ok
    return Check(ok.name, WARN, f"credentials set, {variable} not set: {effect}", f"set {variable}")


def exit_failed(findings: list[Check]) -> bool:
    return any(f.failed for f in findings)
