"""The provider credentials: a family of variables, the same few for every provider.

``<PROVIDER>_CLIENT_ID`` / ``_CLIENT_SECRET`` (the OAuth client; a provider with several kinds of app has one
client per kind, ``<PROVIDER>_<APP>_CLIENT_ID`` / ``_CLIENT_SECRET``: ``APP_CLIENTS``), ``<PROVIDER>_<KIND>_URL``
(endpoint overrides: sandboxes, emulators) and ``<PROVIDER>_APPROVED_SCOPES`` (scopes the
provider grants only to apps it approved). The settings table holds the family as one
entry (``config_table.PROVIDER_CREDENTIALS``) whose names and loader are here.
"""

from types import MappingProxyType
from typing import Mapping, NamedTuple

from nexusctl.config_values import Secret, redact_url, split_url
from nexusctl.enums import Provider
from nexusctl.errors import ConfigError

ENDPOINT_KINDS = ("AUTH", "TOKEN", "API", "REVOKE")
# Endpoints only some providers have, overridable the same way (<PROVIDER>_<KIND>_URL): Google Ads' API is
# googleads.googleapis.com (GOOGLE_ADS_API_URL), so its who-am-I (OpenID userinfo) has a URL of its own.
# YouTube Analytics is youtubeanalytics.googleapis.com, apart from the Data API (YOUTUBE_ANALYTICS_URL).
# TikTok API for Business (a connection with tiktokApp business) is business-api.tiktok.com, apart from Login Kit's
# hosts (TIKTOK_BUSINESS_URL): its tt_user/oauth2 token endpoints and its business/ API (comments).
EXTRA_ENDPOINT_KINDS = {
    Provider.GOOGLE_ADS: ("USERINFO",),
    Provider.YOUTUBE: ("ANALYTICS",),
    Provider.TIKTOK: ("BUSINESS",),
}
# Providers whose connections are made with one of several kinds of app, each registered apart at the provider
# with its own credentials: <PROVIDER>_<APP>_CLIENT_ID / _CLIENT_SECRET. TikTok's Login Kit app (TIKTOK_CLIENT_ID,
# its client key) and its TikTok API for Business app (TIKTOK_BUSINESS_CLIENT_ID / _SECRET: that app's id and
# secret) are two apps: a connection made with tiktokApp business uses the latter's for its consent, code
# exchange, refreshes and revocation.
APP_CLIENTS = {Provider.TIKTOK: ("BUSINESS",)}
# Scopes a provider grants only to apps it approved (partner programmes, per-app reviews): the service asks
# for one only when the operator says the app has it (<PROVIDER>_APPROVED_SCOPES), since asking without the
# approval makes the provider refuse the whole consent. Why each needs approval: nexusctl/providers/scopes.py.
APPROVAL_SCOPES = {
    Provider.LINKEDIN: ("r_member_social", "r_member_postAnalytics"),
    Provider.PAYPAL: ("https://uri.paypal.com/services/reporting/search/read",),
    Provider.SHOPIFY: ("read_all_orders",),
}


