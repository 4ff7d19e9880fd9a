"""The 20 provider specs and the adapter class of each.

Sources: shared/reference/providers.md (Tables A and B). Endpoints are the
providers' production ones; each can be overridden with <PROVIDER>_AUTH_URL,
_TOKEN_URL, _API_URL and _REVOKE_URL (sandboxes such as PayPal's or
Salesforce's test.salesforce.com, and the emulators in tests/).
"""

from __future__ import annotations

import datetime as dt

from nexusctl.enums import Provider
from nexusctl.providers.adapters import business, commerce, meta, standard, tiktok
from nexusctl.providers.oauth2 import OAuth2Adapter
from nexusctl.providers.spec import ConnectKind, ProviderSpec
from nexusctl.providers.spec import RefreshStyle as R

_GOOGLE_AUTH = "https://accounts.google.com/o/oauth2/v2/auth"
_GOOGLE_TOKEN = "https://oauth2.googleapis.com/token"
_GOOGLE_REVOKE = "https://oauth2.googleapis.com/revoke"
_GOOGLE_OFFLINE = (("access_type", "offline"), ("prompt", "consent"))
_FB_AUTH = "https://www.facebook.com/v22.0/dialog/oauth"
_FB_TOKEN = "https://graph.facebook.com/v22.0/oauth/access_token"
_FB_API = "https://graph.facebook.com/v22.0"
_HOUR = dt.timedelta(hours=1)
_LONG_LIVED = dt.timedelta(days=60)  # Facebook's, Meta Ads' and Instagram's long-lived tokens (renewed, not refreshed)

