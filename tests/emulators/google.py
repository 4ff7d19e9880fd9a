"""Google OAuth 2.0 for web-server apps: YOUTUBE and GOOGLE_ADS (separate apps and state).

Quirks enforced:
- authorize: ``response_type=code``, space-separated ``scope``, optional PKCE
  (S256), ``access_type`` online|offline, ``prompt`` none|consent|select_account;
- a refresh_token is issued only when the authorization asked
  ``access_type=offline``; refreshing never rotates it (no refresh_token in
  the refresh response); a dead refresh token answers 400
  ``invalid_grant`` "Token has been expired or revoked.";
- a code_verifier sent for a code that had no challenge is refused, as Google
  does ("code_verifier or verifier is not needed.");
- client authentication in the body or HTTP Basic (Google accepts both);
- ``/revoke`` takes an access or refresh token (body or query) and revokes
  the whole grant;
- the API checks scopes: YouTube ``channels`` needs a youtube scope (403
  ``insufficientPermissions``), ``userinfo`` needs openid/email/profile;
- YouTube throttling is 403 ``rateLimitExceeded`` "User-rate limit exceeded.
  Retry after <time>"; other endpoints answer 429 with Retry-After.
- YouTube's daily project quota (tests/emulators/youtube_quota.py): units per call, 403 ``quotaExceeded``
  once spent, reset at midnight Pacific (``set_daily_quota`` makes it small).
- YouTube ``GET /youtube/v3/playlistItems?part=snippet&playlistId=&maxResults=&pageToken=``
  (``calls["playlistItems"]``, throttled like ``channels``): ``maxResults``
  0-50 (default 5), an opaque ``pageToken`` (400 ``invalidPageToken`` when
  unknown), ``nextPageToken`` only when more follow, ``prevPageToken`` after
  the first page; the playlist must be the account's ``uploads`` (else 404
  ``playlistNotFound``); serves ``records_of("uploads")``: playlistItem
  resources, newest first as YouTube lists uploads.

``account`` for YOUTUBE is ``{id, title, uploads}`` (rendered as a channel),
for GOOGLE_ADS the OpenID userinfo object ``{sub, name, email, ...}``.

GOOGLE_ADS API (googleads.googleapis.com/vNN: its API URL; userinfo is its USERINFO URL):
- every call needs a Bearer token with the ``adwords`` scope (401
  UNAUTHENTICATED / 403 ACCESS_TOKEN_SCOPE_INSUFFICIENT) and the
  ``developer-token`` header: absent is 400 requestError
  DEVELOPER_TOKEN_PARAMETER_MISSING, wrong is 401 authenticationError
  DEVELOPER_TOKEN_INVALID; with ``test_access_only`` set, a customer not
  flagged ``test_account`` answers 403 authorizationError
  DEVELOPER_TOKEN_NOT_APPROVED. ``login-customer-id``, when sent, must be
  10 digits (400 authenticationError CLIENT_CUSTOMER_ID_INVALID). Errors are
  ``{"error": {code, message, status, details: [GoogleAdsFailure {errors:
  [{errorCode: {<kind>: <CODE>}, message}], requestId}]}}``;
- ``GET /vNN/customers:listAccessibleCustomers`` (``calls["customers"]``):
  ``resourceNames`` of ``records_of("customers")`` (``{id, manager?, test_account?}``);
- ``POST /vNN/customers/{cid}/googleAds:search`` (``calls["search"]``), JSON
  ``{query, pageToken?}``: a small GAQL subset (``SELECT campaign.* / metrics.*
  FROM campaign [WHERE segments.date BETWEEN 'd1' AND 'd2' | DURING <preset>]
  [ORDER BY campaign.id]``), else 400 queryError; ``pageSize`` is refused
  (400 requestError PAGE_SIZE_NOT_SUPPORTED, as from v17); pages of
  ``page_size`` rows (10,000, as Google's fixed size; tests lower it), an
  opaque ``nextPageToken`` bound to the query and customer (else
  INVALID_PAGE_TOKEN); rows are ``records_of("campaigns")`` whose
  ``customer_id`` is cid, REST JSON (camelCase, int64 as strings, zero
  metrics omitted; ``metrics`` of a record apply to any window); metrics of a
  ``manager`` customer are queryError REQUESTED_METRICS_FOR_MANAGER; an
  unknown customer 403 USER_PERMISSION_DENIED. ``searches`` keeps each search
  request (customer, body, login-customer-id) for tests;
- throttling (``rate_limit_next("search" | "customers")``) is HTTP 429
  RESOURCE_EXHAUSTED with quotaError RESOURCE_EXHAUSTED and
  ``quotaErrorDetails.retryDelay``, no Retry-After header.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import secrets
import time

from .base import Provider
from .comments import YouTubeComments
from .oauth2 import (
    AuthorizeSpec,
    TokenGrants,
    auth_header,
    authorize,
    check_client,
    client_auth,
    json_response,
    read_form,
    token_response,
)
from .youtube_quota import DailyQuota
from .youtube_upload import ResumableUploads

ACCESS_TTL = 3599
TOKEN_ROUTE = r"oauth2\.googleapis\.com/token|www\.googleapis\.com/oauth2/v[34]/token"
YOUTUBE_SCOPES = {
    f"https://www.googleapis.com/auth/{s}"
    for s in ("youtube", "youtube.readonly", "youtube.force-ssl", "youtubepartner")
}
USERINFO_SCOPES = {
    "openid",
    "email",
    "profile",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
}


class Google(TokenGrants, Provider):
    URLS = {
        "AUTH": "accounts.google.com/o/oauth2/v2/auth",
        "TOKEN": "oauth2.googleapis.com/token",
        "REVOKE": "oauth2.googleapis.com/revoke",
    }
    BASE_ROUTES = (
        ("GET", r"accounts\.google\.com/o/oauth2/v2/auth", "authorize"),
        ("POST", TOKEN_ROUTE, "token"),
        ("POST", r"oauth2\.googleapis\.com/revoke", "revoke"),
    )
    SPEC = AuthorizeSpec(scope_sep=" ", pkce="optional")

    def make_client_id(self) -> str:
        return f"{secrets.randbelow(10**12):012d}-{secrets.token_hex(16)}.apps.googleusercontent.com"

    def make_client_secret(self) -> str:
        return "GOCSPX-" + secrets.token_urlsafe(21)

    def rate_limited(self, endpoint, retry_after):
        return json_response(
            {"error": "rate_limit_exceeded", "error_description": "Rate limit exceeded."},
            429,
            {"Retry-After": str(retry_after)},
        )

    @staticmethod
    def _check(request):
        q = request.query
        if q.get("access_type") not in (None, "online", "offline"):
            return f"Invalid access_type: {q.get('access_type')}"
        prompts = set(q.get("prompt", "consent").split(" "))
        if not prompts <= {"none", "consent", "select_account"} or ("none" in prompts and len(prompts) > 1):
            return f"Invalid prompt: {q.get('prompt')}"
        return None

    async def authorize(self, request):
        return await authorize(
            self,
            request,
            self.SPEC,
            check=self._check,
            data=lambda r: {"offline": r.query.get("access_type") == "offline"},
        )

    def client_error(self, request, form):
        bad = check_client(self, client_auth(request, form), ("body", "basic"))
        if bad == "method":
            return token_response(
                {"error": "invalid_request", "error_description": "Could not determine client ID from request."}, 400
            )
        if bad == "client_id":
            return token_response(
                {"error": "invalid_client", "error_description": "The OAuth client was not found."}, 401
            )
        if bad == "secret":
            return token_response({"error": "invalid_client", "error_description": "Unauthorized"}, 401)
        return None

    def unsupported_grant(self, grant_type):
        return token_response(
            {"error": "unsupported_grant_type", "error_description": f"Invalid grant_type: {grant_type}"}, 400
        )

    def redeem_code(self, request, form):
        with self.lock:  # a verifier for a code made without a challenge is refused, the code left unused
            pending = self.codes.get(form.get("code") or "")
            if pending is not None and not pending.challenge and form.get("code_verifier"):
                return pending, "verifier_not_needed"
        return super().redeem_code(request, form)

    def code_error(self, code, reason, form):
        if reason == "missing":
            return token_response(
                {"error": "invalid_request", "error_description": "Missing required parameter: code"}, 400
            )
        if reason == "verifier_not_needed":
            return token_response(
                {"error": "invalid_grant", "error_description": "code_verifier or verifier is not needed."}, 400
            )
        if reason == "redirect":
            return token_response({"error": "redirect_uri_mismatch", "error_description": "Bad Request"}, 400)
        if reason == "verifier_missing":
            return token_response({"error": "invalid_grant", "error_description": "Missing code verifier."}, 400)
        if reason.startswith("verifier"):
            return token_response({"error": "invalid_grant", "error_description": "Invalid code verifier."}, 400)
        return token_response({"error": "invalid_grant", "error_description": "Bad Request"}, 400)

    def first_refresh(self, grant):
        if grant.data.get("offline"):  # access_type=offline at the consent
            return self.issue(grant, "refresh", None, value="1//0" + secrets.token_urlsafe(70))
        return None

    def refresh_error(self, token, status, form):
        return token_response(
            {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}, 400
        )

    def next_refresh(self, old):
        return None  # Google keeps the refresh token and answers a refresh without one

    def new_access(self, grant):
        return self.issue(grant, "access", ACCESS_TTL, value="ya29." + secrets.token_urlsafe(80))

    def token_body(self, grant, access, refresh, grant_type):
        body = {"access_token": access.value, "expires_in": ACCESS_TTL}
        if refresh is not None:
            body["refresh_token"] = refresh.value
        body.update({"scope": " ".join(grant.scope), "token_type": "Bearer"})
        return body

    async def revoke(self, request):
        form = await read_form(request)
        fault = await self.gate("revoke")
        if fault is not None:
            return fault
        token, status = self.status(form.get("token") or request.query.get("token"), ("access", "refresh"))
        if status != "ok":
            return json_response({"error": "invalid_token", "error_description": "Token expired or revoked"}, 400)
        self.kill(token, grant=True)
        return json_response({})

    def bearer_status(self, request):
        return self.status(auth_header(request), "access")

    # Google's OpenID Connect answers (userinfo); each API family says it its own way (YouTube, Google Ads).
    def token_refused(self, endpoint, token, status):
        return json_response(
            {"error": "invalid_request", "error_description": "Invalid Credentials"},
            401,
            {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'},
        )

    def scope_refused(self, endpoint, token):
        return json_response(
            {
                "error": "insufficient_scope",
                "error_description": "Insufficient Permission: needs openid, email or profile",
            },
            403,
        )


USERINFO_REFUSAL = "Insufficient Permission: needs openid, email or profile"


def api_error(
    status: int,
    message: str,
    reason: str,
    domain: str = "global",
    api_status: str | None = None,
    headers: dict | None = None,
):
    error = {"code": status, "message": message, "errors": [{"message": message, "domain": domain, "reason": reason}]}
    if api_status:
        error["status"] = api_status
    return json_response({"error": error}, status, headers)


class YouTubeAnalytics:
    """What fetch_analytics reads (besides ``channels?part=statistics``, the ``channel_statistics``):
    - Data API ``GET /youtube/v3/videos?part=statistics&id=a,b`` (``calls["videos"]``, a YouTube scope, at most
      50 ids): ``records_of("videos")`` rows ``{id, statistics}`` whose id was asked;
    - YouTube Analytics API, its own host ``youtubeanalytics.googleapis.com`` (the ANALYTICS URL): ``GET
      /v2/reports?ids=channel==MINE&startDate&endDate&metrics`` (``calls["analytics"]``) needs
      ``yt-analytics.readonly`` (or the monetary one; else 403 ``insufficientPermissions``), dates
      ``YYYY-MM-DD`` with start <= end and a known metric list (else 400 ``badRequest``); answers one row of
      ``analytics_totals`` in the asked order. ``analytics_requests`` keeps each call's query for tests."""

    ANALYTICS_SCOPES = {
        "https://www.googleapis.com/auth/yt-analytics.readonly",
        "https://www.googleapis.com/auth/yt-analytics-monetary.readonly",
    }
    ANALYTICS_METRICS = {
        "views",
        "likes",
        "dislikes",
        "comments",
        "shares",
        "subscribersGained",
        "subscribersLost",
        "estimatedMinutesWatched",
        "averageViewDuration",
    }
    ANALYTICS_ROUTES = (
        ("GET", r"www\.googleapis\.com/youtube/v3/videos", "videos"),
        ("GET", r"youtubeanalytics\.googleapis\.com/v2/reports", "analytics_reports"),
    )

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.channel_statistics = {
                "viewCount": "54321",
                "subscriberCount": "777",
                "hiddenSubscriberCount": False,
                "videoCount": "3",
            }
            self.analytics_totals = {
                "views": 2400,
                "likes": 180,
                "dislikes": 2,
                "comments": 25,
                "shares": 14,
                "subscribersGained": 40,
                "subscribersLost": 3,
                "estimatedMinutesWatched": 5100,
                "averageViewDuration": 95,
            }
            self.analytics_requests: list[dict] = []

    async def videos(self, request):
        _token, refusal = await self.api_token(request, "videos", YOUTUBE_SCOPES)
        if refusal is not None:
            return refusal
        parts = [p for p in request.query.get("part", "").split(",") if p]
        if not parts or not set(parts) <= {"id", "snippet", "statistics", "contentDetails", "status"}:
            return api_error(
                400, "'part' is required and must name video resource parts", "invalidPart", domain="youtube.part"
            )
        ids = [i for i in request.query.get("id", "").split(",") if i]
        if not ids:
            return api_error(
                400,
                "No filter selected. Expected one of: id, myRating, chart",
                "missingRequiredParameter",
                domain="youtube.parameter",
            )
        if len(ids) > 50:
            return api_error(
                400, "The request specifies more than 50 video ids", "invalidParameter", domain="youtube.parameter"
            )
        items = [
            {
                "kind": "youtube#video",
                "etag": secrets.token_urlsafe(12),
                "id": v["id"],
                **{p: v[p] for p in parts if p in v},
            }
            for v in self.records_of("videos")
            if v["id"] in ids
        ]
        return json_response(
            {
                "kind": "youtube#videoListResponse",
                "etag": secrets.token_urlsafe(12),
                "items": items,
                "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)},
            }
        )

    async def analytics_reports(self, request):
        _token, refusal = await self.api_token(request, "analytics", self.ANALYTICS_SCOPES)
        if refusal is not None:
            return refusal
        q = request.query
        with self.lock:
            self.analytics_requests.append(dict(q))
        if q.get("ids") not in ("channel==MINE", f"channel=={self.account['id']}"):
            return api_error(400, "Invalid value at 'ids'", "badRequest", api_status="INVALID_ARGUMENT")
        try:
            start, end = (dt.date.fromisoformat(q.get(k, "")) for k in ("startDate", "endDate"))
        except ValueError:
            return api_error(
                400, "startDate and endDate are required, as YYYY-MM-DD", "badRequest", api_status="INVALID_ARGUMENT"
            )
        if start > end:
            return api_error(
                400, "The start date must be on or before the end date", "badRequest", api_status="INVALID_ARGUMENT"
            )
        metrics = [m for m in q.get("metrics", "").split(",") if m]
        if not metrics or not set(metrics) <= self.ANALYTICS_METRICS:
            return api_error(
                400, f"Unknown identifier in metrics: {q.get('metrics')}", "badRequest", api_status="INVALID_ARGUMENT"
            )
        return json_response(
            {
                "kind": "youtubeAnalytics#resultTable",
                "columnHeaders": [{"name": m, "columnType": "METRIC", "dataType": "INTEGER"} for m in metrics],
                "rows": [[self.analytics_totals.get(m, 0) for m in metrics]],
            }
        )


