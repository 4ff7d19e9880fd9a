"""What every provider is and can do: the spec's "Supported Providers" table.

The OAuth mechanics of each provider (URLs, PKCE, refresh style, quirks)
join this catalog with the providers issue. Six providers are missing from
the spec's table; their capabilities (marked ``inferred``) follow the sync
actions planned for them (Salesforce contacts/campaigns, TikTok Ads
campaigns, SendGrid lists/campaigns, Stripe charges, PayPal transactions,
Zapier zaps). Comments on Instagram and Facebook (beyond the spec's table, which names
TikTok's and YouTube's) are what their Graph APIs allow with the scopes the service asks for.
"""

from __future__ import annotations

from dataclasses import dataclass

from nexusctl.enums import Provider


@dataclass(frozen=True)
class Action:
    """One thing a capability does here that takes setting up: the scopes it needs and how it is reached."""

    name: str
    capability: str  # the advertised capability it implements
    scopes: tuple[str, ...]  # OAuth scopes it needs (nexusctl/providers/scopes.py NEEDS says the same)
    how: str
    optional: bool = False  # its scope is asked for only on request (initiate's ``scopes``)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "capability": self.capability,
            "scopes": list(self.scopes),
            "optional": self.optional,
            "how": self.how,
        }


@dataclass(frozen=True)
class ProviderInfo:
    provider: Provider
    display_name: str
    category: str
    capabilities: tuple[str, ...]
    inferred: bool = False  # capabilities not in the spec's table

    def to_dict(self, configured: bool) -> dict:
        return {
            "provider": self.provider.value,
            "displayName": self.display_name,
            "category": self.category,
            "capabilities": list(self.capabilities),
            "actions": [action.to_dict() for action in ACTIONS.get(self.provider, ())],
            "configured": configured,
        }


def _p(provider, name, category, *capabilities, inferred=False):
    return ProviderInfo(Provider(provider), name, category, capabilities, inferred)


CATALOG: dict[Provider, ProviderInfo] = {
    info.provider: info
    for info in [
        _p("TIKTOK", "TikTok", "social", "publish", "analytics", "comments"),
        _p("INSTAGRAM", "Instagram", "social", "publish", "stories", "analytics", "comments"),
        _p("FACEBOOK", "Facebook", "social", "pages", "publish", "analytics", "comments"),
        _p("YOUTUBE", "YouTube", "social", "upload", "analytics", "comments"),
        _p("TWITTER", "Twitter/X", "social", "publish", "analytics"),
        _p("LINKEDIN", "LinkedIn", "social", "posts", "analytics"),
        _p("HUBSPOT", "HubSpot CRM", "marketing", "contacts", "campaigns"),
        _p("SALESFORCE", "Salesforce", "marketing", "contacts", "campaigns", inferred=True),
        _p("SHOPIFY", "Shopify", "ecommerce", "products", "orders", "inventory"),
        _p("WOOCOMMERCE", "WooCommerce", "ecommerce", "products", "orders"),
        _p("META_ADS", "Meta Ads", "marketing", "campaigns", "analytics"),
        _p("GOOGLE_ADS", "Google Ads", "marketing", "campaigns", "analytics"),
        _p("TIKTOK_ADS", "TikTok Ads", "marketing", "campaigns", "analytics", inferred=True),
        _p("MAILCHIMP", "Mailchimp", "marketing", "lists", "campaigns"),
        _p("SENDGRID", "SendGrid", "marketing", "lists", "campaigns", inferred=True),
        _p("STRIPE", "Stripe", "payments", "charges", inferred=True),
        _p("PAYPAL", "PayPal", "payments", "transactions", inferred=True),
        _p("ZAPIER", "Zapier", "automation", "zaps", inferred=True),
        _p("SLACK", "Slack", "communication", "notifications", "commands"),
        _p("DISCORD", "Discord", "communication", "webhooks", "notifications"),
    ]
}

_G = "https://www.googleapis.com/auth/"
_ANALYTICS = (
    'POST /integrations/:id/sync {"action": "fetch_analytics"} (or `nexusctl sync run ID --action '
    "fetch_analytics`): the sync log's metadata.summary and one analytics.fetched event with "
)


def _analytics(scopes: tuple[str, ...], what: str) -> Action:
    return Action("fetch_analytics", "analytics", scopes, _ANALYTICS + what)


_REPLY = (
    "POST /integrations/{id}/comments/{commentId}/replies {text} (or nexusctl integrations reply ID "
    "COMMENT_ID TEXT) answers a comment fetch_comments delivered (comment.created): "
)


