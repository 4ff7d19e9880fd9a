"""Meta: Instagram API with Instagram Login, Facebook Login, Meta Ads (Marketing API).

INSTAGRAM quirks enforced:
- the code exchange (``api.instagram.com/oauth/access_token``, form or
  multipart body) returns a 1 h token as ``{access_token, user_id, permissions}``
  and errors in the old Instagram shape ``{error_type, code, error_message}``;
- ``GET graph.instagram.com/access_token?grant_type=ig_exchange_token`` swaps a
  short-lived token for a 60-day one (``calls["exchange"]``);
- ``GET /refresh_access_token?grant_type=ig_refresh_token`` renews a long-lived
  token only once it is at least 24 h old (emulator clock) and unexpired;
  otherwise Graph error 190 (``calls["refresh"]``). No refresh_token, no revoke.
- content publishing (needs ``instagram_business_content_publish``, else
  HTTP 403 code 10; the node must be ``account["user_id"]``, the professional
  account id, else code 100): ``POST /{ig-user-id}/media``
  (``calls["create_media"]``) makes a container from ``image_url`` (FINISHED
  at once) or ``media_type=REELS`` + ``video_url`` (IN_PROGRESS for
  ``reels_processing_polls`` status reads, then ``reels_outcome``: FINISHED
  or ERROR); ``caption`` <= 2,200 characters; ``VIDEO`` is refused (REELS
  replaced it); ``GET /{container-id}?fields=status_code,status``
  (``calls["container_status"]``); ``POST /{ig-user-id}/media_publish``
  ``creation_id`` (``calls["media_publish"]``) publishes a FINISHED container
  once (otherwise code 9007) and puts the media first in
  ``records_of("media")``; ``containers`` keeps every container.
- stories: ``media_type=STORIES`` with exactly one of ``image_url`` (FINISHED
  at once) or ``video_url`` (IN_PROGRESS for ``stories_processing_polls``
  status reads, then ``stories_outcome``); a story takes no caption (code
  100); published, it goes first in ``records_of("stories")``, never in
  ``/me/media`` (as at Instagram), and ``GET /{ig-user-id}/stories``
  (``calls["stories"]``) lists them (``id``, ``media_type``,
  ``media_product_type`` STORY, ``timestamp``, ...).

FACEBOOK / META_ADS quirks enforced:
- code exchange at ``/oauth/access_token`` by GET or POST, credentials in the
  query or body, ``expires_in`` 5400; the same URL with
  ``grant_type=fb_exchange_token`` returns a 60-day token (``calls["exchange"]``);
  there is never a refresh_token;
- ``DELETE /me/permissions`` deauthorizes the app (every token dies);
- every Graph error is ``{"error":{message,type,code,[error_subcode],fbtrace_id}}``;
  a bad token is HTTP 400 code 190 (subcode 463 expired, 458 deauthorized),
  with ``WWW-Authenticate``; throttling is code 4 (HTTP 403, ``X-App-Usage``)
  or, for Meta Ads, code 17 (HTTP 400, ``X-Business-Use-Case-Usage``).

List edges (Graph cursor paging: ``limit``, ``after``; ``paging.cursors
{before, after}`` always, ``paging.next`` only when more rows follow; only
the requested ``fields`` plus ``id``; a valid user token needed):
- INSTAGRAM ``GET /me/media`` (``calls["media"]``, limit <= 100, default 25):
  ``records_of("media")``, newest first;
- FACEBOOK ``GET /me/accounts`` (``calls["accounts"]``): the user's pages,
  ``records_of("pages")`` rows whose ``admins`` (user ids with a role on the
  page) include the token's user (a row without ``admins``: every user's);
  ``GET /{page-id}/posts`` (``calls["posts"]``, limit <= 100, default 25):
  with that page's own token (a user token is refused with (#10));
  ``records_of("posts")`` rows whose ``page_id`` is that page (a page not in
  ``pages`` answers code 100 "does not exist ... missing permissions");
  asked with ``fields=...access_token``, each page carries its page token
  (minted from the user's grant, one per page);
  ``POST /{page-id}/feed`` (``calls["feed"]``): ``message``/``link`` with that
  page's own token and ``pages_manage_posts`` + ``pages_read_engagement``
  (else HTTP 403 code 200); ``{"id": "{page}_{post}"}``, the post put first
  in ``records_of("posts")``;
- META_ADS ``GET /me/adaccounts`` (``calls["adaccounts"]``):
  ``records_of("adaccounts")`` (``id`` is ``act_<account_id>``);
  ``GET /act_{id}/campaigns`` (``calls["campaigns"]``, limit <= 500, default
  25): ``records_of("campaigns")`` rows whose ``account_id`` matches; both need
  the ``ads_read`` or ``ads_management`` permission (else code 200). Its
  ``fields`` may expand the insights edge:
  ``insights.date_preset(<preset>){impressions,clicks,...}`` (no preset:
  last_30d; an unknown preset, modifier or insights field is code 100); each
  campaign with a ``records_of("insights")`` row (``{campaign_id, <metric>:
  value, [date_preset]}``, a row without ``date_preset`` serves any) gets
  ``insights: {data: [{<asked metrics as strings>, date_start, date_stop}],
  paging}`` with the preset's dates on the emulator clock; one without has no
  ``insights`` key, as Meta leaves out campaigns that did not deliver.
  ``campaign_fields`` keeps each campaigns call's ``fields`` for tests.

``account`` is the Graph user node (``/me`` returns the requested fields + id).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
import secrets
import time

from aiohttp import web

from .base import Provider
from .comments import FacebookComments, InstagramComments
from .graph import graph_error, missing_object
from .oauth2 import (
    AuthorizeSpec,
    TokenGrants,
    auth_header,
    authorize,
    check_client,
    client_auth,
    json_response,
    read_form,
    read_json,
    token_response,
)

SHORT_IG = 3600
SHORT_FB = 5400
LONG_TTL = 5184000
DAY = 86400
VERSION = r"(?:v\d+\.\d+/)?"


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


class Graph(TokenGrants, Provider):
    """What Instagram, Facebook and Meta Ads share: Graph errors, token checks, /me."""

    def make_client_id(self) -> str:
        return "".join(secrets.choice("0123456789") for _ in range(15))

    def make_client_secret(self) -> str:
        return secrets.token_hex(16)

    def rate_limited(self, endpoint, retry_after):
        usage = json.dumps({"call_count": 100, "total_cputime": 25, "total_time": 100})
        return graph_error(
            "(#4) Application request limit reached",
            4,
            status=403,
            type_="OAuthException",
            headers={"X-App-Usage": usage},
            is_transient=True,
        )

    @staticmethod
    def deny(error, state):
        return {"error": error, "error_reason": "user_denied", "error_description": "Permissions error", "state": state}

    def token_error(self, token, status: str) -> web.Response:
        if status == "missing":
            return graph_error("An active access token must be used to query information about the current user.", 2500)
        if status == "expired":
            when = time.strftime("%A, %d-%b-%y %H:%M:%S UTC", time.gmtime(token.expires))
            return graph_error(f"Error validating access token: Session has expired on {when}.", 190, subcode=463)
        if status in ("revoked", "rotated"):
            return graph_error(
                f"Error validating access token: The user has not authorized application {self.client_id}.",
                190,
                subcode=458,
            )
        return graph_error("Invalid OAuth access token - Cannot parse access token", 190)

    @staticmethod
    def request_token(request) -> str | None:
        return auth_header(request, "Bearer") or auth_header(request, "OAuth") or request.query.get("access_token")

    async def me(self, request):
        fault = await self.gate("whoami")
        if fault is not None:
            return fault
        token, status = self.status(self.request_token(request), "access")
        if status != "ok":
            return self.token_error(token, status)
        account = self.account_of(token)
        fields = [f for f in request.query.get("fields", "id").split(",") if f]
        unknown = [f for f in fields if f not in account]
        if unknown:
            return graph_error(
                f"(#100) Tried accessing nonexisting field ({unknown[0]}) on node type (User)",
                100,
                type_="OAuthException",
            )
        node = {f: account[f] for f in fields}
        node["id"] = account["id"]
        return json_response(node)

    def list_edge(self, request, rows: list[dict], *, max_limit: int = 100) -> web.Response:
        """One page of a Graph edge: cursor paging over ``rows`` (the cursor is an opaque offset)."""
        try:
            limit = int(request.query.get("limit", 25))
            start = (
                int(base64.urlsafe_b64decode(request.query["after"]).decode().split(":")[1])
                if request.query.get("after")
                else 0
            )
        except (ValueError, IndexError, UnicodeDecodeError, binascii.Error):
            return graph_error("(#100) Invalid cursor or limit", 100)
        if not 1 <= limit <= max_limit:
            return graph_error(f"(#100) The limit must be between 1 and {max_limit}", 100)
        fields = [f for f in request.query.get("fields", "id").split(",") if f]
        page = rows[start : start + limit]
        data = [{**{f: r[f] for f in fields if f in r}, "id": r["id"]} for r in page]
        body: dict = {"data": data}
        if page:
            body["paging"] = {"cursors": {"before": _cursor(start), "after": _cursor(start + len(page))}}
            if start + len(page) < len(rows):
                query = {**request.query, "after": body["paging"]["cursors"]["after"]}
                query.pop("access_token", None)
                body["paging"]["next"] = str(request.url.with_query(query))
        return json_response(body)

    # The token endpoints' common ground (Instagram's and Facebook's differ in the rest): the client names itself
    # in the parameters, and no refresh token is issued (long-lived tokens come from an exchange).
    CODE_CLIENT_PARAM = "client_id"
    REDIRECT_MISMATCH = (
        "Error validating verification code. Please make sure your redirect_uri is "
        "identical to the one you used in the OAuth dialog request"
    )

    def first_refresh(self, grant):
        return None

    # What api_token (tests/emulators/base.py) needs: where Graph reads the token, and its refusals.
    def bearer_of(self, request):
        return self.request_token(request)

    def token_refused(self, endpoint, token, status):
        return self.token_error(token, status)

    def scope_refused(self, endpoint, token):
        return graph_error("(#10) Application does not have permission for this action", 10, status=403)

    def user_token(self, request):
        """(token, None) for a valid user token, else (None, the Graph error answer)."""
        token, status = self.status(self.request_token(request), "access")
        if status != "ok":
            return None, self.token_error(token, status)
        return token, None


def _graph_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(epoch))


def _epoch_arg(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def window_error(query, max_days: int, now: float):
    """Graph's checks of an insights ``since``/``until`` (epoch seconds): both given, in order, at most
    ``max_days`` apart and not more than two years back; None when they pass."""
    since, until = _epoch_arg(query.get("since")), _epoch_arg(query.get("until"))
    if since is None or until is None or since >= until:
        return graph_error("(#100) since and until must be UNIX timestamps, since before until", 100)
    if until - since > max_days * DAY:
        return graph_error(
            f"(#100) There cannot be more than {max_days} days ({max_days * DAY} s) between since and until", 100
        )
    if since < now - 2 * 365 * DAY:
        return graph_error("(#100) since cannot be more than 2 years ago", 100)
    return None


class InstagramInsights:
    """Instagram insights (fetch_analytics), with ``instagram_business_manage_insights`` (else HTTP 403 code 10):
    ``GET /me/insights?metric=...&period=day&metric_type=total_value&since=&until=`` (``calls["insights"]``;
    ``since``/``until`` at most 30 days apart, at most 2 years back, else code 100) answers each metric's
    ``total_value`` from ``account_insights``; ``GET /{media-id}/insights?metric=...`` (``calls["media_insights"]``)
    the lifetime values of the media row's ``insights`` (a metric it lacks: 0; a media in ``unsupported_media``:
    code 100, as Instagram answers for a metric a media type does not report). ``/me`` also answers
    ``followers_count``, ``follows_count``, ``media_count``."""

    INSIGHTS_SCOPE = "instagram_business_manage_insights"
    ACCOUNT_METRICS = {
        "reach",
        "views",
        "accounts_engaged",
        "total_interactions",
        "likes",
        "comments",
        "shares",
        "saves",
        "replies",
        "follows_and_unfollows",
        "profile_links_taps",
    }
    MEDIA_METRICS = {"views", "reach", "saved", "shares", "total_interactions", "likes", "comments"}
    INSIGHT_ROUTES = (
        ("GET", rf"graph\.instagram\.com/{VERSION}me/insights", "account_insights_edge"),
        ("GET", rf"graph\.instagram\.com/{VERSION}(?P<media_id>\d+)/insights", "media_insights_edge"),
    )

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.account.update(followers_count=4321, follows_count=99, media_count=3)
            self.account_insights = {
                "reach": 5000,
                "views": 12000,
                "accounts_engaged": 300,
                "total_interactions": 450,
                "likes": 400,
                "comments": 30,
                "shares": 12,
                "saves": 8,
            }
            self.unsupported_media: set[str] = set()

    @staticmethod
    def _metrics(request, known: set):
        metrics = [m for m in request.query.get("metric", "").split(",") if m]
        if not metrics:
            return None, graph_error("(#100) The parameter metric is required", 100)
        unknown = [m for m in metrics if m not in known]
        if unknown:
            return None, graph_error(
                f"(#100) metric[0] must be one of the following values: {', '.join(sorted(known))} (got {unknown[0]})",
                100,
            )
        return metrics, None

    async def account_insights_edge(self, request):
        token, refusal = await self.api_token(request, "insights", self.INSIGHTS_SCOPE)
        if refusal is not None:
            return refusal
        metrics, error = self._metrics(request, self.ACCOUNT_METRICS)
        if error is not None:
            return error
        if request.query.get("period") != "day":
            return graph_error("(#100) period must be one of the following values: day", 100)
        error = window_error(request.query, 30, self.now())
        if error is not None:
            return error
        user = self.account_of(token)["user_id"]
        data = [
            {
                "name": m,
                "period": "day",
                "title": m,
                "description": m,
                "total_value": {"value": self.account_insights.get(m, 0)},
                "id": f"{user}/insights/{m}/day",
            }
            for m in metrics
        ]
        return json_response({"data": data})

    async def media_insights_edge(self, request, media_id):
        _token, refusal = await self.api_token(request, "media_insights", self.INSIGHTS_SCOPE)
        if refusal is not None:
            return refusal
        rows = {str(m["id"]): m for m in self.records_of("media")}
        if media_id not in rows:
            return missing_object(media_id)
        metrics, error = self._metrics(request, self.MEDIA_METRICS)
        if error is not None:
            return error
        if media_id in self.unsupported_media:
            return graph_error(f"(#100) The metric {metrics[0]} is not supported for this media type", 100)
        values = rows[media_id].get("insights") or {}
        return json_response(
            {
                "data": [
                    {
                        "name": m,
                        "period": "lifetime",
                        "title": m,
                        "values": [{"value": values.get(m, 0)}],
                        "id": f"{media_id}/insights/{m}/lifetime",
                    }
                    for m in metrics
                ]
            }
        )


class Instagram(InstagramInsights, InstagramComments, Graph):
    NAME = "INSTAGRAM"
    URLS = {
        "AUTH": "www.instagram.com/oauth/authorize",
        "TOKEN": "api.instagram.com/oauth/access_token",
        "API": "graph.instagram.com",
    }
    ROUTES = (
        ("GET", r"(?:www|api)\.instagram\.com/oauth/authorize", "authorize"),
        ("POST", r"api\.instagram\.com/oauth/access_token", "token"),
        ("GET", r"graph\.instagram\.com/access_token", "exchange"),
        ("GET", r"graph\.instagram\.com/refresh_access_token", "refresh"),
        ("GET", rf"graph\.instagram\.com/{VERSION}me", "me"),
        ("GET", rf"graph\.instagram\.com/{VERSION}me/media", "media"),
        ("POST", rf"graph\.instagram\.com/{VERSION}(?P<ig_id>\d+)/media", "create_media"),
        ("POST", rf"graph\.instagram\.com/{VERSION}(?P<ig_id>\d+)/media_publish", "media_publish"),
        ("GET", rf"graph\.instagram\.com/{VERSION}(?P<ig_id>\d+)/stories", "stories"),
        ("GET", rf"graph\.instagram\.com/{VERSION}(?P<container_id>\d+)", "container"),
    ) + InstagramInsights.INSIGHT_ROUTES
    ROUTES += InstagramComments.COMMENT_ROUTES
    ACCOUNT = {"id": "9876543210123456", "user_id": "17841405793187218", "username": "demo.creator"}
    SPEC = AuthorizeSpec(scope_sep="either", pkce="none")
    PUBLISH_SCOPE = "instagram_business_content_publish"
    CAPTION_MAX = 2200
    NO_PERMISSION = "(#10) Application does not have permission for this action"

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.containers: dict[str, dict] = {}  # container id -> {status_code, media_type, url, caption, ...}
            # A REELS container answers IN_PROGRESS to this many status reads, then ``reels_outcome``.
            self.reels_processing_polls = 2
            self.reels_outcome = "FINISHED"
            # A video STORIES container likewise: IN_PROGRESS for this many reads, then ``stories_outcome``.
            self.stories_processing_polls = 2
            self.stories_outcome = "FINISHED"

    async def authorize(self, request):
        return await authorize(self, request, self.SPEC, deny_params=self.deny)

    @staticmethod
    def ig_error(message: str) -> web.Response:
        return token_response({"error_type": "OAuthException", "code": 400, "error_message": message}, 400)

    # api.instagram.com/oauth/access_token: the code exchange only (long-lived tokens come from
    # graph.instagram.com's ``exchange``), the client in the form, errors in Instagram's own shape.
    GRANT_TYPES = ("authorization_code",)
    GATES: dict = {}
    CODE_VERIFIER = False

    def client_error(self, request, params):
        bad = check_client(self, client_auth(request, params), ("body",))
        if bad in ("method", "client_id"):
            return self.ig_error("Invalid platform app")
        return self.ig_error("Error validating client secret.") if bad == "secret" else None

    def unsupported_grant(self, grant_type):
        return self.ig_error("Invalid grant_type")

    def code_error(self, code, reason, params):
        if reason == "redirect":
            return self.ig_error(self.REDIRECT_MISMATCH)
        if reason == "expired":
            return self.ig_error("This authorization code has expired.")
        return self.ig_error("Matching code was not found or was already used")

    def new_access(self, grant):
        return self.issue(grant, "access", SHORT_IG, value="IGAA" + secrets.token_urlsafe(40), long=False)

    def token_body(self, grant, access, refresh, grant_type):
        return {"access_token": access.value, "user_id": int(self.account["id"]), "permissions": list(grant.scope)}

    async def exchange(self, request):
        q = request.query
        fault = await self.gate("exchange")
        if fault is not None:
            return fault
        if q.get("grant_type") != "ig_exchange_token":
            return graph_error("Unsupported grant_type", 100)
        if q.get("client_secret") != self.client_secret:
            return graph_error("Error validating client secret.", 1)
        token, status = self.status(q.get("access_token"), "access")
        if status != "ok":
            return self.token_error(token, status)
        if token.data.get("long"):
            return graph_error("Only a short-lived Instagram User access token can be exchanged", 100)
        new = self.issue(token.grant, "access", LONG_TTL, value="IGAA" + secrets.token_urlsafe(60), long=True)
        return token_response({"access_token": new.value, "token_type": "bearer", "expires_in": LONG_TTL})

    async def refresh(self, request):
        q = request.query
        fault = await self.gate("refresh")
        if fault is not None:
            return fault
        if q.get("grant_type") != "ig_refresh_token":
            return graph_error("Unsupported grant_type", 100)
        token, status = self.status(q.get("access_token"), "access")
        if status != "ok":
            return self.token_error(token, status)
        if not token.data.get("long"):
            return graph_error(
                "Error validating access token: a short-lived token cannot be refreshed; "
                "exchange it for a long-lived token first",
                190,
            )
        age = self.now() - token.issued
        if age < DAY:
            hours = math.floor(age / 3600)
            return graph_error(
                f"Error validating access token: the long-lived token is {hours} h old; "
                "it can be refreshed once it is at least 24 hours old",
                190,
            )
        new = self.issue(token.grant, "access", LONG_TTL, value="IGAA" + secrets.token_urlsafe(60), long=True)
        return token_response({"access_token": new.value, "token_type": "bearer", "expires_in": LONG_TTL})

    async def media(self, request):
        fault = await self.gate("media")
        if fault is not None:
            return fault
        _token, error = self.user_token(request)
        return error or self.list_edge(request, self.records_of("media"))

    # --- Content publishing: container, status, media_publish ------------------------------------

    async def _publish_args(self, request) -> dict:
        args = dict(request.query)
        if request.content_type == "application/json":
            body = await read_json(request)
            args.update(body or {})
        else:
            args.update(await read_form(request))
        return args

    def _publisher(self, request, args: dict, ig_id: str):
        """(token, None) when this token may publish as ``ig_id``, else (None, the Graph error)."""
        token, status = self.status(self.request_token(request) or args.get("access_token"), "access")
        if status != "ok":
            return None, self.token_error(token, status)
        if ig_id != self.account["user_id"]:
            return None, graph_error(
                f"(#100) Object with ID '{ig_id}' does not exist, cannot be loaded due to "
                "missing permissions, or does not support this operation",
                100,
                subcode=33,
                type_="GraphMethodException",
            )
        if self.PUBLISH_SCOPE not in token.grant.scope:
            return None, graph_error(self.NO_PERMISSION, 10, status=403)
        return token, None

    async def create_media(self, request, ig_id):
        """POST /{ig-user-id}/media: an image container (``image_url``, FINISHED at once) or a reel
        (``media_type=REELS`` + ``video_url``, IN_PROGRESS for ``reels_processing_polls`` status reads, then
        ``reels_outcome``); ``caption`` up to 2,200 characters. Needs instagram_business_content_publish."""
        args = await self._publish_args(request)
        fault = await self.gate("create_media")
        if fault is not None:
            return fault
        _token, error = self._publisher(request, args, ig_id)
        if error is not None:
            return error
        caption = str(args.get("caption") or "")
        if len(caption) > self.CAPTION_MAX:
            return graph_error(f"(#100) The caption is longer than {self.CAPTION_MAX} characters", 100)
        media_type = str(args.get("media_type") or "IMAGE").upper()
        outcome = self.reels_outcome
        if media_type == "IMAGE":
            url, polls, needed = str(args.get("image_url") or ""), 0, "image_url"
        elif media_type == "REELS":
            url, polls, needed = str(args.get("video_url") or ""), self.reels_processing_polls, "video_url"
        elif media_type == "STORIES":
            story = self._story_media(args, caption)
            if isinstance(story, web.Response):
                return story
            url, polls, outcome, needed = *story, "image_url or video_url"
        elif media_type == "VIDEO":
            return graph_error("(#100) The VIDEO media type is no longer supported for feed videos: use REELS", 100)
        else:
            return graph_error(
                f"(#100) media_type {media_type} is not served by the emulator (IMAGE, REELS, STORIES)", 100
            )
        if not url:
            return graph_error(f"(#100) The parameter {needed} is required", 100)
        if not url.startswith(("http://", "https://")):
            return graph_error("(#9004) Only photo or video can be accepted as media type.", 9004, subcode=2207052)
        with self.lock:
            container_id = str(17900000000000000 + len(self.containers) + 1)
            self.containers[container_id] = {
                "id": container_id,
                "media_type": media_type,
                "url": url,
                "caption": caption,
                "video": media_type == "REELS" or (media_type == "STORIES" and url == args.get("video_url")),
                "status_code": "IN_PROGRESS" if polls else "FINISHED",
                "polls_left": polls,
                "outcome": outcome if polls else "FINISHED",
                "created": self.now(),
            }
        return json_response({"id": container_id})

    def _story_media(self, args: dict, caption: str):
        """(url, polls, outcome) of a STORIES container, or the Graph error: exactly one of image_url or
        video_url, and no caption (a story has none; the emulator refuses one so a publisher that sends it is
        caught)."""
        if caption:
            return graph_error("(#100) The parameter caption is not supported for media_type STORIES", 100)
        image, video = str(args.get("image_url") or ""), str(args.get("video_url") or "")
        if image and video:
            return graph_error("(#100) A story takes one image_url or one video_url, not both", 100)
        if video:
            return video, self.stories_processing_polls, self.stories_outcome
        return image, 0, "FINISHED"

    async def container(self, request, container_id):
        """GET /{container-id}?fields=status_code,status (``calls["container_status"]``)."""
        fault = await self.gate("container_status")
        if fault is not None:
            return fault
        _token, error = self.user_token(request)
        if error is not None:
            return error
        with self.lock:
            box = self.containers.get(container_id)
            if box is None:
                return graph_error(
                    f"(#100) Object with ID '{container_id}' does not exist, cannot be loaded due "
                    "to missing permissions, or does not support this operation",
                    100,
                    subcode=33,
                    type_="GraphMethodException",
                )
            if box["status_code"] == "IN_PROGRESS":
                if box["polls_left"] > 0:
                    box["polls_left"] -= 1
                else:
                    box["status_code"] = box["outcome"]
            code = box["status_code"]
        status = {
            "FINISHED": "Finished: Media has been uploaded and it is ready to be published.",
            "IN_PROGRESS": "In Progress: Media is still being processed.",
            "PUBLISHED": "Published: Media has been successfully published.",
            "ERROR": "Error: Media upload has failed with error code 2207026",
            "EXPIRED": "Expired: the container was not published within 24 hours.",
        }[code]
        node = {"status_code": code, "status": status, "id": container_id}
        fields = [f for f in request.query.get("fields", "id").split(",") if f]
        return json_response({f: node[f] for f in fields + ["id"] if f in node})

    async def media_publish(self, request, ig_id):
        """POST /{ig-user-id}/media_publish ``creation_id``: only a FINISHED container (else 9007); the media
        is put first in ``records["media"]`` (what /me/media serves), ``{"id": media id}``."""
        args = await self._publish_args(request)
        fault = await self.gate("media_publish")
        if fault is not None:
            return fault
        _token, error = self._publisher(request, args, ig_id)
        if error is not None:
            return error
        creation_id = str(args.get("creation_id") or "")
        with self.lock:
            box = self.containers.get(creation_id)
            if box is None:
                return graph_error(
                    "(#100) The parameter creation_id is required and must be a media container of this user", 100
                )
            if box["status_code"] == "PUBLISHED":
                return graph_error("(#9007) The media has already been published", 9007, subcode=2207020)
            if box["status_code"] != "FINISHED":
                return graph_error(
                    "(#9007) Media ID is not available: the media is not ready for publishing, "
                    "please wait for a moment",
                    9007,
                    subcode=2207027,
                )
            box["status_code"] = "PUBLISHED"
            if box["media_type"] == "STORIES":  # stories are not in /me/media: /{ig-user-id}/stories lists them
                media_id = self._publish_story(box, creation_id)
                return self.answer("media_publish", json_response({"id": media_id}))
            rows = self.records.setdefault("media", [])
            media_id = str(18000000000000000 + len(rows) + 1)
            rows.insert(
                0,
                {
                    "id": media_id,
                    "caption": box["caption"] or None,
                    "media_type": "VIDEO" if box["media_type"] == "REELS" else "IMAGE",
                    "media_product_type": "REELS" if box["media_type"] == "REELS" else "FEED",
                    "media_url": box["url"],
                    "container_id": creation_id,
                    "permalink": f"https://www.instagram.com/p/{secrets.token_urlsafe(8)}/",
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(self.now())),
                },
            )
        return self.answer("media_publish", json_response({"id": media_id}))

    def _publish_story(self, box: dict, creation_id: str) -> str:
        """Record a published story (the caller holds the lock); its media id."""
        rows = self.records.setdefault("stories", [])
        media_id = str(18100000000000000 + len(rows) + 1)
        rows.insert(
            0,
            {
                "id": media_id,
                "media_type": "VIDEO" if box["video"] else "IMAGE",
                "media_product_type": "STORY",
                "media_url": box["url"],
                "container_id": creation_id,
                "permalink": f"https://www.instagram.com/stories/demo.creator/{media_id}/",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(self.now())),
            },
        )
        return media_id

    async def stories(self, request, ig_id):
        """GET /{ig-user-id}/stories (``calls["stories"]``): the account's published stories, newest first."""
        fault = await self.gate("stories")
        if fault is not None:
            return fault
        _token, error = self.user_token(request)
        if error is not None:
            return error
        if ig_id != self.account["user_id"]:
            return graph_error(
                f"(#100) Object with ID '{ig_id}' does not exist, cannot be loaded due to missing "
                "permissions, or does not support this operation",
                100,
                subcode=33,
                type_="GraphMethodException",
            )
        return self.list_edge(request, self.records_of("stories"))