class YouTube(DailyQuota, YouTubeAnalytics, YouTubeComments, ResumableUploads, Google):
    NAME = "YOUTUBE"
    URLS = {**Google.URLS, "API": "www.googleapis.com", "ANALYTICS": "youtubeanalytics.googleapis.com"}
    ROUTES = (
        Google.BASE_ROUTES
        + ResumableUploads.UPLOAD_ROUTES
        + YouTubeAnalytics.ANALYTICS_ROUTES
        + (
            ("GET", r"www\.googleapis\.com/youtube/v3/channels", "channels"),
            ("GET", r"www\.googleapis\.com/youtube/v3/playlistItems", "playlist_items"),
        )
    )
    ROUTES += YouTubeComments.COMMENT_ROUTES
    ACCOUNT = {"id": "UCdemo0000000000000000ch", "title": "Demo Channel", "uploads": "UUdemo0000000000000000ch"}
    PARTS = {"id", "snippet", "contentDetails", "statistics", "status", "brandingSettings"}

    def reset(self) -> None:
        super().reset()
        self.reset_uploads()
        self.reset_quota()

    def rate_limited(self, endpoint, retry_after):
        if endpoint not in ("whoami", "playlistItems"):
            return super().rate_limited(endpoint, retry_after)
        when = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(self.now() + retry_after))
        return api_error(
            403,
            f"User-rate limit exceeded. Retry after {when}",
            "rateLimitExceeded",
            domain="usageLimits",
            api_status="PERMISSION_DENIED",
        )

    # Every YouTube API (Data, Analytics, uploads, comments) refuses a call the same way.
    def token_refused(self, endpoint, token, status):
        return api_error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
            "authError",
            api_status="UNAUTHENTICATED",
            headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'},
        )

    def scope_refused(self, endpoint, token):
        return api_error(
            403,
            "Request had insufficient authentication scopes.",
            "insufficientPermissions",
            api_status="PERMISSION_DENIED",
        )

    async def playlist_items(self, request):
        _token, refusal = await self.api_token(request, "playlistItems", YOUTUBE_SCOPES)
        if refusal is not None:
            return refusal
        q = request.query
        parts = [p for p in q.get("part", "").split(",") if p]
        if not parts or not set(parts) <= {"id", "snippet", "contentDetails", "status"}:
            return api_error(
                400,
                "'part' is required and must name playlistItem resource parts",
                "invalidPart",
                domain="youtube.part",
            )
        if not q.get("playlistId"):
            return api_error(
                400,
                "No filter selected. Expected one of: id, playlistId",
                "missingRequiredParameter",
                domain="youtube.parameter",
            )
        if q["playlistId"] != self.account.get("uploads"):
            return api_error(
                404,
                "The playlist identified with the request's playlistId parameter cannot be found.",
                "playlistNotFound",
                domain="youtube.playlistItem",
            )
        try:
            size = int(q.get("maxResults", 5))
            start = int(q["pageToken"][2:-3]) if q.get("pageToken") else 0
            if q.get("pageToken") and not (q["pageToken"].startswith("EA") and q["pageToken"].endswith("QAA")):
                raise ValueError
        except ValueError:
            return api_error(
                400, "The request specifies an invalid page token.", "invalidPageToken", domain="youtube.parameter"
            )
        if not 0 <= size <= 50:
            return api_error(
                400, "Invalid value for maxResults: must be 0 to 50", "invalidParameter", domain="youtube.parameter"
            )
        rows = self.records_of("uploads")
        page = rows[start : start + size]
        items = [{k: v for k, v in r.items() if k in ("kind", "etag", "id") or k in parts} for r in page]
        body = {
            "kind": "youtube#playlistItemListResponse",
            "etag": secrets.token_urlsafe(12),
            "items": items,
            "pageInfo": {"totalResults": len(rows), "resultsPerPage": size},
        }
        if start + size < len(rows) and size:
            body["nextPageToken"] = f"EA{start + size}QAA"
        if start:
            body["prevPageToken"] = f"EA{max(0, start - size)}QAA"
        return json_response(body)

    async def channels(self, request):
        _token, refusal = await self.api_token(request, "whoami", YOUTUBE_SCOPES)
        if refusal is not None:
            return refusal
        parts = [p for p in request.query.get("part", "").split(",") if p]
        if not parts or not set(parts) <= self.PARTS:
            return api_error(
                400, "'part' is required and must name channel resource parts", "invalidPart", domain="youtube.part"
            )
        if request.query.get("mine") != "true":
            return api_error(
                400,
                "No filter selected. Expected one of: mine, id, forUsername, ...",
                "missingRequiredParameter",
                domain="youtube.parameter",
            )
        acc = self.account
        item = {"kind": "youtube#channel", "etag": secrets.token_urlsafe(12), "id": acc["id"]}
        if "snippet" in parts:
            item["snippet"] = {
                "title": acc.get("title", acc.get("name")),
                "description": "",
                "customUrl": "@demo",
                "publishedAt": "2015-01-01T00:00:00Z",
            }
        if "contentDetails" in parts:
            item["contentDetails"] = {"relatedPlaylists": {"likes": "", "uploads": acc.get("uploads", "")}}
        if "statistics" in parts:
            item["statistics"] = dict(self.channel_statistics)
        return json_response(
            {
                "kind": "youtube#channelListResponse",
                "etag": secrets.token_urlsafe(12),
                "pageInfo": {"totalResults": 1, "resultsPerPage": 5},
                "items": [item],
            }
        )


