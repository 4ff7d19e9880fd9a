"""TikTok Login Kit and TikTok API for Business "TikTok Accounts" (TIKTOK), TikTok Marketing API (TIKTOK_ADS).

TIKTOK quirks enforced:
- the client id parameter is ``client_key`` (authorize and token), scopes are
  comma-separated, web apps use no PKCE (a code_challenge is ignored);
- token-endpoint errors come back as HTTP 200 (``error_status``; set it to 400
  to exercise the other behaviour) with ``{error, error_description, log_id}``;
- refresh rotates: the old refresh token dies once a new one is issued;
- the API answers ``{"data":..., "error":{"code":"ok",...}}`` and 401
  ``access_token_invalid``; throttling is 429 ``rate_limit_exceeded``.
- ``POST /v2/video/list/?fields=...`` (``calls["videos"]``, scope
  ``video.list``, else 401 ``scope_not_authorized``): JSON body
  ``{max_count (1-20, default 10), cursor}``; serves ``records_of("videos")``
  (newest first, ``create_time`` in epoch seconds) filtered by ``fields``;
  ``cursor`` is a UTC epoch in milliseconds (videos created before it), the
  answer's ``data.cursor`` is the last video's create_time in ms, with
  ``data.has_more``.
- Content Posting API, direct post (scope ``video.publish``, else 401
  ``scope_not_authorized``): ``POST /v2/post/publish/creator_info/query/``
  (``calls["creator_info"]``) answers ``creator`` (its
  ``privacy_level_options``); ``POST /v2/post/publish/video/init/``
  (``calls["publish_init"]``) takes ``post_info`` (title <= 2,200 UTF-16
  units, a privacy level among the options, else 400
  ``privacy_level_option_mismatch``; an unaudited client, ``audited`` False by
  default, only SELF_ONLY, else 403
  ``unaudited_client_can_only_post_to_private_accounts``) and ``source_info
  {source: PULL_FROM_URL, video_url}`` (https; a prefix in
  ``verified_url_prefixes`` when set, else 403 ``url_ownership_unverified``),
  answers ``data.publish_id`` and keeps the post in
  ``records_of("publishes")`` with status ``publish_status_after_init``;
  ``POST /v2/post/publish/status/fetch/`` (``calls["publish_status"]``)
  answers that status.

TIKTOK as a TikTok API for Business app (``TikTokAccounts``, on the
``business-api.tiktok.com`` host, env ``TIKTOK_BUSINESS_URL``):
- it is an app of its own, registered apart from the Login Kit app, with its
  own credentials (``business_client_id`` / ``business_client_secret``, env
  ``TIKTOK_BUSINESS_CLIENT_ID`` / ``_SECRET``); the consent takes either app's
  client key, each app only the scopes of its kind (a Login Kit app asking for
  ``comment.list``, or a Business app for ``video.publish``, is refused), and
  each app's token endpoints refuse the other app's client (40101 here,
  ``invalid_client`` at Login Kit's) and codes issued to it;
- the same www.tiktok.com consent; the code is redeemed at
  ``POST /open_api/v1.3/tt_user/oauth2/token/`` with a JSON body ``{client_id,
  client_secret, grant_type: authorization_code, auth_code, redirect_uri}``,
  refreshed at ``tt_user/oauth2/refresh_token/`` ``{client_id, client_secret,
  grant_type: refresh_token, refresh_token}`` (rotating) and revoked at
  ``tt_user/oauth2/revoke/``; answers are HTTP 200 ``{code, message,
  request_id, data}``: ``data {access_token, expires_in, open_id,
  refresh_token, refresh_token_expires_in, scope, token_type}``; errors 40002
  (parameters, a form body), 40101 (client), 40131 (code expired, used or
  unknown), 40105 (refresh token); such tokens work only on the Business API,
  and Login Kit tokens only on open.tiktokapis.com (the other answers 40105 /
  401 ``access_token_invalid``; a business refresh token at Login Kit's
  ``/v2/oauth/token/`` is 400 ``invalid_grant``);
- the API wants ``Access-Token`` (none: 40104, bad: 40105) and the account's
  ``open_id`` as ``business_id`` (another account's: 40001); a scope not
  granted is 40001. ``GET business/get/?business_id=&fields=`` (scope
  ``user.info.basic``) answers ``username, display_name, profile_image``;
  ``GET business/video/list/?business_id=&fields=["item_id",...]&max_count=
  1-20&cursor=`` (``calls["business_videos"]``, scope ``video.list``) the
  ``videos`` records as ``item_id``; comments: tests/emulators/comments.py.

TIKTOK_ADS quirks enforced:
- authorize takes ``app_id``, ``state``, ``redirect_uri`` and redirects with
  ``auth_code`` AND ``code``; codes live 1 h (TikTok documents 1 h);
- the token request is a JSON body ``{app_id, secret, auth_code}``; anything
  else (a form body) is a ``code != 0`` error;
- every answer is HTTP 200 with ``{code, message, request_id, data}``; errors
  use code 40002 (parameters), 40101 (app id / secret), 40110 (auth code),
  40104 (no Access-Token header), 40105 (bad token), 40100 (rate limit);
- the API wants the ``Access-Token`` header, not ``Authorization: Bearer``;
- the long-term token never expires and has no refresh token.
- ``GET /open_api/v1.3/campaign/get/?advertiser_id=&page=&page_size=``
  (``calls["campaigns"]``): ``advertiser_id`` must be one of the token's
  advertisers (else 40001), ``page`` from 1, ``page_size`` 1-1000 (default
  10); serves ``records_of("campaigns")`` rows whose ``advertiser_id``
  matches, as ``data.list`` with ``data.page_info {page, page_size,
  total_number, total_page}``.
- ``GET /open_api/v1.3/report/integrated/get/`` (``calls["report"]``, each
  query kept in ``report_requests``): the synchronous report. List
  parameters are JSON in the query (``dimensions``, ``metrics``,
  ``filtering``); ``report_type`` and ``data_level`` must be valid choices,
  ``start_date``/``end_date`` (YYYY-MM-DD, at most 365 days [M]) unless
  ``query_lifetime=true``, ``filtering`` a list of ``{field_name:
  "campaign_ids", filter_type: "IN", filter_value: "<JSON list, <= 100>"}``
  (anything else: 40002). Serves BASIC / AUCTION_CAMPAIGN by
  ``["campaign_id"]`` only: ``records_of("reports")`` rows ``{advertiser_id,
  campaign_id, metrics}`` as ``data.list[{dimensions: {campaign_id},
  metrics: {<each asked>: "<string>"}}]`` (a campaign with no row did not
  deliver and is absent), paged like campaign/get.

``account`` is TIKTOK's ``data.user`` object (filtered by ``fields``) and
TIKTOK_ADS's ``data`` object; ``advertiser_ids`` and ``scope_ids`` are the
TIKTOK_ADS token response's lists.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets

from aiohttp import web

from .base import Provider
from .comments import TikTokComments
from .oauth2 import (
    AuthorizeSpec,
    TokenGrants,
    auth_header,
    authorize,
    check_client,
    client_auth,
    grant_for,
    json_response,
    log_id,
    read_form,
    read_json,
    redeem,
    rotate,
    token_response,
)

ACCESS_TTL = 86400
REFRESH_TTL = 31536000
BASIC_FIELDS = {"open_id", "union_id", "avatar_url", "avatar_url_100", "avatar_large_url", "display_name"}


class TikTokStats:
    """Display API stats (fetch_analytics): ``GET /v2/user/info/`` answers ``follower_count``,
    ``following_count``, ``likes_count``, ``video_count`` (``stats``, settable) only with the ``user.info.stats``
    scope, else 401 ``scope_not_authorized``; the videos' counts are the ``videos`` records' own fields."""

    STATS_FIELDS = {"follower_count", "following_count", "likes_count", "video_count"}
    STATS = {"follower_count": 1200, "following_count": 35, "likes_count": 9800, "video_count": 3}

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.stats = dict(self.STATS)

    def stats_refused(self, token, fields):
        """The error for stats fields asked without user.info.stats, else None."""
        if set(fields) & self.STATS_FIELDS and "user.info.stats" not in token.grant.scope:
            return self._api_error(
                401,
                "scope_not_authorized",
                "The user did not authorize the scope required for completing this request.",
            )
        return None


class TikTokAccounts:
    """TikTok API for Business ("TikTok Accounts"): its token endpoints and account API (see the module doc)."""

    BUSINESS = r"business-api\.tiktok\.com/open_api/v1\.3/"
    BUSINESS_ROUTES = (
        ("POST", BUSINESS + r"tt_user/oauth2/token/", "business_token"),
        ("POST", BUSINESS + r"tt_user/oauth2/refresh_token/", "business_refresh"),
        ("POST", BUSINESS + r"tt_user/oauth2/revoke/", "business_revoke"),
        ("GET", BUSINESS + r"business/get/", "business_get"),
        ("GET", BUSINESS + r"business/video/list/", "business_video_list"),
    )

    @staticmethod
    def business_envelope(code: int = 0, message: str = "OK", data=None):
        return json_response(
            {"code": code, "message": message, "request_id": log_id(), "data": {} if data is None else data}
        )

    def business_caller(self, request, scope: str, business_id):
        """(token, None) or (None, the Business API's refusal): Access-Token, the scope, the business_id."""
        value = request.headers.get("Access-Token")
        if not value:
            return None, self.business_envelope(
                40104, "Access token is null, you should set it in http header with key Access-Token."
            )
        token, status = self.status(value, "access")
        if status != "ok" or token.grant.data.get("api") != "business":
            return None, self.business_envelope(40105, "Access token is incorrect or has been revoked.")
        if not business_id:
            return None, self.business_envelope(40002, "business_id is required.")
        if str(business_id) != str(token.grant.data.get("open_id")):
            return None, self.business_envelope(40001, "No permission to operate the TikTok account of business_id.")
        if scope not in token.grant.scope:
            return None, self.business_envelope(
                40001, f"Permission denied: the TikTok account did not authorize the scope {scope}."
            )
        return token, None

    async def _business_app(self, request, endpoint: str, fields: tuple[str, ...]):
        body = await read_json(request)
        fault = await self.gate(endpoint)
        if fault is not None:
            return None, fault
        if body is None:
            return None, self.business_envelope(
                40002, "Parameter error: the request body must be JSON (Content-Type: application/json)."
            )
        missing = [f for f in fields if not body.get(f)]
        if missing:
            return None, self.business_envelope(40002, f"Missing required field(s): {', '.join(missing)}.")
        # The TikTok API for Business app's own client: the Login Kit app's client key is another app's.
        if str(body["client_id"]) != self.business_client_id or body["client_secret"] != self.business_client_secret:
            return None, self.business_envelope(40101, "Invalid client_id or client_secret.")
        return body, None

    def _business_tokens(self, grant, refresh):
        access = self.issue(grant, "access", ACCESS_TTL, value="act." + secrets.token_hex(30))
        return self.business_envelope(
            data={
                "access_token": access.value,
                "expires_in": ACCESS_TTL,
                "open_id": grant.data.get("open_id"),
                "refresh_token": refresh.value,
                "refresh_token_expires_in": REFRESH_TTL,
                "scope": ",".join(grant.scope),
                "token_type": "Bearer",
            }
        )

    async def business_token(self, request):
        body, error = await self._business_app(
            request, "token", ("client_id", "client_secret", "grant_type", "auth_code", "redirect_uri")
        )
        if error is not None:
            return error
        if body["grant_type"] != "authorization_code":
            return self.business_envelope(40002, "grant_type must be authorization_code.")
        code, reason = redeem(
            self, body["auth_code"], client_id=str(body["client_id"]), redirect_uri=body["redirect_uri"]
        )
        if reason != "ok":
            return self.business_envelope(40131, "Authorization code is expired.")
        grant = grant_for(self, code, open_id=self.account.get("open_id"), api="business")
        refresh = self.issue(grant, "refresh", REFRESH_TTL, value="rft." + secrets.token_hex(30))
        return self._business_tokens(grant, refresh)

    async def business_refresh(self, request):
        body, error = await self._business_app(
            request, "refresh", ("client_id", "client_secret", "grant_type", "refresh_token")
        )
        if error is not None:
            return error
        if body["grant_type"] != "refresh_token":
            return self.business_envelope(40002, "grant_type must be refresh_token.")
        old, status = self.status(body["refresh_token"], "refresh")
        if status != "ok" or old.grant.data.get("api") != "business":
            return self.business_envelope(40105, "Refresh token is incorrect or has been revoked.")
        return self._business_tokens(old.grant, rotate(self, old, REFRESH_TTL, value="rft." + secrets.token_hex(30)))

    async def business_revoke(self, request):
        body, error = await self._business_app(request, "revoke", ("client_id", "client_secret", "access_token"))
        if error is not None:
            return error
        token, status = self.status(body["access_token"], "access")
        if status != "ok" or token.grant.data.get("api") != "business":
            return self.business_envelope(40105, "Access token is incorrect or has been revoked.")
        self.kill(token, grant=True)
        return self.business_envelope()

    async def business_get(self, request):
        fault = await self.gate("whoami")
        if fault is not None:
            return fault
        _token, error = self.business_caller(request, "user.info.basic", request.query.get("business_id"))
        if error is not None:
            return error
        user = {
            "username": "demo.creator",
            "display_name": self.account.get("display_name"),
            "profile_image": self.account.get("avatar_url"),
        }
        return self.business_envelope(data=user)

    async def business_video_list(self, request):
        fault = await self.gate("business_videos")
        if fault is not None:
            return fault
        q = request.query
        _token, error = self.business_caller(request, "video.list", q.get("business_id"))
        if error is not None:
            return error
        try:
            fields = json.loads(q.get("fields") or '["item_id"]')
            size, cursor = int(q.get("max_count", "20")), int(q.get("cursor", "0"))
        except ValueError:
            return self.business_envelope(40002, "fields must be a JSON list; max_count and cursor integers.")
        if not isinstance(fields, list) or not 1 <= size <= 20 or cursor < 0:
            return self.business_envelope(40002, "fields must be a JSON list, max_count 1-20, cursor >= 0.")
        rows = self.records_of("videos")
        page = rows[cursor : cursor + size]
        named = {"item_id": "id", "create_time": "create_time", "caption": "title", "share_url": "share_url"}
        videos = [{f: v.get(named.get(f, f)) for f in fields} for v in page]
        return self.business_envelope(
            data={"videos": videos, "cursor": cursor + len(page), "has_more": cursor + len(page) < len(rows)}
        )


class TikTok(TikTokStats, TikTokComments, TikTokAccounts, TokenGrants, Provider):
    NAME = "TIKTOK"
    URLS = {
        "AUTH": "www.tiktok.com/v2/auth/authorize/",
        "TOKEN": "open.tiktokapis.com/v2/oauth/token/",
        "API": "open.tiktokapis.com",
        "REVOKE": "open.tiktokapis.com/v2/oauth/revoke/",
        "BUSINESS": "business-api.tiktok.com",
    }
    ROUTES = (
        ("GET", r"www\.tiktok\.com/v2/auth/authorize/", "authorize"),
        ("POST", r"open\.tiktokapis\.com/v2/oauth/token/", "token"),
        ("POST", r"open\.tiktokapis\.com/v2/oauth/revoke/", "revoke"),
        ("GET", r"open\.tiktokapis\.com/v2/user/info/", "user_info"),
        ("POST", r"open\.tiktokapis\.com/v2/video/list/", "video_list"),
        ("POST", r"open\.tiktokapis\.com/v2/post/publish/creator_info/query/", "creator_info"),
        ("POST", r"open\.tiktokapis\.com/v2/post/publish/video/init/", "publish_init"),
        ("POST", r"open\.tiktokapis\.com/v2/post/publish/status/fetch/", "publish_status"),
    )
    ROUTES += TikTokAccounts.BUSINESS_ROUTES + TikTokComments.COMMENT_ROUTES
    ACCOUNT = {
        "open_id": "-000OR8pXT0bH1rUQhVA0AHfRGwV6yfJTgRo",
        "display_name": "Demo Creator",
        "avatar_url": "https://p16-sign.tiktokcdn.com/demo-avatar.jpeg",
    }
    SPEC = AuthorizeSpec(client_param="client_key", scope_sep=",", pkce="none")
    error_status = 200
    CODE_CLIENT_PARAM = "client_key"
    CODE_VERIFIER = False

    # Each kind of app may ask only for its own products' scopes (those the other kind alone has are refused).
    LOGIN_KIT_ONLY_SCOPES = frozenset({"user.info.stats", "video.publish", "video.upload"})
    BUSINESS_ONLY_SCOPES = frozenset({"comment.list", "comment.list.manage"})

    def __init__(self, emu):
        # The TikTok API for Business app: another app at TikTok, with a numeric app id and a secret of its own.
        self.business_client_id = str(7 * 10**18 + secrets.randbelow(10**18))
        self.business_client_secret = secrets.token_hex(20)
        super().__init__(emu)

    def make_client_id(self) -> str:
        return "aw" + secrets.token_hex(8)

    def knows_client(self, client_id) -> bool:
        return client_id in (self.client_id, self.business_client_id)

    def extra_env(self) -> dict[str, str]:
        return {
            "TIKTOK_BUSINESS_CLIENT_ID": self.business_client_id,
            "TIKTOK_BUSINESS_CLIENT_SECRET": self.business_client_secret,
        }

    async def authorize(self, request):
        return await authorize(self, request, self.SPEC, check=self._scopes_of_the_app)

    def _scopes_of_the_app(self, request):
        """The other kind of app's scopes are not among those this app's products grant."""
        business = request.query.get("client_key") == self.business_client_id
        foreign = self.LOGIN_KIT_ONLY_SCOPES if business else self.BUSINESS_ONLY_SCOPES
        asked = set((request.query.get("scope") or "").split(","))
        wrong = sorted(asked & foreign)
        if wrong:
            kind = "TikTok API for Business" if business else "Login Kit"
            return f"invalid scope {wrong}: not a scope of this {kind} app"
        return None

    CREATOR = {
        "creator_avatar_url": "https://p16-sign.tiktokcdn.com/demo-avatar.jpeg",
        "creator_username": "demo.creator",
        "creator_nickname": "Demo Creator",
        "privacy_level_options": ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"],
        "comment_disabled": False,
        "duet_disabled": False,
        "stitch_disabled": True,
        "max_video_post_duration_sec": 600,
    }
    TITLE_MAX = 2200  # UTF-16 code units

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.error_status = 200
            self.creator = dict(self.CREATOR, privacy_level_options=list(self.CREATOR["privacy_level_options"]))
            self.audited = False  # an unaudited client may only post SELF_ONLY
            self.verified_url_prefixes: list[str] | None = None  # None: every PULL_FROM_URL host is verified
            self.publish_status_after_init = "PROCESSING_DOWNLOAD"

    def rate_limited(self, endpoint, retry_after):
        body = {
            "error": {
                "code": "rate_limit_exceeded",
                "message": "The API rate limit was exceeded. Please try again later.",
                "log_id": log_id(),
            }
        }
        return json_response(body, 429, {"x-ratelimit-reset": str(int(self.now() + retry_after))})

    def _error(self, error: str, description: str) -> web.Response:
        body = {"error": error, "error_description": description, "log_id": log_id()}
        return token_response(body, self.error_status)

    def client_error(self, request, form):
        if not form:
            return self._error("invalid_request", "The request parameters are malformed.")
        if check_client(self, client_auth(request, form, "client_key"), ("body",)):
            return self._error("invalid_client", "Client key or secret is incorrect.")
        return None

    def unsupported_grant(self, grant_type):
        return self._error("unsupported_grant_type", f"Unsupported grant_type {grant_type!r}.")

    def code_error(self, code, reason, form):
        if reason == "redirect":
            return self._error("invalid_grant", "Redirect URI does not match the authorization request.")
        return self._error("invalid_grant", "Authorization code is expired or invalid.")

    def code_grant(self, code):
        return grant_for(self, code, open_id=self.account.get("open_id"))

    def first_refresh(self, grant):
        return self.issue(grant, "refresh", REFRESH_TTL, value="rft." + secrets.token_hex(30))

    def refresh_error(self, token, status, form):
        return self._error("invalid_grant", "Refresh token is invalid or expired.")

    def exchange_refresh(self, request, old, params):
        """Login Kit's token endpoint does not know a TikTok API for Business refresh token (those rotate at
        tt_user/oauth2/refresh_token/): a service refreshing a business connection here fails as it would."""
        if old.grant.data.get("api") == "business":
            return self.refresh_error(old, "unknown", params)
        return super().exchange_refresh(request, old, params)

    def next_refresh(self, old):
        return rotate(self, old, REFRESH_TTL, value="rft." + secrets.token_hex(30))

    def new_access(self, grant):
        return self.issue(grant, "access", ACCESS_TTL, value="act." + secrets.token_hex(30))

    def token_body(self, grant, access, refresh, grant_type):
        return {
            "access_token": access.value,
            "expires_in": ACCESS_TTL,
            "open_id": grant.data.get("open_id"),
            "refresh_expires_in": REFRESH_TTL,
            "refresh_token": refresh.value,
            "scope": ",".join(grant.scope),
            "token_type": "Bearer",
        }

    async def revoke(self, request):
        form = await read_form(request)
        fault = await self.gate("revoke")
        if fault is not None:
            return fault
        if check_client(self, client_auth(request, form, "client_key"), ("body",)):
            return self._error("invalid_client", "Client key or secret is incorrect.")
        token, _status = self.status(form.get("token"), ("access", "refresh"))
        if token is None:
            return self._error("invalid_request", "The token is invalid.")
        self.kill(token, grant=True)
        return web.Response(status=200)

    async def user_info(self, request):
        fault = await self.gate("whoami")
        if fault is not None:
            return fault
        token, status = self.login_kit_status(request)
        if status != "ok":
            return self._api_error(
                401, "access_token_invalid", "The access token is invalid or not found in the request."
            )
        fields = [f for f in request.query.get("fields", "").split(",") if f]
        if not fields:
            return self._api_error(400, "invalid_params", "fields is required")
        if "user.info.basic" not in token.grant.scope:
            return self._api_error(
                401,
                "scope_not_authorized",
                "The user did not authorize the scope required for completing this request.",
            )
        refused = self.stats_refused(token, fields)
        if refused is not None:
            return refused
        if not set(fields) <= BASIC_FIELDS | set(self.account) | self.STATS_FIELDS:
            return self._api_error(400, "invalid_params", f"invalid fields {fields}")
        known = {**self.account, **self.stats}
        user = {f: known[f] for f in fields if f in known}
        return json_response({"data": {"user": user}, "error": {"code": "ok", "message": "", "log_id": log_id()}})

    def login_kit_status(self, request):
        """The bearer token's status on open.tiktokapis.com: a TikTok API for Business token is not one."""
        token, status = self.status(auth_header(request), "access")
        if status == "ok" and token.grant.data.get("api") == "business":
            return token, "unknown"
        return token, status

    def _api_error(self, status: int, code: str, message: str) -> web.Response:
        return json_response({"data": {}, "error": {"code": code, "message": message, "log_id": log_id()}}, status)

    VIDEO_FIELDS = {
        "id",
        "create_time",
        "cover_image_url",
        "share_url",
        "video_description",
        "duration",
        "height",
        "width",
        "title",
        "embed_html",
        "embed_link",
        "like_count",
        "comment_count",
        "share_count",
        "view_count",
    }

    async def video_list(self, request):
        body = await read_json(request)
        fault = await self.gate("videos")
        if fault is not None:
            return fault
        token, status = self.login_kit_status(request)
        if status != "ok":
            return self._api_error(
                401, "access_token_invalid", "The access token is invalid or not found in the request."
            )
        if "video.list" not in token.grant.scope:
            return self._api_error(
                401,
                "scope_not_authorized",
                "The user did not authorize the scope required for completing this request.",
            )
        fields = [f for f in request.query.get("fields", "").split(",") if f]
        if not fields or not set(fields) <= self.VIDEO_FIELDS:
            return self._api_error(400, "invalid_params", f"invalid fields {fields}")
        if body is None:
            return self._api_error(
                400, "invalid_params", "the request body must be JSON (Content-Type: application/json)"
            )
        max_count, cursor = body.get("max_count", 10), body.get("cursor")
        if not isinstance(max_count, int) or not 1 <= max_count <= 20:
            return self._api_error(400, "invalid_params", "max_count must be between 1 and 20")
        if cursor is not None and not isinstance(cursor, int):
            return self._api_error(400, "invalid_params", "cursor must be an int64 (epoch milliseconds)")
        rows = [v for v in self.records_of("videos") if cursor is None or int(v["create_time"]) * 1000 < cursor]
        page = rows[:max_count]
        videos = [{f: v[f] for f in fields if f in v} for v in page]
        next_cursor = int(page[-1]["create_time"]) * 1000 if page else (cursor or 0)
        return json_response(
            {
                "data": {"videos": videos, "cursor": next_cursor, "has_more": len(rows) > max_count},
                "error": {"code": "ok", "message": "", "log_id": log_id()},
            }
        )

    # --- Content Posting API (direct post, PULL_FROM_URL) -----------------------------------------

    def _poster(self, request, scopes: tuple[str, ...] = ("video.publish",)):
        token, status = self.login_kit_status(request)
        if status != "ok":
            return None, self._api_error(
                401, "access_token_invalid", "The access token is invalid or not found in the request."
            )
        if not set(scopes) & set(token.grant.scope):
            return None, self._api_error(
                401,
                "scope_not_authorized",
                "The user did not authorize the scope required for completing this request.",
            )
        return token, None

    @staticmethod
    def _ok(data: dict) -> web.Response:
        return json_response({"data": data, "error": {"code": "ok", "message": "", "log_id": log_id()}})

    async def creator_info(self, request):
        """POST /v2/post/publish/creator_info/query/ (``calls["creator_info"]``, scope video.publish):
        ``creator``, whose ``privacy_level_options`` a post must pick from."""
        fault = await self.gate("creator_info")
        if fault is not None:
            return fault
        _token, error = self._poster(request)
        if error is not None:
            return error
        with self.lock:
            return self._ok(dict(self.creator))

    async def publish_init(self, request):
        """POST /v2/post/publish/video/init/ (``calls["publish_init"]``, scope video.publish): a direct post
        ``{post_info {title, privacy_level, disable_*}, source_info {source: PULL_FROM_URL, video_url}}``;
        the privacy level must be one of the creator's options (``privacy_level_option_mismatch``) and, for
        an unaudited client, SELF_ONLY (403 ``unaudited_client_can_only_post_to_private_accounts``); the
        URL's prefix must be verified when ``verified_url_prefixes`` is set (403
        ``url_ownership_unverified``). Answers ``data.publish_id``; the post goes to ``records["publishes"]``."""
        body = await read_json(request)
        fault = await self.gate("publish_init")
        if fault is not None:
            return fault
        _token, error = self._poster(request)
        if error is not None:
            return error
        if body is None:
            return self._api_error(400, "invalid_params", "the request body must be JSON")
        post, source = body.get("post_info"), body.get("source_info")
        if not isinstance(post, dict) or not isinstance(source, dict):
            return self._api_error(400, "invalid_params", "post_info and source_info are required")
        title = post.get("title") or ""
        if not isinstance(title, str) or len(title.encode("utf-16-le")) // 2 > self.TITLE_MAX:
            return self._api_error(
                400, "invalid_params", f"post_info.title must be at most {self.TITLE_MAX} UTF-16 runes"
            )
        for flag in (
            "disable_duet",
            "disable_comment",
            "disable_stitch",
            "brand_content_toggle",
            "brand_organic_toggle",
            "is_aigc",
        ):
            if flag in post and not isinstance(post[flag], bool):
                return self._api_error(400, "invalid_params", f"post_info.{flag} must be a boolean")
        with self.lock:
            options, audited, prefixes = (
                list(self.creator["privacy_level_options"]),
                self.audited,
                self.verified_url_prefixes,
            )
        level = post.get("privacy_level")
        if level not in options:
            return self._api_error(
                400,
                "privacy_level_option_mismatch",
                f"privacy_level {level!r} is not one of the creator's options {options}",
            )
        if not audited and level != "SELF_ONLY":
            return self._api_error(
                403,
                "unaudited_client_can_only_post_to_private_accounts",
                "Unaudited clients can only post with the SELF_ONLY privacy level.",
            )
        if source.get("source") != "PULL_FROM_URL":
            return self._api_error(400, "invalid_params", "the emulator serves source PULL_FROM_URL only")
        url = source.get("video_url")
        if not isinstance(url, str) or not url.startswith("https://"):
            return self._api_error(400, "invalid_params", "source_info.video_url must be an https URL")
        if prefixes is not None and not any(url.startswith(p) for p in prefixes):
            return self._api_error(
                403, "url_ownership_unverified", "The video URL's domain or URL prefix is not verified for this app."
            )
        with self.lock:
            rows = self.records.setdefault("publishes", [])
            publish_id = f"v_pub_url~v2-1.{7400000000000000000 + len(rows) + 1}"
            rows.append(
                {
                    "publish_id": publish_id,
                    "post_info": dict(post),
                    "source_info": dict(source),
                    "status": self.publish_status_after_init,
                    "created": self.now(),
                }
            )
        return self._ok({"publish_id": publish_id})

    async def publish_status(self, request):
        """POST /v2/post/publish/status/fetch/ ``{publish_id}`` (``calls["publish_status"]``, scope
        video.publish or video.upload): ``data.status`` of that post (and ``fail_reason`` when FAILED)."""
        body = await read_json(request)
        fault = await self.gate("publish_status")
        if fault is not None:
            return fault
        _token, error = self._poster(request, ("video.publish", "video.upload"))
        if error is not None:
            return error
        wanted = (body or {}).get("publish_id")
        row = next((r for r in self.records_of("publishes") if r["publish_id"] == wanted), None)
        if row is None:
            return self._api_error(400, "invalid_publish_id", f"publish_id {wanted!r} does not exist")
        data = {"status": row["status"], "uploaded_bytes": 0, "downloaded_bytes": 0}
        if row["status"] == "FAILED":
            data["fail_reason"] = row.get("fail_reason") or "file_format_check_failed"
        if row["status"] == "PUBLISH_COMPLETE":
            data["publicaly_available_post_id"] = [int(row["publish_id"].rsplit(".", 1)[1])]
        return self._ok(data)


class TikTokAds(TokenGrants, Provider):
    NAME = "TIKTOK_ADS"
    URLS = {
        "AUTH": "business-api.tiktok.com/portal/auth",
        "TOKEN": "business-api.tiktok.com/open_api/v1.3/oauth2/access_token/",
        "API": "business-api.tiktok.com",
        "REVOKE": "business-api.tiktok.com/open_api/v1.3/oauth2/revoke_token/",
    }
    ROUTES = (
        ("GET", r"business-api\.tiktok\.com/portal/auth", "authorize"),
        ("POST", r"business-api\.tiktok\.com/open_api/v1\.3/oauth2/access_token/", "token"),
        ("POST", r"business-api\.tiktok\.com/open_api/v1\.3/oauth2/revoke_token/", "revoke"),
        ("GET", r"business-api\.tiktok\.com/open_api/v1\.3/user/info/", "user_info"),
        ("GET", r"business-api\.tiktok\.com/open_api/v1\.3/campaign/get/", "campaigns"),
        ("GET", r"business-api\.tiktok\.com/open_api/v1\.3/report/integrated/get/", "report"),
    )
    REPORT_TYPES = {"BASIC", "AUDIENCE", "PLAYABLE_MATERIAL", "CATALOG", "BC", "TT_SHOP"}
    DATA_LEVELS = {"AUCTION_ADVERTISER", "AUCTION_CAMPAIGN", "AUCTION_ADGROUP", "AUCTION_AD"}
    REPORT_METRICS = {
        "spend",
        "impressions",
        "clicks",
        "ctr",
        "cpc",
        "cpm",
        "reach",
        "frequency",
        "conversion",
        "cost_per_conversion",
        "conversion_rate",
        "result",
        "cost_per_result",
        "video_play_actions",
    }
    CODE_TTL = 3600
    ACCOUNT = {"id": "7012345678901234567", "display_name": "Demo Advertiser", "email": "ads@example.com"}
    SPEC = AuthorizeSpec(
        client_param="app_id", response_type=None, scope_sep=None, pkce="none", code_params=("auth_code", "code")
    )

    def make_client_id(self) -> str:
        return "7" + "".join(secrets.choice("0123456789") for _ in range(18))

    def make_client_secret(self) -> str:
        return secrets.token_hex(20)

    def reset(self) -> None:
        super().reset()
        self.advertiser_ids = ["7000000000000000001", "7000000000000000002"]
        self.scope_ids = [1, 2, 3, 4]
        self.report_requests: list[dict] = []  # the query of each report call, for tests

    @staticmethod
    def envelope(code: int = 0, message: str = "OK", data=None) -> web.Response:
        return json_response(
            {"code": code, "message": message, "request_id": log_id(), "data": {} if data is None else data}
        )

    def rate_limited(self, endpoint, retry_after):
        return self.envelope(40100, "Requests made too frequently. Please try again later.")

    # The token endpoint takes JSON (app_id, secret, auth_code: no grant type, no redirect URI) and answers in
    # TikTok for Business's envelope, HTTP 200 whatever the outcome; so does revoke.
    GRANT_TYPES = ("authorization_code",)
    CODE_PARAM = "auth_code"
    CODE_REDIRECT = False
    CODE_VERIFIER = False
    REQUIRED = {"token": ("app_id", "secret", "auth_code"), "revoke": ("app_id", "secret", "access_token")}

    async def token_params(self, request):
        body = await read_json(request)  # None: not JSON, refused by client_error
        return None if body is None else {**body, "grant_type": "authorization_code"}  # its one grant, always

    def client_error(self, request, params, endpoint: str = "token"):
        if params is None:
            return self.envelope(
                40002, "Parameter error: the request body must be JSON (Content-Type: application/json)."
            )
        missing = [f for f in self.REQUIRED[endpoint] if not params.get(f)]
        if missing:
            return self.envelope(40002, f"Missing required field(s): {', '.join(missing)}.")
        if str(params["app_id"]) != self.client_id or params["secret"] != self.client_secret:
            return self.envelope(40101, "Invalid parameter values for authentication: app_id and secret do not match.")
        return None

    def redeem_code(self, request, params):
        return redeem(self, params["auth_code"], client_id=str(params["app_id"]), check_redirect=False)

    def code_error(self, code, reason, params):
        return self.envelope(
            40110,
            "The auth_code is invalid, expired or already used. "
            "Please re-authorize and try again with a new auth_code.",
        )

    def exchange_code(self, request, code, params):
        access = self.issue(grant_for(self, code), "access", None, value=secrets.token_hex(20))
        return self.envelope(
            data={
                "access_token": access.value,
                "advertiser_ids": list(self.advertiser_ids),
                "scope": list(self.scope_ids),
            }
        )

    async def revoke(self, request):
        body = await self.token_params(request)
        fault = await self.gate("revoke")
        if fault is not None:
            return fault
        error = self.client_error(request, body, "revoke")
        if error is not None:
            return error
        token, status = self.status(body["access_token"], "access")
        if status != "ok":
            return self.envelope(40105, "Access token is incorrect or has been revoked.")
        self.kill(token, grant=True)
        return self.envelope()

    # API calls carry the token in an Access-Token header and are refused in the envelope, HTTP 200.
    def bearer_of(self, request):
        return request.headers.get("Access-Token")

    def token_refused(self, endpoint, token, status):
        if status == "missing":
            return self.envelope(40104, "Access token is null, you should set it in http header with key Access-Token.")
        return self.envelope(40105, "Access token is incorrect or has been revoked.")

    async def user_info(self, request):
        _token, refusal = await self.api_token(request, "whoami")
        if refusal is not None:
            return refusal
        return self.envelope(data=dict(self.account))

    async def campaigns(self, request):
        _token, refusal = await self.api_token(request, "campaigns")
        if refusal is not None:
            return refusal
        q = request.query
        advertiser = q.get("advertiser_id")
        if not advertiser:
            return self.envelope(40002, "advertiser_id: Missing data for required field.")
        if advertiser not in self.advertiser_ids:
            return self.envelope(40001, f"No permission to operate advertiser {advertiser}.")
        try:
            page, size = int(q.get("page", 1)), int(q.get("page_size", 10))
        except ValueError:
            return self.envelope(40002, "page and page_size must be integers.")
        if page < 1 or not 1 <= size <= 1000:
            return self.envelope(40002, "page must be >= 1 and page_size between 1 and 1000.")
        rows = [c for c in self.records_of("campaigns") if str(c.get("advertiser_id")) == advertiser]
        total_page = (len(rows) + size - 1) // size
        return self.envelope(
            data={
                "list": rows[(page - 1) * size : page * size],
                "page_info": {"page": page, "page_size": size, "total_number": len(rows), "total_page": total_page},
            }
        )

    async def report(self, request):
        """Synchronous report (BASIC, AUCTION_CAMPAIGN by campaign_id): list parameters JSON-encoded in the query."""
        _token, refusal = await self.api_token(request, "report")
        if refusal is not None:
            return refusal
        q = dict(request.query)
        with self.lock:
            self.report_requests.append(q)
        advertiser = q.get("advertiser_id")
        if not advertiser:
            return self.envelope(40002, "advertiser_id: Missing data for required field.")
        if advertiser not in self.advertiser_ids:
            return self.envelope(40001, f"No permission to operate advertiser {advertiser}.")
        if q.get("report_type") not in self.REPORT_TYPES:
            return self.envelope(40002, f"report_type: Must be one of: {', '.join(sorted(self.REPORT_TYPES))}.")
        if q.get("data_level") not in self.DATA_LEVELS:
            return self.envelope(40002, "data_level: Missing data for required field or not a valid choice.")
        try:
            dimensions = json.loads(q.get("dimensions") or "null")
            metrics = json.loads(q.get("metrics") or '["spend", "impressions"]')
            filtering = json.loads(q.get("filtering") or "[]")
            page, size = int(q.get("page", 1)), int(q.get("page_size", 10))
        except ValueError:
            return self.envelope(40002, "dimensions, metrics and filtering must be JSON; page and page_size integers.")
        if not isinstance(dimensions, list) or not dimensions:
            return self.envelope(40002, "dimensions: Missing data for required field.")
        if q["report_type"] != "BASIC" or q["data_level"] != "AUCTION_CAMPAIGN" or dimensions != ["campaign_id"]:
            return self.envelope(40002, "the emulator serves BASIC reports at AUCTION_CAMPAIGN by campaign_id only.")
        if not isinstance(metrics, list) or not metrics or not set(metrics) <= self.REPORT_METRICS:
            return self.envelope(40002, f"metrics: invalid metric(s) {metrics}.")
        if page < 1 or not 1 <= size <= 1000:
            return self.envelope(40002, "page must be >= 1 and page_size between 1 and 1000.")
        if q.get("query_lifetime") not in (None, "false", "true"):
            return self.envelope(40002, "query_lifetime: Not a valid boolean.")
        if q.get("query_lifetime") != "true":
            try:
                since = dt.date.fromisoformat(q.get("start_date") or "")
                until = dt.date.fromisoformat(q.get("end_date") or "")
            except ValueError:
                return self.envelope(
                    40002, "start_date and end_date are required (YYYY-MM-DD) unless query_lifetime is true."
                )
            if since > until:
                return self.envelope(40002, "start_date must be earlier than or equal to end_date.")
            if (until - since).days >= 365:
                return self.envelope(40002, "The time range cannot exceed 365 days.")
        wanted = None
        if not isinstance(filtering, list):
            return self.envelope(40002, "filtering: must be a list of {field_name, filter_type, filter_value}.")
        for rule in filtering:
            if (
                not isinstance(rule, dict)
                or rule.get("field_name") != "campaign_ids"
                or rule.get("filter_type") != "IN"
                or not isinstance(rule.get("filter_value"), str)
            ):
                return self.envelope(
                    40002, f"filtering: invalid filter {rule!r} (the emulator knows campaign_ids IN '[...]')"
                )
            try:
                ids = json.loads(rule["filter_value"])
            except ValueError:
                return self.envelope(40002, "filtering: filter_value must be a JSON list.")
            if not isinstance(ids, list) or len(ids) > 100:
                return self.envelope(40002, "filtering: campaign_ids takes a list of at most 100 ids.")
            wanted = {str(i) for i in ids}
        rows = [
            r
            for r in self.records_of("reports")
            if str(r.get("advertiser_id")) == advertiser and (wanted is None or str(r.get("campaign_id")) in wanted)
        ]
        total_page = max(1, (len(rows) + size - 1) // size)
        out = [
            {
                "dimensions": {"campaign_id": str(r["campaign_id"])},
                "metrics": {m: str((r.get("metrics") or {}).get(m, "0")) for m in metrics},
            }
            for r in rows[(page - 1) * size : page * size]
        ]
        return self.envelope(
            data={
                "list": out,
                "page_info": {"page": page, "page_size": size, "total_number": len(rows), "total_page": total_page},
            }
        )
