"""Publishing media: Instagram (image or reel via a container) and TikTok (direct post). See publish.py."""

from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import urlsplit

from nexusctl import clock, ssrf
from nexusctl.errors import NexusError, ProviderError, RateLimited, TokenExpired, UsageProblem
from nexusctl.providers.catalog import CATALOG
from nexusctl.providers.http import describe, may_have_sent
from nexusctl.providers.sync.graph import graph_check, graph_post_check
from nexusctl.providers.sync.publish_common import NotReady, compose, creating, made_since

log = logging.getLogger(__name__)

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


# What a provider needs in the content before it can post anything: text alone goes to the others.
NEEDS_MEDIA = {
    "INSTAGRAM": (
        ("image", "video"),
        "Instagram cannot post text only: the content has no image or video in its media",
    ),
    "TIKTOK": (("video",), "TikTok posts videos only: the content has no video in its media"),
    "YOUTUBE": (("video",), "YouTube takes videos only: the content has no video in its media"),
}


# ``format: "story"`` in a content.published: a story where the provider has them (Instagram), skipped elsewhere.
STORY = "story"
FORMATS = ("post", STORY)
STORY_PROVIDERS = ("INSTAGRAM",)


def _display(provider: str) -> str:
    info = CATALOG.get(provider)
    return info.display_name if info is not None else provider


def is_story(content: dict) -> bool:
    return content.get("format") == STORY


def story_refusal(media: list[dict]) -> str | None:
    """Why these media cannot be one Instagram story (exactly one image or one video), or None."""
    if not media:
        return "An Instagram story is one image or one video: the content has no image or video in its media"
    if len(media) > 1:
        return (
            f"An Instagram story is one image or one video: the content has {len(media)} in its media "
            "(publish each as its own story)"
        )
    return None


def cannot_take(provider: str, content: dict) -> str | None:
    """Why ``provider`` cannot post ``content`` at all (a content.published it is skipped for, not a failure of
    the integration), or None when it can try."""
    if is_story(content):
        if provider not in STORY_PROVIDERS:
            return (
                f"{_display(provider)} has no stories: content with format story is published to "
                f"{', '.join(_display(p) for p in STORY_PROVIDERS)} only"
            )
        return story_refusal(media_of(content))
    needs = NEEDS_MEDIA.get(provider)
    if needs is None or any(item["kind"] in needs[0] for item in media_of(content)):
        return None
    return needs[1]


def check_media_urls(content: dict, allowed_networks=()) -> None:
    """Every http(s) media URL through the SSRF guard's static checks (a 400 naming ``media``).

    Instagram and TikTok fetch these URLs themselves, YouTube's upload fetches through the guarded
    connector; either way a URL aimed at loopback, the LAN or the metadata service is never one to
    publish. No DNS here: the name is resolved by whoever fetches (and by our guard when it is us)."""
    media = content.get("media") if isinstance(content, dict) else None
    items = [media] if isinstance(media, (dict, str)) else media if isinstance(media, list) else []
    for item in items:
        url = item.get("url") if isinstance(item, dict) else item
        if isinstance(url, str) and url.strip().lower().startswith(("http://", "https://")):
            ssrf.check_url(url, production=False, allowed_networks=allowed_networks, field="media", label="media URL")


def _caption(content: dict, limit: int) -> str:
    """compose() when there is something to say; a media post may go without a caption."""
    if (content.get("title") or content.get("description") or content.get("url") or "").strip():
        return compose(content, limit)
    return ""


INSTAGRAM_CAPTION_MAX = 2200
# Seconds between a reel container's status reads in the first run: about 5 s in all, so a sync worker is not
# held for the minutes a long video can take; a reel not ready by then defers the run (NotReady), which looks
# again later, until PUBLISH_PROCESSING_TIMEOUT.
IG_POLL_DELAYS = (0.5, 1.0, 1.5, 2.0)


def _instagram_check(secrets: tuple):
    return graph_post_check(
        "INSTAGRAM",
        secrets,
        "the post was refused",
        "posting needs the instagram_business_content_publish permission on a professional "
        "(business or creator) account: reconnect Instagram",
    )


async def _instagram_user(api) -> str:
    account = str(api.metadata.get("accountId") or "").strip()  # /me's user_id, stored at connect time
    if account.isascii() and account.isdigit():
        return account
    reply = await api.get("me", params={"fields": "user_id"}, check=graph_check("INSTAGRAM"))
    user = reply.get("user_id")
    if not user:
        raise ProviderError("INSTAGRAM: the /me answer has no user_id", provider="INSTAGRAM")
    return str(user)


def _container_failed(container: str, code: str, status) -> ProviderError:
    return ProviderError(
        f"INSTAGRAM: Instagram could not process the video (container {container} is "
        f"{code}{': ' + str(status)[:200] if status else ''}); nothing was published",
        provider="INSTAGRAM",
    )


