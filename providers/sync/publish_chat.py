"""Publishing to chat: Slack (chat.postMessage) and Discord (as the application's bot). See publish.py."""

from __future__ import annotations

from nexusctl.errors import ProviderError, ProviderNotConfigured, UsageProblem
from providers.http import describe
from providers.sync.chat import _slack_ok
from providers.sync.publish_common import compose, creating


async def slack(api, content: dict, metadata: dict) -> dict:
    channel = metadata.get("publishChannel")
    if not channel:
        raise UsageProblem("set the Slack integration's metadata.publishChannel (a channel id or name) to publish "
                           "to it", field="metadata.publishChannel")
    body = _slack_ok(await creating(api.post("chat.postMessage", json_body={
        "channel": channel, "text": compose(content), "unfurl_links": True})))
    return {"channel": body.get("channel"), "ts": body.get("ts")}


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
    reply = await creating(api.adapter.http("POST", url, secrets=(bot,), json={"content": compose(content, DISCORD_MAX)},
                                            headers={"Authorization": f"Bot {bot}", "Accept": "application/json"}))
    api.calls += 1
    api.adapter._check_throttle(reply)
    if reply.status >= 400:
        what = {401: "the bot token (DISCORD_BOT_TOKEN) was refused", 403: "the bot may not post in that channel",
                404: "no such channel (or the bot is not in its server)"}.get(reply.status, f"HTTP {reply.status}")
        raise ProviderError(f"DISCORD: {what}{describe(reply, (bot,), ': ')}", provider="DISCORD",
                            status=reply.status)
    return {"channelId": channel, "messageId": (reply.body or {}).get("id") if isinstance(reply.body, dict) else None}
