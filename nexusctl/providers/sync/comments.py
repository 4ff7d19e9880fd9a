"""Comments: ``fetch_comments`` (a sync action, resource ``comment``) and replying to one comment.

A run reads the comments on the account's recent videos or posts (the first
RECENT of its own list, newest first), every page of each; the engine turns
them into ``comment.created`` / ``.updated`` (text or counts changed) and,
in a ``full`` run, ``.deleted`` (gone, or on a post that left the recent
window). Replies are not synced (they are the account's answers, or threads
under a comment). Each item: ``id``, ``postId``, ``author``, ``text``,
``createdAt``, ``updatedAt`` (YouTube), ``likeCount``, ``replyCount`` as the
provider offers them. The resume state is ``{"container", "index",
"cursor"}``: the post being read, its position and the page inside it.

- YOUTUBE (YouTube Data API v3): the uploads playlist, then
  ``GET commentThreads?part=snippet&videoId=&maxResults=100&pageToken=``
  (``nextPageToken``; the thread's ``topLevelComment`` is the comment).
  Reply: ``POST comments?part=snippet`` ``{snippet: {parentId, textOriginal}}``.
  Both need ``youtube.force-ssl``; Google answers 403
  ``insufficientPermissions`` without it, 404 ``commentNotFound``.
- INSTAGRAM (Instagram API with Instagram Login): ``/me/media``, then
  ``GET /{media-id}/comments?fields=id,text,timestamp,username,like_count``
  (Graph cursor paging). Reply: ``POST /{comment-id}/replies?message=``.
  Scope ``instagram_business_manage_comments`` (both).
- FACEBOOK (Graph, pages): ``/me/accounts`` (each page's own token, in
  memory only), ``/{page-id}/posts``, then ``GET /{post-id}/comments`` with
  the page's token (``pages_read_user_content``). Reply: ``POST
  /{comment-id}/comments`` ``message`` with the token of the page whose post
  it is (``pages_manage_engagement``); the pages are tried in turn, a Graph
  (#100) "does not exist" / (#10) / (#200) from one page meaning "not this page's".
- TIKTOK (TikTok API for Business, "TikTok Accounts": a connection made with tiktokApp business; TikTok's
  Login Kit / Display API has no comment endpoints): on business-api.tiktok.com, the token in an
  ``Access-Token`` header and the account's ``open_id`` as ``business_id``. ``GET open_api/v1.3/business/video/
  list/?business_id=&fields=["item_id","create_time"]&max_count=20`` (scope ``video.list``), then ``GET
  .../business/comment/list/?business_id=&video_id=&max_count=30&cursor=`` (scope ``comment.list``; ``data
  {comments[{comment_id, video_id, user_id, username, display_name, text, likes, replies, create_time,
  parent_comment_id, status, owner}], cursor, has_more}``). Reply: ``POST .../business/comment/reply/create/``
  ``{business_id, video_id, comment_id, text <= 150}`` (scope ``comment.list.manage``) answering
  ``data.comment_id``. Every answer is HTTP 200 ``{code, message, request_id, data}``; ``code`` 40001 is a
  permission (scope) refusal, 40104 / 40105 a missing or refused token, 40100 the rate limit, 40002 a bad
  parameter (an unknown comment or video on a reply). The reply needs the comment's video: taken from the
  caller (``videoId``, each comment event's ``item.postId``) or looked up among the recent videos' comments.
"""

from __future__ import annotations

from nexusctl.errors import MissingScopes, NotFound, ProviderError, TokenExpired, UsageProblem
from nexusctl.providers.http import describe
from nexusctl.providers.sync.base import Item, Page, SyncAction, SyncApi
from nexusctl.providers.sync.graph import GRAPH_PERMISSION_CODES, graph_all, graph_check, graph_edge

RECENT = 20  # the account's latest videos / posts whose comments a run reads
YOUTUBE_PAGE = 100  # commentThreads' maximum maxResults
GRAPH_PAGE = 100
TEXT_LIMIT = 2000
YOUTUBE_SSL = "https://www.googleapis.com/auth/youtube.force-ssl"
# The longest reply each provider takes (characters): TikTok 150, Instagram 2,200, Facebook 8,000, YouTube 10,000.
REPLY_MAX = {"TIKTOK": 150, "INSTAGRAM": 2200, "FACEBOOK": 8000, "YOUTUBE": 10000}
REPLY_SCOPES = {
    "TIKTOK": ("comment.list.manage",),
    "INSTAGRAM": ("instagram_business_manage_comments",),
    "FACEBOOK": ("pages_show_list", "pages_manage_engagement"),
    "YOUTUBE": (YOUTUBE_SSL,),
}


