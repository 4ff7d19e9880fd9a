"""Which OAuth scopes each capability of a provider needs: the health check compares them with the grant.

Keyed by the sync action (``fetch_posts`` ...) or ``publish`` (content.published),
and ``account`` for what every connection needs (the who-am-I, offline refresh).
Sources: the scope checks of each provider's API as the sync actions and
publishers use them (nexusctl/providers/sync/*, shared/reference/providers.md).

Only scopes the service asks for (``ProviderSpec.scopes``) can be missing from a
grant: ``required`` drops the others, since connecting again could not add them.
Providers without OAuth scopes (Mailchimp, SendGrid, WooCommerce, TikTok Ads)
have none here.

Some scopes a provider grants only to apps it approved (``APPROVAL``, the
scopes of nexusctl.config.APPROVAL_SCOPES): the service asks for them only
when the operator lists them in ``<PROVIDER>_APPROVED_SCOPES`` (``requested``),
and an action that needs one is refused with MISSING_SCOPES until then
(``refusal``). ``WIDENING`` scopes are not needed but widen what an action
reads (Shopify's orders beyond 60 days): without one the run completes and its
log says what it left out.
"""

from __future__ import annotations

from nexusctl.enums import Provider
from nexusctl.errors import MissingScopes
from nexusctl.providers.adapters.tiktok import BUSINESS_SCOPES
from nexusctl.providers.registry import SPECS

_G = "https://www.googleapis.com/auth/"
PAYPAL_SEARCH = "https://uri.paypal.com/services/reporting/search/read"

# Comments (nexusctl/providers/sync/comments.py): reading them (fetch_comments) and replying to one (reply_comment).
COMMENTS: dict[Provider, dict[str, tuple[str, ...]]] = {
    Provider.TIKTOK: {"fetch_comments": ("video.list", "comment.list"), "reply_comment": ("comment.list.manage",)},
    Provider.INSTAGRAM: {
        "fetch_comments": ("instagram_business_basic", "instagram_business_manage_comments"),
        "reply_comment": ("instagram_business_manage_comments",),
    },
    Provider.FACEBOOK: {
        "fetch_comments": ("pages_show_list", "pages_read_engagement", "pages_read_user_content"),
        "reply_comment": ("pages_show_list", "pages_manage_engagement"),
    },
    Provider.YOUTUBE: {"fetch_comments": (_G + "youtube.force-ssl",), "reply_comment": (_G + "youtube.force-ssl",)},
}

NEEDS: dict[Provider, dict[str, tuple[str, ...]]] = {
    Provider.TIKTOK: {
        "account": ("user.info.basic",),
        "fetch_posts": ("video.list",),
        "publish": ("video.publish",),
        "fetch_analytics": ("user.info.stats", "video.list"),
        **COMMENTS[Provider.TIKTOK],
    },
    Provider.INSTAGRAM: {
        "account": ("instagram_business_basic",),
        "fetch_posts": ("instagram_business_basic",),
        "publish": ("instagram_business_content_publish",),
        "fetch_analytics": ("instagram_business_basic", "instagram_business_manage_insights"),
        **COMMENTS[Provider.INSTAGRAM],
    },
    Provider.FACEBOOK: {
        "fetch_posts": ("pages_show_list", "pages_read_engagement"),
        "publish": ("pages_show_list", "pages_read_engagement", "pages_manage_posts"),
        "fetch_analytics": ("pages_show_list", "pages_read_engagement", "read_insights"),
        **COMMENTS[Provider.FACEBOOK],
    },
    Provider.YOUTUBE: {
        "fetch_posts": (_G + "youtube.readonly",),
        "publish": (_G + "youtube.upload",),
        "fetch_analytics": (_G + "youtube.readonly", _G + "yt-analytics.readonly"),
        **COMMENTS[Provider.YOUTUBE],
    },
    Provider.TWITTER: {
        "account": ("users.read", "offline.access"),
        "fetch_posts": ("tweet.read", "users.read"),
        "publish": ("tweet.write",),
        "fetch_analytics": ("tweet.read", "users.read"),
    },
    Provider.LINKEDIN: {
        "account": ("openid", "profile"),
        "publish": ("w_member_social",),
        "fetch_posts": ("r_member_social",),
        "fetch_analytics": ("r_member_postAnalytics",),
    },
    Provider.HUBSPOT: {
        "account": ("oauth",),
        "fetch_contacts": ("crm.objects.contacts.read",),
        "fetch_campaigns": ("marketing.campaigns.read",),
    },
    Provider.SALESFORCE: {"account": ("refresh_token",), "fetch_contacts": ("api",), "fetch_campaigns": ("api",)},
    Provider.SHOPIFY: {
        "fetch_products": ("read_products",),
        "fetch_orders": ("read_orders",),
        "fetch_inventory": ("read_inventory",),
    },
    Provider.META_ADS: {"fetch_campaigns": ("ads_read",)},
    Provider.GOOGLE_ADS: {"account": ("email",), "fetch_campaigns": (_G + "adwords",)},
    Provider.STRIPE: {"fetch_charges": ("read_write",)},
    Provider.ZAPIER: {"account": ("profile",), "fetch_zaps": ("zap",)},
    # conversations.list with types=public_channel,private_channel: private channels need groups:read.
    Provider.SLACK: {
        "account": ("team:read",),
        "fetch_channels": ("channels:read", "groups:read"),
        "publish": ("chat:write",),
        "commands": ("commands",),
    },  # slash commands are installed with the app's commands scope
    # Discord posts as the application's bot (DISCORD_BOT_TOKEN), into a channel of one of the user's own
    # servers: listing those (/users/@me/guilds) takes the user's guilds scope.
    # With the optional webhook.incoming scope it posts through the channel webhook the user made instead.
    Provider.DISCORD: {
        "account": ("identify",),
        "fetch_channels": ("guilds",),
        "publish": ("guilds",),
        "webhooks": ("webhook.incoming",),
    },
    Provider.PAYPAL: {"account": ("openid",), "fetch_transactions": (PAYPAL_SEARCH,)},
}