SPECS: dict[Provider, ProviderSpec] = {
    s.provider: s
    for s in [
        # client_key instead of client_id; refresh tokens rotate (the old one dies). These are the Login Kit
        # app's endpoints and scopes; a connection made with a TikTok API for Business app (tiktokApp business)
        # gets adapters.tiktok.TikTokBusiness (business-api.tiktok.com, comments).
        ProviderSpec(
            Provider.TIKTOK,
            auth_url="https://www.tiktok.com/v2/auth/authorize/",
            token_url="https://open.tiktokapis.com/v2/oauth/token/",
            api_url="https://open.tiktokapis.com",
            revoke_url="https://open.tiktokapis.com/v2/oauth/revoke/",
            scopes=tiktok.LOGIN_KIT_SCOPES,
            scope_separator=",",
            client_id_param="client_key",
            refresh=R.ROTATING,
            token_lifetime=2 * _HOUR,  # TikTok's 2026 docs; an older page says 24 h
        ),
        # Instagram API with Instagram Login: short-lived code token -> 60-day token; ig_refresh_token.
        ProviderSpec(
            Provider.INSTAGRAM,
            auth_url="https://www.instagram.com/oauth/authorize",
            token_url="https://api.instagram.com/oauth/access_token",
            api_url="https://graph.instagram.com",
            scopes=(
                "instagram_business_basic",
                "instagram_business_content_publish",
                "instagram_business_manage_insights",
                "instagram_business_manage_comments",
            ),
            scope_separator=",",
            refresh=R.IG_REFRESH,
            token_lifetime=_LONG_LIVED,
        ),
        ProviderSpec(
            Provider.FACEBOOK,
            auth_url=_FB_AUTH,
            token_url=_FB_TOKEN,
            api_url=_FB_API,
            revoke_url=f"{_FB_API}/me/permissions",
            scopes=(
                "public_profile",
                "pages_show_list",
                "pages_read_engagement",
                "pages_manage_posts",
                "read_insights",
                "pages_read_user_content",
                "pages_manage_engagement",
            ),
            scope_separator=",",
            refresh=R.FB_EXCHANGE,
            token_lifetime=_LONG_LIVED,
        ),
        ProviderSpec(
            Provider.YOUTUBE,
            auth_url=_GOOGLE_AUTH,
            token_url=_GOOGLE_TOKEN,
            api_url="https://www.googleapis.com",
            revoke_url=_GOOGLE_REVOKE,
            scopes=(
                "https://www.googleapis.com/auth/youtube.readonly",
                "https://www.googleapis.com/auth/youtube.upload",
                "https://www.googleapis.com/auth/yt-analytics.readonly",
                "https://www.googleapis.com/auth/youtube.force-ssl",
            ),
            pkce=True,
            authorize_params=_GOOGLE_OFFLINE,
            token_lifetime=_HOUR,
        ),
        # X: PKCE required, confidential clients authenticate with HTTP Basic, refresh tokens single-use.
        ProviderSpec(
            Provider.TWITTER,
            auth_url="https://x.com/i/oauth2/authorize",
            token_url="https://api.x.com/2/oauth2/token",
            api_url="https://api.x.com",
            revoke_url="https://api.x.com/2/oauth2/revoke",
            scopes=("tweet.read", "tweet.write", "users.read", "offline.access"),
            pkce=True,
            client_auth="basic",
            refresh=R.ROTATING,
            token_lifetime=2 * _HOUR,
        ),
        ProviderSpec(
            Provider.LINKEDIN,
            auth_url="https://www.linkedin.com/oauth/v2/authorization",
            token_url="https://www.linkedin.com/oauth/v2/accessToken",
            api_url="https://api.linkedin.com",
            revoke_url="https://www.linkedin.com/oauth/v2/revoke",
            scopes=("openid", "profile", "email", "w_member_social"),
            token_lifetime=dt.timedelta(days=60),
        ),
        # v1 token endpoints end 2027-02-16: use v3 (parameters in the body only).
        ProviderSpec(
            Provider.HUBSPOT,
            auth_url="https://app.hubspot.com/oauth/authorize",
            token_url="https://api.hubapi.com/oauth/v3/token",
            api_url="https://api.hubapi.com",
            revoke_url="https://api.hubapi.com/oauth/v1/refresh-tokens",
            scopes=("oauth", "crm.objects.contacts.read", "marketing.campaigns.read"),
            pkce=True,
            token_lifetime=dt.timedelta(minutes=30),
        ),
        # API host = instance_url from the token answer; rotation is an app setting (handled either way).
        ProviderSpec(
            Provider.SALESFORCE,
            auth_url="https://login.salesforce.com/services/oauth2/authorize",
            token_url="https://login.salesforce.com/services/oauth2/token",
            scopes=("api", "refresh_token", "offline_access"),
            pkce=True,
            authorize_params=(("prompt", "consent"),),
            revoke_url="{instance_url}/services/oauth2/revoke",
            token_lifetime=business.SALESFORCE_DEFAULT_SESSION,  # the org's session timeout (default 2 h)
        ),
        # Expiring offline tokens: 60 min access + a refresh token replaced on every use.
        ProviderSpec(
            Provider.SHOPIFY,
            auth_url="https://{shop}/admin/oauth/authorize",
            token_url="https://{shop}/admin/oauth/access_token",
            api_url="https://{shop}",
            revoke_url="https://{shop}/admin/api_permissions/current.json",
            scopes=("read_products", "read_orders", "read_inventory"),
            scope_separator=",",
            refresh=R.ROTATING,
            tenant="shop",
            token_lifetime=_HOUR,
        ),
        ProviderSpec(
            Provider.WOOCOMMERCE, kind=ConnectKind.KEY_GRANT, refresh=R.NONE, tenant="storeUrl", needs_credentials=False
        ),
        ProviderSpec(
            Provider.META_ADS,
            auth_url=_FB_AUTH,
            token_url=_FB_TOKEN,
            api_url=_FB_API,
            revoke_url=f"{_FB_API}/me/permissions",
            scopes=("ads_read", "ads_management", "business_management"),
            scope_separator=",",
            refresh=R.FB_EXCHANGE,
            token_lifetime=_LONG_LIVED,
        ),
        # The API is googleads.googleapis.com/vNN (every call needs the developer-token header); the who-am-I is
        # OpenID userinfo on its own host (GOOGLE_ADS_USERINFO_URL, see adapters.standard.GoogleAds).
        ProviderSpec(
            Provider.GOOGLE_ADS,
            auth_url=_GOOGLE_AUTH,
            token_url=_GOOGLE_TOKEN,
            api_url="https://googleads.googleapis.com/v26",
            revoke_url=_GOOGLE_REVOKE,
            scopes=("https://www.googleapis.com/auth/adwords", "openid", "email"),
            pkce=True,
            authorize_params=_GOOGLE_OFFLINE,
            token_lifetime=_HOUR,
        ),
        # app_id / secret / auth_code in a JSON body; answers wrapped in data; errors are HTTP 200 code != 0.
        ProviderSpec(
            Provider.TIKTOK_ADS,
            auth_url="https://business-api.tiktok.com/portal/auth",
            token_url="https://business-api.tiktok.com/open_api/v1.3/oauth2/access_token/",
            api_url="https://business-api.tiktok.com",
            revoke_url="https://business-api.tiktok.com/open_api/v1.3/oauth2/revoke_token/",
            client_id_param="app_id",
            refresh=R.NONE,
        ),
        # No scopes; expires_in 0 = never; the data centre comes from /oauth2/metadata.
        ProviderSpec(
            Provider.MAILCHIMP,
            auth_url="https://login.mailchimp.com/oauth2/authorize",
            token_url="https://login.mailchimp.com/oauth2/token",
            api_url="https://login.mailchimp.com",
            refresh=R.NONE,
        ),
        ProviderSpec(
            Provider.SENDGRID,
            kind=ConnectKind.API_KEY,
            api_url="https://api.sendgrid.com",
            refresh=R.NONE,
            needs_credentials=False,
        ),
        # client_secret is the platform's secret key; access tokens do not expire.
        ProviderSpec(
            Provider.STRIPE,
            auth_url="https://connect.stripe.com/oauth/authorize",
            token_url="https://connect.stripe.com/oauth/token",
            api_url="https://api.stripe.com",
            revoke_url="https://connect.stripe.com/oauth/deauthorize",
            scopes=("read_write",),
            refresh=R.NONE,
        ),
        ProviderSpec(
            Provider.PAYPAL,
            auth_url="https://www.paypal.com/signin/authorize",
            token_url="https://api-m.paypal.com/v1/oauth2/token",
            api_url="https://api-m.paypal.com",
            revoke_url="https://api-m.paypal.com/v1/oauth2/token/terminate",
            scopes=("openid", "profile", "email"),
            client_auth="basic",
            authorize_params=(("flowEntry", "static"),),
            token_lifetime=8 * _HOUR,  # about 8-9 h (expires_in)
        ),
        ProviderSpec(
            Provider.ZAPIER,
            auth_url="https://api.zapier.com/v2/authorize",
            token_url="https://zapier.com/oauth/token/",
            api_url="https://api.zapier.com",
            scopes=("profile", "zap"),
            authorize_params=(("response_mode", "query"),),
            refresh=R.ROTATING,
            token_lifetime=10 * _HOUR,  # about 10 h (expires_in)
        ),
        # Errors are HTTP 200 {"ok": false}; refresh only when the app has token rotation on.
        ProviderSpec(
            Provider.SLACK,
            auth_url="https://slack.com/oauth/v2/authorize",
            token_url="https://slack.com/api/oauth.v2.access",
            api_url="https://slack.com/api",
            revoke_url="https://slack.com/api/auth.revoke",
            scopes=("channels:read", "groups:read", "chat:write", "team:read", "commands"),
            scope_separator=",",
            refresh=R.ROTATING,
            token_lifetime=12 * _HOUR,  # with token rotation on (without it tokens never expire: nothing to refresh)
        ),
        ProviderSpec(
            Provider.DISCORD,
            auth_url="https://discord.com/oauth2/authorize",
            token_url="https://discord.com/api/oauth2/token",
            api_url="https://discord.com/api",
            revoke_url="https://discord.com/api/oauth2/token/revoke",
            scopes=("identify", "guilds"),
            optional_scopes=("webhook.incoming",),
            pkce=True,
            client_auth="basic",
            refresh=R.ROTATING,
            token_lifetime=dt.timedelta(days=7),
        ),
    ]
}

