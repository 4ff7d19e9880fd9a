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
- INSTAGRAM (Instagram API with Instagram Login, graph.instagram.com; needs
  ``instagram_business_content_publish``): the content's first ``media`` item
  that is an image or a video (its ``type`` ``image``/``video`` or a MIME type,
  else its URL's extension) becomes a container, ``POST /{ig-user-id}/media``
  with ``image_url`` (Instagram takes JPEG only) or ``media_type=REELS`` +
  ``video_url``, and ``caption`` (title and URL, <= 2,200); a reel's
  container is polled (``GET /{container}?fields=status_code,status``) for a
  few seconds only (``IG_POLL_DELAYS``) until FINISHED; then ``POST
  /{ig-user-id}/media_publish`` ``creation_id``. The ig user id is the
  connection's account id (``/me``'s ``user_id``), else ``GET /me``. Text
  alone cannot be posted (UsageProblem). If a step before media_publish fails
  (a reel still IN_PROGRESS, ERROR, a refused token, throttling) nothing is
  published: an unpublished container is invisible and Instagram drops it
  after 24 h, and a retried run (a refresh, a throttling wait) makes a new one.
- TIKTOK (Content Posting API, direct post; needs ``video.publish``): the
  creator's options from ``POST /v2/post/publish/creator_info/query/``, then
  ``POST /v2/post/publish/video/init/`` with ``post_info`` (title, the
  privacy level, the creator's comment/duet/stitch settings) and
  ``source_info {source: PULL_FROM_URL, video_url}`` (the first video in
  ``media``; the URL's domain or prefix must be verified in the TikTok app's
  settings). The privacy level is ``metadata.publishPrivacyLevel`` when set
  (it must be one the creator allows), else SELF_ONLY: TikTok wants the
  creator to choose, and an unaudited app may only post SELF_ONLY. TikTok
  pulls and posts the video asynchronously: the result is the ``publishId``
  with the status of one ``status/fetch`` made right after (a failed status
  fetch is not a failed post: the post was accepted).
- YOUTUBE is not built yet (its publish logs fail saying so): a YouTube video
  is uploaded as bytes (``videos.insert``, a resumable upload), so the
  service would have to stream the content's video through itself (with a
  size cap, a chunked upload that resumes after an error, and the
  ``youtube.upload`` scope); and an API project that is not audited can only
  upload private videos.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

from nexusctl.errors import NexusError, ProviderError, ProviderNotConfigured, UsageProblem
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


# --- Media posts: Instagram, TikTok ----------------------------------------------------------------------

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".heic")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".webm")


def media_of(content: dict) -> list[dict]:
    """The content's usable media, in order: ``{"kind": "image" | "video", "url"}``.

    ``media`` is a list (or one object) of ``{"type", "url"}`` (or bare URLs); ``type`` is ``image`` /
    ``photo`` / ``video`` or a MIME type; without one the URL's extension decides. Items without an http(s)
    URL or of another kind are skipped."""
    media = content.get("media")
    items = [media] if isinstance(media, (dict, str)) else media if isinstance(media, list) else []
    found = []
    for item in items:
        item = {"url": item} if isinstance(item, str) else item
        if not isinstance(item, dict):
            continue
        url = str(item.get("url") or "").strip()
        if not url.startswith(("http://", "https://")):
            continue
        kind = str(item.get("type") or item.get("mimeType") or item.get("mime_type") or "").strip().lower()
        path = urlsplit(url).path.lower()
        if kind.startswith(("image", "photo")) or (not kind and path.endswith(IMAGE_EXTENSIONS)):
            found.append({"kind": "image", "url": url})
        elif kind.startswith("video") or (not kind and path.endswith(VIDEO_EXTENSIONS)):
            found.append({"kind": "video", "url": url})
    return found


def _caption(content: dict, limit: int) -> str:
    """compose() when there is something to say; a media post may go without a caption."""
    if (content.get("title") or content.get("description") or content.get("url") or "").strip():
        return compose(content, limit)
    return ""


INSTAGRAM_CAPTION_MAX = 2200
# Seconds between a reel container's status reads: about 5 s in all, so a sync worker is not held for the
# minutes a long video can take; a reel not ready by then fails the run (nothing is published).
IG_POLL_DELAYS = (0.5, 1.0, 1.5, 2.0)


def _instagram_check(secrets: tuple):
    dead = graph_check("INSTAGRAM")

    def check(reply) -> None:
        dead(reply)  # code 190/102: TokenExpired (throttling codes were turned into RateLimited before)
        if reply.status >= 400 and reply.get("error", "code") in GRAPH_PERMISSION_CODES:
            raise ProviderError(f"INSTAGRAM: the post was refused{describe(reply, secrets, ': ')}; posting needs "
                                "the instagram_business_content_publish permission on a professional "
                                "(business or creator) account: reconnect Instagram", provider="INSTAGRAM",
                                status=reply.status)
    return check


async def _instagram_user(api) -> str:
    account = str(api.metadata.get("accountId") or "").strip()  # /me's user_id, stored at connect time
    if account.isdigit():
        return account
    reply = await api.get("me", params={"fields": "user_id"}, check=graph_check("INSTAGRAM"))
    user = reply.get("user_id")
    if not user:
        raise ProviderError("INSTAGRAM: the /me answer has no user_id", provider="INSTAGRAM")
    return str(user)