ADS_VERSION = "v26"
GAQL = re.compile(
    r"\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<resource>[a-z_]+)(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>[a-z_.]+(?:\s+(?:ASC|DESC))?))?\s*",
    re.I | re.S,
)
GAQL_DATE = re.compile(
    r"segments\.date\s+(?:BETWEEN\s+'(?P<since>\d{4}-\d\d-\d\d)'\s+AND\s+"
    r"'(?P<until>\d{4}-\d\d-\d\d)'|DURING\s+(?P<during>[A-Z_0-9]+))\s*",
    re.I,
)
CAMPAIGN_FIELDS = {
    "campaign.id": "id",
    "campaign.name": "name",
    "campaign.status": "status",
    "campaign.resource_name": "resourceName",
    "campaign.advertising_channel_type": "advertisingChannelType",
    "campaign.start_date": "startDate",
    "campaign.end_date": "endDate",
}
METRIC_FIELDS = {
    "metrics.impressions": "impressions",
    "metrics.clicks": "clicks",
    "metrics.cost_micros": "costMicros",
    "metrics.conversions": "conversions",
    "metrics.ctr": "ctr",
    "metrics.average_cpc": "averageCpc",
}
INT64_METRICS = {"impressions", "clicks", "costMicros"}  # int64: strings in REST JSON
DURING = {
    "TODAY",
    "YESTERDAY",
    "LAST_7_DAYS",
    "LAST_14_DAYS",
    "LAST_30_DAYS",
    "LAST_BUSINESS_WEEK",
    "THIS_MONTH",
    "LAST_MONTH",
    "THIS_WEEK_SUN_TODAY",
    "THIS_WEEK_MON_TODAY",
    "LAST_WEEK_SUN_SAT",
    "LAST_WEEK_MON_SUN",
}