async def _instagram_wait(api, container: str, check, delays) -> str:
    """Read a container's status after each delay until FINISHED or PUBLISHED (which it returns); ERROR /
    EXPIRED raise, still IN_PROGRESS after the last is NotReady: the run is deferred and looks again later (the
    container id kept)."""
    code = None
    for delay in delays:
        await clock.wait(delay)  # Instagram's processing time: on the product clock (a test moves it)
        reply = await api.get(container, params={"fields": "status_code,status"}, check=check)
        code, status = reply.get("status_code"), reply.get("status")
        if code in ("FINISHED", "PUBLISHED"):  # PUBLISHED: an earlier media_publish made it (its answer lost)
            return code
        if code in ("ERROR", "EXPIRED"):
            raise _container_failed(container, code, status)
        if code not in ("IN_PROGRESS", None):
            break
    raise NotReady(
        f"the video container {container} is still {code or 'not ready'} at Instagram", {"containerId": container}
    )


def _container_body(item: dict, content: dict, story: bool) -> dict:
    """What POST /{ig-user-id}/media gets: an image, a reel, or a story (STORIES, which takes no caption)."""
    key = "image_url" if item["kind"] == "image" else "video_url"
    if story:
        return {"media_type": "STORIES", key: item["url"]}
    body = {"caption": _caption(content, INSTAGRAM_CAPTION_MAX), key: item["url"]}
    if item["kind"] == "video":
        body["media_type"] = "REELS"
    return body


async def instagram(api, content: dict, metadata: dict) -> dict:
    pending = api.pending or {}
    container = str(pending.get("containerId") or "")
    media = media_of(content)
    story = is_story(content)
    if not container and not media:
        raise UsageProblem(
            "Instagram cannot post text only: the content needs an image or a video in its "
            "media (an item with a url and a type image or video, or an image/video file URL)",
            field="media",
        )
    if not container and story and (reason := story_refusal(media)):
        raise UsageProblem(reason, field="media")
    check_media_urls(content, api.allowed_networks)  # checked at ingest too: this covers contents queued before
    check = _instagram_check((api.tokens.access_token,))
    user = await _instagram_user(api)
    # When the container was made, about: a published story is told from older ones by its time (no caption).
    since = _when(pending.get("since")) or clock.now()
    if container:  # a deferred run: the container (a reel's, a video story's) exists, look at it once more
        if await _instagram_wait(api, container, check, (0,)) == "PUBLISHED":
            return await _already_published(api, user, container, check, content, since)  # never twice
    else:
        item = media[0]
        body = _container_body(item, content, story)
        container = str((await api.post(f"{user}/media", json_body=body, check=check)).get("id") or "")
        if not container:
            raise ProviderError(
                "INSTAGRAM: the media container was not created (no id in the answer)", provider="INSTAGRAM"
            )
        if item["kind"] == "video" and await _instagram_wait(api, container, check, IG_POLL_DELAYS) == "PUBLISHED":
            return await _already_published(api, user, container, check, content, since)
    try:
        reply = await api.post(f"{user}/media_publish", json_body={"creation_id": container}, check=check)
    except ProviderError as exc:
        if not may_have_sent(exc):
            raise
        return await _after_lost_publish(api, user, container, check, exc, content, since)
    return _published(reply, container, story)


def _when(stamp) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None


def _published(reply, container: str, story: bool = False) -> dict:
    media_id = reply.get("id") if isinstance(reply.body, dict) else None
    if not media_id:
        raise ProviderError(
            f"INSTAGRAM: the post was not confirmed (no id in the media_publish answer for container {container})",
            provider="INSTAGRAM",
        )
    return {"mediaId": str(media_id), "containerId": container, **({"story": True} if story else {})}


async def _published_story_id(api, user: str, check, since: dt.datetime) -> str | None:
    """A story has no caption and is not in /me/media: the account's stories made since the container was
    (less a minute for clocks that disagree); the id when exactly one is, else None (the lookup cannot tell)."""
    latest = await api.get(f"{user}/stories", params={"fields": "id,timestamp", "limit": 10}, check=check)
    made = [
        str(s["id"])
        for s in latest.get("data") or []
        if isinstance(s, dict) and s.get("id") and made_since(s.get("timestamp"), since)
    ]
    return made[0] if len(made) == 1 else None


async def _already_published(api, user: str, container: str, check, content: dict, since: dt.datetime) -> dict:
    """A PUBLISHED container (Instagram publishes one at most once): the post exists; its media id is looked
    for among the latest posts by caption, or a story's among the account's stories (None when not found)."""
    story = is_story(content)
    caption = _caption(content, INSTAGRAM_CAPTION_MAX) or None
    try:
        if story:
            media_id = await _published_story_id(api, user, check, since)
        else:
            latest = await api.get("me/media", params={"fields": "id,caption", "limit": 10}, check=check)
            media_id = next(
                (str(m["id"]) for m in latest.get("data") or [] if isinstance(m, dict) and m.get("caption") == caption),
                None,
            )
    except (TokenExpired, RateLimited):
        raise  # the engine refreshes or waits and calls again, which finds the container PUBLISHED again
    except NexusError as exc:  # the post exists whether or not its id can be read now
        log.info("INSTAGRAM: container %s is published; its media id could not be read: %s", container, exc.message)
        media_id = None
    return {"mediaId": media_id, "containerId": container, "reconciled": True, **({"story": True} if story else {})}


