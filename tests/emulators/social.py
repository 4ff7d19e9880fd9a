"""X (TWITTER, OAuth 2.0 with PKCE), LINKEDIN and DISCORD.

TWITTER quirks enforced:
- PKCE (S256) is required at authorize; the token endpoint requires HTTP
  Basic (credentials in the body answer 401 ``unauthorized_client``);
- a refresh_token only with the ``offline.access`` scope; refresh tokens are
  single-use, reuse answers 400 ``invalid_request`` "Value passed for the token
  was invalid." and, as X reportedly does, kills the whole token family
  (``reuse_kills_family``, default True);
- ``/2/users/me`` needs ``tweet.read`` and ``users.read``; 401/403/429 are
  problem+json style; 429 carries ``x-rate-limit-*`` (reset is epoch seconds).
- ``GET /2/users/{id}/tweets?max_results=&pagination_token=&tweet.fields=``
  (``calls["tweets"]``, ``tweet.read`` + ``users.read``): ``max_results`` 5-100
  (default 10); serves ``records_of("tweets")`` (newest first) for the
  account's id, nothing for other users; ``meta {result_count, newest_id,
  oldest_id, next_token, previous_token}``, ``next_token`` only when more
  follow; tokens are opaque (400 problem for an unknown one).

LINKEDIN quirks enforced:
- no PKCE, client credentials in the body only;
- the token response lists scopes comma-separated; refresh returns the SAME
  refresh token with ``refresh_token_expires_in`` counting down from the
  original 365 days (never extended);
- ``/v2/userinfo`` (OIDC) needs the ``openid`` scope; errors are
  ``{serviceErrorCode, message, status}``.
- ``GET /rest/posts?q=author&author={urn}&start=&count=`` (``calls["posts"]``):
  needs ``LinkedIn-Version: YYYYMM`` (400 ``VERSION_MISSING``) and
  ``X-Restli-Protocol-Version: 2.0.0``, the ``r_member_social`` scope and the
  member's own ``urn:li:person:{sub}`` (403 ``ACCESS_DENIED`` otherwise);
  ``count`` 1-100 (default 10); serves ``records_of("posts")`` as
  ``elements`` with ``paging {start, count, total, links}`` (a ``next`` link
  only when more follow).
- ``POST /rest/posts`` (``calls["create_post"]``): the same headers,
  ``w_member_social`` (403 ``ACCESS_DENIED``), the member's own author URN
  (403), required ``visibility``/``distribution``/``lifecycleState`` and an
  ``article`` with ``source`` and ``title`` when there is one (422); the same
  commentary twice is 422 "Content is a duplicate of ..."; 201 with the URN
  in ``x-restli-id``; the post is put first in ``records["posts"]`` with
  ``text``, the commentary as rendered in the little text format.

DISCORD quirks enforced:
- PKCE optional, S256 only, verifier 43-128 chars; credentials Basic or body;
- refresh tokens are single-use (reuse: 400 ``{"error":"invalid_grant"}``);
- revoking either token revokes the authorization;
- 429 carries Retry-After, ``X-RateLimit-*`` and a JSON ``retry_after`` float.
- servers: ``records_of("guilds")`` rows ``{id, name, members?, owner_id?, bot?}``;
  ``members`` maps the user ids in that server to their permissions there
  (a bitfield string); a row without ``members`` is one every user is in
  (with its own ``owner``/``permissions``). ``GET /users/@me/guilds`` with a
  user's Bearer token (``guilds`` scope, else 401) lists the user's servers as
  partial guilds ``{id, name, icon, owner, permissions, features}``; with the
  ``Bot`` token, the servers the bot is in (``bot`` not False).
- channels: ``records_of("channels")`` rows ``{id, name, guild_id?, type?,
  botCanPost?}``; ``GET /channels/{id}`` with the Bot token (a user's Bearer
  token: 401) answers the channel object when the bot is in its server, 403
  ``Missing Access`` (50001) when it is not, 404 ``Unknown Channel`` (10003)
  for no such channel; ``POST /channels/{id}/messages`` the same, then 403
  when ``botCanPost`` is False. A channel without ``guild_id`` is in no
  server the emulator knows (a test's shortcut): the bot may use it.
- channel webhooks (OAuth2 ``webhook.incoming``): the consenting user picks a
  channel (``choose_webhook_channel``; default the first ``records_of("channels")``
  row in a server, else a fixed one); the code exchange then answers with a
  ``webhook`` object ``{id, token, channel_id, guild_id, url, name, type,
  application_id}``, kept in ``records["webhooks"]``. ``POST
  /webhooks/{id}/{token}`` needs no Authorization: an unknown id is 404
  ``Unknown Webhook`` (10015), a wrong token 401 ``Invalid Webhook Token``
  (50027); ``content`` 1-2000 characters; ``?wait=true`` answers the message
  (kept in ``records["messages"]`` with ``webhook_id``), else 204.
  ``DELETE /webhooks/{id}/{token}`` removes it (204), with the same refusals.

``account``: TWITTER the ``data`` user object, LINKEDIN the userinfo object,
DISCORD the user object.
"""

from __future__ import annotations

import secrets
import time

from aiohttp import web

from .base import Provider
from .oauth2 import (
    AuthorizeSpec,
    TokenGrants,
    auth_header,
    authorize,
    json_response,
    revoke_token,
    token_response,
)


