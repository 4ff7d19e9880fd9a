"""Publishing content (``content.published``) to providers whose capabilities say they can.

A publisher takes the content (``contentId``, ``title``, ``url``, ``description``,
``media``) and the integration's own metadata (where to post, e.g. Slack's
``publishChannel``) and makes the provider's "create" call once; it returns
what identifies the post at the provider. The engine runs it as the ``publish``
sync log that the content.published handler queued.

- SLACK: ``chat.postMessage`` to ``metadata.publishChannel`` (needs ``chat:write``).
- TWITTER: ``POST /2/tweets`` (needs ``tweet.write``); the text is cut to 280.
- DISCORD: ``POST /channels/{metadata.publishChannel}/messages`` as the
  application's bot (``DISCORD_BOT_TOKEN``; a user's OAuth token cannot post to
  a channel); the bot must have been added to that server.
Others (TikTok, Instagram, YouTube uploads ...) are not built yet: their
publish logs fail with a message that says so.
"""

from __future__ import annotations

from nexusctl.errors import ProviderError, ProviderNotConfigured, UsageProblem
from providers.http import describe
from providers.sync.chat import _slack_ok

TWEET_MAX = 280


def compose(content: dict, limit: int | None = None) -> str:
    """Title, then the URL: the text a post carries."""
    title = (content.get("title") or content.get("description") or "").strip()
    url = (content.get("url") or "").strip()
    if limit is not None and url and len(title) + 1 + len(url) > limit:
        title = title[: max(0, limit - len(url) - 2)].rstrip() + "…"
    text = "\n".join(part for part in (title, url) if part)
    if not text:
        raise UsageProblem("the content has neither a title nor a URL to post", field="content")
    return text[:limit] if limit else text


async def slack(api, content: dict, metadata: dict) -> dict:
    channel = metadata.get("publishChannel")
    if not channel:
        raise UsageProblem("set the Slack integration's metadata.publishChannel (a channel id or name) to publish "
                           "to it", field="metadata.publishChannel")
    body = _slack_ok(await api.post("chat.postMessage", json_body={"channel": channel, "text": compose(content),
                                                                   "unfurl_links": True}))
    return {"channel": body.get("channel"), "ts": body.get("ts")}


async def twitter(api, content: dict, metadata: dict) -> dict:
    reply = await api.post("2/tweets", json_body={"text": compose(content, TWEET_MAX)})
    post_id = (reply.body or {}).get("data", {}).get("id") if isinstance(reply.body, dict) else None
    if not post_id:
        raise ProviderError("TWITTER: the post was not confirmed (no id in the answer)", provider="TWITTER")
    return {"postId": post_id}


DISCORD_MAX = 2000


async def discord(api, content: dict, metadata: dict) -> dict:
    channel = str(metadata.get("publishChannel") or "")
    if not channel.isdigit():
        raise UsageProblem("set the Discord integration's metadata.publishChannel to the channel id to post to",
                           field="metadata.publishChannel")
    settings = getattr(api, "settings", None)
    bot = settings.discord_bot_token.get() if settings is not None and settings.discord_bot_token else None
    if not bot:
        raise ProviderNotConfigured("DISCORD_BOT_TOKEN: not set; Discord posts to a channel as the application's "
                                    "bot (add it to the server with the OAuth bot scope)", provider="DISCORD")
    url = api.url(f"v10/channels/{channel}/messages")
    reply = await api.adapter.http("POST", url, secrets=(bot,), json={"content": compose(content, DISCORD_MAX)},
                                   headers={"Authorization": f"Bot {bot}", "Accept": "application/json"})
    api.calls += 1
    api.adapter._check_throttle(reply)
    if reply.status >= 400:
        what = {401: "the bot token (DISCORD_BOT_TOKEN) was refused", 403: "the bot may not post in that channel",
                404: "no such channel (or the bot is not in its server)"}.get(reply.status, f"HTTP {reply.status}")
        raise ProviderError(f"DISCORD: {what}{describe(reply, (bot,), ': ')}", provider="DISCORD",
                            status=reply.status)
    return {"channelId": channel, "messageId": (reply.body or {}).get("id") if isinstance(reply.body, dict) else None}


PUBLISHERS = {"SLACK": slack, "TWITTER": twitter, "DISCORD": discord}