# A NamedTuple, not a frozen dataclass: @dataclass generates and compiles its methods at import,
# which every command's start would pay. No `from __future__ import annotations` in this module:
# typing.NamedTuple compiles each string annotation (a ForwardRef) at import.
class ProviderCredentials(NamedTuple):
    client_id: str | None
    client_secret: Secret | None
    # <PROVIDER>_AUTH_URL / _TOKEN_URL / _API_URL / _REVOKE_URL: sandboxes and emulators.
    endpoints: Mapping[str, str] = MappingProxyType({})
    # <PROVIDER>_APPROVED_SCOPES: approval-only scopes (APPROVAL_SCOPES) the provider granted this app.
    approved_scopes: tuple[str, ...] = ()
    # The client of each other kind of app (APP_CLIENTS), by its name ("BUSINESS"): credentials of their own, the
    # same endpoint overrides and approvals.
    apps: Mapping[str, object] = MappingProxyType({})
    # The variables' prefix when it is not the provider's name (an app's client: TIKTOK_BUSINESS).
    prefix: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret)

    @property
    def any_configured(self) -> bool:
        """Whether some kind of app of the provider can connect (TikTok: Login Kit's client or Business's)."""
        return self.configured or any(app.configured for app in self.apps.values())

    def of_app(self, app: str | None) -> "ProviderCredentials":
        """The client of the kind of app ``app`` (APP_CLIENTS, any case); this one for None or the main app."""
        return self.apps.get((app or "").upper(), self)

    def missing(self, provider: Provider) -> list[str]:
        """The variables still to set before this provider (this kind of app of it) can connect."""
        prefix = self.prefix or provider.value
        names = []
        if not self.client_id:
            names.append(f"{prefix}_CLIENT_ID")
        if not self.client_secret:
            names.append(f"{prefix}_CLIENT_SECRET")
        return names


def endpoint_kinds(provider: Provider) -> tuple[str, ...]:
    return ENDPOINT_KINDS + EXTRA_ENDPOINT_KINDS.get(provider, ())


def credential_variables(provider: Provider) -> list[str]:
    """The provider's client and endpoint variables (TIKTOK_CLIENT_ID is TikTok's, TIKTOK_ADS_CLIENT_ID is not)."""
    return [
        f"{provider.value}_CLIENT_ID",
        f"{provider.value}_CLIENT_SECRET",
        *(
            f"{provider.value}_{app}_CLIENT_{half}"
            for app in APP_CLIENTS.get(provider, ())
            for half in ("ID", "SECRET")
        ),
        *(f"{provider.value}_{kind}_URL" for kind in endpoint_kinds(provider)),
    ]


def provider_variable_names() -> list[str]:
    """Every variable of the family, provider by provider."""
    names = [name for provider in Provider for name in credential_variables(provider)]
    return names + [f"{provider.value}_APPROVED_SCOPES" for provider in APPROVAL_SCOPES]


def load_providers(env: Mapping[str, str]) -> dict[Provider, ProviderCredentials]:
    creds = {}
    for provider in Provider:
        endpoints = {}
        for kind in endpoint_kinds(provider):
            name = f"{provider.value}_{kind}_URL"
            value = env.get(name, "").strip()
            if value:
                parts = split_url(value.replace("{shop}", "shop"), name, shown=value)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise ConfigError(f"{name}: {redact_url(value)!r} is not an http(s) URL with a host")
                endpoints[kind] = value.rstrip("/") if kind == "API" else value
        approved = _approved_scopes(env, provider)
        apps = {}
        for app in APP_CLIENTS.get(provider, ()):
            prefix = f"{provider.value}_{app}"
            app_id, app_secret = _client(env, prefix)
            apps[app] = ProviderCredentials(app_id, app_secret, endpoints, approved, prefix=prefix)
        client_id, secret = _client(env, provider.value)
        creds[provider] = ProviderCredentials(client_id, secret, endpoints, approved, MappingProxyType(apps))
    return creds


def _client(env: Mapping[str, str], prefix: str) -> tuple[str | None, Secret | None]:
    client_id = env.get(f"{prefix}_CLIENT_ID", "").strip() or None
    secret = env.get(f"{prefix}_CLIENT_SECRET", "").strip() or None
    return client_id, Secret(secret) if secret else None


def _approved_scopes(env: Mapping[str, str], provider: Provider) -> tuple[str, ...]:
    name = f"{provider.value}_APPROVED_SCOPES"
    given = [s for s in env.get(name, "").replace(",", " ").split() if s]
    known = APPROVAL_SCOPES.get(provider, ())
    unknown = [s for s in given if s not in known]
    if unknown:
        raise ConfigError(
            f"{name}: {', '.join(unknown)} is not a scope {provider.value} approves per app "
            f"(known: {', '.join(known) or 'none'})"
        )
    return tuple(s for s in known if s in given)
