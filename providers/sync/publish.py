"""Publishing content (``content.published``) to providers whose capabilities say they can.

A publisher takes the content (``contentId``, ``title``, ``url``, ``description``,
``media``) and the integration's own metadata (where to post, e.g. Slack's
``publishChannel``) and makes the provider's "create" call once; it returns
what identifies the post at the provider. The engine runs it as the ``publish``
sync log that the content.published handler queued.

- SLACK: ``chat.postMessage`` to ``metadata.publishChannel`` (needs ``chat:write``).
- TWITTER: ``POST /2/tweets`` (needs ``tweet.write``); the text is cut to 280.
Others (TikTok, Instagram, Facebook, YouTube, LinkedIn uploads, Discord) are
not built yet: their publish logs fail with a message that says so.
"""

from __future__ import annotations

from nexusctl.errors import ProviderError, UsageProblem
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


PUBLISHERS = {"SLACK": slack, "TWITTER": twitter}
