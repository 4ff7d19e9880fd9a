"""Comments, as the TikTok, Instagram, Facebook and YouTube emulators serve them (mixed into each).

Every emulator keeps its comments in ``records_of("comments")`` (newest first, as the APIs list them); a
reply made through the API is added there with its parent (``replies_to(id)`` finds it). Tests drive changes
with ``edit_comment(id, **fields)`` and ``delete_comment(id)``. Each refuses a token without the scope as its
provider does:

- TIKTOK (TikTok API for Business, ``business-api.tiktok.com/open_api/v1.3/business/``; Login Kit's
  open.tiktokapis.com has no comment endpoints): ``GET comment/list/?business_id=&video_id=&max_count=1-30
  (default 20)&cursor=`` (``calls["comment_list"]``, scope ``comment.list``) answering ``data {comments,
  cursor, has_more}`` (top-level comments of that video, one of ``records_of("videos")``, else 40002);
  ``POST comment/reply/create/`` JSON ``{business_id, video_id, comment_id, text (1-150)}``
  (``calls["comment_reply"]``, scope ``comment.list.manage``) answering ``data {comment_id, video_id,
  create_time, text}`` (40002 for a comment not on that video). Every answer is HTTP 200 ``{code, message,
  request_id, data}``; the token goes in ``Access-Token`` (none: 40104; unknown, revoked, expired or a Login
  Kit token: 40105), a scope not granted or a ``business_id`` not the token's account is 40001. Rows:
  ``comment_id, video_id, user_id, text, likes, replies, create_time (epoch s), username, display_name,
  parent_comment_id, status, owner``.
- INSTAGRAM: ``GET /{media-id}/comments`` (``calls["comments"]``; top-level comments, Graph cursor paging) and
  ``POST /{comment-id}/replies?message=`` (``calls["comment_reply"]``; a top-level comment only), both with
  ``instagram_business_manage_comments``, else Graph (#10) code 10. Rows: ``id, media_id, text, timestamp,
  username, like_count, parent_id``.
- FACEBOOK: ``GET /{post-id}/comments`` (``calls["comments"]``) with the post's page token and
  ``pages_read_user_content`` (else (#10) code 10), and ``POST /{comment-id}/comments`` ``message``
  (``calls["comment_reply"]``) with that page's token and ``pages_manage_engagement`` (else (#200) code 200,
  HTTP 403); another page's token or an unknown id: (#100) "does not exist". Rows: ``id, post_id, message,
  created_time, from {id, name}, like_count, comment_count, parent_id``.
- YOUTUBE: ``GET /youtube/v3/commentThreads?part=snippet&videoId=|allThreadsRelatedToChannelId=
  &maxResults=1-100 (20)&pageToken=`` (``calls["commentThreads"]``; 404 ``videoNotFound`` for a video not
  among the uploads) and ``POST /youtube/v3/comments?part=snippet`` ``{snippet: {parentId, textOriginal}}``
  (``calls["comment_insert"]``; 404 ``commentNotFound``; the thread's ``totalReplyCount`` grows), both with
  ``youtube.force-ssl`` (else 403 ``insufficientPermissions``). Rows: ``id, videoId, textOriginal,
  authorDisplayName, authorChannelId, likeCount, publishedAt, updatedAt, totalReplyCount, parentId``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time

from .graph import graph_error, missing_object
from .oauth2 import json_response, read_json

FORCE_SSL = "https://www.googleapis.com/auth/youtube.force-ssl"


def _iso(seconds: float, fmt: str = "%Y-%m-%dT%H:%M:%SZ") -> str:
    return time.strftime(fmt, time.gmtime(seconds))


class CommentControls:
    """What a test does to the comments (as their authors and the provider would): shared by the mixins."""

    COMMENT_KEY = "id"

    def edit_comment(self, comment_id: str, **fields) -> None:
        with self.lock:
            row = next(r for r in self.records.get("comments", []) if str(r[self.COMMENT_KEY]) == str(comment_id))
            row.update(fields)

    def delete_comment(self, comment_id: str) -> None:
        with self.lock:
            self.records["comments"] = [
                r for r in self.records.get("comments", []) if str(r[self.COMMENT_KEY]) != str(comment_id)
            ]

    def replies_to(self, comment_id: str) -> list[dict]:
        parent = (
            "parent_comment_id"
            if self.COMMENT_KEY == "comment_id"
            else "parentId"
            if self.NAME == "YOUTUBE"
            else "parent_id"
        )
        return [r for r in self.records_of("comments") if str(r.get(parent)) == str(comment_id)]

    def _add_comment(self, row: dict) -> None:
        with self.lock:
            self.records.setdefault("comments", []).insert(0, row)


# --- TikTok ------------------------------------------------------------------------------------


class TikTokComments(CommentControls):
    """Mixed into the TikTok emulator (``business_caller``, ``business_envelope``, ``gate`` come from there)."""

    COMMENT_KEY = "comment_id"
    COMMENT_ROUTES = (
        ("GET", r"business-api\.tiktok\.com/open_api/v1\.3/business/comment/list/", "comment_list"),
        ("POST", r"business-api\.tiktok\.com/open_api/v1\.3/business/comment/reply/create/", "comment_reply"),
    )
    REPLY_MAX = 150
    COMMENT_PAGE_MAX = 30

    def _video_ids(self) -> set[str]:
        return {str(v["id"]) for v in self.records_of("videos")}

    async def comment_list(self, request):
        fault = await self.gate("comment_list")
        if fault is not None:
            return fault
        q = request.query
        _token, error = self.business_caller(request, "comment.list", q.get("business_id"))
        if error is not None:
            return error
        video = q.get("video_id") or ""
        if video not in self._video_ids():
            return self.business_envelope(40002, f"Invalid video_id: {video!r} is not a video of this account.")
        try:
            size, cursor = int(q.get("max_count", "20")), int(q.get("cursor", "0"))
        except ValueError:
            return self.business_envelope(40002, "max_count and cursor must be integers.")
        if not 1 <= size <= self.COMMENT_PAGE_MAX or cursor < 0:
            return self.business_envelope(40002, f"max_count must be 1-{self.COMMENT_PAGE_MAX}, cursor >= 0.")
        rows = [
            r for r in self.records_of("comments") if str(r["video_id"]) == video and not r.get("parent_comment_id")
        ]
        page = rows[cursor : cursor + size]
        return self.business_envelope(
            data={
                "comments": [dict(r) for r in page],
                "cursor": cursor + len(page),
                "has_more": cursor + len(page) < len(rows),
            }
        )

    async def comment_reply(self, request):
        body = await read_json(request)
        fault = await self.gate("comment_reply")
        if fault is not None:
            return fault
        if body is None:
            return self.business_envelope(40002, "The request body must be JSON (Content-Type: application/json).")
        _token, error = self.business_caller(request, "comment.list.manage", body.get("business_id"))
        if error is not None:
            return error
        video, comment, text = str(body.get("video_id") or ""), str(body.get("comment_id") or ""), body.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= self.REPLY_MAX:
            return self.business_envelope(40002, f"text must be 1-{self.REPLY_MAX} characters.")
        if not any(
            str(r["comment_id"]) == comment and str(r["video_id"]) == video for r in self.records_of("comments")
        ):
            return self.business_envelope(40002, f"Invalid comment_id: {comment!r} is not a comment on {video!r}.")
        reply_id = str(7400000000000000000 + secrets.randbelow(10**15))
        created = int(self.now())
        self._add_comment(
            {
                "comment_id": reply_id,
                "video_id": video,
                "user_id": "owner",
                "text": text,
                "likes": 0,
                "replies": 0,
                "create_time": str(created),
                "username": "demo.creator",
                "display_name": self.account.get("display_name"),
                "parent_comment_id": comment,
                "status": "PUBLIC",
                "owner": True,
            }
        )
        return self.business_envelope(
            data={"comment_id": reply_id, "video_id": video, "create_time": created, "text": text}
        )


# --- Instagram and Facebook (Graph) ----------------------------------------------------------


async def _graph_args(request) -> dict:
    args = dict(request.query)
    if request.content_type == "application/json":
        body = await read_json(request)
        args.update(body if isinstance(body, dict) else {})
    elif request.can_read_body:
        args.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    return args


class InstagramComments(CommentControls):
    """Mixed into the Instagram emulator (``api_token``, ``list_edge``)."""

    SCOPE = "instagram_business_manage_comments"
    COMMENT_ROUTES = (
        ("GET", r"graph\.instagram\.com/(?:v\d+\.\d+/)?(?P<media_id>\d+)/comments", "media_comments"),
        ("POST", r"graph\.instagram\.com/(?:v\d+\.\d+/)?(?P<comment_id>\d+)/replies", "comment_replies"),
    )

    async def media_comments(self, request, media_id):
        _token, refusal = await self.api_token(request, "comments", self.SCOPE)
        if refusal is not None:
            return refusal
        if media_id not in {str(m["id"]) for m in self.records_of("media")}:
            return missing_object(media_id)
        rows = [c for c in self.records_of("comments") if str(c["media_id"]) == media_id and not c.get("parent_id")]
        return self.list_edge(request, rows)

    async def comment_replies(self, request, comment_id):
        args = await _graph_args(request)
        _token, refusal = await self.api_token(request, "comment_reply", self.SCOPE)
        if refusal is not None:
            return refusal
        parent = next((c for c in self.records_of("comments") if str(c["id"]) == comment_id), None)
        if parent is None or parent.get("parent_id"):
            return missing_object(comment_id)
        message = args.get("message")
        if not isinstance(message, str) or not message.strip() or len(message) > 2200:
            return graph_error("(#100) The parameter message is required (at most 2,200 characters)", 100)
        reply_id = str(17900000000000000 + secrets.randbelow(10**14))
        self._add_comment(
            {
                "id": reply_id,
                "media_id": parent["media_id"],
                "text": message,
                "timestamp": _iso(self.now(), "%Y-%m-%dT%H:%M:%S+0000"),
                "username": self.account.get("username"),
                "like_count": 0,
                "parent_id": comment_id,
            }
        )
        return json_response({"id": reply_id})


class FacebookComments(CommentControls):
    """Mixed into the Facebook emulator (``api_token``, ``request_token``, ``list_edge``, page tokens)."""

    COMMENT_ROUTES = (
        ("GET|POST", r"graph\.facebook\.com/(?:v\d+\.\d+/)?(?P<object_id>\d+_\d+)/comments", "object_comments"),
    )

    def _page_of_post(self, post_id: str) -> str | None:
        post = next((p for p in self.records_of("posts") if str(p["id"]) == post_id), None)
        return None if post is None else str(post.get("page_id"))

    async def object_comments(self, request, object_id):
        args = await _graph_args(request) if request.method == "POST" else {}
        endpoint = "comments" if request.method == "GET" else "comment_reply"
        carried = self.request_token(request) or args.get("access_token")  # a POST may carry it in its body
        token, refusal = await self.api_token(request, endpoint, carried=carried)
        if refusal is not None:
            return refusal
        if request.method == "GET":
            page = self._page_of_post(object_id)
            if page is None or token.data.get("page_id") != page:
                return missing_object(object_id)
            if "pages_read_user_content" not in token.grant.scope:
                return graph_error("(#10) This endpoint requires the 'pages_read_user_content' permission", 10, 403)
            rows = [c for c in self.records_of("comments") if str(c["post_id"]) == object_id and not c.get("parent_id")]
            return self.list_edge(request, rows)
        parent = next((c for c in self.records_of("comments") if str(c["id"]) == object_id), None)
        if parent is None or token.data.get("page_id") != self._page_of_post(str(parent["post_id"])):
            return missing_object(object_id)
        if "pages_manage_engagement" not in token.grant.scope:
            return graph_error(
                "(#200) Replying to a comment requires the pages_manage_engagement permission with a page access token",
                200,
                403,
            )
        message = args.get("message")
        if not isinstance(message, str) or not message.strip() or len(message) > 8000:
            return graph_error("(#100) Missing message or attachment", 100)
        reply_id = f"{parent['post_id'].split('_')[1]}_{secrets.randbelow(10**12)}"
        page_name = next(
            (p.get("name") for p in self.records_of("pages") if str(p["id"]) == token.data.get("page_id")), None
        )
        self._add_comment(
            {
                "id": reply_id,
                "post_id": parent["post_id"],
                "message": message,
                "created_time": _iso(self.now(), "%Y-%m-%dT%H:%M:%S+0000"),
                "from": {"id": token.data.get("page_id"), "name": page_name},
                "like_count": 0,
                "comment_count": 0,
                "parent_id": object_id,
            }
        )
        return json_response({"id": reply_id})


# --- YouTube -----------------------------------------------------------------------------------


def _youtube_error(status: int, message: str, reason: str, domain: str = "global"):
    error = {"code": status, "message": message, "errors": [{"message": message, "domain": domain, "reason": reason}]}
    return json_response({"error": error}, status)


class YouTubeComments(CommentControls):
    """Mixed into the YouTube emulator (``api_token``, ``account``)."""

    COMMENT_ROUTES = (
        ("GET", r"www\.googleapis\.com/youtube/v3/commentThreads", "comment_threads"),
        ("POST", r"www\.googleapis\.com/youtube/v3/comments", "comment_insert"),
    )

    def _thread(self, row: dict, parts: list[str]) -> dict:
        top = {
            "kind": "youtube#comment",
            "etag": secrets.token_urlsafe(8),
            "id": row["id"],
            "snippet": {
                "channelId": self.account.get("id"),
                "videoId": row["videoId"],
                "textDisplay": row["textOriginal"],
                "textOriginal": row["textOriginal"],
                "authorDisplayName": row.get("authorDisplayName"),
                "authorChannelId": {"value": row.get("authorChannelId")},
                "canRate": True,
                "viewerRating": "none",
                "likeCount": row.get("likeCount", 0),
                "publishedAt": row.get("publishedAt"),
                "updatedAt": row.get("updatedAt"),
            },
        }
        thread = {"kind": "youtube#commentThread", "etag": secrets.token_urlsafe(8), "id": row["id"]}
        if "snippet" in parts:
            thread["snippet"] = {
                "channelId": self.account.get("id"),
                "videoId": row["videoId"],
                "topLevelComment": top,
                "canReply": True,
                "totalReplyCount": row.get("totalReplyCount", 0),
                "isPublic": True,
            }
        return thread

    async def comment_threads(self, request):
        _token, refusal = await self.api_token(request, "commentThreads", FORCE_SSL)
        if refusal is not None:
            return refusal
        q = request.query
        parts = [p for p in q.get("part", "").split(",") if p]
        if not parts or not set(parts) <= {"id", "snippet", "replies"}:
            return _youtube_error(400, "'part' must name commentThread parts", "invalidPart", "youtube.part")
        rows = [r for r in self.records_of("comments") if not r.get("parentId")]
        videos = {
            str(((u.get("snippet") or {}).get("resourceId") or {}).get("videoId")) for u in self.records_of("uploads")
        }
        if q.get("videoId"):
            if q["videoId"] not in videos:
                return _youtube_error(
                    404,
                    "The video identified by the videoId parameter could not be found.",
                    "videoNotFound",
                    "youtube.commentThread",
                )
            rows = [r for r in rows if r["videoId"] == q["videoId"]]
        elif q.get("allThreadsRelatedToChannelId") != self.account.get("id"):
            return _youtube_error(
                400,
                "No filter selected. Expected one of: videoId, allThreadsRelatedToChannelId, id",
                "missingRequiredParameter",
                "youtube.parameter",
            )
        try:
            size = int(q.get("maxResults", 20))
            start = int(base64.urlsafe_b64decode(q["pageToken"]).decode().split(":")[1]) if q.get("pageToken") else 0
        except (ValueError, IndexError, UnicodeDecodeError, binascii.Error):
            return _youtube_error(
                400, "The request specifies an invalid page token.", "invalidPageToken", "youtube.parameter"
            )
        if not 1 <= size <= 100:
            return _youtube_error(
                400, "Invalid value for maxResults: must be 1 to 100", "invalidParameter", "youtube.parameter"
            )
        page = rows[start : start + size]
        body = {
            "kind": "youtube#commentThreadListResponse",
            "etag": secrets.token_urlsafe(8),
            "pageInfo": {"totalResults": len(page), "resultsPerPage": size},
            "items": [self._thread(r, parts) for r in page],
        }
        if start + size < len(rows):
            body["nextPageToken"] = base64.urlsafe_b64encode(f"ct:{start + size}".encode()).decode()
        return json_response(body)

    async def comment_insert(self, request):
        body = await read_json(request)
        _token, refusal = await self.api_token(request, "comment_insert", FORCE_SSL)
        if refusal is not None:
            return refusal
        if request.query.get("part") != "snippet":
            return _youtube_error(400, "'part' must be snippet", "invalidPart", "youtube.part")
        snippet = (body or {}).get("snippet") if isinstance(body, dict) else None
        if not isinstance(snippet, dict) or not snippet.get("parentId"):
            return _youtube_error(
                400, "The comment must have a parentId (a reply).", "parentIdMissing", "youtube.comment"
            )
        text = snippet.get("textOriginal")
        if not isinstance(text, str) or not text.strip():
            return _youtube_error(400, "The comment is empty.", "commentTextRequired", "youtube.comment")
        if len(text) > 10000:
            return _youtube_error(400, "The comment is too long.", "commentTextTooLong", "youtube.comment")
        parent_id = str(snippet["parentId"])
        with self.lock:
            parent = next(
                (r for r in self.records.get("comments", []) if r["id"] == parent_id and not r.get("parentId")), None
            )
            if parent is not None:
                parent["totalReplyCount"] = parent.get("totalReplyCount", 0) + 1
        if parent is None:
            return _youtube_error(
                404,
                "The comment identified by the parentId parameter could not be found.",
                "commentNotFound",
                "youtube.comment",
            )
        now = _iso(self.now())
        reply_id = f"{parent_id}.{secrets.token_urlsafe(12)}"
        self._add_comment(
            {
                "id": reply_id,
                "videoId": parent["videoId"],
                "textOriginal": text,
                "authorDisplayName": self.account.get("title"),
                "authorChannelId": self.account.get("id"),
                "likeCount": 0,
                "publishedAt": now,
                "updatedAt": now,
                "parentId": parent_id,
            }
        )
        return json_response(
            {
                "kind": "youtube#comment",
                "etag": secrets.token_urlsafe(8),
                "id": reply_id,
                "snippet": {
                    "parentId": parent_id,
                    "textOriginal": text,
                    "textDisplay": text,
                    "authorDisplayName": self.account.get("title"),
                    "publishedAt": now,
                    "updatedAt": now,
                    "likeCount": 0,
                },
            }
        )