class TwitterMetrics:
    """fetch_analytics on X: ``/2/users/me?user.fields=public_metrics`` answers ``public_metrics`` (the
    account's, settable); each tweet's ``public_metrics`` is its ``tweets`` record's own field, served
    when ``tweet.fields`` asks for it."""

    PUBLIC_METRICS = {
        "followers_count": 2500,
        "following_count": 180,
        "tweet_count": 3,
        "listed_count": 7,
        "like_count": 640,
    }

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.public_metrics = dict(self.PUBLIC_METRICS)


class Twitter(TwitterMetrics, TokenGrants, Provider):
    NAME = "TWITTER"
    URLS = {
        "AUTH": "x.com/i/oauth2/authorize",
        "TOKEN": "api.x.com/2/oauth2/token",
        "API": "api.x.com",
        "REVOKE": "api.x.com/2/oauth2/revoke",
    }
    ROUTES = (
        ("GET", r"(?:x|twitter)\.com/i/oauth2/authorize", "authorize"),
        ("POST", r"api\.(?:x|twitter)\.com/2/oauth2/token", "token"),
        ("POST", r"api\.(?:x|twitter)\.com/2/oauth2/revoke", "revoke"),
        ("GET", r"api\.(?:x|twitter)\.com/2/users/me", "me"),
        ("GET", r"api\.(?:x|twitter)\.com/2/users/(?P<user_id>\d+)/tweets", "tweets"),
        ("POST", r"api\.(?:x|twitter)\.com/2/tweets", "create_tweet"),
    )
    ACCOUNT = {"id": "1460000000000000000", "name": "Demo Poster", "username": "demoposter"}
    SPEC = AuthorizeSpec(scope_sep=" ", pkce="required")
    ACCESS_TTL = 7200
    reuse_kills_family = True
    CLIENT_METHODS = ("basic",)
    CLIENT_REFUSAL = {"error": "unauthorized_client", "error_description": "Missing valid authorization header"}

    def make_client_id(self) -> str:
        return secrets.token_urlsafe(26)[:34]

    def make_client_secret(self) -> str:
        return secrets.token_urlsafe(38)

    def reset(self) -> None:
        super().reset()
        self.reuse_kills_family = True

    @staticmethod
    def problem(status: int, title: str, detail: str, headers: dict | None = None):
        return json_response(
            {"title": title, "type": "about:blank", "status": status, "detail": detail}, status, headers
        )

    def rate_limited(self, endpoint, retry_after):
        headers = {
            "x-rate-limit-limit": "75",
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(int(self.now() + retry_after)),
        }
        return self.problem(429, "Too Many Requests", "Too Many Requests", headers)

    @staticmethod
    def invalid(description: str = "Value passed for the token was invalid."):
        return token_response({"error": "invalid_request", "error_description": description}, 400)

    def unsupported_grant(self, grant_type):
        return self.invalid(f"Unsupported grant_type {grant_type!r}.")

    def code_error(self, code, reason, params):
        if reason == "redirect":
            return self.invalid("Value passed for the redirect uri did not match the uri of the authorization code.")
        if reason.startswith("verifier"):
            return self.invalid("Value passed for the code verifier was invalid.")
        return self.invalid()

    def first_refresh(self, grant):
        return self.issue(grant, "refresh", None) if "offline.access" in grant.scope else None

    def refresh_error(self, token, status, params):
        if status == "rotated" and self.reuse_kills_family:  # a replayed refresh token: the family dies
            self.kill(token, grant=True)
        return self.invalid()

    def token_body(self, grant, access, refresh, grant_type):
        body = {
            "token_type": "bearer",
            "expires_in": self.ACCESS_TTL,
            "access_token": access.value,
            "scope": " ".join(grant.scope),
        }
        if refresh is not None:
            body["refresh_token"] = refresh.value
        return body

    async def revoke(self, request):
        form, error = await self.client_call(request, "revoke")
        if error is not None:
            return error
        token, _status = self.status(form.get("token"), ("access", "refresh"))
        if token is not None:
            revoke_token(self, token)
        return json_response({"revoked": True})

    async def me(self, request):
        fault = await self.gate("whoami")
        if fault is not None:
            return fault
        token, status = self.status(auth_header(request), "access")
        if status != "ok":
            return self.problem(401, "Unauthorized", "Unauthorized")
        if not {"tweet.read", "users.read"} <= set(token.grant.scope):
            return self.problem(403, "Forbidden", "Missing scopes: tweet.read and users.read are required.")
        fields = [f for f in request.query.get("user.fields", "").split(",") if f]
        user = {k: self.account[k] for k in ("id", "name", "username") if k in self.account}
        user.update({f: self.account[f] for f in fields if f in self.account})
        if "public_metrics" in fields:
            user["public_metrics"] = dict(self.public_metrics)
        return json_response({"data": user})

    async def create_tweet(self, request):
        """POST /2/tweets ``{"text"}``: needs ``tweet.write``; 201 ``{"data": {"id", "text"}}``; the same
        text twice is 403 (X refuses duplicate content); kept in ``records["posted"]`` and put first in
        ``records["tweets"]`` (the timeline); ``lose_next_answer("create_tweet")`` posts and answers 502."""
        fault = await self.gate("create_tweet")
        if fault is not None:
            return fault
        token, status = self.status(auth_header(request), "access")
        if status != "ok":
            return self.problem(401, "Unauthorized", "Unauthorized")
        if "tweet.write" not in token.grant.scope:
            return self.problem(403, "Forbidden", "Missing scope: tweet.write is required.")
        try:
            text = (await request.json()).get("text")
        except ValueError:
            return self.problem(400, "Invalid Request", "The request body is not JSON.")
        if not isinstance(text, str) or not 1 <= len(text) <= 280:
            return self.problem(400, "Invalid Request", "text must be 1-280 characters.")
        with self.lock:
            posted = self.records.setdefault("posted", [])
            if any(p["text"] == text for p in posted):
                return self.problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.")
            tweet = {"id": str(1800000000000000000 + len(posted)), "text": text}
            posted.append(tweet)
            # The user's timeline shows it first (what GET /2/users/{id}/tweets serves), with the
            # created_at X gives when tweet.fields asks for it.
            made = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(self.now()))
            self.records.setdefault("tweets", []).insert(
                0, {**tweet, "edit_history_tweet_ids": [tweet["id"]], "created_at": made}
            )
        return self.answer(
            "create_tweet",
            json_response({"data": {"id": tweet["id"], "text": text, "edit_history_tweet_ids": [tweet["id"]]}}, 201),
        )

    async def tweets(self, request, user_id):
        fault = await self.gate("tweets")
        if fault is not None:
            return fault
        token, status = self.status(auth_header(request), "access")
        if status != "ok":
            return self.problem(401, "Unauthorized", "Unauthorized")
        if not {"tweet.read", "users.read"} <= set(token.grant.scope):
            return self.problem(403, "Forbidden", "Missing scopes: tweet.read and users.read are required.")
        q = request.query
        try:
            size = int(q.get("max_results", 10))
            start = int(q["pagination_token"][len("7140dibdnow9c7btw") :], 36) if q.get("pagination_token") else 0
            if q.get("pagination_token") and not q["pagination_token"].startswith("7140dibdnow9c7btw"):
                raise ValueError
        except ValueError:
            return self.problem(400, "Invalid Request", "One or more parameters to your request was invalid.")
        if not 5 <= size <= 100:
            return self.problem(
                400, "Invalid Request", f"The `max_results` query parameter value [{size}] is not between 5 and 100"
            )
        fields = [f for f in q.get("tweet.fields", "").split(",") if f]
        rows = self.records_of("tweets") if user_id == self.account["id"] else []
        page = rows[start : start + size]
        meta: dict = {"result_count": len(page)}
        body: dict = {"meta": meta}
        if page:
            body["data"] = [
                {
                    **{k: t[k] for k in ("id", "text", "edit_history_tweet_ids") if k in t},
                    **{f: t[f] for f in fields if f in t},
                }
                for t in page
            ]
            meta.update(newest_id=page[0]["id"], oldest_id=page[-1]["id"])
        if start + size < len(rows):
            meta["next_token"] = "7140dibdnow9c7btw" + _base36(start + size)
        if start:
            meta["previous_token"] = "7140dibdnow9c7btw" + _base36(max(0, start - size))
        return json_response(body)


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