class FacebookInsights:
    """Page and post insights (fetch_analytics), read with the page's own token from /me/accounts and
    ``read_insights`` + ``pages_read_engagement`` (else HTTP 403 code 10):
    ``GET /{page-id}/insights?metric=...&period=day&since=&until=``
    (``calls["page_insights"]``; at most 93 days apart, at most 2 years back, else code 100) answers one value per
    day of the window, each the page row's ``insights[metric]`` (its daily value); ``GET /{post-id}/insights?
    metric=...`` (``calls["post_insights"]``) the lifetime values of the post row's ``insights``. The impressions
    metrics Meta retired for every API version (``page_impressions*``, ``post_impressions*``, ``page_fans``: on
    2025-06-15 and 2025-11-15, replaced by the views metrics ``page_media_view``, ``post_media_view`` and the
    viewers ``*_total_media_view_unique``) are refused as Graph does: HTTP 400 code 100 "The value must be a
    valid insights metric"."""

    INSIGHTS_SCOPES = {"read_insights", "pages_read_engagement"}
    PAGE_METRICS = {
        "page_media_view",
        "page_total_media_view_unique",
        "page_post_engagements",
        "page_follows",
        "page_daily_follows_unique",
        "page_views_total",
    }
    POST_METRICS = {
        "post_media_view",
        "post_total_media_view_unique",
        "post_clicks",
        "post_reactions_by_type_total",
    }
    # Retired for all API versions (developers.facebook.com/docs/platforminsights/page/deprecated-metrics).
    RETIRED_METRICS = (
        "page_impressions",
        "page_impressions_unique",
        "page_impressions_paid",
        "page_impressions_organic_v2",
        "page_impressions_viral",
        "page_impressions_nonviral",
        "page_posts_impressions",
        "page_posts_impressions_unique",
        "page_fans",
        "post_impressions",
        "post_impressions_unique",
        "post_impressions_paid",
        "post_impressions_organic",
        "post_impressions_fan",
        "post_impressions_viral",
        "post_impressions_nonviral",
    )

    @classmethod
    def _live_metrics(cls, request, known: set):
        """The asked metrics, or Graph's refusal: a retired one is "not a valid insights metric"."""
        asked = [m for m in request.query.get("metric", "").split(",") if m]
        retired = [
            m for m in asked if m in cls.RETIRED_METRICS or m.startswith(("page_impressions", "post_impressions"))
        ]
        if retired:
            return None, graph_error("(#100) The value must be a valid insights metric", 100)
        return InstagramInsights._metrics(request, known)

    INSIGHT_ROUTES = (
        ("GET", rf"graph\.facebook\.com/{VERSION}(?P<page_id>\d+)/insights", "page_insights_edge"),
        ("GET", rf"graph\.facebook\.com/{VERSION}(?P<post_id>\d+_\d+)/insights", "post_insights_edge"),
    )
    INSIGHTS_DENIED = "(#10) This endpoint requires the 'read_insights' permission and a page access token"

    def _page_insights_token(self, request, page_id: str):
        token, error = self.user_token(request)
        if error is None and (
            token.data.get("page_id") != page_id or not self.INSIGHTS_SCOPES <= set(token.grant.scope)
        ):
            error = graph_error(self.INSIGHTS_DENIED, 10, status=403)
        return error

    async def page_insights_edge(self, request, page_id):
        fault = await self.gate("page_insights")
        if fault is not None:
            return fault
        pages = {str(p["id"]): p for p in self.records_of("pages")}
        if page_id not in pages:
            return missing_object(page_id)
        error = self._page_insights_token(request, page_id)
        if error is not None:
            return error
        metrics, error = self._live_metrics(request, self.PAGE_METRICS)
        if error is not None:
            return error
        if request.query.get("period") != "day":
            return graph_error("(#100) period must be one of the following values: day, week, days_28", 100)
        error = window_error(request.query, 93, self.now())
        if error is not None:
            return error
        since, until = int(request.query["since"]), int(request.query["until"])
        days = range(since + DAY, until + 1, DAY)
        daily = pages[page_id].get("insights") or {}
        return json_response(
            {
                "data": [
                    {
                        "name": m,
                        "period": "day",
                        "title": m,
                        "description": m,
                        "values": [{"value": daily.get(m, 0), "end_time": _graph_time(t)} for t in days],
                        "id": f"{page_id}/insights/{m}/day",
                    }
                    for m in metrics
                ]
            }
        )

    async def post_insights_edge(self, request, post_id):
        fault = await self.gate("post_insights")
        if fault is not None:
            return fault
        posts = {str(p["id"]): p for p in self.records_of("posts")}
        if post_id not in posts:
            return missing_object(post_id)
        error = self._page_insights_token(request, str(posts[post_id].get("page_id")))
        if error is not None:
            return error
        metrics, error = self._live_metrics(request, self.POST_METRICS)
        if error is not None:
            return error
        values = posts[post_id].get("insights") or {}
        return json_response(
            {
                "data": [
                    {
                        "name": m,
                        "period": "lifetime",
                        "title": m,
                        # reactions by type is a map ({"like": n, "love": m}); the others numbers
                        "values": [{"value": values.get(m, {} if m.endswith("by_type_total") else 0)}],
                        "id": f"{post_id}/insights/{m}/lifetime",
                    }
                    for m in metrics
                ]
            }
        )


