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
    scopes: tuple[str, ...]  # OAuth scopes it needs (providers/scopes.py NEEDS says the same)
    how: str
    optional: bool = False  # its scope is asked for only on request (initiate's ``scopes``)

    def to_dict(self) -> dict:
        return {"name": self.name, "capability": self.capability, "scopes": list(self.scopes),
                "optional": self.optional, "how": self.how}


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


CATALOG: dict[Provider, ProviderInfo] = {info.provider: info for info in [
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
]}

# The capabilities that are more than a sync action: how each is reached and what it needs.
_REPLY = ("POST /integrations/{id}/comments/{commentId}/replies {text} (or nexusctl integrations reply ID "
          "COMMENT_ID TEXT) answers a comment fetch_comments delivered (comment.created): ")

ACTIONS: dict[Provider, tuple[Action, ...]] = {
    Provider.TIKTOK: (Action("reply_comment", "comments", ("comment.list.manage",),
                             _REPLY + "TikTok's comment reply (comment_id, video_id, text <= 150 characters)"),),
    Provider.YOUTUBE: (Action("reply_comment", "comments", ("https://www.googleapis.com/auth/youtube.force-ssl",),
                              _REPLY + "comments.insert with snippet.parentId"),),
    Provider.INSTAGRAM: (Action("reply_comment", "comments", ("instagram_business_manage_comments",),
                                _REPLY + "POST /{comment-id}/replies?message="),),
    Provider.FACEBOOK: (Action("reply_comment", "comments", ("pages_show_list", "pages_manage_engagement"),
                               _REPLY + "POST /{comment-id}/comments with the page's token"),),
    Provider.SLACK: (
        Action("slack.command", "commands", ("commands",),
               "a slash command whose Request URL is POST /integrations/inbound/slack/commands, verified with "
               "SLACK_SIGNING_SECRET, is published as the slack.command event to the workspace's integrations"),
        Action("publish", "notifications", ("chat:write",),
               "content.published posts to metadata.publishChannel (chat.postMessage)"),
    ),
    Provider.DISCORD: (
        Action("publish.webhook", "webhooks", ("webhook.incoming",),
               "connect with scopes [webhook.incoming]: the user picks a channel; content.published then posts "
               "through that channel webhook when metadata.publishChannel is not set", optional=True),
        Action("publish", "notifications", ("guilds",),
               "content.published posts to metadata.publishChannel as the application's bot (DISCORD_BOT_TOKEN)"),
    ),
}
