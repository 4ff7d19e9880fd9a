"""Which OAuth scopes each capability of a provider needs: the health check compares them with the grant.

Keyed by the sync action (``fetch_posts`` ...) or ``publish`` (content.published),
and ``account`` for what every connection needs (the who-am-I, offline refresh).
Sources: the scope checks of each provider's API as the sync actions and
publishers use them (providers/sync/*, shared/reference/providers.md).

Only scopes the service asks for (``ProviderSpec.scopes``) can be missing from a
grant: ``required`` drops the others, since connecting again could not add them.
Providers without OAuth scopes (Mailchimp, SendGrid, WooCommerce, TikTok Ads)
have none here.
"""

from __future__ import annotations

from nexusctl.enums import Provider
from providers.registry import SPECS

_G = "https://www.googleapis.com/auth/"

NEEDS: dict[Provider, dict[str, tuple[str, ...]]] = {
    Provider.TIKTOK: {"account": ("user.info.basic",), "fetch_posts": ("video.list",), "publish": ("video.publish",)},
    Provider.INSTAGRAM: {"account": ("instagram_business_basic",), "fetch_posts": ("instagram_business_basic",),
                         "publish": ("instagram_business_content_publish",)},
    Provider.FACEBOOK: {"fetch_posts": ("pages_show_list", "pages_read_engagement"),
                        "publish": ("pages_show_list", "pages_read_engagement", "pages_manage_posts")},
    Provider.YOUTUBE: {"fetch_posts": (_G + "youtube.readonly",), "publish": (_G + "youtube.upload",)},
    Provider.TWITTER: {"account": ("users.read", "offline.access"), "fetch_posts": ("tweet.read", "users.read"),
                       "publish": ("tweet.write",)},
    Provider.LINKEDIN: {"account": ("openid", "profile"), "publish": ("w_member_social",)},
    Provider.HUBSPOT: {"account": ("oauth",), "fetch_contacts": ("crm.objects.contacts.read",)},
    Provider.SALESFORCE: {"account": ("refresh_token",), "fetch_contacts": ("api",), "fetch_campaigns": ("api",)},
    Provider.SHOPIFY: {"fetch_products": ("read_products",), "fetch_orders": ("read_orders",),
                       "fetch_inventory": ("read_inventory",)},
    Provider.META_ADS: {"fetch_campaigns": ("ads_read",)},
    Provider.GOOGLE_ADS: {"account": ("email",), "fetch_campaigns": (_G + "adwords",)},
    Provider.STRIPE: {"fetch_charges": ("read_write",)},
    Provider.ZAPIER: {"account": ("profile",), "fetch_zaps": ("zap",)},
    Provider.SLACK: {"account": ("team:read",), "fetch_channels": ("channels:read",), "publish": ("chat:write",)},
    # Discord posts as the application's bot (DISCORD_BOT_TOKEN), into a channel of one of the user's own
    # servers: listing those (/users/@me/guilds) takes the user's guilds scope.
    Provider.DISCORD: {"account": ("identify",), "fetch_channels": ("guilds",), "publish": ("guilds",)},
    Provider.PAYPAL: {"account": ("openid",)},
}


def required(provider: Provider, capabilities) -> dict[str, tuple[str, ...]]:
    """capability -> the scopes it needs that the service asks for, for the given capabilities (and account)."""
    asked = set(SPECS[provider].scopes)
    needs = NEEDS.get(provider, {})
    out = {}
    for capability in ("account", *capabilities):
        scopes = tuple(s for s in needs.get(capability, ()) if s in asked)
        if scopes:
            out[capability] = scopes
    return out