class LinkedInPostAnalytics:
    """Member Post Analytics (Community Management API, partners): ``GET /rest/memberCreatorPostAnalytics?q=me&
    queryType=<metric>&aggregation=TOTAL|DAILY`` (``calls["post_analytics"]``) needs the version headers and
    ``r_member_postAnalytics`` (else 403 ACCESS_DENIED); one metric per call (``IMPRESSION``,
    ``MEMBERS_REACHED``, ``REACTION``, ``COMMENT``, ``RESHARE``; MEMBERS_REACHED has no DAILY aggregation, 400);
    answers ``elements: [{count, metricType}]`` from ``post_analytics`` (the member's totals over all posts)."""

    ANALYTICS_SCOPE = "r_member_postAnalytics"
    METRIC_TYPE = "com.linkedin.adsexternalapi.memberanalytics.v1.CreatorPostAnalyticsMetricTypeV1"
    ANALYTICS_ROUTES = (("GET", r"api\.linkedin\.com/rest/memberCreatorPostAnalytics", "member_post_analytics"),)

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.post_analytics = {
                "IMPRESSION": 8800,
                "MEMBERS_REACHED": 3100,
                "REACTION": 240,
                "COMMENT": 31,
                "RESHARE": 9,
            }

    async def member_post_analytics(self, request):
        fault = await self.gate("post_analytics")
        if fault is not None:
            return fault
        token, status = self.status(auth_header(request), "access")
        if status != "ok":
            return json_response({"serviceErrorCode": 65600, "message": "Invalid access token", "status": 401}, 401)
        wrong = self.version_error(request)
        if wrong is not None:
            return wrong
        if self.ANALYTICS_SCOPE not in token.grant.scope:
            return json_response(
                {
                    "serviceErrorCode": 100,
                    "code": "ACCESS_DENIED",
                    "status": 403,
                    "message": "Not enough permissions to access: memberCreatorPostAnalytics.FINDER-me.20251001",
                },
                403,
            )
        q = request.query
        metric, aggregation = q.get("queryType"), q.get("aggregation", "TOTAL")
        if q.get("q") != "me" or metric not in self.post_analytics or aggregation not in ("TOTAL", "DAILY"):
            return json_response(
                {
                    "status": 400,
                    "code": "ILLEGAL_ARGUMENT",
                    "message": "q=me, a queryType among "
                    + ", ".join(self.post_analytics)
                    + " and aggregation TOTAL or DAILY are required",
                },
                400,
            )
        if metric == "MEMBERS_REACHED" and aggregation == "DAILY":
            return json_response(
                {
                    "status": 400,
                    "code": "ILLEGAL_ARGUMENT",
                    "message": "MEMBERS_REACHED does not support DAILY aggregation",
                },
                400,
            )
        element = {"count": self.post_analytics[metric], "metricType": {self.METRIC_TYPE: metric}}
        return json_response({"paging": {"start": 0, "count": 10, "links": []}, "elements": [element]})


