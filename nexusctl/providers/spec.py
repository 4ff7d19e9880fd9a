"""What an OAuth provider is, declaratively, and what a connection yields.

A ``ProviderSpec`` says everything that differs between providers and can be
said as data: endpoints, scopes and their separator, PKCE, how the client
authenticates, parameter-name quirks, the refresh style, the tenant a URL
needs. Behaviour that data cannot express (a token response wrapped in
``data``, errors sent with HTTP 200, a second exchange for a long-lived token)
lives in a small adapter class in ``nexusctl/providers/adapters``.

Facts come from ``shared/reference/providers.md``; the comment on each spec
in ``nexusctl/providers/registry.py`` cites the quirks it encodes.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field

from nexusctl import clock
from nexusctl.enums import Provider


class RefreshStyle(str, enum.Enum):
    STANDARD = "standard"  # grant_type=refresh_token, refresh token kept
    ROTATING = "rotating"  # grant_type=refresh_token, each refresh token single-use
    FB_EXCHANGE = "fb_exchange_token"  # re-exchange the access token itself (Facebook, Meta Ads)
    IG_REFRESH = "ig_refresh_token"  # Instagram: renew a >=24 h old long-lived token
    NONE = "none"  # tokens do not expire (Mailchimp, TikTok Ads, Stripe, WooCommerce keys, SendGrid keys)


class ConnectKind(str, enum.Enum):
    OAUTH2 = "oauth2"
    API_KEY = "api_key"  # SendGrid: the user pastes a key
    KEY_GRANT = "key_grant"  # WooCommerce: /wc-auth/v1/authorize posts keys to us


@dataclass(frozen=True)
class ProviderSpec:
    provider: Provider
    kind: ConnectKind = ConnectKind.OAUTH2
    auth_url: str = ""
    token_url: str = ""
    api_url: str = ""  # base of the provider's API (who-am-I, later syncs)
    revoke_url: str | None = None
    scopes: tuple[str, ...] = ()
    # Scopes a caller may add at initiate (``scopes``), asked for only then: Discord's webhook.incoming makes the
    # user pick a channel on the consent screen, which most connections do not want.
    optional_scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    pkce: bool = False  # S256 only
    client_auth: str = "body"  # "body" or "basic" (HTTP Basic on the token endpoint)
    client_id_param: str = "client_id"  # TikTok: client_key; TikTok Ads: app_id
    authorize_params: tuple[tuple[str, str], ...] = ()  # fixed extras (access_type=offline ...)
    refresh: RefreshStyle = RefreshStyle.STANDARD
    tenant: str | None = None  # "shop" (Shopify) or "storeUrl" (WooCommerce): given at initiate
    needs_credentials: bool = True  # False: SendGrid and WooCommerce have no app credentials
    # The access-token lifetime the provider typically grants (providers.md, Table A), where tokens expire and
    # are renewed: only advice (`nexusctl doctor` and the daemon's start warn when TOKEN_REFRESH_WINDOW is not
    # shorter); each token's own expiry comes from the provider's answer (expires_in).
    token_lifetime: dt.timedelta | None = None

    @property
    def can_refresh(self) -> bool:
        return self.refresh is not RefreshStyle.NONE

    @property
    def can_revoke(self) -> bool:
        return self.revoke_url is not None

    def to_dict(self) -> dict:
        return {
            "connect": self.kind.value,
            "scopes": list(self.scopes),
            "optionalScopes": list(self.optional_scopes),
            "scopeSeparator": self.scope_separator,
            "pkce": self.pkce,
            "clientAuth": self.client_auth,
            "refresh": self.refresh.value,
            "revoke": self.can_revoke,
            "tenant": self.tenant,
        }


class NotYetRefreshable(Exception):
    """The provider renews this token only later (Instagram: once it is 24 h old); it is still valid.

    Not a failure: the refresh is skipped and the sweep comes back at ``refreshable_at``."""

    def __init__(self, message: str, refreshable_at: dt.datetime) -> None:
        super().__init__(message)
        self.message, self.refreshable_at = message, refreshable_at


@dataclass
class TokenSet:
    """What a code exchange or refresh returned, normalised."""

    access_token: str
    refresh_token: str | None = None
    token_type: str | None = "Bearer"
    expires_at: dt.datetime | None = None
    scope: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)  # non-secret provider facts (instance_url, team, dc ...)
    # The token of a channel webhook the provider made at consent (Discord's webhook.incoming): its id is in
    # metadata["webhook"]; id and token together post to the channel, so the token is stored encrypted.
    webhook_token: str | None = None

    def __repr__(self) -> str:  # never print the tokens
        return f"TokenSet(token_type={self.token_type!r}, expires_at={self.expires_at!r}, scope={self.scope!r})"


@dataclass(frozen=True)
class Account:
    """Who the tokens belong to at the provider (for the display name and reconnects)."""

    account_id: str
    name: str
    metadata: dict = field(default_factory=dict)


LONGEST_EXPIRY_SECONDS = 100 * 365.25 * 86400


def expires_at(expires_in, now: dt.datetime | None = None) -> dt.datetime | None:
    """``expires_in`` seconds from now; 0, null or garbage means "does not expire"."""
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return None
    # A provider's answer is as hostile as a user's: 1e20 or "inf" would overflow the datetime (a connect or
    # a refresh ending in an unexpected OverflowError); beyond a century it means "does not expire" here.
    if not 0 < seconds <= LONGEST_EXPIRY_SECONDS:  # also NaN
        return None  # Mailchimp answers expires_in: 0 for "never"
    return (now or clock.now()) + dt.timedelta(seconds=int(seconds))


def split_scope(value, separator: str = " ") -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value).replace(",", " ") if separator == "," or "," in str(value) else str(value)
    return [s for s in text.split() if s]
