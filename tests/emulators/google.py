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
- YouTube ``GET /youtube/v3/playlistItems?part=snippet&playlistId=&maxResults=&pageToken=``
  (``calls["playlistItems"]``, throttled like ``channels``): ``maxResults``
  0-50 (default 5), an opaque ``pageToken`` (400 ``invalidPageToken`` when
  unknown), ``nextPageToken`` only when more follow, ``prevPageToken`` after
  the first page; the playlist must be the account's ``uploads`` (else 404
  ``playlistNotFound``); serves ``records_of("uploads")``: playlistItem
  resources, newest first as YouTube lists uploads.

``account`` for YOUTUBE is ``{id, title, uploads}`` (rendered as a channel),
for GOOGLE_ADS the OpenID userinfo object ``{sub, name, email, ...}``.
"""

from __future__ import annotations

import secrets
import time

from .base import Provider
from .oauth2 import (
    AuthorizeSpec,
    auth_header,
    authorize,
    check_client,
    client_auth,
    grant_for,
    json_response,
    read_form,
    redeem,
    token_response,
)

ACCESS_TTL = 3599
TOKEN_ROUTE = r"oauth2\.googleapis\.com/token|www\.googleapis\.com/oauth2/v[34]/token"
YOUTUBE_SCOPES = {f"https://www.googleapis.com/auth/{s}" for s in
                  ("youtube", "youtube.readonly", "youtube.force-ssl", "youtubepartner")}
USERINFO_SCOPES = {"openid", "email", "profile", "https://www.googleapis.com/auth/userinfo.email",
                   "https://www.googleapis.com/auth/userinfo.profile"}


class Google(Provider):
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
        return json_response({"error": "rate_limit_exceeded", "error_description": "Rate limit exceeded."}, 429,
                             {"Retry-After": str(retry_after)})

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
        return await authorize(self, request, self.SPEC, check=self._check,
                               data=lambda r: {"offline": r.query.get("access_type") == "offline"})

    async def token(self, request):
        form = await read_form(request)
        grant_type = form.get("grant_type")
        fault = await self.gate("refresh" if grant_type == "refresh_token" else "token")
        if fault is not None:
            return fault
        auth = client_auth(request, form)
        bad = check_client(self, auth, ("body", "basic"))
        if bad == "method":
            return token_response({"error": "invalid_request",
                                   "error_description": "Could not determine client ID from request."}, 400)
        if bad == "client_id":
            return token_response({"error": "invalid_client",
                                   "error_description": "The OAuth client was not found."}, 401)
        if bad == "secret":
            return token_response({"error": "invalid_client", "error_description": "Unauthorized"}, 401)
        if grant_type == "authorization_code":
            return self._exchange(form, auth.client_id)
        if grant_type == "refresh_token":
            old, status = self.status(form.get("refresh_token"), "refresh")
            if status != "ok":
                return token_response({"error": "invalid_grant",
                                       "error_description": "Token has been expired or revoked."}, 400)
            access = self.issue(old.grant, "access", ACCESS_TTL, value="ya29." + secrets.token_urlsafe(80))
            return token_response({"access_token": access.value, "expires_in": ACCESS_TTL,
                                   "scope": " ".join(old.grant.scope), "token_type": "Bearer"})
        return token_response({"error": "unsupported_grant_type",
                               "error_description": f"Invalid grant_type: {grant_type}"}, 400)

    def _exchange(self, form, client_id):
        if not form.get("code"):
            return token_response({"error": "invalid_request",
                                   "error_description": "Missing required parameter: code"}, 400)
        with self.lock:
            pending = self.codes.get(form["code"])
            if pending is not None and not pending.challenge and form.get("code_verifier"):
                return token_response({"error": "invalid_grant",
                                       "error_description": "code_verifier or verifier is not needed."}, 400)
        code, reason = redeem(self, form.get("code"), client_id=client_id, redirect_uri=form.get("redirect_uri"),
                              verifier=form.get("code_verifier"))
        if reason == "redirect":
            return token_response({"error": "redirect_uri_mismatch", "error_description": "Bad Request"}, 400)
        if reason == "verifier_missing":
            return token_response({"error": "invalid_grant", "error_description": "Missing code verifier."}, 400)
        if reason.startswith("verifier"):
            return token_response({"error": "invalid_grant", "error_description": "Invalid code verifier."}, 400)
        if reason != "ok":
            return token_response({"error": "invalid_grant", "error_description": "Bad Request"}, 400)
        grant = grant_for(self, code)
        access = self.issue(grant, "access", ACCESS_TTL, value="ya29." + secrets.token_urlsafe(80))
        body = {"access_token": access.value, "expires_in": ACCESS_TTL}
        if code.data.get("offline"):
            body["refresh_token"] = self.issue(grant, "refresh", None, value="1//0" + secrets.token_urlsafe(70)).value
        body.update({"scope": " ".join(grant.scope), "token_type": "Bearer"})
        return token_response(body)

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


def api_error(status: int, message: str, reason: str, domain: str = "global", api_status: str | None = None,
              headers: dict | None = None):
    error = {"code": status, "message": message, "errors": [{"message": message, "domain": domain, "reason": reason}]}
    if api_status:
        error["status"] = api_status
    return json_response({"error": error}, status, headers)


class YouTube(Google):
    NAME = "YOUTUBE"
    URLS = {**Google.URLS, "API": "www.googleapis.com"}
    ROUTES = Google.BASE_ROUTES + (
        ("GET", r"www\.googleapis\.com/youtube/v3/channels", "channels"),
        ("GET", r"www\.googleapis\.com/youtube/v3/playlistItems", "playlist_items"),
    )
    ACCOUNT = {"id": "UCdemo0000000000000000ch", "title": "Demo Channel", "uploads": "UUdemo0000000000000000ch"}
    PARTS = {"id", "snippet", "contentDetails", "statistics", "status", "brandingSettings"}

    def rate_limited(self, endpoint, retry_after):
        if endpoint not in ("whoami", "playlistItems"):
            return super().rate_limited(endpoint, retry_after)
        when = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + retry_after))
        return api_error(403, f"User-rate limit exceeded. Retry after {when}", "rateLimitExceeded",
                         domain="usageLimits", api_status="PERMISSION_DENIED")

    def youtube_token(self, request):
        """None for a valid token with a YouTube scope, else the error answer."""
        token, status = self.bearer_status(request)
        if status != "ok":
            return api_error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                             "login cookie or other valid authentication credential.", "authError",
                             api_status="UNAUTHENTICATED",
                             headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                                                          'error="invalid_token"'})
        if not set(token.grant.scope) & YOUTUBE_SCOPES:
            return api_error(403, "Request had insufficient authentication scopes.", "insufficientPermissions",
                             api_status="PERMISSION_DENIED")
        return None

    async def playlist_items(self, request):
        fault = await self.gate("playlistItems")
        if fault is not None:
            return fault
        error = self.youtube_token(request)
        if error is not None:
            return error
        q = request.query
        parts = [p for p in q.get("part", "").split(",") if p]
        if not parts or not set(parts) <= {"id", "snippet", "contentDetails", "status"}:
            return api_error(400, "'part' is required and must name playlistItem resource parts", "invalidPart",
                             domain="youtube.part")
        if not q.get("playlistId"):
            return api_error(400, "No filter selected. Expected one of: id, playlistId", "missingRequiredParameter",
                             domain="youtube.parameter")
        if q["playlistId"] != self.account.get("uploads"):
            return api_error(404, "The playlist identified with the request's playlistId parameter cannot be "
                                  "found.", "playlistNotFound", domain="youtube.playlistItem")
        try:
            size = int(q.get("maxResults", 5))
            start = int(q["pageToken"][2:-3]) if q.get("pageToken") else 0
            if q.get("pageToken") and not (q["pageToken"].startswith("EA") and q["pageToken"].endswith("QAA")):
                raise ValueError
        except ValueError:
            return api_error(400, "The request specifies an invalid page token.", "invalidPageToken",
                             domain="youtube.parameter")
        if not 0 <= size <= 50:
            return api_error(400, "Invalid value for maxResults: must be 0 to 50", "invalidParameter",
                             domain="youtube.parameter")
        rows = self.records_of("uploads")
        page = rows[start:start + size]
        items = [{k: v for k, v in r.items() if k in ("kind", "etag", "id") or k in parts} for r in page]
        body = {"kind": "youtube#playlistItemListResponse", "etag": secrets.token_urlsafe(12), "items": items,
                "pageInfo": {"totalResults": len(rows), "resultsPerPage": size}}
        if start + size < len(rows) and size:
            body["nextPageToken"] = f"EA{start + size}QAA"
        if start:
            body["prevPageToken"] = f"EA{max(0, start - size)}QAA"
        return json_response(body)

    async def channels(self, request):
        fault = await self.gate("whoami")
        if fault is not None:
            return fault
        error = self.youtube_token(request)
        if error is not None:
            return error
        parts = [p for p in request.query.get("part", "").split(",") if p]
        if not parts or not set(parts) <= self.PARTS:
            return api_error(400, "'part' is required and must name channel resource parts", "invalidPart",
                             domain="youtube.part")
        if request.query.get("mine") != "true":
            return api_error(400, "No filter selected. Expected one of: mine, id, forUsername, ...",
                             "missingRequiredParameter", domain="youtube.parameter")
        acc = self.account
        item = {"kind": "youtube#channel", "etag": secrets.token_urlsafe(12), "id": acc["id"]}
        if "snippet" in parts:
            item["snippet"] = {"title": acc.get("title", acc.get("name")), "description": "",
                               "customUrl": "@demo", "publishedAt": "2015-01-01T00:00:00Z"}
        if "contentDetails" in parts:
            item["contentDetails"] = {"relatedPlaylists": {"likes": "", "uploads": acc.get("uploads", "")}}
        return json_response({"kind": "youtube#channelListResponse", "etag": secrets.token_urlsafe(12),
                              "pageInfo": {"totalResults": 1, "resultsPerPage": 5}, "items": [item]})


class GoogleAds(Google):
    NAME = "GOOGLE_ADS"
    URLS = {**Google.URLS, "API": "openidconnect.googleapis.com"}
    ROUTES = Google.BASE_ROUTES + (
        ("GET", r"openidconnect\.googleapis\.com/v1/userinfo|www\.googleapis\.com/oauth2/v3/userinfo", "userinfo"),
    )
    ACCOUNT = {"sub": "110248495921238986420", "name": "Demo Marketer", "email": "ads@example.com",
               "email_verified": True}

    def rate_limited(self, endpoint, retry_after):
        if endpoint != "whoami":
            return super().rate_limited(endpoint, retry_after)
        return json_response({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                                        "status": "RESOURCE_EXHAUSTED"}}, 429, {"Retry-After": str(retry_after)})

    async def userinfo(self, request):
        fault = await self.gate("whoami")
        if fault is not None:
            return fault
        token, status = self.bearer_status(request)
        if status != "ok":
            return json_response({"error": "invalid_request", "error_description": "Invalid Credentials"}, 401,
                                 {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                                                      'error="invalid_token"'})
        if not set(token.grant.scope) & USERINFO_SCOPES:
            return json_response({"error": "insufficient_scope",
                                  "error_description": "Insufficient Permission: needs openid, email or profile"},
                                 403)
        return json_response(dict(self.account))
