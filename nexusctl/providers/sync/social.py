"""Social providers: fetch_posts for TikTok, Instagram, Facebook, YouTube, X and LinkedIn.

- TIKTOK ``POST /v2/video/list/?fields=...`` body ``{max_count<=20, cursor}``:
  ``data.cursor`` (epoch ms of the last video) and ``data.has_more``; errors
  ``{error:{code,message,log_id}}`` (``code`` is "ok" on success).
- INSTAGRAM ``GET /me/media`` (Instagram API with Instagram Login) and
  FACEBOOK ``GET /{page-id}/posts`` for every page in ``/me/accounts``, each
  with that page's own token from the list (never stored): Graph
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
from nexusctl.providers.http import describe
from nexusctl.providers.sync.base import Item, Page, SyncAction
from nexusctl.providers.sync.graph import edges_of_each, graph_all, graph_edge

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
        raise ProviderError(
            "TIKTOK: the user did not grant the video.list scope; reconnect asking for it",
            provider="TIKTOK",
            status=401,
        )
    if reply.status < 400 and code not in (None, "ok"):
        raise ProviderError(f"TIKTOK: video/list failed{describe(reply, (), ': ')}", provider="TIKTOK")


async def tiktok_videos(api, resume):
    cursor = (resume or {}).get("cursor")
    while True:
        body = {"max_count": TIKTOK_PAGE}
        if cursor is not None:
            body["cursor"] = cursor
        reply = await api.post("v2/video/list/", params={"fields": TIKTOK_FIELDS}, json_body=body, check=_tiktok_check)
        data = reply.get("data") or {}
        items = [
            Item(
                str(v["id"]),
                {
                    "id": str(v["id"]),
                    "title": _text(v.get("title")),
                    "createTime": v.get("create_time"),
                    "shareUrl": v.get("share_url"),
                },
            )
            for v in data.get("videos") or []
            if isinstance(v, dict) and v.get("id")
        ]
        more = bool(data.get("has_more")) and data.get("cursor") is not None
        cursor = data.get("cursor")
        yield Page(items, {"cursor": cursor} if more else None)
        if not more:
            return


# --- Instagram and Facebook (Graph) ----------------------------------------------------------


async def instagram_media(api, resume):
    after = (resume or {}).get("after")
    while True:
        rows, after = await graph_edge(
            api, "me/media", {"fields": INSTAGRAM_FIELDS, "limit": GRAPH_PAGE}, after, "INSTAGRAM"
        )
        # media_url is left out of the data: it is a signed CDN link that changes between calls, so every run
        # would see every post as updated. The permalink is the stable address.
        items = [
            Item(
                str(m["id"]),
                {
                    "id": str(m["id"]),
                    "caption": _text(m.get("caption")),
                    "mediaType": m.get("media_type"),
                    "permalink": m.get("permalink"),
                    "timestamp": m.get("timestamp"),
                },
            )
            for m in rows
        ]
        yield Page(items, {"after": after} if after else None)
        if not after:
            return


def _facebook_post(page: dict, post: dict) -> Item:
    return Item(
        str(post["id"]),
        {
            "id": str(post["id"]),
            "pageId": str(page["id"]),
            "pageName": page.get("name"),
            "message": _text(post.get("message")),
            "createdTime": post.get("created_time"),
        },
    )


async def facebook_posts(api, resume):
    # The user's pages are listed again on every run (a resumed one too): the list is short and pages come and go.
    # Each page is read with its own token from that list (Graph wants a page token for a page's non-public
    # posts); the tokens live in this run's memory only, never in the resume state, the items or a message.
    pages = await graph_all(api, "me/accounts", {"fields": "id,name,access_token", "limit": GRAPH_PAGE}, "FACEBOOK")
    async for page in edges_of_each(
        api,
        resume,
        pages,
        lambda p: f"{p['id']}/posts",
        {"fields": FACEBOOK_FIELDS, "limit": GRAPH_PAGE},
        "FACEBOOK",
        _facebook_post,
        token_of=lambda p: p.get("access_token") or None,
    ):
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
        reply = await api.get(
            "youtube/v3/playlistItems",
            params={"part": "snippet", "playlistId": playlist, "maxResults": YOUTUBE_PAGE, "pageToken": token},
        )
        items = []
        for row in reply.get("items") or []:
            snippet = row.get("snippet") if isinstance(row, dict) else None
            video = ((snippet or {}).get("resourceId") or {}).get("videoId")
            if not video:
                continue
            items.append(
                Item(
                    str(video),
                    {
                        "id": str(video),
                        "title": _text(snippet.get("title")),
                        "description": _text(snippet.get("description")),
                        "publishedAt": snippet.get("publishedAt"),
                        "channelId": snippet.get("channelId"),
                    },
                )
            )
        token = reply.get("nextPageToken") or None
        yield Page(items, {"playlist": playlist, "pageToken": token} if token else None)
        if not token:
            return


# --- X (Twitter) --------------------------------------------------------------------------------


def _twitter_check(reply) -> None:
    # X errors are problem+json ({title, detail, type, status}); 401 and 429 are handled by SyncApi / http.call.
    if reply.status >= 400 and reply.status != 401 and isinstance(reply.body, dict):
        detail = " - ".join(str(reply.body[k]) for k in ("title", "detail") if reply.body.get(k))[:200]
        if detail:
            raise ProviderError(
                f"TWITTER: the API answered HTTP {reply.status}: {detail}", provider="TWITTER", status=reply.status
            )


async def twitter_tweets(api, resume):
    resume = resume or {}
    user = resume.get("userId") or api.metadata.get("userId")
    if not user:
        reply = await api.get("2/users/me", check=_twitter_check)
        user = reply.get("data", "id")
        if not user:
            raise ProviderError("TWITTER: the users/me answer has no id", provider="TWITTER")
    user, token = str(user), resume.get("token")
    while True:
        reply = await api.get(
            f"2/users/{user}/tweets",
            params={"max_results": TWITTER_PAGE, "pagination_token": token, "tweet.fields": "created_at"},
            check=_twitter_check,
        )
        items = [
            Item(str(t["id"]), {"id": str(t["id"]), "text": _text(t.get("text")), "createdAt": t.get("created_at")})
            for t in reply.get("data") or []
            if isinstance(t, dict) and t.get("id")
        ]
        token = reply.get("meta", "next_token") or None
        yield Page(items, {"userId": user, "token": token} if token else None)
        if not token:
            return


# --- LinkedIn -----------------------------------------------------------------------------------

LINKEDIN_HEADERS = {"LinkedIn-Version": LINKEDIN_VERSION, "X-Restli-Protocol-Version": "2.0.0"}


async def linkedin_posts(api, resume):
    resume = resume or {}
    author = resume.get("author")
    if not author:
        sub = (await api.get("v2/userinfo")).get("sub")
        if not sub:
            raise ProviderError("LINKEDIN: the userinfo answer has no subject", provider="LINKEDIN")
        author = f"urn:li:person:{sub}"
    start = int(resume.get("start") or 0)
    while True:
        reply = await api.get(
            "rest/posts",
            headers=LINKEDIN_HEADERS,
            params={"q": "author", "author": author, "start": start, "count": LINKEDIN_PAGE},
        )
        rows = [p for p in reply.get("elements") or [] if isinstance(p, dict) and p.get("id")]
        items = [
            Item(
                str(p["id"]),
                {
                    "id": str(p["id"]),
                    "commentary": _text(p.get("commentary")),
                    "visibility": p.get("visibility"),
                    "lifecycleState": p.get("lifecycleState"),
                    "createdAt": p.get("createdAt"),
                    "publishedAt": p.get("publishedAt"),
                    "lastModifiedAt": p.get("lastModifiedAt"),
                },
            )
            for p in rows
        ]
        start += len(rows)
        total = reply.get("paging", "total")
        links = reply.get("paging", "links") or []
        more = bool(rows) and (
            start < total
            if isinstance(total, int)
            else any(isinstance(link, dict) and link.get("rel") == "next" for link in links)
        )
        yield Page(items, {"author": author, "start": start} if more else None)
        if not more:
            return


ACTIONS = {
    "TIKTOK": [
        SyncAction(
            "fetch_posts",
            "media",
            tiktok_videos,
            newest_first=True,
            description="The user's public videos (video/list, newest first)",
        )
    ],
    "INSTAGRAM": [
        SyncAction(
            "fetch_posts",
            "media",
            instagram_media,
            newest_first=True,
            description="The professional account's media (/me/media, newest first)",
        )
    ],
    "FACEBOOK": [
        SyncAction(
            "fetch_posts",
            "media",
            facebook_posts,
            description="Posts of every page the user manages (/me/accounts, /{page}/posts)",
        )
    ],
    "YOUTUBE": [
        SyncAction(
            "fetch_posts",
            "media",
            youtube_uploads,
            newest_first=True,
            description="The channel's uploads (uploads playlist, newest first)",
        )
    ],
    "TWITTER": [
        SyncAction(
            "fetch_posts",
            "media",
            twitter_tweets,
            newest_first=True,
            description="The user's posts (users/{id}/tweets, newest first, at most the last 3,200)",
        )
    ],
    "LINKEDIN": [
        SyncAction(
            "fetch_posts",
            "media",
            linkedin_posts,
            newest_first=True,
            description="The member's posts (rest/posts q=author; needs r_member_social)",
        )
    ],
}