# TikTok's comments are in TikTok API for Business only (its Login Kit / Display API has none).
_TIKTOK_BUSINESS = (
    "Needs a connection made with a TikTok API for Business app (tiktokApp business: metadata.provider.tiktokApp "
    "at initiate or --tiktok-app, default TIKTOK_APP; Login Kit has no comment endpoints) and a TikTok business "
    "account: "
)


# The capabilities that are more than a list sync: how each is reached and what it needs.
ACTIONS: dict[Provider, tuple[Action, ...]] = {
    Provider.TIKTOK: (
        _analytics(
            ("user.info.stats", "video.list"),
            "the account's followers, following, likes, videos and its 50 latest videos' views, likes, "
            "comments, shares (lifetime); a connection made with a Login Kit app (tiktokApp login_kit)",
        ),
        Action(
            "fetch_comments",
            "comments",
            ("video.list", "comment.list"),
            _TIKTOK_BUSINESS + "fetch_comments reads the comments on the 20 latest videos (business/video/list, "
            "business/comment/list)",
        ),
        Action(
            "reply_comment",
            "comments",
            ("comment.list.manage",),
            _TIKTOK_BUSINESS
            + _REPLY
            + "business/comment/reply/create (business_id, video_id, comment_id, text <= 150 characters)",
        ),
    ),
    Provider.INSTAGRAM: (
        _analytics(
            ("instagram_business_basic", "instagram_business_manage_insights"),
            "the account's followers, media and last 28 days' reach, views, interactions and its 50 latest "
            "media's likes, comments, views, reach, saves, shares",
        ),
        Action(
            "reply_comment",
            "comments",
            ("instagram_business_manage_comments",),
            _REPLY + "POST /{comment-id}/replies?message=",
        ),
    ),
    Provider.FACEBOOK: (
        _analytics(
            ("pages_show_list", "pages_read_engagement", "read_insights"),
            "each page's followers and last 28 days' views (page_media_view), viewers and engagements (read with "
            "the page's own token) and the 50 latest posts' views (post_media_view), viewers, clicks, reactions; "
            "Meta retired the impressions metrics on 2025-11-15",
        ),
        Action(
            "reply_comment",
            "comments",
            ("pages_show_list", "pages_manage_engagement"),
            _REPLY + "POST /{comment-id}/comments with the page's token",
        ),
    ),
    Provider.YOUTUBE: (
        _analytics(
            (_G + "youtube.readonly", _G + "yt-analytics.readonly"),
            "the channel's views, subscribers, videos, its views, likes, comments, shares, subscribers gained "
            "and lost over the 28 days ending 2 days ago (YouTube Analytics' lag) and its 50 latest uploads' "
            "views, likes, comments",
        ),
        Action(
            "reply_comment",
            "comments",
            ("https://www.googleapis.com/auth/youtube.force-ssl",),
            _REPLY + "comments.insert with snippet.parentId",
        ),
    ),
    Provider.TWITTER: (
        _analytics(
            ("tweet.read", "users.read"),
            "the user's followers, following, posts, listed and the 50 latest posts' impressions, likes, "
            "replies, reposts, quotes, bookmarks",
        ),
    ),
    Provider.LINKEDIN: (
        _analytics(
            ("r_member_postAnalytics",),
            "the member's impressions, members reached, reactions, comments and reshares over all their posts "
            "(no per-post figures: LinkedIn gives those per post and metric only). r_member_postAnalytics is "
            "approval-only: LinkedIn grants it to Community Management API partners; set "
            "LINKEDIN_APPROVED_SCOPES once approved. A fresh app gets no LinkedIn analytics",
        ),
    ),
    Provider.SLACK: (
        Action(
            "slack.command",
            "commands",
            ("commands",),
            "a slash command whose Request URL is POST /integrations/inbound/slack/commands, verified with "
            "SLACK_SIGNING_SECRET, is published as the slack.command event to the workspace's integrations",
        ),
        Action(
            "publish",
            "notifications",
            ("chat:write",),
            "content.published posts to metadata.publishChannel (chat.postMessage)",
        ),
    ),
    Provider.DISCORD: (
        Action(
            "publish.webhook",
            "webhooks",
            ("webhook.incoming",),
            "connect with scopes [webhook.incoming]: the user picks a channel; content.published then posts "
            "through that channel webhook when metadata.publishChannel is not set",
            optional=True,
        ),
        Action(
            "publish",
            "notifications",
            ("guilds",),
            "content.published posts to metadata.publishChannel as the application's bot (DISCORD_BOT_TOKEN)",
        ),
    ),
}