async def _after_lost_publish(
    api, user: str, container: str, check, exc: ProviderError, content: dict, since: dt.datetime
) -> dict:
    """media_publish got no clean answer. Instagram publishes a container at most once, so its status tells:
    PUBLISHED, it is done (the media id found among the latest posts by caption, or the stories); FINISHED, it
    was not, and publishing it now cannot make a second post. Otherwise the post may exist: say so."""
    try:
        code = (await api.get(container, params={"fields": "status_code"}, check=check)).get("status_code")
        if code == "PUBLISHED":
            return await _already_published(api, user, container, check, content, since)
        if code == "FINISHED":
            reply = await creating(api.post(f"{user}/media_publish", json_body={"creation_id": container}, check=check))
            return {**_published(reply, container, is_story(content)), "reconciled": True}
    except NexusError as again:  # a refused token or throttling here must not make the engine post anew
        if again.details.get("mayHavePosted"):
            raise
    exc.details["mayHavePosted"] = True
    raise exc


TIKTOK_TITLE_MAX = 2200
TIKTOK_DEFAULT_PRIVACY = "SELF_ONLY"


def _tiktok_post_check(reply) -> None:
    """TikTok's ``{error: {code, message, log_id}}``: a missing scope names it; other refusals (besides a dead
    token and throttling, which SyncApi and the adapter handle) carry TikTok's code and message."""
    code = reply.get("error", "code")
    if reply.status == 401 and code == "scope_not_authorized":
        raise ProviderError(
            "TIKTOK: the user did not grant the video.publish scope (posting); reconnect TikTok asking for it",
            provider="TIKTOK",
            status=401,
        )
    if reply.status in (401, 429):
        return
    if reply.status >= 400 or code not in (None, "ok"):
        raise ProviderError(
            f"TIKTOK: the post was refused{describe(reply, (), ': ')}", provider="TIKTOK", status=reply.status
        )


async def tiktok(api, content: dict, metadata: dict) -> dict:
    video = next((m for m in media_of(content) if m["kind"] == "video"), None)
    if video is None:
        raise UsageProblem(
            "TikTok posts a video: the content has no video in its media (an item with a url and "
            "type video, or a video file URL)",
            field="media",
        )
    if not video["url"].startswith("https://"):
        raise UsageProblem("TikTok pulls the video from an https URL only", field="media")
    check_media_urls(content, api.allowed_networks)  # as for Instagram
    creator = (await api.post("v2/post/publish/creator_info/query/", json_body={}, check=_tiktok_post_check)).get(
        "data"
    ) or {}
    options = [str(o) for o in creator.get("privacy_level_options") or []]
    wanted = str(metadata.get("publishPrivacyLevel") or "").strip().upper()
    level = wanted or TIKTOK_DEFAULT_PRIVACY
    if level not in options:
        where = f"metadata.publishPrivacyLevel {wanted}" if wanted else f"the default {level}"
        raise UsageProblem(
            f"{where} is not a privacy level this TikTok creator allows (they allow: "
            f"{', '.join(options) or 'none'}); set the integration's metadata.publishPrivacyLevel "
            "to one of them",
            field="metadata.publishPrivacyLevel",
        )
    post = {
        "title": _caption(content, TIKTOK_TITLE_MAX),
        "privacy_level": level,
        "disable_comment": bool(creator.get("comment_disabled")),
        "disable_duet": bool(creator.get("duet_disabled")),
        "disable_stitch": bool(creator.get("stitch_disabled")),
    }
    reply = await creating(
        api.post(
            "v2/post/publish/video/init/",
            check=_tiktok_post_check,
            json_body={"post_info": post, "source_info": {"source": "PULL_FROM_URL", "video_url": video["url"]}},
        )
    )
    publish_id = reply.get("data", "publish_id")
    if not publish_id:
        raise ProviderError("TIKTOK: the post was not confirmed (no publish_id in the answer)", provider="TIKTOK")
    result = {"publishId": str(publish_id), "privacyLevel": level, "status": None}
    # The post is accepted: a refused token or throttling here must not fail the run (the engine would call
    # the publisher again and post the video twice), so the status is best effort.
    try:
        status = await api.post(
            "v2/post/publish/status/fetch/", json_body={"publish_id": publish_id}, check=_tiktok_post_check
        )
        result["status"] = status.get("data", "status")
    except NexusError:
        return result
    if result["status"] == "FAILED":  # TikTok gave up already (e.g. it could not download the video)
        raise ProviderError(
            f"TIKTOK: the post {publish_id} failed at TikTok: "
            f"{str(status.get('data', 'fail_reason') or 'no reason given')[:200]}",
            provider="TIKTOK",
        )
    return result