def _text(value) -> str | None:
    return None if value is None else str(value)[:TEXT_LIMIT]


def _refused(provider: str, action: str, scopes: tuple[str, ...], reply, secrets=()) -> MissingScopes:
    return MissingScopes(
        f"{provider} refused {action}{_said(reply, secrets)}: it needs {', '.join(scopes)}, not "
        "granted to this connection: connect it again and allow it",
        scopes=list(scopes),
        action=action,
    )


def _said(reply, secrets=()) -> str:
    """`` (what the provider said)``, secret-free, or nothing."""
    detail = describe(reply, secrets)
    return f" ({detail})" if detail else ""


async def each_container(resume, containers: list[dict], page_of):
    """Every page of each container (a video, a post) in turn. ``page_of(container, cursor)`` -> (items, the next
    cursor or None); ``resume`` is ``{"container", "index", "cursor"}`` (a vanished container: its old place)."""
    index, cursor = 0, None
    if resume:
        ids = [str(c["id"]) for c in containers]
        if resume.get("container") in ids:
            index, cursor = ids.index(resume["container"]), resume.get("cursor")
        else:
            index = min(int(resume.get("index") or 0), len(containers))
    if index >= len(containers):
        yield Page([], None)
        return
    while index < len(containers):
        items, cursor = await page_of(containers[index], cursor)
        if cursor is None:
            index += 1
        if index >= len(containers):
            yield Page(items, None)
            return
        yield Page(items, {"container": str(containers[index]["id"]), "index": index, "cursor": cursor})


# --- YouTube ------------------------------------------------------------------------------------


def _youtube_check(action: str, scopes: tuple[str, ...]):
    def check(reply) -> None:
        reasons = {e.get("reason") for e in reply.get("error", "errors") or [] if isinstance(e, dict)}
        if reply.status == 403 and reasons & {"insufficientPermissions", "forbidden"}:
            raise _refused("YOUTUBE", action, scopes, reply)
        if reply.status == 404 and action == "reply_comment":
            raise NotFound("YOUTUBE has no comment with that id (commentNotFound)", provider="YOUTUBE")

    return check


async def _youtube_videos(api) -> list[dict]:
    check = _youtube_check("fetch_comments", (YOUTUBE_SSL,))
    channel = await api.get("youtube/v3/channels", params={"part": "contentDetails", "mine": "true"}, check=check)
    uploads = channel.get("items", 0, "contentDetails", "relatedPlaylists", "uploads")
    if not uploads:
        raise ProviderError("YOUTUBE: this account has no channel (no uploads playlist)", provider="YOUTUBE")
    reply = await api.get(
        "youtube/v3/playlistItems", params={"part": "snippet", "playlistId": uploads, "maxResults": RECENT}, check=check
    )
    ids = [
        ((r.get("snippet") or {}).get("resourceId") or {}).get("videoId")
        for r in reply.get("items") or []
        if isinstance(r, dict)
    ]
    return [{"id": str(v)} for v in ids if v]


def _youtube_item(thread: dict) -> Item | None:
    top = (thread.get("snippet") or {}).get("topLevelComment") or {}
    snippet = top.get("snippet") or {}
    if not top.get("id"):
        return None
    return Item(
        str(top["id"]),
        {
            "id": str(top["id"]),
            "postId": snippet.get("videoId"),
            "author": snippet.get("authorDisplayName"),
            "authorChannelId": (snippet.get("authorChannelId") or {}).get("value"),
            "text": _text(snippet.get("textOriginal") or snippet.get("textDisplay")),
            "createdAt": snippet.get("publishedAt"),
            "updatedAt": snippet.get("updatedAt"),
            "likeCount": snippet.get("likeCount"),
            "replyCount": (thread.get("snippet") or {}).get("totalReplyCount"),
        },
    )