# Why a provider grants each approval-only scope only to some apps: the scopes of nexusctl.config.APPROVAL_SCOPES
# (which validates <PROVIDER>_APPROVED_SCOPES), the same ones (tests/sync_actions/test_requested_scopes.py).
APPROVAL: dict[Provider, dict[str, str]] = {
    Provider.LINKEDIN: {
        "r_member_social": "LinkedIn grants it only to apps approved for its Community Management API (partners)",
        "r_member_postAnalytics": "LinkedIn grants it only to apps approved for its Community "
        "Management API (partners)",
    },
    Provider.PAYPAL: {
        PAYPAL_SEARCH: "PayPal grants Transaction Search on other merchants' accounts only to "
        "apps it approved (partners)"
    },
    Provider.SHOPIFY: {"read_all_orders": "Shopify grants it only to apps it approved for orders older than 60 days"},
}

# action -> (scope, what the run leaves out without it): not needed, the run completes and its log says so.
WIDENING: dict[Provider, dict[str, tuple[str, str]]] = {
    Provider.SHOPIFY: {
        "fetch_orders": ("read_all_orders", "only orders of the last 60 days: read_all_orders was not granted")
    },
}


# A granted scope that includes others (Salesforce: "full encompasses all other scopes"; Zapier's zap:all).
IMPLIES: dict[Provider, dict[str, tuple[str, ...]]] = {
    Provider.SALESFORCE: {"full": ("api",)},
    Provider.ZAPIER: {"zap:all": ("zap",)},
}


def effective(provider: Provider, granted) -> set[str]:
    """The granted scopes with those they include."""
    out = set(granted or ())
    for scope, implied in IMPLIES.get(provider, {}).items():
        if scope in out:
            out.update(implied)
    return out


def requested(provider: Provider, approved=(), app: str | None = None) -> tuple[str, ...]:
    """The scopes the service asks for: the spec's, and the approval-only ones the operator says the app has.
    ``app``: ``business`` for a TikTok API for Business connection (tiktokApp), whose consent asks for its own."""
    if provider is Provider.TIKTOK and app == "business":
        return BUSINESS_SCOPES
    extra = tuple(s for s in APPROVAL.get(provider, {}) if s in approved)
    return tuple(SPECS[provider].scopes) + extra


def needed(provider: Provider, action: str) -> tuple[str, ...]:
    """The scopes one action (or ``publish``) needs, approval-only ones included."""
    return NEEDS.get(provider, {}).get(action, ())


def refusal(provider: Provider, action: str, granted, approved=()) -> MissingScopes | None:
    """Why ``action`` cannot run on a connection that was granted ``granted`` (None: it can). A grant that lists
    no scopes (the provider did not say) is not judged: the provider's own answer will tell."""
    granted = effective(provider, granted)
    if not granted:
        return None
    missing = [s for s in needed(provider, action) if s not in granted]
    if not missing:
        return None
    unapproved = [s for s in missing if s in APPROVAL.get(provider, {}) and s not in approved]
    if unapproved:
        why = "; ".join(APPROVAL[provider][s] for s in unapproved)
        return MissingScopes(
            f"{provider.value} {action} needs {', '.join(missing)}, not granted: {why}. Once the "
            f"app is approved, set {provider.value}_APPROVED_SCOPES={' '.join(unapproved)} and "
            "connect again",
            scopes=missing,
            action=action,
        )
    return MissingScopes(
        f"{provider.value} {action} needs {', '.join(missing)}, not granted to this connection: "
        "connect it again and allow it",
        scopes=missing,
        action=action,
    )


def required(provider: Provider, capabilities, approved=(), app: str | None = None) -> dict[str, tuple[str, ...]]:
    """capability -> the scopes it needs that the service asks for, for the given capabilities (and account)."""
    asked = set(requested(provider, approved, app))
    needs = NEEDS.get(provider, {})
    out = {}
    for capability in ("account", *capabilities):
        scopes = tuple(s for s in needs.get(capability, ()) if s in asked)
        if scopes:
            out[capability] = scopes
    return out
