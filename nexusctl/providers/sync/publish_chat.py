"""Publishing to chat: Slack (chat.postMessage) and Discord (a channel webhook, or the bot). See publish.py.

The channel is the integration's ``metadata.publishChannel``, which its owner sets: it must be a channel of
their own, never another customer's.

- Slack: the token is the app's bot token of the connected workspace, and Slack answers
  ``channel_not_found`` for a channel of any other workspace (by id or by name): a post can only land in the
  workspace the user installed the app into. That refusal is reported as such.
- Discord, through the connection's channel webhook (``webhook.incoming`` at connect) when
  ``metadata.publishChannel`` is not set: the user picked that channel on Discord's consent screen, so it is
  theirs to post to; no bot token is involved.
- Discord, with ``metadata.publishChannel``: every customer's posts go out as the same bot, which may be in
  many customers' servers, so the bot could post anywhere it is. Before posting, the channel's server is read
  as the bot (``GET /channels/{id}``: the bot must see it) and must be one of the connected user's servers
  (``GET /users/@me/guilds`` with their own token, ``guilds`` scope) where they own the server or have Manage
  Server (or Administrator), the permission it takes to add a bot to a server. Mere membership is not enough:
  anyone can join a public server.
"""

from __future__ import annotations

from nexusctl.errors import ProviderError, ProviderNotConfigured, UsageProblem
from nexusctl.providers.http import describe
from nexusctl.providers.sync.chat import _slack_ok, discord_guilds
from nexusctl.providers.sync.publish_common import compose, creating

FIELD = "metadata.publishChannel"
SLACK_CHANNEL_MAX = 200


async def slack(api, content: dict, metadata: dict) -> dict:
    channel = metadata.get("publishChannel")
    if not channel:
        raise UsageProblem(
            "set the Slack integration's metadata.publishChannel (a channel id or name) to publish to it", field=FIELD
        )
    if not isinstance(channel, str) or len(channel) > SLACK_CHANNEL_MAX:
        raise UsageProblem(
            f"metadata.publishChannel must be a Slack channel id or name (a string of at most "
            f"{SLACK_CHANNEL_MAX} characters)",
            field=FIELD,
        )
    reply = await creating(
        api.post("chat.postMessage", json_body={"channel": channel, "text": compose(content), "unfurl_links": True})
    )
    if reply.get("error") == "channel_not_found":
        workspace = api.metadata.get("teamName") or api.metadata.get("teamId") or "the connected workspace"
        raise UsageProblem(
            f"Slack channel {channel} is not in the connected workspace ({workspace}), or the app "
            "cannot see it: nothing was posted",
            field=FIELD,
        )
    body = _slack_ok(reply, "chat.postMessage")
    return {"channel": body.get("channel"), "ts": body.get("ts")}


DISCORD_MAX = 2000
# Permission bits of a guild's ``permissions`` (the user's, as a decimal string) in /users/@me/guilds.
ADMINISTRATOR, MANAGE_GUILD = 1 << 3, 1 << 5


async def _as_bot(api, bot: str, method: str, path: str, **kwargs):
    # Under the integration's rate budget like every publisher's call (SyncApi.raw): asked first, waits noted.
    reply = await api.raw(
        method,
        api.url(f"v10/{path}"),
        secrets=(bot,),
        headers={"Authorization": f"Bot {bot}", "Accept": "application/json"},
        **kwargs,
    )
    if reply.status == 401:
        raise ProviderError(
            f"DISCORD: the bot token (DISCORD_BOT_TOKEN) was refused{describe(reply, (bot,), ': ')}",
            provider="DISCORD",
            status=401,
        )
    return reply


async def _server_of(api, bot: str, channel: str) -> str:
    """The id of the server (guild) the channel is in, read as the bot: the bot must be in it."""
    reply = await _as_bot(api, bot, "GET", f"channels/{channel}")
    if reply.status in (403, 404):
        raise _not_yours(channel)
    if reply.status >= 400:
        raise ProviderError(
            f"DISCORD: reading channel {channel} answered HTTP {reply.status}{describe(reply, (bot,), ': ')}",
            provider="DISCORD",
            status=reply.status,
        )
    guild = reply.get("guild_id")
    if not guild:
        raise UsageProblem(f"Discord channel {channel} is not a server channel (a direct message?)", field=FIELD)
    return str(guild)


def _may_manage(guild: dict) -> bool:
    try:
        permissions = int(guild.get("permissions") or 0)
    except (TypeError, ValueError):
        permissions = 0
    return guild.get("owner") is True or bool(permissions & (ADMINISTRATOR | MANAGE_GUILD))