async def youtube_comments(api, resume):
    videos = await _youtube_videos(api)
    check = _youtube_check("fetch_comments", (YOUTUBE_SSL,))

    async def page_of(video, token):
        reply = await api.get(
            "youtube/v3/commentThreads",
            params={
                "part": "snippet",
                "videoId": video["id"],
                "maxResults": YOUTUBE_PAGE,
                "pageToken": token,
                "textFormat": "plainText",
            },
            check=check,
        )
        items = [i for i in map(_youtube_item, [t for t in reply.get("items") or [] if isinstance(t, dict)]) if i]
        return items, (reply.get("nextPageToken") or None)

    async for page in each_container(resume, videos, page_of):
        yield page


async def youtube_reply(api, comment_id: str, text: str, _hint: dict) -> dict:
    reply = await api.post(
        "youtube/v3/comments",
        params={"part": "snippet"},
        json_body={"snippet": {"parentId": comment_id, "textOriginal": text}},
        check=_youtube_check("reply_comment", (YOUTUBE_SSL,)),
    )
    if not reply.get("id"):
        raise ProviderError("YOUTUBE: the reply was not confirmed (no id in the answer)", provider="YOUTUBE")
    return {"replyId": str(reply.get("id"))}


# --- Instagram and Facebook (Graph) ----------------------------------------------------------


def _graph_check(provider: str, action: str, scopes: tuple[str, ...], secrets=()):
    dead = graph_check(provider)

    def check(reply) -> None:
        dead(reply)
        code = reply.get("error", "code")
        if reply.status >= 400 and code in GRAPH_PERMISSION_CODES:
            raise _refused(provider, action, scopes, reply, secrets)
        if reply.status >= 400 and code == 100 and action == "reply_comment":
            raise NotFound(f"{provider} has no comment with that id{_said(reply, secrets)}", provider=provider)

    return check


async def _graph_pages(api, path, params, cursor, provider, scopes, token=None):
    reply = await api.get(
        path,
        params={**params, "after": cursor},
        token=token,
        check=_graph_check(provider, "fetch_comments", scopes, (token,) if token else ()),
    )
    rows = [r for r in reply.get("data") or [] if isinstance(r, dict) and r.get("id")]
    after = reply.get("paging", "cursors", "after")
    return rows, (str(after) if reply.get("paging", "next") and after else None)


INSTAGRAM_SCOPES = ("instagram_business_basic", "instagram_business_manage_comments")


async def instagram_comments(api, resume):
    media, _ = await graph_edge(api, "me/media", {"fields": "id,timestamp", "limit": RECENT}, None, "INSTAGRAM")

    async def page_of(post, cursor):
        rows, after = await _graph_pages(
            api,
            f"{post['id']}/comments",
            {"fields": "id,text,timestamp,username,like_count", "limit": GRAPH_PAGE},
            cursor,
            "INSTAGRAM",
            INSTAGRAM_SCOPES,
        )
        return [
            Item(
                str(c["id"]),
                {
                    "id": str(c["id"]),
                    "postId": str(post["id"]),
                    "author": c.get("username"),
                    "text": _text(c.get("text")),
                    "createdAt": c.get("timestamp"),
                    "likeCount": c.get("like_count"),
                },
            )
            for c in rows
        ], after

    async for page in each_container(resume, media, page_of):
        yield page


async def instagram_reply(api, comment_id: str, text: str, _hint: dict) -> dict:
    reply = await api.post(
        f"{comment_id}/replies",
        params={"message": text},
        check=_graph_check("INSTAGRAM", "reply_comment", REPLY_SCOPES["INSTAGRAM"]),
    )
    if not reply.get("id"):
        raise ProviderError("INSTAGRAM: the reply was not confirmed (no id in the answer)", provider="INSTAGRAM")
    return {"replyId": str(reply.get("id"))}


FACEBOOK_SCOPES = ("pages_show_list", "pages_read_engagement", "pages_read_user_content")


async def _facebook_pages(api) -> list[dict]:
    return await graph_all(api, "me/accounts", {"fields": "id,name,access_token", "limit": GRAPH_PAGE}, "FACEBOOK")


