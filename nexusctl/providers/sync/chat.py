"""Slack and Discord: fetch_channels.

Slack ``conversations.list`` pages with ``response_metadata.next_cursor`` (""
on the last page) and reports errors as HTTP 200 ``{"ok": false}``
(``missing_scope`` with the ``needed`` scope: MissingScopes). Private
channels need ``groups:read`` besides ``channels:read``. Discord
``GET /users/@me/guilds`` pages with a snowflake ``after`` cursor (the last id
seen) and ``limit`` up to 200; a user token sees the user's guilds (channels
inside a guild need a bot token).
"""

from __future__ import annotations

from nexusctl.errors import MissingScopes, ProviderError, TokenExpired
from nexusctl.providers.sync.base import Item, Page, SyncAction

SLACK_PAGE = 200
DISCORD_PAGE = 200
SLACK_AUTH_ERRORS = {"not_authed", "invalid_auth", "token_expired", "token_revoked", "account_inactive"}


def _slack_ok(reply, method: str = "conversations.list") -> dict:
    body = reply.body if isinstance(reply.body, dict) else {}
    if body.get("ok") is True:
        return body
    error = str(body.get("error") or "unreadable answer")
    if error in SLACK_AUTH_ERRORS:
        raise TokenExpired(f"SLACK: the access token was refused ({error})", provider="SLACK")
    if error == "missing_scope":  # Slack says which scope the call needs ("needed")
        needed = str(body.get("needed") or "a scope")
        raise MissingScopes(
            f"SLACK: {method} needs {needed}, not granted to this connection: connect it again and allow it",
            scopes=needed.split(","),
            provider="SLACK",
        )
    raise ProviderError(f"SLACK: {method} failed: {error}", provider="SLACK")


async def slack_channels(api, resume):
    cursor = (resume or {}).get("cursor")
    while True:
        body = _slack_ok(
            await api.get(
                "conversations.list",
                params={
                    "limit": SLACK_PAGE,
                    "cursor": cursor,
                    "exclude_archived": "false",
                    "types": "public_channel,private_channel",
                },
            )
        )
        items = [
            Item(
                str(c["id"]),
                {
                    "id": c["id"],
                    "name": c.get("name"),
                    "isPrivate": c.get("is_private", False),
                    "isArchived": c.get("is_archived", False),
                    "topic": (c.get("topic") or {}).get("value"),
                    "members": c.get("num_members"),
                },
            )
            for c in body.get("channels") or []
            if isinstance(c, dict) and c.get("id")
        ]
        cursor = (body.get("response_metadata") or {}).get("next_cursor") or None
        yield Page(items, {"cursor": cursor} if cursor else None)
        if not cursor:
            return


async def discord_guilds(api, resume):
    after = (resume or {}).get("after")
    while True:
        reply = await api.get("users/@me/guilds", params={"limit": DISCORD_PAGE, "after": after})
        rows = reply.body if isinstance(reply.body, list) else []
        items = [
            Item(
                str(g["id"]),
                {
                    "id": str(g["id"]),
                    "name": g.get("name"),
                    "owner": g.get("owner", False),
                    "permissions": g.get("permissions"),
                },
            )
            for g in rows
            if isinstance(g, dict) and g.get("id")
        ]
        full = len(rows) >= DISCORD_PAGE
        after = items[-1].external_id if items else after
        yield Page(items, {"after": after} if full else None)
        if not full:
            return


ACTIONS = {
    "SLACK": [SyncAction("fetch_channels", "channel", slack_channels, description="Channels (conversations.list)")],
    "DISCORD": [SyncAction("fetch_channels", "guild", discord_guilds, description="The user's guilds")],
}