class LinkedIn(LinkedInPostAnalytics, TokenGrants, Provider):
    NAME = "LINKEDIN"
    URLS = {
        "AUTH": "www.linkedin.com/oauth/v2/authorization",
        "TOKEN": "www.linkedin.com/oauth/v2/accessToken",
        "API": "api.linkedin.com",
        "REVOKE": "www.linkedin.com/oauth/v2/revoke",
    }
    ROUTES = (
        ("GET", r"www\.linkedin\.com/oauth/v2/authorization", "authorize"),
        ("POST", r"www\.linkedin\.com/oauth/v2/accessToken", "token"),
        ("POST", r"www\.linkedin\.com/oauth/v2/revoke", "revoke"),
        ("POST", r"www\.linkedin\.com/oauth/v2/introspectToken", "introspect"),
        ("GET", r"api\.linkedin\.com/v2/userinfo", "userinfo"),
        ("GET", r"api\.linkedin\.com/rest/posts", "posts"),
        ("POST", r"api\.linkedin\.com/rest/posts", "create_post"),
    ) + LinkedInPostAnalytics.ANALYTICS_ROUTES
    ACCOUNT = {
        "sub": "782bbtaQ",
        "name": "Demo Member",
        "given_name": "Demo",
        "family_name": "Member",
        "email": "member@example.com",
        "email_verified": True,
        "locale": {"country": "US", "language": "en"},
    }
    SPEC = AuthorizeSpec(scope_sep=" ", pkce="none")
    # Community Management API (reading a member's posts): partners only; others get unauthorized_scope_error.
    APPROVAL_ONLY = frozenset({"r_member_social", "r_member_postAnalytics"})  # the latter: post analytics
    APPROVAL_ERROR = "unauthorized_scope_error"
    ACCESS_TTL = 5184000
    REFRESH_TTL = 31536000
    CODE_CLIENT_PARAM = "client_id"
    CODE_VERIFIER = False
    CLIENT_METHODS = ("body",)
    CLIENT_REFUSAL = {"error": "invalid_client", "error_description": "Client authentication failed"}

    def make_client_id(self) -> str:
        return secrets.token_hex(7)

    def rate_limited(self, endpoint, retry_after):
        return json_response(
            {
                "status": 429,
                "serviceErrorCode": 101,
                "code": "TOO_MANY_REQUESTS",
                "message": "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.",
            },
            429,
        )

    def unsupported_grant(self, grant_type):
        return token_response(
            {"error": "unsupported_grant_type", "error_description": f"grant_type {grant_type!r} is not supported"}, 400
        )

    def code_error(self, code, reason, form):
        return token_response(
            {
                "error": "invalid_request",
                "error_description": (
                    "Unable to retrieve access token: appid/redirect uri/code verifier does not match authorization "
                    "code. Or authorization code expired. Or external member binding exists"
                ),
            },
            400,
        )

    def first_refresh(self, grant):
        return self.issue(grant, "refresh", self.REFRESH_TTL)

    def refresh_error(self, token, status, form):
        return token_response(
            {
                "error": "invalid_grant",
                "error_description": (
                    "The provided authorization grant or refresh token is invalid, expired or revoked."
                ),
            },
            400,
        )

    def next_refresh(self, old):
        return old  # LinkedIn keeps the refresh token (and its one-year expiry) across refreshes

    def token_body(self, grant, access, refresh, grant_type):
        return {
            "access_token": access.value,
            "expires_in": self.ACCESS_TTL,
            "refresh_token": refresh.value,
            "refresh_token_expires_in": max(0, round(refresh.expires - self.now())),
            "scope": ",".join(grant.scope),
        }

    async def revoke(self, request):
        form, error = await self.client_call(request, "revoke")
        if error is not None:
            return error
        token, _status = self.status(form.get("token"), ("access", "refresh"))
        if token is not None:
            revoke_token(self, token)
        return json_response({})

    async def introspect(self, request):
        form, error = await self.client_call(request, "introspect")
        if error is not None:
            return error
        token, status = self.status(form.get("token"), ("access", "refresh"))
        if status != "ok":
            return json_response({"active": False})
        return json_response(
            {
                "active": True,
                "client_id": self.client_id,
                "authorized_at": int(token.grant.created),
                "created_at": int(token.issued),
                "status": "active",
                "expires_at": int(token.expires),
                "scope": ",".join(token.grant.scope),
                "auth_type": "3L",
            }
        )

    async def userinfo(self, request):
        fault = await self.gate("whoami")
        if fault is not None:
            return fault
        token, status = self.status(auth_header(request), "access")
        if status != "ok":
            code, message = {
                "expired": (65601, "The token used in the request has expired"),
                "revoked": (65602, "The token used in the request has been revoked by the user"),
            }.get(status, (65600, "Invalid access token"))
            return json_response({"serviceErrorCode": code, "message": message, "status": 401}, 401)
        if "openid" not in token.grant.scope:
            return json_response(
                {
                    "serviceErrorCode": 100,
                    "code": "ACCESS_DENIED",
                    "status": 403,
                    "message": "Not enough permissions to access: userinfo.GET.NO_VERSION",
                },
                403,
            )
        return json_response(dict(self.account_of(token)))

    @staticmethod
    def version_error(request):
        """The versioned /rest API's header checks (LinkedIn-Version YYYYMM, Rest.li 2.0.0)."""
        version = request.headers.get("LinkedIn-Version", "")
        if not version:
            return json_response(
                {
                    "status": 400,
                    "code": "VERSION_MISSING",
                    "message": "A version must be present. "
                    "Please specify a version by adding the LinkedIn-Version header.",
                },
                400,
            )
        if not (len(version) == 6 and version.isdigit()):
            return json_response(
                {"status": 426, "code": "NONEXISTENT_VERSION", "message": f"Requested version {version} is not active"},
                426,
            )
        if request.headers.get("X-Restli-Protocol-Version") != "2.0.0":
            return json_response(
                {
                    "status": 400,
                    "code": "ILLEGAL_ARGUMENT",
                    "message": "This endpoint needs Rest.li protocol 2.0.0 (X-Restli-Protocol-Version)",
                },
                400,
            )
        return None

    @staticmethod
    def invalid(field: str, why: str):
        return json_response(
            {"status": 422, "code": "UNPROCESSABLE_ENTITY", "message": (f"ERROR :: /{field} :: {why}")}, 422
        )

    async def create_post(self, request):
        """POST /rest/posts: a member post; needs ``w_member_social``, the version headers, the member's own
        ``urn:li:person:{sub}`` as author. 201 with the URN in ``x-restli-id`` and no body; the post goes to the
        front of ``records["posts"]`` (what GET serves) with ``text``, the commentary as LinkedIn renders it
        (little format: escapes undone, the text cut at the first unescaped reserved character)."""
        fault = await self.gate("create_post")
        if fault is not None:
            return fault
        token, status = self.status(auth_header(request), "access")
        if status != "ok":
            return json_response({"serviceErrorCode": 65600, "message": "Invalid access token", "status": 401}, 401)
        wrong = self.version_error(request)
        if wrong is not None:
            return wrong
        if "w_member_social" not in token.grant.scope:
            return json_response(
                {
                    "serviceErrorCode": 100,
                    "code": "ACCESS_DENIED",
                    "status": 403,
                    "message": "Not enough permissions to access: partnerApiPostsExternal.CREATE.20251001",
                },
                403,
            )
        try:
            post = await request.json()
        except ValueError:
            return json_response({"status": 400, "code": "ILLEGAL_ARGUMENT", "message": "Invalid JSON"}, 400)
        if not isinstance(post, dict):
            return json_response({"status": 400, "code": "ILLEGAL_ARGUMENT", "message": "Invalid JSON"}, 400)
        me = f"urn:li:person:{self.account_of(token)['sub']}"
        if not post.get("author"):
            return self.invalid("author", "field is required but not found and has no default value")
        if post["author"] != me:
            return json_response(
                {
                    "serviceErrorCode": 100,
                    "code": "ACCESS_DENIED",
                    "status": 403,
                    "message": f"Member {me} is not permitted to create a post as author {post['author']}",
                },
                403,
            )
        if post.get("visibility") not in ("PUBLIC", "CONNECTIONS", "LOGGED_IN"):
            return self.invalid("visibility", "must be one of PUBLIC, CONNECTIONS, LOGGED_IN")
        distribution = post.get("distribution")
        if not isinstance(distribution, dict) or distribution.get("feedDistribution") not in ("MAIN_FEED", "NONE"):
            return self.invalid(
                "distribution/feedDistribution", "field is required but not found and has no default value"
            )
        if post.get("lifecycleState") not in ("PUBLISHED", "DRAFT"):
            return self.invalid("lifecycleState", "must be PUBLISHED or DRAFT")
        commentary = post.get("commentary", "")
        if not isinstance(commentary, str) or len(commentary) > 3000:
            return self.invalid("commentary", "must be a string of at most 3000 characters")
        article = (post.get("content") or {}).get("article") if isinstance(post.get("content"), dict) else None
        if article is not None:
            source = article.get("source") if isinstance(article, dict) else None
            if not isinstance(source, str) or not source.startswith(("http://", "https://")):
                return self.invalid("content/article/source", "must be an http(s) URL")
            if not article.get("title"):
                return self.invalid("content/article/title", "field is required but not found and has no default value")
        elif not commentary.strip():
            return self.invalid("commentary", "a post needs commentary or content")
        now = int(self.now() * 1000)
        with self.lock:
            rows = self.records.setdefault("posts", [])
            if any(r.get("author") == me and r.get("commentary") == commentary for r in rows):
                dup = next(r["id"] for r in rows if r.get("author") == me and r.get("commentary") == commentary)
                return json_response(
                    {"status": 422, "code": "DUPLICATE_POST", "message": f"Content is a duplicate of {dup}"}, 422
                )
            urn = f"urn:li:share:{7300000000000000000 + len(rows)}"
            rows.insert(
                0,
                {
                    "id": urn,
                    "author": me,
                    "commentary": commentary,
                    "text": little_render(commentary),
                    "visibility": post["visibility"],
                    "distribution": distribution,
                    "lifecycleState": post["lifecycleState"],
                    "content": post.get("content"),
                    "isReshareDisabledByAuthor": bool(post.get("isReshareDisabledByAuthor")),
                    "createdAt": now,
                    "publishedAt": now,
                    "lastModifiedAt": now,
                },
            )
        return web.Response(status=201, headers={"x-restli-id": urn, "x-linkedin-id": urn})

    async def posts(self, request):
        fault = await self.gate("posts")
        if fault is not None:
            return fault
        token, status = self.status(auth_header(request), "access")
        if status != "ok":
            return json_response({"serviceErrorCode": 65600, "message": "Invalid access token", "status": 401}, 401)
        wrong = self.version_error(request)
        if wrong is not None:
            return wrong
        q = request.query
        if q.get("q") != "author" or not q.get("author"):
            return json_response(
                {"status": 400, "code": "ILLEGAL_ARGUMENT", "message": "q=author and author are required"}, 400
            )
        me = f"urn:li:person:{self.account_of(token)['sub']}"
        if "r_member_social" not in token.grant.scope or q["author"] != me:
            return json_response(
                {
                    "serviceErrorCode": 100,
                    "code": "ACCESS_DENIED",
                    "status": 403,
                    "message": "Not enough permissions to access: partnerApiPostsExternal.FINDER-author.20251001",
                },
                403,
            )
        try:
            start, count = int(q.get("start", 0)), int(q.get("count", 10))
        except ValueError:
            return json_response({"status": 400, "code": "ILLEGAL_ARGUMENT", "message": "bad start or count"}, 400)
        if start < 0 or not 1 <= count <= 100:
            return json_response(
                {
                    "status": 400,
                    "code": "ILLEGAL_ARGUMENT",
                    "message": "start must be >= 0 and count between 1 and 100",
                },
                400,
            )
        rows = [r for r in self.records_of("posts") if r.get("author") == me]
        paging: dict = {"start": start, "count": count, "links": [], "total": len(rows)}
        if start + count < len(rows):
            paging["links"].append(
                {
                    "type": "application/json",
                    "rel": "next",
                    "href": f"/rest/posts?q=author&author={q['author']}&start={start + count}&count={count}",
                }
            )
        return json_response({"elements": rows[start : start + count], "paging": paging})