async def facebook_comments(api, resume):
    # Page tokens stay in this run's memory (the containers), never in the resume state, items or messages.
    posts = []
    for page in await _facebook_pages(api):
        token = page.get("access_token") or None
        rows, _ = await _graph_pages(
            api,
            f"{page['id']}/posts",
            {"fields": "id,created_time", "limit": RECENT},
            None,
            "FACEBOOK",
            FACEBOOK_SCOPES,
            token,
        )
        posts += [{"id": str(p["id"]), "pageId": str(page["id"]), "token": token} for p in rows]

    async def page_of(post, cursor):
        rows, after = await _graph_pages(
            api,
            f"{post['id']}/comments",
            {"fields": "id,message,created_time,from,like_count,comment_count", "limit": GRAPH_PAGE},
            cursor,
            "FACEBOOK",
            FACEBOOK_SCOPES,
            post["token"],
        )
        return [
            Item(
                str(c["id"]),
                {
                    "id": str(c["id"]),
                    "postId": post["id"],
                    "pageId": post["pageId"],
                    "author": (c.get("from") or {}).get("name"),
                    "text": _text(c.get("message")),
                    "createdAt": c.get("created_time"),
                    "likeCount": c.get("like_count"),
                    "replyCount": c.get("comment_count"),
                },
            )
            for c in rows
        ], after

    async for page in each_container(resume, posts, page_of):
        yield page


async def facebook_reply(api, comment_id: str, text: str, _hint: dict) -> dict:
    refused = None
    for page in await _facebook_pages(api):
        token = page.get("access_token") or None
        try:
            reply = await api.post(
                f"{comment_id}/comments",
                params={"message": text},
                token=token,
                check=_graph_check("FACEBOOK", "reply_comment", REPLY_SCOPES["FACEBOOK"], (token,)),
            )
        except NotFound:  # (#100): not this page's comment; the next page may have it
            continue
        except MissingScopes as exc:  # this page's token may not reply here: another page's may
            refused = exc
            continue
        if not reply.get("id"):
            raise ProviderError("FACEBOOK: the reply was not confirmed (no id in the answer)", provider="FACEBOOK")
        return {"replyId": str(reply.get("id")), "pageId": str(page["id"])}
    if refused is not None:
        raise refused
    raise NotFound("FACEBOOK: none of the pages this connection manages has that comment", provider="FACEBOOK")


# --- TikTok (API for Business) -----------------------------------------------------------------

TIKTOK_BUSINESS = "open_api/v1.3/business"
TIKTOK_PAGE = 30  # business/comment/list/'s largest max_count
TIKTOK_VIDEO_PAGE = 20  # business/video/list/'s largest max_count


def _tiktok_api(api) -> SyncApi:
    """The connection's view of the Business API: business-api.tiktok.com (TIKTOK_BUSINESS_URL), the token as
    Access-Token (only a connection made with tiktokApp business gets here: adapters.tiktok.unavailable)."""
    if api.auth_header == "Access-Token" and api.base == api.adapter.url("BUSINESS"):
        return api
    return SyncApi(
        api.adapter, api.tokens, api.tenant, auth_header="Access-Token", base_url=api.adapter.url("BUSINESS")
    )


def _business_id(api) -> str:
    business_id = api.metadata.get("openId")
    if not business_id:
        raise ProviderError("TIKTOK: the connection has no open_id (business_id); connect it again", provider="TIKTOK")
    return str(business_id)


def _tiktok_check(action: str, scopes: tuple[str, ...]):
    def check(reply) -> None:
        code = reply.get("code") if isinstance(reply.body, dict) else None
        if code == 40001:
            raise _refused("TIKTOK", action, scopes, reply)
        if code in (40104, 40105):
            raise TokenExpired("TIKTOK: the access token was refused", provider="TIKTOK")
        if code == 40002 and action == "reply_comment":
            raise NotFound(f"TIKTOK has no such comment{_said(reply)}", provider="TIKTOK")
        if reply.status < 400 and code not in (None, 0):
            raise ProviderError(f"TIKTOK: {action} failed{describe(reply, (), ': ')}", provider="TIKTOK")

    return check


async def _tiktok_videos(api) -> list[dict]:
    reply = await api.get(
        f"{TIKTOK_BUSINESS}/video/list/",
        params={
            "business_id": _business_id(api),
            "fields": '["item_id","create_time"]',
            "max_count": min(RECENT, TIKTOK_VIDEO_PAGE),
        },
        check=_tiktok_check("fetch_comments", ("video.list",)),
    )
    return [
        {"id": str(v["item_id"])}
        for v in (reply.get("data") or {}).get("videos") or []
        if isinstance(v, dict) and v.get("item_id")
    ]