async def _check_users_server(api, channel: str, guild_id: str) -> None:
    """The connected user is in that server and may manage it (their own token, ``guilds`` scope)."""
    granted = api.tokens.scope or []
    if granted and "guilds" not in granted:
        raise ProviderError(
            "DISCORD: this connection did not grant the guilds scope, needed to check that the "
            "channel is in one of the user's servers: reconnect Discord",
            provider="DISCORD",
        )
    async for page in discord_guilds(api, None):
        guild = next((item.data for item in page.items if item.external_id == guild_id), None)
        if guild is None:
            continue
        if not _may_manage(guild):
            raise UsageProblem(
                f"Discord channel {channel} is in the server {guild.get('name')!r}, where this "
                "account has neither Manage Server nor Administrator: only someone who manages a "
                "server may publish to it",
                field=FIELD,
            )
        return
    raise _not_yours(channel)


def _not_yours(channel: str) -> UsageProblem:
    """One answer whether the bot cannot see the channel or the user is not in its server: two would tell a
    user which channel ids of other customers the shared bot can reach. The server is never named."""
    return UsageProblem(
        f"Discord channel {channel} is not in a Discord server that this account belongs to and "
        "the application's bot is in (or does not exist): add the bot to one of your servers and "
        "name one of its channels",
        field=FIELD,
    )


async def _through_webhook(api, content: dict) -> dict:
    """POST /webhooks/{id}/{token}?wait=true: the channel webhook the user made at consent (webhook.incoming).
    No bot and no server check: the user picked the channel on Discord's own consent screen, and the webhook's
    token is the authority to post there. ``wait=true`` makes Discord answer with the message (its id)."""
    webhook, token = api.metadata["webhook"], api.tokens.webhook_token
    reply = await creating(
        api.raw(
            "POST",
            api.adapter.webhook_url(webhook["id"], token) + "?wait=true",
            secrets=(token,),
            json={"content": compose(content, DISCORD_MAX)},
            headers={"Accept": "application/json"},
        )
    )
    if reply.status in (401, 404):  # 10015 Unknown Webhook, 50027 Invalid Webhook Token: deleted in Discord
        raise ProviderError(
            f"DISCORD: the channel webhook {webhook['id']} is gone (deleted in the channel's "
            "settings?): reconnect Discord with the webhook.incoming scope, or set "
            "metadata.publishChannel to post as the bot",
            provider="DISCORD",
            status=reply.status,
        )
    if reply.status >= 400:
        raise ProviderError(
            f"DISCORD: posting through the channel webhook answered HTTP {reply.status}"
            f"{describe(reply, (token,), ': ')}",
            provider="DISCORD",
            status=reply.status,
        )
    body = reply.body if isinstance(reply.body, dict) else {}
    return {
        "channelId": body.get("channel_id") or webhook.get("channelId"),
        "messageId": body.get("id"),
        "via": "webhook",
    }


def has_channel_webhook(api) -> bool:
    return bool(api.tokens.webhook_token and (api.metadata.get("webhook") or {}).get("id"))


async def discord(api, content: dict, metadata: dict) -> dict:
    """As the bot into ``metadata.publishChannel`` when it is set; otherwise through the connection's channel
    webhook (webhook.incoming), when it has one."""
    channel = str(metadata.get("publishChannel") or "")
    if not channel and has_channel_webhook(api):
        return await _through_webhook(api, content)
    if not (channel.isascii() and channel.isdigit()):
        raise UsageProblem(
            "set the Discord integration's metadata.publishChannel to the channel id to post to", field=FIELD
        )
    settings = getattr(api, "settings", None)
    bot = settings.discord_bot_token.get() if settings is not None and settings.discord_bot_token else None
    if not bot:
        raise ProviderNotConfigured(
            "DISCORD_BOT_TOKEN: not set; Discord posts to a channel as the application's "
            "bot (add it to the server with the OAuth bot scope)",
            provider="DISCORD",
        )
    text = compose(content, DISCORD_MAX)
    await _check_users_server(api, channel, await _server_of(api, bot, channel))
    reply = await creating(_as_bot(api, bot, "POST", f"channels/{channel}/messages", json={"content": text}))
    if reply.status >= 400:
        what = {
            403: "the bot may not post in that channel",
            404: "no such channel (or the bot is not in its server)",
        }.get(reply.status, f"HTTP {reply.status}")
        raise ProviderError(f"DISCORD: {what}{describe(reply, (bot,), ': ')}", provider="DISCORD", status=reply.status)
    return {"channelId": channel, "messageId": (reply.body or {}).get("id") if isinstance(reply.body, dict) else None}