async def _instagram_wait(api, container: str, check) -> None:
    """Poll a container until FINISHED, for IG_POLL_DELAYS in all; ERROR / EXPIRED / still IN_PROGRESS raise."""
    status = code = None
    for delay in IG_POLL_DELAYS:
        await asyncio.sleep(delay)
        reply = await api.get(container, params={"fields": "status_code,status"}, check=check)
        code, status = reply.get("status_code"), reply.get("status")
        if code == "FINISHED":
            return
        if code in ("ERROR", "EXPIRED"):
            raise ProviderError(f"INSTAGRAM: Instagram could not process the video (container {container} is "
                                f"{code}{': ' + str(status)[:200] if status else ''}); nothing was published",
                                provider="INSTAGRAM")
        if code not in ("IN_PROGRESS", None):
            break
    raise ProviderError(f"INSTAGRAM: the video container {container} is still {code or 'not ready'} after "
                        f"{sum(IG_POLL_DELAYS):.0f} s; nothing was published (Instagram drops an unpublished "
                        "container after 24 h): a shorter or smaller video processes faster",
                        provider="INSTAGRAM")


async def instagram(api, content: dict, metadata: dict) -> dict:
    media = media_of(content)
    if not media:
        raise UsageProblem("Instagram cannot post text only: the content needs an image or a video in its "
                           "media (an item with a url and a type image or video, or an image/video file URL)",
                           field="media")
    item = media[0]
    check = _instagram_check((api.tokens.access_token,))
    user = await _instagram_user(api)
    body = {"caption": _caption(content, INSTAGRAM_CAPTION_MAX)}
    if item["kind"] == "image":
        body["image_url"] = item["url"]
    else:
        body.update(media_type="REELS", video_url=item["url"])
    container = str((await api.post(f"{user}/media", json_body=body, check=check)).get("id") or "")
    if not container:
        raise ProviderError("INSTAGRAM: the media container was not created (no id in the answer)",
                            provider="INSTAGRAM")
    if item["kind"] == "video":
        await _instagram_wait(api, container, check)
    reply = await api.post(f"{user}/media_publish", json_body={"creation_id": container}, check=check)
    media_id = reply.get("id") if isinstance(reply.body, dict) else None
    if not media_id:
        raise ProviderError(f"INSTAGRAM: the post was not confirmed (no id in the media_publish answer for "
                            f"container {container})", provider="INSTAGRAM")
    return {"mediaId": str(media_id), "containerId": container}


TIKTOK_TITLE_MAX = 2200
TIKTOK_DEFAULT_PRIVACY = "SELF_ONLY"


def _tiktok_post_check(reply) -> None:
    """TikTok's ``{error: {code, message, log_id}}``: a missing scope names it; other refusals (besides a dead
    token and throttling, which SyncApi and the adapter handle) carry TikTok's code and message."""
    code = reply.get("error", "code")
    if reply.status == 401 and code == "scope_not_authorized":
        raise ProviderError("TIKTOK: the user did not grant the video.publish scope (posting); reconnect TikTok "
                            "asking for it", provider="TIKTOK", status=401)
    if reply.status in (401, 429):
        return
    if reply.status >= 400 or code not in (None, "ok"):
        raise ProviderError(f"TIKTOK: the post was refused{describe(reply, (), ': ')}", provider="TIKTOK",
                            status=reply.status)


async def tiktok(api, content: dict, metadata: dict) -> dict:
    video = next((m for m in media_of(content) if m["kind"] == "video"), None)
    if video is None:
        raise UsageProblem("TikTok posts a video: the content has no video in its media (an item with a url and "
                           "type video, or a video file URL)", field="media")
    if not video["url"].startswith("https://"):
        raise UsageProblem("TikTok pulls the video from an https URL only", field="media")
    creator = (await api.post("v2/post/publish/creator_info/query/", json_body={},
                              check=_tiktok_post_check)).get("data") or {}
    options = [str(o) for o in creator.get("privacy_level_options") or []]
    wanted = str(metadata.get("publishPrivacyLevel") or "").strip().upper()
    level = wanted or TIKTOK_DEFAULT_PRIVACY
    if level not in options:
        where = f"metadata.publishPrivacyLevel {wanted}" if wanted else f"the default {level}"
        raise UsageProblem(f"{where} is not a privacy level this TikTok creator allows (they allow: "
                           f"{', '.join(options) or 'none'}); set the integration's metadata.publishPrivacyLevel "
                           "to one of them", field="metadata.publishPrivacyLevel")
    post = {"title": _caption(content, TIKTOK_TITLE_MAX), "privacy_level": level,
            "disable_comment": bool(creator.get("comment_disabled")),
            "disable_duet": bool(creator.get("duet_disabled")),
            "disable_stitch": bool(creator.get("stitch_disabled"))}
    reply = await api.post("v2/post/publish/video/init/", check=_tiktok_post_check, json_body={
        "post_info": post, "source_info": {"source": "PULL_FROM_URL", "video_url": video["url"]}})
    publish_id = reply.get("data", "publish_id")
    if not publish_id:
        raise ProviderError("TIKTOK: the post was not confirmed (no publish_id in the answer)", provider="TIKTOK")
    result = {"publishId": str(publish_id), "privacyLevel": level, "status": None}
    # The post is accepted: a refused token or throttling here must not fail the run (the engine would call
    # the publisher again and post the video twice), so the status is best effort.
    try:
        status = await api.post("v2/post/publish/status/fetch/", json_body={"publish_id": publish_id},
                                check=_tiktok_post_check)
        result["status"] = status.get("data", "status")
    except NexusError:
        return result
    if result["status"] == "FAILED":  # TikTok gave up already (e.g. it could not download the video)
        raise ProviderError(f"TIKTOK: the post {publish_id} failed at TikTok: "
                            f"{str(status.get('data', 'fail_reason') or 'no reason given')[:200]}",
                            provider="TIKTOK")
    return result


PUBLISHERS = {"SLACK": slack, "TWITTER": twitter, "DISCORD": discord, "LINKEDIN": linkedin, "FACEBOOK": facebook,
              "INSTAGRAM": instagram, "TIKTOK": tiktok}