async def tiktok_comments(api, resume):
    api = _tiktok_api(api)
    videos = await _tiktok_videos(api)
    check = _tiktok_check("fetch_comments", ("comment.list",))
    business_id = _business_id(api)

    async def page_of(video, cursor):
        params = {"business_id": business_id, "video_id": video["id"], "max_count": TIKTOK_PAGE}
        if cursor is not None:
            params["cursor"] = cursor
        reply = await api.get(f"{TIKTOK_BUSINESS}/comment/list/", params=params, check=check)
        data = reply.get("data") or {}
        rows = [c for c in data.get("comments") or [] if isinstance(c, dict) and c.get("comment_id")]
        items = [
            Item(
                str(c["comment_id"]),
                {
                    "id": str(c["comment_id"]),
                    "postId": str(c.get("video_id") or video["id"]),
                    "author": c.get("display_name") or c.get("username"),
                    "username": c.get("username"),
                    "text": _text(c.get("text")),
                    "createdAt": c.get("create_time"),
                    "likeCount": c.get("likes"),
                    "replyCount": c.get("replies"),
                },
            )
            for c in rows
            if not c.get("parent_comment_id")
        ]
        more = bool(data.get("has_more")) and data.get("cursor") is not None
        return items, (data.get("cursor") if more else None)

    async for page in each_container(resume, videos, page_of):
        yield page


async def _tiktok_video_of(api, comment_id: str) -> str:
    async for page in tiktok_comments(api, None):
        for item in page.items:
            if item.external_id == comment_id:
                return item.data["postId"]
    raise NotFound(
        f"TIKTOK: no comment {comment_id} on the account's {RECENT} latest videos; pass its videoId", provider="TIKTOK"
    )


async def tiktok_reply(api, comment_id: str, text: str, hint: dict) -> dict:
    api = _tiktok_api(api)
    video = hint.get("videoId") or await _tiktok_video_of(api, comment_id)
    reply = await api.post(
        f"{TIKTOK_BUSINESS}/comment/reply/create/",
        json_body={"business_id": _business_id(api), "video_id": str(video), "comment_id": comment_id, "text": text},
        check=_tiktok_check("reply_comment", REPLY_SCOPES["TIKTOK"]),
    )
    reply_id = (reply.get("data") or {}).get("comment_id")
    if not reply_id:
        raise ProviderError("TIKTOK: the reply was not confirmed (no comment_id in the answer)", provider="TIKTOK")
    return {"replyId": str(reply_id), "videoId": str(video)}


REPLIERS = {"TIKTOK": tiktok_reply, "INSTAGRAM": instagram_reply, "FACEBOOK": facebook_reply, "YOUTUBE": youtube_reply}


def check_reply(provider: str, comment_id, text) -> tuple[str, str]:
    """The comment id and text, or VALIDATION_ERROR: a provider that has comments, a plain id, text it takes."""
    if provider not in REPLIERS:
        raise UsageProblem(
            f"{provider} has no comments to reply to (comments: {', '.join(REPLIERS)})", field="provider"
        )
    comment_id = str(comment_id or "").strip()
    if not comment_id or len(comment_id) > 255 or not all(c.isalnum() or c in "_-.:" for c in comment_id):
        raise UsageProblem("commentId must be the provider's comment id (letters, digits, _ - . :)", field="commentId")
    text = text if isinstance(text, str) else ""
    if not text.strip():
        raise UsageProblem("text is required", field="text")
    if len(text) > REPLY_MAX[provider]:
        raise UsageProblem(
            f"text is {len(text)} characters; {provider} takes at most {REPLY_MAX[provider]}", field="text"
        )
    return comment_id, text


ACTIONS = {
    "TIKTOK": [
        SyncAction(
            "fetch_comments",
            "comment",
            tiktok_comments,
            description=f"Comments on the {RECENT} latest videos (TikTok API for Business: business/video/list, "
            "business/comment/list; a connection made with tiktokApp business)",
        )
    ],
    "INSTAGRAM": [
        SyncAction(
            "fetch_comments",
            "comment",
            instagram_comments,
            description=f"Comments on the {RECENT} latest media (/me/media, /{{media}}/comments)",
        )
    ],
    "FACEBOOK": [
        SyncAction(
            "fetch_comments",
            "comment",
            facebook_comments,
            description=f"Comments on each page's {RECENT} latest posts (/{{post}}/comments)",
        )
    ],
    "YOUTUBE": [
        SyncAction(
            "fetch_comments",
            "comment",
            youtube_comments,
            description=f"Comments on the {RECENT} latest uploads (commentThreads?videoId=)",
        )
    ],
}