LITTLE_RESERVED = set("\\|{}@[]()<>#*_~")


def little_render(text: str) -> str:
    """What LinkedIn shows for "little" text: ``\\x`` is a literal x; a URL is linked whole; an unescaped
    reserved character (outside a URL; ``#word`` is a hashtag) ends the text (LinkedIn cuts the post there
    without an error)."""
    out, i = [], 0
    while i < len(text):
        if text.startswith(("http://", "https://"), i):
            end = i
            while end < len(text) and not text[end].isspace():
                end += 1
            out.append(text[i:end])
            i = end
            continue
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == "#" and i + 1 < len(text) and text[i + 1].isalnum():
            out.append(ch)  # a hashtag
            i += 1
            continue
        if ch in LITTLE_RESERVED:
            break
        out.append(ch)
        i += 1
    return "".join(out)


class Discord(TokenGrants, Provider):
    NAME = "DISCORD"
    URLS = {
        "AUTH": "discord.com/oauth2/authorize",
        "TOKEN": "discord.com/api/oauth2/token",
        "API": "discord.com/api",
        "REVOKE": "discord.com/api/oauth2/token/revoke",
    }
    API = r"discord\.com/api(?:/v\d+)?"
    ROUTES = (
        ("GET", rf"discord\.com/oauth2/authorize|{API}/oauth2/authorize", "authorize"),
        ("POST", rf"{API}/oauth2/token", "token"),
        ("POST", rf"{API}/oauth2/token/revoke", "revoke"),
        ("GET", rf"{API}/users/@me", "me"),
        ("GET", rf"{API}/users/@me/guilds", "guilds"),
        ("GET", rf"{API}/channels/(?P<channel_id>\d+)", "channel"),
        ("POST", rf"{API}/channels/(?P<channel_id>\d+)/messages", "create_message"),
        ("POST", rf"{API}/webhooks/(?P<webhook_id>\d+)/(?P<token>[^/]+)", "execute_webhook"),
        ("DELETE", rf"{API}/webhooks/(?P<webhook_id>\d+)/(?P<token>[^/]+)", "delete_webhook"),
    )
    WEBHOOK_SCOPE = "webhook.incoming"
    DEFAULT_WEBHOOK_CHANNEL = {"id": "345626669224982402", "guild_id": "290926792226357250"}
    ACCOUNT = {
        "id": "80351110224678912",
        "username": "demo",
        "global_name": "Demo User",
        "avatar": None,
        "discriminator": "0",
    }
    SPEC = AuthorizeSpec(scope_sep=" ", pkce="optional")
    ACCESS_TTL = 604800
    CLIENT_METHODS = ("basic", "body")

    def make_client_id(self) -> str:
        return "".join(secrets.choice("0123456789") for _ in range(19))

    def rate_limited(self, endpoint, retry_after):
        headers = {
            "Retry-After": str(retry_after),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{self.now() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": secrets.token_hex(16),
            "X-RateLimit-Scope": "user",
        }
        return json_response(
            {"message": "You are being rate limited.", "retry_after": float(retry_after), "global": False}, 429, headers
        )

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self._webhook_channels: list[dict] = []  # what the next consents with webhook.incoming pick

    async def authorize(self, request):
        return await authorize(self, request, self.SPEC, data=self._picked_channel)

    # --- channel webhooks (webhook.incoming) ------------------------------------------------------------

    def choose_webhook_channel(self, channel_id: str, guild_id: str | None = None) -> None:
        """The next user to consent with webhook.incoming picks this channel for the webhook."""
        with self.lock:
            self._webhook_channels.append({"id": str(channel_id), "guild_id": guild_id and str(guild_id)})

    def _picked_channel(self, request) -> dict:
        if self.WEBHOOK_SCOPE not in request.query.get("scope", "").split(" "):
            return {}
        with self.lock:
            if self._webhook_channels:
                return {"webhook_channel": self._webhook_channels.pop(0)}
        in_server = [c for c in self.records_of("channels") if c.get("guild_id")]
        channel = in_server[0] if in_server else self.DEFAULT_WEBHOOK_CHANNEL
        return {"webhook_channel": {"id": str(channel["id"]), "guild_id": str(channel["guild_id"])}}

    def _new_webhook(self, channel: dict) -> dict:
        with self.lock:
            hooks = self.records.setdefault("webhooks", [])
            hook_id = str(1300000000000000000 + len(hooks) + secrets.randbelow(10**6) * 100)
            token = secrets.token_urlsafe(51)
            hook = {
                "id": hook_id,
                "token": token,
                "channel_id": channel["id"],
                "guild_id": channel.get("guild_id"),
                "name": "Nexus",
                "type": 1,
                "avatar": None,
                "application_id": self.client_id,
            }
            hooks.append(hook)
        return {**hook, "url": f"{self.emu.base_url}/{self.prefix}/discord.com/api/webhooks/{hook_id}/{token}"}

    def _webhook(self, webhook_id: str, token: str):
        """(the webhook, None), or (None, Discord's refusal): 404 Unknown Webhook, 401 Invalid Webhook Token."""
        hook = next((h for h in self.records_of("webhooks") if h["id"] == webhook_id), None)
        if hook is None:
            return None, json_response({"message": "Unknown Webhook", "code": 10015}, 404)
        if not secrets.compare_digest(hook["token"], token):
            return None, json_response({"message": "Invalid Webhook Token", "code": 50027}, 401)
        return hook, None

    async def _post_message(self, request, channel_id, **extra):
        """(the message recorded in ``channel_id``, None), or (None, Discord's 400 for a bad body)."""
        try:
            content = (await request.json()).get("content")
        except ValueError:
            return None, json_response({"message": "400: Bad Request", "code": 0}, 400)
        if not isinstance(content, str) or not 1 <= len(content) <= 2000:
            return None, json_response({"message": "Invalid Form Body", "code": 50035}, 400)
        with self.lock:
            messages = self.records.setdefault("messages", [])
            message = {
                "id": str(1200000000000000000 + len(messages)),
                "channel_id": channel_id,
                "content": content,
                **extra,
            }
            messages.append(message)
        return message, None

    async def execute_webhook(self, request, webhook_id, token):
        fault = await self.gate("execute_webhook")
        if fault is not None:
            return fault
        hook, refused = self._webhook(webhook_id, token)
        if refused is not None:
            return refused
        message, refused = await self._post_message(request, hook["channel_id"], webhook_id=hook["id"])
        if refused is not None:
            return refused
        if request.query.get("wait") != "true":
            return web.Response(status=204)
        return json_response({**message, "type": 0, "author": {"id": hook["id"], "bot": True, "username": "Nexus"}})

    async def delete_webhook(self, request, webhook_id, token):
        fault = await self.gate("delete_webhook")
        if fault is not None:
            return fault
        _hook, refused = self._webhook(webhook_id, token)
        if refused is not None:
            return refused
        with self.lock:
            self.records["webhooks"] = [h for h in self.records.get("webhooks", []) if h["id"] != webhook_id]
        return web.Response(status=204)

    @staticmethod
    def grant_error(description: str | None = None):
        body = {"error": "invalid_grant"}
        if description:
            body["error_description"] = description
        return token_response(body, 400)

    def code_error(self, code, reason, form):
        if reason == "redirect":
            return self.grant_error('Invalid "redirect_uri" in request.')
        if reason == "verifier_invalid":
            return token_response(
                {"error": "invalid_request", "error_description": "code_verifier must be 43 to 128 characters"}, 400
            )
        if reason.startswith("verifier"):
            return self.grant_error('Invalid "code_verifier" in request.')
        return self.grant_error('Invalid "code" in request.')

    def refresh_error(self, token, status, form):
        return self.grant_error()

    def token_body(self, grant, access, refresh, grant_type):
        body = {
            "access_token": access.value,
            "token_type": "Bearer",
            "expires_in": self.ACCESS_TTL,
            "refresh_token": refresh.value,
            "scope": " ".join(grant.scope),
        }
        # Only the code exchange makes a webhook (Discord: "returned in the oauth token response for
        # authorization code grants"); a refresh answers without one.
        if grant_type == "authorization_code" and self.WEBHOOK_SCOPE in grant.scope:
            body["webhook"] = self._new_webhook(grant.data.get("webhook_channel") or self.DEFAULT_WEBHOOK_CHANNEL)
        return body

    async def revoke(self, request):
        form, error = await self.client_call(request, "revoke")
        if error is not None:
            return error
        token, _status = self.status(form.get("token"), ("access", "refresh"))
        if token is not None:
            self.kill(token, grant=True)
        return json_response({})

    @property
    def bot_token(self) -> str:
        """The application's bot token (what DISCORD_BOT_TOKEN holds); constant for the emulator's life."""
        if not hasattr(self, "_bot_token"):
            self._bot_token = "bot." + secrets.token_urlsafe(24)
        return self._bot_token

    def _bot_in(self, guild_id) -> bool:
        guild = next((g for g in self.records_of("guilds") if str(g.get("id")) == str(guild_id)), None)
        return guild is not None and guild.get("bot") is not False

    def _bot_channel(self, request, channel_id):
        """(channel, None) when the bot token is sent and the bot sees the channel, else (None, Discord's answer)."""
        if request.headers.get("Authorization", "") != f"Bot {self.bot_token}":
            return None, json_response({"message": "401: Unauthorized", "code": 0}, 401)
        channel = next((c for c in self.records_of("channels") if str(c.get("id")) == channel_id), None)
        if channel is None:
            return None, json_response({"message": "Unknown Channel", "code": 10003}, 404)
        if channel.get("guild_id") is not None and not self._bot_in(channel["guild_id"]):
            return None, json_response({"message": "Missing Access", "code": 50001}, 403)
        return channel, None

    async def channel(self, request, channel_id):
        """GET /channels/{id} as the bot: the channel object (with its ``guild_id``) when the bot is in its
        server; 403 Missing Access when it is not; 404 Unknown Channel."""
        fault = await self.gate("channel")
        if fault is not None:
            return fault
        channel, refused = self._bot_channel(request, channel_id)
        if refused is not None:
            return refused
        body = {
            "id": str(channel["id"]),
            "type": channel.get("type", 0),
            "name": channel.get("name"),
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
        }
        if channel.get("guild_id") is not None:
            body["guild_id"] = str(channel["guild_id"])
        return json_response(body)

    async def create_message(self, request, channel_id):
        """POST /channels/{id}/messages as the bot (``Authorization: Bot <token>``): the channel must be one
        of ``records_of("channels")`` in a server the bot is in; ``content`` 1-2000 characters; kept in
        ``records["messages"]``. A user's Bearer token is refused (401), as Discord does for this route."""
        fault = await self.gate("create_message")
        if fault is not None:
            return fault
        channel, refused = self._bot_channel(request, channel_id)
        if refused is not None:
            return refused
        if channel.get("botCanPost") is False:
            return json_response({"message": "Missing Access", "code": 50001}, 403)
        message, refused = await self._post_message(request, channel_id)
        if refused is not None:
            return refused
        # The bot's per-channel message bucket, spent by this post (Discord reports the window's last call
        # with Remaining 0 and Reset-After): the bot's own limit, not the connected user's token's.
        headers = {"X-RateLimit-Limit": "1", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1.5"}
        response = json_response({**message, "type": 0, "author": {"id": "1100000000000000001", "bot": True}})
        response.headers.update(headers)
        return response

    def _guilds_of(self, request):
        """(the servers the caller is in, as partial guilds, None), or (None, the 401 answer)."""
        rows = self.records_of("guilds")
        if request.headers.get("Authorization", "") == f"Bot {self.bot_token}":
            return [self._partial(g, None) for g in rows if g.get("bot") is not False], None
        token, status = self.status(auth_header(request), "access")
        if status != "ok" or "guilds" not in token.grant.scope:
            return None, json_response({"message": "401: Unauthorized", "code": 0}, 401)
        user = str(self.account_of(token)["id"])
        return [self._partial(g, user) for g in rows if "members" not in g or user in g["members"]], None

    @staticmethod
    def _partial(guild: dict, user: str | None) -> dict:
        """A partial guild as /users/@me/guilds shows it to this user (None: the bot)."""
        if "members" not in guild:
            return {k: v for k, v in guild.items() if k not in ("bot", "owner_id")}
        owner = user is not None and str(guild.get("owner_id")) == user
        return {
            "id": str(guild["id"]),
            "name": guild.get("name"),
            "icon": None,
            "owner": owner,
            "permissions": str(guild["members"].get(user, "0")) if user else "0",
            "features": [],
        }

    async def guilds(self, request):
        """GET /users/@me/guilds: ``limit`` (1-200, default 200) and ``after`` (a guild id, a snowflake):
        the caller's guilds with a larger id, in ascending id order (Discord's snowflake cursor)."""
        fault = await self.gate("guilds")
        if fault is not None:
            return fault
        mine, refused = self._guilds_of(request)
        if refused is not None:
            return refused
        try:
            limit = int(request.query.get("limit", 200))
            after = int(request.query.get("after", 0))
        except ValueError:
            return json_response({"message": "Invalid Form Body", "code": 50035}, 400)
        if not 1 <= limit <= 200:
            return json_response({"message": "Invalid Form Body", "code": 50035}, 400)
        rows = sorted((g for g in mine if int(g["id"]) > after), key=lambda g: int(g["id"]))
        return json_response(rows[:limit])

    async def me(self, request):
        fault = await self.gate("whoami")
        if fault is not None:
            return fault
        token, status = self.status(auth_header(request), "access")
        if status != "ok" or "identify" not in token.grant.scope:
            return json_response({"message": "401: Unauthorized", "code": 0}, 401)
        return json_response(dict(self.account_of(token)))