class Facebook(FacebookInsights, FacebookComments, Graph):
    NAME = "FACEBOOK"
    URLS = {
        "AUTH": "www.facebook.com/v22.0/dialog/oauth",
        "TOKEN": "graph.facebook.com/v22.0/oauth/access_token",
        "API": "graph.facebook.com/v22.0",
        "REVOKE": "graph.facebook.com/v22.0/me/permissions",
    }
    BASE_ROUTES = (
        ("GET", r"www\.facebook\.com/v\d+\.\d+/dialog/oauth", "authorize"),
        ("GET|POST", rf"graph\.facebook\.com/{VERSION}oauth/access_token", "token"),
        ("GET", rf"graph\.facebook\.com/{VERSION}me", "me"),
        ("DELETE", rf"graph\.facebook\.com/{VERSION}me/permissions", "revoke"),
    )
    ROUTES = (
        BASE_ROUTES
        + (
            ("GET", rf"graph\.facebook\.com/{VERSION}me/accounts", "accounts"),
            ("GET", rf"graph\.facebook\.com/{VERSION}(?P<page_id>\d+)/posts", "posts"),
            ("POST", rf"graph\.facebook\.com/{VERSION}(?P<page_id>\d+)/feed", "feed"),
        )
        + FacebookInsights.INSIGHT_ROUTES
    )
    ROUTES += FacebookComments.COMMENT_ROUTES
    ACCOUNT = {"id": "10223456789012345", "name": "Demo Person"}
    PUBLISH_SCOPES = {"pages_manage_posts", "pages_read_engagement"}
    FEED_DENIED = (
        "(#200) If posting to a group, requires app being installed in the group, and either "
        "publish_to_groups permission with user token, or both pages_read_engagement and "
        "pages_manage_posts permission with page token; If posting to a page, requires both "
        "pages_read_engagement and pages_manage_posts as an admin with sufficient administrative "
        "permission"
    )

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.page_tokens: dict[tuple[str, str], str] = {}  # (grant id, page id) -> page token value

    def page_token(self, user_token, page_id: str) -> str:
        """The page's access token for this user (one per grant and page, re-issued once dead). From a
        long-lived user token it does not expire; from a short-lived one it ends with it."""
        with self.lock:
            key = (user_token.grant.id, page_id)
            value = self.page_tokens.get(key)
            if value is not None and self.status(value, "access")[1] == "ok":
                return value
            ttl = (
                None
                if user_token.data.get("long") or user_token.expires is None
                else max(1.0, user_token.expires - self.now())
            )
            token = self.issue(
                user_token.grant, "access", ttl, value="EAAP" + secrets.token_urlsafe(60), page_id=page_id
            )
            self.page_tokens[key] = token.value
            return token.value

    SPEC = AuthorizeSpec(response_type_optional=True, scope_sep="either", scope_required=False, pkce="optional")

    async def authorize(self, request):
        return await authorize(self, request, self.SPEC, deny_params=self.deny)

    # graph.facebook.com/oauth/access_token, GET or POST: the code exchange (a short-lived token) and
    # fb_exchange_token (short-lived for long-lived); the client in the parameters; Graph errors.
    GRANT_TYPES = ("authorization_code", "fb_exchange_token")
    GRANT_TYPE_DEFAULT = "authorization_code"
    GATES = {"fb_exchange_token": "exchange"}

    async def token_params(self, request):
        return {**request.query, **await read_form(request)}

    def client_error(self, request, params):
        bad = check_client(self, client_auth(request, params), ("body",))
        if bad == "method" and not params.get("client_id"):
            return graph_error("Missing client_id parameter.", 101)
        if bad in ("method", "client_id"):
            return graph_error("Error validating application. Invalid application ID.", 101)
        return graph_error("Error validating client secret.", 1) if bad == "secret" else None

    def unsupported_grant(self, grant_type):
        return graph_error(f"Unsupported grant_type {grant_type!r}", 100)

    def code_error(self, code, reason, params):
        if reason == "redirect":
            return graph_error(self.REDIRECT_MISMATCH, 100, subcode=36008)
        if reason == "used":
            return graph_error("This authorization code has been used.", 100, subcode=36009)
        if reason == "expired":
            return graph_error("This authorization code has expired.", 100, subcode=36007)
        if reason.startswith("verifier"):
            return graph_error("Invalid code verifier.", 100)
        return graph_error("Invalid verification code format.", 100)

    def new_access(self, grant):
        return self.issue(grant, "access", SHORT_FB, value="EAAB" + secrets.token_urlsafe(40), long=False)

    def token_body(self, grant, access, refresh, grant_type):
        return {"access_token": access.value, "token_type": "bearer", "expires_in": SHORT_FB}

    def exchange_other(self, request, grant_type, params):
        """fb_exchange_token: a valid short-lived user token for a 60-day one."""
        token, status = self.status(params.get("fb_exchange_token"), "access")
        if status != "ok":
            return self.token_error(token, status)
        new = self.issue(token.grant, "access", LONG_TTL, value="EAAB" + secrets.token_urlsafe(60), long=True)
        return {"access_token": new.value, "token_type": "bearer", "expires_in": LONG_TTL}

    async def revoke(self, request):
        fault = await self.gate("revoke")
        if fault is not None:
            return fault
        token, status = self.status(self.request_token(request), "access")
        if status != "ok":
            return self.token_error(token, status)
        self.kill(token, grant=True)
        return json_response({"success": True})

    async def accounts(self, request):
        fault = await self.gate("accounts")
        if fault is not None:
            return fault
        token, error = self.user_token(request)
        if error is not None:
            return error
        user = str(self.account_of(token)["id"])
        pages = [p for p in self.records_of("pages") if "admins" not in p or user in map(str, p["admins"])]
        if "access_token" in request.query.get("fields", "").split(","):
            for page in pages:
                page.setdefault("access_token", self.page_token(token, str(page["id"])))
        return self.list_edge(request, pages)

    async def feed(self, request, page_id):
        """POST /{page-id}/feed (``message``, ``link``; query, form or JSON): the page's own token (from
        /me/accounts) with pages_manage_posts and pages_read_engagement, else (#200); answers ``{"id":
        "{page}_{post}"}`` and puts the post first in ``records["posts"]`` (what /{page}/posts serves)."""
        fault = await self.gate("feed")
        if fault is not None:
            return fault
        args = dict(request.query)
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                return graph_error("(#100) Invalid JSON body", 100)
            args.update(body if isinstance(body, dict) else {})
        else:
            args.update(await read_form(request))
        token, status = self.status(self.request_token(request) or args.get("access_token"), "access")
        if status != "ok":
            return self.token_error(token, status)
        if page_id not in {str(p["id"]) for p in self.records_of("pages")}:
            return graph_error(
                f"(#100) Object with ID '{page_id}' does not exist, cannot be loaded due to "
                "missing permissions, or does not support this operation",
                100,
                subcode=33,
                type_="GraphMethodException",
            )
        if token.data.get("page_id") != page_id or not self.PUBLISH_SCOPES <= set(token.grant.scope):
            return graph_error(self.FEED_DENIED, 200, status=403)
        message, link = str(args.get("message") or ""), str(args.get("link") or "")
        if not message.strip() and not link:
            return graph_error("(#100) Missing message or attachment", 100)
        if link and not link.startswith(("http://", "https://")):
            return graph_error("(#100) The parameter link must be a valid URL", 100)
        with self.lock:
            rows = self.records.setdefault("posts", [])
            post_id = f"{page_id}_{122100000000000000 + len(rows)}"
            created = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(self.now()))
            rows.insert(
                0,
                {
                    "id": post_id,
                    "page_id": page_id,
                    "message": message or None,
                    "link": link or None,
                    "created_time": created,
                },
            )
        return self.answer("feed", json_response({"id": post_id}))

    async def posts(self, request, page_id):
        """GET /{page-id}/posts: with that page's own token (from /me/accounts); a user token is refused, as
        Graph refuses it for a page's non-public posts without the Page Public Content Access feature."""
        fault = await self.gate("posts")
        if fault is not None:
            return fault
        token, error = self.user_token(request)
        if error is not None:
            return error
        if page_id not in {str(p["id"]) for p in self.records_of("pages")}:
            return graph_error(
                f"(#100) Object with ID '{page_id}' does not exist, cannot be loaded due to "
                "missing permissions, or does not support this operation",
                100,
                subcode=33,
                type_="GraphMethodException",
            )
        if token.data.get("page_id") != page_id:
            return graph_error(
                "(#10) This endpoint requires the 'pages_read_engagement' permission or the 'Page "
                "Public Content Access' feature: read a page's posts with its page access token",
                10,
            )
        return self.list_edge(request, [p for p in self.records_of("posts") if str(p.get("page_id")) == page_id])


