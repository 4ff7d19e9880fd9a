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
- LINKEDIN: ``POST /rest/posts`` as the member (``urn:li:person:{sub}``, the
  ``sub`` from ``/v2/userinfo``; needs ``w_member_social`` and ``openid``), a
  PUBLIC main-feed post whose commentary is the title and URL in LinkedIn's
  "little" text format (reserved characters escaped, else LinkedIn cuts the
  text at the first one), with an ``article`` block (source, title,
  description) when there is a URL: the Posts API does not scrape links. The
  post URN comes back in the ``x-restli-id`` header.
- FACEBOOK: ``POST /{page-id}/feed`` (``message``, ``link``) with that page's
  own access token from ``/me/accounts`` (needs ``pages_show_list``,
  ``pages_manage_posts`` and ``pages_read_engagement``). The page is
  ``metadata.publishPageId``, or the user's only page. The page token is used
  for that one call and never stored, logged or put in a message.
Others (TikTok, Instagram, YouTube uploads) are not built yet: their publish
logs fail with a message that says so.
"""

from __future__ import annotations

import re

from nexusctl.errors import ProviderError, ProviderNotConfigured, UsageProblem
from providers.http import describe
from providers.sync.chat import _slack_ok
from providers.sync.graph import graph_all, graph_check
from providers.sync.social import LINKEDIN_HEADERS

TWEET_MAX = 280
LINKEDIN_MAX = 3000  # commentary characters
# "little" text format: these are markup (mentions, hashtags, templates) unless backslash-escaped.
LITTLE_RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")
URL_TOKEN = re.compile(r"(https?://\S+)")
GRAPH_PERMISSION_CODES = {10, 200}


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


def little_text(text: str) -> str:
    """Plain text as LinkedIn "little" text: reserved characters escaped; URLs left whole (LinkedIn links them)."""
    return "".join(part if URL_TOKEN.fullmatch(part) else LITTLE_RESERVED.sub(r"\\\1", part)
                   for part in URL_TOKEN.split(text))


def _header(reply, name: str) -> str | None:
    return next((v for k, v in reply.headers.items() if k.lower() == name), None)


def _linkedin_check(secrets: tuple):
    def check(reply) -> None:
        if reply.status == 403:
            raise ProviderError(f"LINKEDIN: the post was refused (HTTP 403){describe(reply, secrets, ': ')}; "
                                "posting needs the w_member_social scope: reconnect LinkedIn", provider="LINKEDIN",
                                status=403)
    return check


async def linkedin(api, content: dict, metadata: dict) -> dict:
    sub = (await api.get("v2/userinfo")).get("sub")
    if not sub:
        raise ProviderError("LINKEDIN: the userinfo answer has no subject", provider="LINKEDIN")
    text = little_text(compose(content, LINKEDIN_MAX))
    if len(text) > LINKEDIN_MAX:  # the escapes made it longer: cut the title further
        text = little_text(compose(content, 2 * LINKEDIN_MAX - len(text)))
    body: dict = {"author": f"urn:li:person:{sub}", "commentary": text, "visibility": "PUBLIC",
                  "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                                   "thirdPartyDistributionChannels": []},
                  "lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor": False}
    url = (content.get("url") or "").strip()
    if url:
        # The Posts API does not scrape the link: the card shows what is sent (title is required).
        article = {"source": url, "title": (content.get("title") or "").strip() or url}
        if (content.get("description") or "").strip():
            article["description"] = content["description"].strip()
        body["content"] = {"article": article}
    reply = await api.post("rest/posts", json_body=body, headers=LINKEDIN_HEADERS,
                           check=_linkedin_check((api.tokens.access_token,)))
    urn = _header(reply, "x-restli-id") or (reply.get("id") if isinstance(reply.body, dict) else None)
    if not urn:
        raise ProviderError("LINKEDIN: the post was not confirmed (no x-restli-id in the answer)",
                            provider="LINKEDIN")
    return {"postUrn": urn}


def _facebook_check(secrets: tuple):
    dead = graph_check("FACEBOOK")

    def check(reply) -> None:
        dead(reply)  # code 190/102: TokenExpired (throttling codes were turned into RateLimited before)
        if reply.status >= 400 and reply.get("error", "code") in GRAPH_PERMISSION_CODES:
            raise ProviderError(f"FACEBOOK: the page refused the post{describe(reply, secrets, ': ')}; posting "
                                "needs the pages_manage_posts and pages_read_engagement permissions and a page "
                                "role that can create content: reconnect Facebook", provider="FACEBOOK",
                                status=reply.status)
    return check


async def facebook(api, content: dict, metadata: dict) -> dict:
    pages = await graph_all(api, "me/accounts", {"fields": "id,name,access_token", "limit": 100}, "FACEBOOK")
    wanted = str(metadata.get("publishPageId") or "").strip()
    if wanted:
        page = next((p for p in pages if str(p["id"]) == wanted), None)
        if page is None:
            raise UsageProblem(f"metadata.publishPageId {wanted} is not a page this Facebook user manages (their "
                               f"pages: {', '.join(str(p['id']) for p in pages) or 'none'})",
                               field="metadata.publishPageId")
    elif len(pages) == 1:
        page = pages[0]
    elif not pages:
        raise UsageProblem("this Facebook user manages no page (or did not grant pages_show_list): there is "
                           "nowhere to publish", field="metadata.publishPageId")
    else:
        raise UsageProblem(f"this Facebook user manages {len(pages)} pages: set the integration's "
                           f"metadata.publishPageId to the one to publish to "
                           f"({', '.join(str(p['id']) for p in pages)})", field="metadata.publishPageId")
    page_token = page.get("access_token")
    if not page_token:
        raise ProviderError(f"FACEBOOK: /me/accounts gave no access token for page {page['id']}: the user needs "
                            "a role on it that can create content", provider="FACEBOOK")
    url = (content.get("url") or "").strip()
    message = (content.get("title") or content.get("description") or "").strip()
    if not message and not url:
        compose(content)  # raises the usual "nothing to post"
    body = {k: v for k, v in (("message", message), ("link", url)) if v}
    reply = await api.post(f"{page['id']}/feed", json_body=body, token=page_token,
                           check=_facebook_check((page_token,)))
    post_id = reply.get("id") if isinstance(reply.body, dict) else None
    if not post_id:
        raise ProviderError("FACEBOOK: the post was not confirmed (no id in the answer)", provider="FACEBOOK")
    return {"postId": str(post_id)}


PUBLISHERS = {"SLACK": slack, "TWITTER": twitter, "DISCORD": discord, "LINKEDIN": linkedin, "FACEBOOK": facebook}
