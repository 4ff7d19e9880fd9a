"""The provider credentials: a family of variables, the same few for every provider.

``<PROVIDER>_CLIENT_ID`` / ``_CLIENT_SECRET`` (the OAuth client), ``<PROVIDER>_<KIND>_URL``
(endpoint overrides: sandboxes, emulators) and ``<PROVIDER>_APPROVED_SCOPES`` (scopes the
provider grants only to apps it approved). The settings table holds the family as one
entry (``config_table.PROVIDER_CREDENTIALS``) whose names and loader are here.
"""

from types import MappingProxyType
from typing import Mapping, NamedTuple
from urllib.parse import urlsplit

from nexusctl.config_values import Secret
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


def endpoint_kinds(provider: Provider) -> tuple[str, ...]:
    return ENDPOINT_KINDS + EXTRA_ENDPOINT_KINDS.get(provider, ())


def credential_variables(provider: Provider) -> list[str]:
    """The provider's client and endpoint variables (TIKTOK_CLIENT_ID is TikTok's, TIKTOK_ADS_CLIENT_ID is not)."""
    return [
        f"{provider.value}_CLIENT_ID",
        f"{provider.value}_CLIENT_SECRET",
        *(f"{provider.value}_{kind}_URL" for kind in endpoint_kinds(provider)),
    ]


def provider_variable_names() -> list[str]:
    """Every variable of the family, provider by provider."""
    names = [name for provider in Provider for name in credential_variables(provider)]
    return names + [f"{provider.value}_APPROVED_SCOPES" for provider in APPROVAL_SCOPES]


def load_providers(env: Mapping[str, str]) -> dict[Provider, ProviderCredentials]:
    creds = {}
    for provider in Provider:
        client_id = env.get(f"{provider.value}_CLIENT_ID", "").strip() or None
        secret = env.get(f"{provider.value}_CLIENT_SECRET", "").strip() or None
        endpoints = {}
        for kind in endpoint_kinds(provider):
            name = f"{provider.value}_{kind}_URL"
            value = env.get(name, "").strip()
            if value:
                parts = urlsplit(value.replace("{shop}", "shop"))
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise ConfigError(f"{name}: {value!r} is not an http(s) URL with a host")
                endpoints[kind] = value.rstrip("/") if kind == "API" else value
        creds[provider] = ProviderCredentials(
            client_id, Secret(secret) if secret else None, endpoints, _approved_scopes(env, provider)
        )
    return creds


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