ADAPTERS: dict[Provider, type[OAuth2Adapter]] = {
    Provider.TIKTOK: tiktok.TikTok,
    Provider.INSTAGRAM: meta.Instagram,
    Provider.FACEBOOK: meta.Facebook,
    Provider.YOUTUBE: standard.YouTube,
    Provider.TWITTER: standard.Twitter,
    Provider.LINKEDIN: standard.LinkedIn,
    Provider.HUBSPOT: standard.HubSpot,
    Provider.SALESFORCE: business.Salesforce,
    Provider.SHOPIFY: commerce.Shopify,
    Provider.WOOCOMMERCE: commerce.WooCommerce,
    Provider.META_ADS: meta.Facebook,
    Provider.GOOGLE_ADS: standard.GoogleAds,
    Provider.TIKTOK_ADS: tiktok.TikTokAds,
    Provider.MAILCHIMP: business.Mailchimp,
    Provider.SENDGRID: business.SendGrid,
    Provider.STRIPE: commerce.Stripe,
    Provider.PAYPAL: standard.PayPal,
    Provider.ZAPIER: standard.Zapier,
    Provider.SLACK: business.Slack,
    Provider.DISCORD: standard.Discord,
}


def adapter_for(
    provider: Provider, settings, session=None, guarded_session=None, *, tiktok_app: str | None = None, poster=None
) -> OAuth2Adapter:
    """The adapter of ``provider`` with the configured credentials and endpoint overrides; user-supplied
    hosts go through ``guarded_session`` (providers.http.provider_sessions). ``tiktok_app``: the kind of TikTok
    app (tiktok.APPS) of the connection at hand; None is the deployment's default (TIKTOK_APP). ``poster``: the
    process's lean poster of form POSTs (providers.http.provider_sessions)."""
    kind, creds = ADAPTERS[provider], settings.providers[provider]
    app = tiktok_app or getattr(settings, "tiktok_app", None) or tiktok.LOGIN_KIT
    if provider is Provider.TIKTOK and app == tiktok.BUSINESS:
        # A TikTok API for Business app is an app of its own at TikTok: its client (TIKTOK_BUSINESS_CLIENT_ID /
        # _SECRET) signs its consent, code exchange, refreshes and revocation.
        kind, creds = tiktok.TikTokBusiness, creds.of_app(tiktok.BUSINESS)
    adapter = kind(SPECS[provider], creds, session, settings.public_url)
    adapter.allowed_networks = settings.webhook_allowed_networks  # one SSRF allow-list for every user-supplied URL
    adapter.guarded_session = guarded_session
    adapter.poster = poster  # token requests to the operator's hosts (providers.poster); None: through session
    return adapter