class MetaAds(Facebook):
    NAME = "META_ADS"
    ROUTES = Facebook.BASE_ROUTES + (
        ("GET", rf"graph\.facebook\.com/{VERSION}me/adaccounts", "adaccounts"),
        ("GET", rf"graph\.facebook\.com/{VERSION}act_(?P<account_id>\d+)/campaigns", "campaigns"),
    )
    ADS_SCOPES = {"ads_read", "ads_management"}
    ACCOUNT = {"id": "10229876543210987", "name": "Demo Advertiser"}
    DATE_PRESETS = {
        "today",
        "yesterday",
        "this_month",
        "last_month",
        "this_quarter",
        "maximum",
        "data_maximum",
        "last_3d",
        "last_7d",
        "last_14d",
        "last_28d",
        "last_30d",
        "last_90d",
        "last_week_mon_sun",
        "last_week_sun_sat",
        "last_quarter",
        "last_year",
        "this_week_mon_today",
        "this_week_sun_today",
        "this_year",
    }
    INSIGHTS_FIELDS = {
        "impressions",
        "clicks",
        "spend",
        "reach",
        "ctr",
        "cpc",
        "cpm",
        "cpp",
        "frequency",
        "unique_clicks",
        "actions",
        "account_id",
        "campaign_id",
        "campaign_name",
        "date_start",
        "date_stop",
    }
    INSIGHTS_EXPANSION = re.compile(
        r"insights(?:\.date_preset\((?P<preset>[a-z0-9_]+)\))?"
        r"(?:\{(?P<fields>[a-z_,]*)\})?"
    )

    def reset(self) -> None:
        super().reset()
        self.campaign_fields: list[str] = []

    @staticmethod
    def split_fields(text: str) -> list[str]:
        """Top-level comma-separated fields (commas inside a field expansion's () or {} stay)."""
        parts, depth, current = [], 0, ""
        for ch in text:
            depth += ch in "({"
            depth -= ch in ")}"
            if ch == "," and depth == 0:
                parts.append(current)
                current = ""
            else:
                current += ch
        return [p for p in parts + [current] if p]

    def preset_dates(self, preset: str) -> tuple[str, str]:
        today = dt.datetime.fromtimestamp(self.now(), dt.timezone.utc).date()
        days = re.fullmatch(r"last_(\d+)d", preset)
        if days:
            until = today - dt.timedelta(days=1)
            return (until - dt.timedelta(days=int(days[1]) - 1)).isoformat(), until.isoformat()
        if preset == "yesterday":
            return ((today - dt.timedelta(days=1)).isoformat(),) * 2
        return today.isoformat(), today.isoformat()  # the emulator does not compute the other presets' ranges

    def rate_limited(self, endpoint, retry_after):
        minutes = max(1, math.ceil(retry_after / 60))
        usage = {
            "act_1234567890": [
                {
                    "type": "ads_management",
                    "call_count": 100,
                    "total_cputime": 40,
                    "total_time": 60,
                    "estimated_time_to_regain_access": minutes,
                }
            ]
        }
        return graph_error(
            "(#17) User request limit reached",
            17,
            status=400,
            subcode=2446079,
            headers={"X-Business-Use-Case-Usage": json.dumps(usage)},
            is_transient=True,
        )

    def ads_token(self, request):
        token, error = self.user_token(request)
        if error is None and not set(token.grant.scope) & self.ADS_SCOPES:
            error = graph_error("(#200) Ad account owner has NOT grant ads_management or ads_read permission", 200)
        return error

    async def adaccounts(self, request):
        fault = await self.gate("adaccounts")
        if fault is not None:
            return fault
        return self.ads_token(request) or self.list_edge(request, self.records_of("adaccounts"))

    async def campaigns(self, request, account_id):
        fault = await self.gate("campaigns")
        if fault is not None:
            return fault
        error = self.ads_token(request)
        if error is not None:
            return error
        if f"act_{account_id}" not in {a["id"] for a in self.records_of("adaccounts")}:
            return graph_error(
                f"(#100) Object with ID 'act_{account_id}' does not exist, cannot be loaded due "
                "to missing permissions, or does not support this operation",
                100,
                subcode=33,
                type_="GraphMethodException",
            )
        rows = [c for c in self.records_of("campaigns") if str(c.get("account_id")) == account_id]
        raw = request.query.get("fields", "id")
        with self.lock:
            self.campaign_fields.append(raw)
        fields, insights = [], None
        for field in self.split_fields(raw):
            if not field.startswith("insights"):
                fields.append(field)
                continue
            match = self.INSIGHTS_EXPANSION.fullmatch(field)
            if match is None:
                return graph_error(
                    f"(#100) Unsupported field expansion {field!r} on the insights edge (the "
                    "emulator knows date_preset(...) and {fields})",
                    100,
                )
            preset = match["preset"] or "last_30d"
            if preset not in self.DATE_PRESETS:
                return graph_error(
                    f"(#100) date_preset must be one of the following values: {', '.join(sorted(self.DATE_PRESETS))}",
                    100,
                )
            asked = [f for f in (match["fields"] or "impressions,spend").split(",") if f]
            unknown = [f for f in asked if f not in self.INSIGHTS_FIELDS]
            if unknown:
                return graph_error(
                    f"(#100) {unknown[0]} is not valid for fields param. please check "
                    "https://developers.facebook.com/docs/marketing-api/reference/ads-insights/ "
                    "for all valid values",
                    100,
                )
            insights = (preset, asked)
        if insights is not None:
            preset, asked = insights
            since, until = self.preset_dates(preset)
            stats = {}
            for row in self.records_of("insights"):
                if row.get("date_preset", preset) == preset:
                    stats.setdefault(str(row.get("campaign_id")), row)
            for campaign in rows:
                stat = stats.get(str(campaign["id"]))
                if stat is not None:
                    data = {f: str(stat[f]) for f in asked if f in stat and f not in ("date_start", "date_stop")}
                    data.update(date_start=since, date_stop=until)
                    campaign["insights"] = {
                        "data": [data],
                        "paging": {"cursors": {"before": "MAZDZD", "after": "MAZDZD"}},
                    }
            fields.append("insights")
        query = {**request.query, "fields": ",".join(fields)}
        return self.list_edge(request.clone(rel_url=request.rel_url.with_query(query)), rows, max_limit=500)