def ads_error(
    status: int,
    api_status: str,
    message: str,
    kind: str | None = None,
    code: str | None = None,
    detail: str | None = None,
    headers: dict | None = None,
    extra: dict | None = None,
):
    """A Google Ads API error: the google.rpc.Status with a GoogleAdsFailure in its details."""
    error: dict = {"code": status, "message": message, "status": api_status}
    if kind:
        failure = {"errorCode": {kind: code}, "message": detail or message}
        if extra:
            failure.update(extra)
        error["details"] = [
            {
                "@type": f"type.googleapis.com/google.ads.googleads.{ADS_VERSION}.errors.GoogleAdsFailure",
                "errors": [failure],
                "requestId": secrets.token_urlsafe(16),
            }
        ]
    return json_response({"error": error}, status, headers)


class GoogleAds(Google):
    NAME = "GOOGLE_ADS"
    URLS = {
        **Google.URLS,
        "API": f"googleads.googleapis.com/{ADS_VERSION}",
        "USERINFO": "openidconnect.googleapis.com/v1/userinfo",
    }
    ROUTES = Google.BASE_ROUTES + (
        ("GET", r"openidconnect\.googleapis\.com/v1/userinfo|www\.googleapis\.com/oauth2/v3/userinfo", "userinfo"),
        ("GET", r"googleads\.googleapis\.com/v\d+/customers:listAccessibleCustomers", "accessible_customers"),
        ("POST", r"googleads\.googleapis\.com/v\d+/customers/(?P<customer_id>[^/]+)/googleAds:search", "search"),
    )
    ACCOUNT = {
        "sub": "110248495921238986420",
        "name": "Demo Marketer",
        "email": "ads@example.com",
        "email_verified": True,
    }
    ADS_SCOPE = "https://www.googleapis.com/auth/adwords"

    def __init__(self, emu):
        self.developer_token = secrets.token_urlsafe(16)  # the application's; like its credentials, kept by reset()
        super().__init__(emu)

    def reset(self) -> None:
        super().reset()
        self.page_size = 10000
        self.test_access_only = False  # a developer token with Test Account Access only
        self.searches: list[dict] = []

    def rate_limited(self, endpoint, retry_after):
        if endpoint in ("search", "customers"):
            return ads_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
                "quotaError",
                "RESOURCE_EXHAUSTED",
                f"Too many requests. Retry in {retry_after} seconds.",
                extra={
                    "details": {
                        "quotaErrorDetails": {
                            "rateScope": "DEVELOPER",
                            "rateName": "Number of operations for basic access",
                            "retryDelay": f"{retry_after}s",
                        }
                    }
                },
            )
        if endpoint != "whoami":
            return super().rate_limited(endpoint, retry_after)
        return json_response(
            {
                "error": {
                    "code": 429,
                    "message": "Resource has been exhausted (e.g. check quota).",
                    "status": "RESOURCE_EXHAUSTED",
                }
            },
            429,
            {"Retry-After": str(retry_after)},
        )

    def token_refused(self, endpoint, token, status):
        if endpoint == "whoami":  # userinfo: Google's OpenID Connect answer
            return super().token_refused(endpoint, token, status)
        return ads_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected "
            "OAuth 2 access token, login cookie or other valid authentication credential.",
        )

    def scope_refused(self, endpoint, token):
        if endpoint == "whoami":
            return super().scope_refused(endpoint, token)
        return ads_error(403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.")

    async def ads_caller(self, request, endpoint: str):
        """None when the OAuth token, its scope and the developer-token header are good, else the error answer."""
        _token, refusal = await self.api_token(request, endpoint, self.ADS_SCOPE)
        if refusal is not None:
            return refusal
        developer = request.headers.get("developer-token")
        if not developer:
            return ads_error(
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                "requestError",
                "DEVELOPER_TOKEN_PARAMETER_MISSING",
                "The developer-token parameter is required for all requests.",
            )
        if developer != self.developer_token:
            return ads_error(
                401,
                "UNAUTHENTICATED",
                "Request is missing required authentication credential.",
                "authenticationError",
                "DEVELOPER_TOKEN_INVALID",
                "The developer token is not valid.",
            )
        login = request.headers.get("login-customer-id")
        if login is not None and not re.fullmatch(r"\d{10}", login):
            return ads_error(
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                "authenticationError",
                "CLIENT_CUSTOMER_ID_INVALID",
                "Invalid customer ID 'login-customer-id'.",
            )
        return None

    async def accessible_customers(self, request):
        refusal = await self.ads_caller(request, "customers")
        if refusal is not None:
            return refusal
        return json_response({"resourceNames": [f"customers/{c['id']}" for c in self.records_of("customers")]})

    @staticmethod
    def _page_token(customer_id: str, query: str, offset: int) -> str:
        digest = hashlib.sha256(f"{customer_id}|{query}".encode()).hexdigest()[:16]
        return base64.urlsafe_b64encode(f"{offset}:{digest}".encode()).decode().rstrip("=")

    def _offset(self, customer_id: str, query: str, token: str) -> int | None:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            offset, digest = raw.split(":")
            offset = int(offset)
        except (ValueError, UnicodeDecodeError, binascii.Error):
            return None
        return offset if self._page_token(customer_id, query, offset) == token and offset >= 0 else None

    @staticmethod
    def _parse(query: str):
        """(selected fields, error message) for the GAQL subset the emulator knows."""
        match = GAQL.fullmatch(query or "")
        if match is None:
            return None, "Error in query: unexpected input (expected SELECT ... FROM ...)."
        if match["resource"].lower() != "campaign":
            return None, f"Error in query: the emulator only serves FROM campaign, not {match['resource']!r}."
        fields = [f.strip() for f in match["fields"].split(",")]
        unknown = [f for f in fields if f not in CAMPAIGN_FIELDS and f not in METRIC_FIELDS]
        if unknown:
            return None, f"Error in SELECT clause: unrecognized field '{unknown[0]}'."
        where = match["where"] or ""
        if where:
            date = GAQL_DATE.fullmatch(where)
            if date is None:
                return None, f"Error in WHERE clause: the emulator only filters on segments.date, got {where!r}."
            if date["during"] and date["during"].upper() not in DURING:
                return None, f"Error in WHERE clause: invalid date range name {date['during']!r}."
            if date["since"] and date["since"] > date["until"]:
                return None, "Error in WHERE clause: the start date is after the end date."
        return fields, None

    async def search(self, request, customer_id):
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        refusal = await self.ads_caller(request, "search")
        if refusal is not None:
            return refusal
        if not isinstance(body, dict):
            return ads_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        with self.lock:
            self.searches.append(
                {"customer": customer_id, "body": dict(body), "login": request.headers.get("login-customer-id")}
            )
        if "pageSize" in body or "page_size" in body:
            return ads_error(
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                "requestError",
                "PAGE_SIZE_NOT_SUPPORTED",
                "Setting the page size is not supported. Search Responses will have fixed page size of '10000' rows.",
            )
        if not customer_id.isdigit() or len(customer_id) != 10:
            return ads_error(
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                "requestError",
                "INVALID_CUSTOMER_ID",
                "Invalid customer ID.",
            )
        customers = {str(c["id"]): c for c in self.records_of("customers")}
        customer = customers.get(customer_id)
        if customer is None:
            return ads_error(
                403,
                "PERMISSION_DENIED",
                "The caller does not have permission",
                "authorizationError",
                "USER_PERMISSION_DENIED",
                "User doesn't have permission to access customer. Note: If "
                "you're accessing a client customer, the manager's customer id must be set in the "
                "'login-customer-id' header.",
            )
        if self.test_access_only and not customer.get("test_account"):
            return ads_error(
                403,
                "PERMISSION_DENIED",
                "The caller does not have permission",
                "authorizationError",
                "DEVELOPER_TOKEN_NOT_APPROVED",
                "The developer token is only approved for use with "
                "test accounts. To access non-test accounts, apply for Basic or Standard access.",
            )
        query = body.get("query")
        fields, problem = self._parse(query if isinstance(query, str) else "")
        if problem:
            return ads_error(
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                "queryError",
                "BAD_QUERY"
                if "SELECT ..." in problem
                else "UNRECOGNIZED_FIELD"
                if "unrecognized" in problem
                else "INVALID_VALUE_WITH_DURING_OPERATOR"
                if "range name" in problem
                else "PROHIBITED_RESOURCE_TYPE_IN_FROM_CLAUSE"
                if "FROM" in problem
                else "BAD_VALUE_IN_WHERE_CLAUSE",
                problem,
            )
        if customer.get("manager") and any(f in METRIC_FIELDS for f in fields):
            return ads_error(
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                "queryError",
                "REQUESTED_METRICS_FOR_MANAGER",
                "Metrics cannot be requested for a manager account. "
                "To retrieve metrics, issue separate requests against each client account under the "
                "manager account.",
            )
        start = 0
        if body.get("pageToken"):
            start = self._offset(customer_id, query, str(body["pageToken"]))
            if start is None:
                return ads_error(
                    400,
                    "INVALID_ARGUMENT",
                    "Request contains an invalid argument.",
                    "requestError",
                    "INVALID_PAGE_TOKEN",
                    "Page token is invalid.",
                )
        rows = sorted(
            (c for c in self.records_of("campaigns") if str(c.get("customer_id")) == customer_id),
            key=lambda c: int(c["id"]),
        )
        page = rows[start : start + self.page_size]
        results = []
        for row in page:
            campaign = {"resourceName": f"customers/{customer_id}/campaigns/{row['id']}"}
            metrics = {}
            for f in fields:
                if f in CAMPAIGN_FIELDS and f != "campaign.resource_name":
                    key = CAMPAIGN_FIELDS[f]
                    if row.get(key) is not None:
                        campaign[key] = str(row[key]) if key == "id" else row[key]
                elif f in METRIC_FIELDS:
                    key = METRIC_FIELDS[f]
                    value = (row.get("metrics") or {}).get(key)
                    if value:  # proto3 JSON leaves zero values out
                        metrics[key] = str(int(value)) if key in INT64_METRICS else value
            result = {"campaign": campaign}
            if any(f in METRIC_FIELDS for f in fields):
                result["metrics"] = metrics
            results.append(result)
        answer: dict = {
            "results": results,
            "fieldMask": ",".join(re.sub(r"_([a-z])", lambda m: m[1].upper(), f) for f in fields),
        }
        if start + len(page) < len(rows):
            answer["nextPageToken"] = self._page_token(customer_id, query, start + len(page))
        if not results:
            answer.pop("results")  # an empty answer has no results key
        answer["queryResourceConsumption"] = str(len(page))
        return json_response(answer)

    async def userinfo(self, request):
        _token, refusal = await self.api_token(request, "whoami", USERINFO_SCOPES)
        return refusal or json_response(dict(self.account))
