"""Social providers: fetch_posts for TikTok, Instagram, Facebook, YouTube, X and LinkedIn.

- TIKTOK ``POST /v2/video/list/?fields=...`` body ``{max_count<=20, cursor}``:
  ``data.cursor`` (epoch ms of the last video) and ``data.has_more``; errors
  ``{error:{code,message,log_id}}`` (``code`` is "ok" on success).
- INSTAGRAM ``GET /me/media`` (Instagram API with Instagram Login) and
  FACEBOOK ``GET /{page-id}/posts`` for every page in ``/me/accounts``: Graph
  cursor paging, ``paging.cursors.after`` while ``paging.next`` is present.
  Graph errors are ``{error:{message,type,code}}``; code 190 is a dead token
  (HTTP 400), throttling codes are the adapter's (``_Graph.rate_limit``).
- YOUTUBE: the uploads playlist (``channels?part=contentDetails&mine=true``),
  then ``playlistItems`` with ``pageToken`` / ``nextPageToken``; 403
  ``quotaExceeded`` / ``rateLimitExceeded`` are throttling (adapter).
- TWITTER ``GET /2/users/{id}/tweets`` with ``pagination_token`` /
  ``meta.next_token``; the user id from ``/2/users/me``.
- LINKEDIN ``GET /rest/posts?q=author&author={urn}&start=&count=`` (offset
  paging, versioned headers); the author URN from ``/v2/userinfo``'s ``sub``.
"""

from __future__ import annotations

from nexusctl.errors import ProviderError
from providers.http import describe
from providers.sync.base import Item, Page, SyncAction
from providers.sync.graph import edges_of_each, graph_all, graph_edge

TIKTOK_PAGE = 20  # the documented maximum of max_count
TIKTOK_FIELDS = "id,title,create_time,share_url"
GRAPH_PAGE = 100
INSTAGRAM_FIELDS = "id,caption,media_type,media_url,permalink,timestamp"
FACEBOOK_FIELDS = "id,message,created_time"
YOUTUBE_PAGE = 50
TWITTER_PAGE = 100
LINKEDIN_PAGE = 100
LINKEDIN_VERSION = "202510"  # LinkedIn-Version (YYYYMM); LinkedIn keeps a version active for about a year
TEXT_LIMIT = 2000  # captions, messages, descriptions: enough to recognise a post, no blobs


def _text(value) -> str | None:
    return None if value is None else str(value)[:TEXT_LIMIT]


# --- TikTok -------------------------------------------------------------------------------------


def _tiktok_check(reply) -> None:
    code = reply.get("error", "code")
    if reply.status == 401 and code == "scope_not_authorized":
        raise ProviderError("TIKTOK: the user did not grant the video.list scope; reconnect asking for it",
                            provider="TIKTOK", status=401)
    if reply.status < 400 and code not in (None, "ok"):
        raise ProviderError(f"TIKTOK: video/list failed{describe(reply, (), ': ')}", provider="TIKTOK")


async def tiktok_videos(api, resume):
    cursor = (resume or {}).get("cursor")
    while True:
        body = {"max_count": TIKTOK_PAGE}
        if cursor is not None:
            body["cursor"] = cursor
        reply = await api.post("v2/video/list/", params={"fields": TIKTOK_FIELDS}, json_body=body,
                               check=_tiktok_check)
        data = reply.get("data") or {}
        items = [Item(str(v["id"]), {"id": str(v["id"]), "title": _text(v.get("title")),
                                     "createTime": v.get("create_time"), "shareUrl": v.get("share_url")})
                 for v in data.get("videos") or [] if isinstance(v, dict) and v.get("id")]
        more = bool(data.get("has_more")) and data.get("cursor") is not None
        cursor = data.get("cursor")
        yield Page(items, {"cursor": cursor} if more else None)
        if not more:
            return


# --- Instagram and Facebook (Graph) ----------------------------------------------------------


async def instagram_media(api, resume):
    after = (resume or {}).get("after")
    while True:
        rows, after = await graph_edge(api, "me/media", {"fields": INSTAGRAM_FIELDS, "limit": GRAPH_PAGE}, after,
                                       "INSTAGRAM")
        # media_url is left out of the data: it is a signed CDN link that changes between calls, so every run
        # would see every post as updated. The permalink is the stable address.
        items = [Item(str(m["id"]), {"id": str(m["id"]), "caption": _text(m.get("caption")),
                                     "mediaType": m.get("media_type"), "permalink": m.get("permalink"),
                                     "timestamp": m.get("timestamp")}) for m in rows]
        yield Page(items, {"after": after} if after else None)
        if not after:
            return


def _facebook_post(page: dict, post: dict) -> Item:
    return Item(str(post["id"]), {"id": str(post["id"]), "pageId": str(page["id"]), "pageName": page.get("name"),
                                  "message": _text(post.get("message")), "createdTime": post.get("created_time")})


async def facebook_posts(api, resume):
    # The user's pages are listed again on every run (a resumed one too): the list is short and pages come and go.
    pages = await graph_all(api, "me/accounts", {"fields": "id,name", "limit": GRAPH_PAGE}, "FACEBOOK")
    async for page in edges_of_each(api, resume, pages, lambda p: f"{p['id']}/posts",
                                    {"fields": FACEBOOK_FIELDS, "limit": GRAPH_PAGE}, "FACEBOOK", _facebook_post):
        yield page


# --- YouTube ------------------------------------------------------------------------------------


async def _uploads_playlist(api) -> str:
    reply = await api.get("youtube/v3/channels", params={"part": "contentDetails", "mine": "true"})
    uploads = reply.get("items", 0, "contentDetails", "relatedPlaylists", "uploads")
    if not uploads:
        raise ProviderError("YOUTUBE: this account has no channel (no uploads playlist)", provider="YOUTUBE")
    return str(uploads)


async def youtube_uploads(api, resume):
    resume = resume or {}
    playlist = resume.get("playlist") or await _uploads_playlist(api)
    token = resume.get("pageToken")
    while True:
        reply = await api.get("youtube/v3/playlistItems", params={
            "part": "snippet", "playlistId": playlist, "maxResults": YOUTUBE_PAGE, "pageToken": token})
        items = []
        for row in reply.get("items") or []:
            snippet = row.get("snippet") if isinstance(row, dict) else None
            video = ((snippet or {}).get("resourceId") or {}).get("videoId")
            if not video:
                continue
            items.append(Item(str(video), {"id": str(video), "title": _text(snippet.get("title")),
                                           "description": _text(snippet.get("description")),
                                           "publishedAt": snippet.get("publishedAt"),
                                           "channelId": snippet.get("channelId")}))
        token = reply.get("nextPageToken") or None
        yield Page(items, {"playlist": playlist, "pageToken": token} if token else None)
        if not token:
            return


ACTIONS = {
    "TIKTOK": [SyncAction("fetch_posts", "media", tiktok_videos, newest_first=True,
                          description="The user's public videos (video/list, newest first)")],
    "INSTAGRAM": [SyncAction("fetch_posts", "media", instagram_media, newest_first=True,
                             description="The professional account's media (/me/media, newest first)")],
    "FACEBOOK": [SyncAction("fetch_posts", "media", facebook_posts,
                            description="Posts of every page the user manages (/me/accounts, /{page}/posts)")],
    "YOUTUBE": [SyncAction("fetch_posts", "media", youtube_uploads, newest_first=True,
                           description="The channel's uploads (uploads playlist, newest first)")],
}
