"""TikTok (Login Kit v2, or TikTok API for Business "TikTok Accounts") and TikTok Ads (Business API).

TikTok calls the client id ``client_key`` and rotates refresh tokens. Each TikTok
connection is made with one kind of TikTok app (``APPS``), chosen at initiate
(``metadata.provider.tiktokApp``, default ``TIKTOK_APP``) and kept in the
connection's provider facts (``tiktokApp``), which every later use reads
(``app_of``; registry.adapter_for picks the adapter). A Login Kit app is
``TikTok``; a TikTok API for Business app is ``TikTokBusiness``: the same
www.tiktok.com consent, but the code is redeemed at business-api.tiktok.com's
``tt_user/oauth2/token/`` and the token is sent as ``Access-Token`` to the
Business API, whose comment endpoints need it. TikTok
Ads is its own world: ``app_id`` on the authorize URL, a JSON token request
``{app_id, secret, auth_code}``, the answer wrapped in ``data``, errors as
HTTP 200 with ``code != 0``, the token sent as an ``Access-Token`` header,
and long-term tokens that never refresh.
"""

from __future__ import annotations

from urllib.parse import urlencode

from nexusctl.errors import OAuthFailed, ProviderError, UsageProblem
from nexusctl.providers.http import Reply
from nexusctl.providers.oauth2 import OAuth2Adapter
from nexusctl.providers.spec import Account, TokenSet, split_scope


class TikTok(OAuth2Adapter):
    def url(self, kind: str, tenant: str | None = None) -> str | None:
        if kind == "BUSINESS":  # TikTok API for Business (TIKTOK_BUSINESS_URL): see TikTokBusiness
            return self.creds.endpoints.get("BUSINESS", BUSINESS_API).rstrip("/")
        return super().url(kind, tenant)

    def tokens_from(self, body: dict) -> TokenSet:
        tokens = super().tokens_from(body)
        tokens.metadata["tiktokApp"] = LOGIN_KIT
        if body.get("open_id"):
            tokens.metadata["openId"] = body["open_id"]
        return tokens

    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.api_json(
            "GET", f"{self.url('API')}/v2/user/info/", tokens, params={"fields": "open_id,display_name,avatar_url"}
        )
        user = reply.get("data", "user") or {}
        if reply.get("error", "code", default="ok") != "ok" or not user.get("open_id"):
            raise OAuthFailed("TIKTOK: the user info answer has no open_id")
        return Account(
            str(user["open_id"]),
            str(user.get("display_name") or user["open_id"]),
            {"avatarUrl": user.get("avatar_url")},
        )


# The two kinds of TikTok app a connection can be made with (metadata.provider.tiktokApp at initiate).
LOGIN_KIT, BUSINESS = "login_kit", "business"
APPS = (LOGIN_KIT, BUSINESS)
BUSINESS_API = "https://business-api.tiktok.com"
BUSINESS_V = "open_api/v1.3"
# What a TikTok API for Business app asks for: the account (business/get/), its videos (business/video/list/)
# and its comments (business/comment/list/, business/comment/reply/create/).
BUSINESS_SCOPES = ("user.info.basic", "video.list", "comment.list", "comment.list.manage")
LOGIN_KIT_SCOPES = ("user.info.basic", "user.info.stats", "video.list", "video.publish")
# What each kind of TikTok app offers (the other kind's actions are refused with VALIDATION_ERROR).
BUSINESS_ONLY = ("fetch_comments", "reply_comment")
LOGIN_KIT_ONLY = ("fetch_posts", "fetch_analytics", "publish")


def app_of(facts) -> str:
    """The kind of TikTok app a connection was made with, from its provider facts. A connection made before the
    kind was recorded for Login Kit too has none: only TikTokBusiness ever stamped it, so none is Login Kit."""
    return BUSINESS if (facts or {}).get("tiktokApp") == BUSINESS else LOGIN_KIT


def business_connection(metadata) -> bool:
    """Whether a TIKTOK connection's token is a TikTok API for Business one (made with tiktokApp business)."""
    return app_of(metadata) == BUSINESS


def chosen_app(value, default: str) -> str:
    """The kind of TikTok app asked for at initiate (``metadata.provider.tiktokApp``), else the deployment's
    default (TIKTOK_APP); anything but one of APPS is a VALIDATION_ERROR."""
    if value is None:
        return default
    if value not in APPS:
        raise UsageProblem(
            f"metadata.provider.tiktokApp must be one of {', '.join(APPS)} (login_kit: posts, analytics, publishing;"
            " business: a TikTok API for Business app, comments)",
            field="metadata.provider.tiktokApp",
        )
    return value


def unavailable(provider: str, action: str, metadata) -> UsageProblem | None:
    """Why a TIKTOK connection cannot run ``action`` with the kind of token it has (None: it can)."""
    if provider != "TIKTOK":
        return None
    if business_connection(metadata) and action in LOGIN_KIT_ONLY:
        return UsageProblem(
            f"TIKTOK {action} uses TikTok's Login Kit API (open.tiktokapis.com); this connection was made with a "
            "TikTok API for Business app (tiktokApp business), whose token that API does not take. Connect "
            "TikTok again with metadata.provider.tiktokApp=login_kit (CLI: --tiktok-app login_kit) for it",
            field="action",
        )
    if not business_connection(metadata) and action in BUSINESS_ONLY:
        return UsageProblem(
            f"TIKTOK {action}: TikTok offers comments only in its API for Business (business-api.tiktok.com, "
            "a TikTok business account, scopes comment.list / comment.list.manage); this connection was made "
            "with a Login Kit app (tiktokApp login_kit), which has no comment endpoints. Connect TikTok again "
            "through the TikTok API for Business app: metadata.provider.tiktokApp=business at initiate (CLI: "
            "--tiktok-app business)",
            field="action",
        )
    return None


class TikTokBusiness(TikTok):
    """TikTok API for Business ("TikTok Accounts"): a TikTok business account authorizes the app at the usual
    www.tiktok.com/v2/auth/authorize/ (client_key, comma-separated scopes); the code goes as JSON ``{client_id,
    client_secret, grant_type, auth_code, redirect_uri}`` to ``tt_user/oauth2/token/`` (refresh:
    ``tt_user/oauth2/refresh_token/`` ``{client_id, client_secret, grant_type, refresh_token}``, rotating),
    answering ``{code, message, request_id, data{access_token, expires_in, open_id, refresh_token,
    refresh_token_expires_in, scope, token_type}}`` (errors: HTTP 200, code != 0). The API wants the token in an
    ``Access-Token`` header and the account's ``open_id`` as ``business_id``."""

    api_header = "Access-Token"

    @property
    def scopes(self) -> tuple[str, ...]:
        return BUSINESS_SCOPES

    def url(self, kind: str, tenant: str | None = None) -> str | None:
        base = self.creds.endpoints.get("BUSINESS", BUSINESS_API).rstrip("/")
        if kind in ("API", "BUSINESS"):
            return base
        if kind == "TOKEN":
            return f"{base}/{BUSINESS_V}/tt_user/oauth2/token/"
        if kind == "REFRESH":
            return f"{base}/{BUSINESS_V}/tt_user/oauth2/refresh_token/"
        if kind == "REVOKE":
            return f"{base}/{BUSINESS_V}/tt_user/oauth2/revoke/"
        return super().url(kind, tenant)

    def _app(self) -> dict:
        secret = self.creds.client_secret.get() if self.creds.client_secret else ""
        return {"client_id": self.creds.client_id or "", "client_secret": secret}

    async def token_request(self, form: dict, tenant, *, secrets: tuple = ()) -> Reply:
        body = {**self._app(), "grant_type": form["grant_type"]}
        if form["grant_type"] == "refresh_token":
            body["refresh_token"] = form.get("refresh_token")
            url = self.url("REFRESH")
        else:
            body.update(auth_code=form.get("code"), redirect_uri=form.get("redirect_uri"))
            url = self.url("TOKEN")
        return await self.http("POST", url, json=body, secrets=secrets + (self._app()["client_secret"],))

    def rate_limit(self, reply: Reply):
        return None if isinstance(reply.body, dict) and reply.get("code") == 40100 else False

    def token_error(self, reply: Reply) -> str | None:
        if reply.status >= 400 or not isinstance(reply.body, dict):
            return f"HTTP {reply.status}"
        code = reply.get("code")
        return None if code == 0 else str(code)

    def is_dead_grant(self, reply: Reply, error: str) -> bool:
        return error in DEAD_CODES

    def tokens_from(self, body: dict) -> TokenSet:
        data = body.get("data") or {}
        if not isinstance(data, dict) or not data.get("access_token"):
            raise ProviderError("TIKTOK: the token answer has no data.access_token")
        tokens = OAuth2Adapter.tokens_from(self, data)
        tokens.metadata["tiktokApp"] = BUSINESS
        if data.get("open_id"):
            tokens.metadata["openId"] = str(data["open_id"])
        return tokens

    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        business_id = tokens.metadata.get("openId")
        if not business_id:
            raise OAuthFailed("TIKTOK: the token answer has no open_id (the business_id)")
        reply = await self.api_json(
            "GET",
            f"{self.url('API')}/{BUSINESS_V}/business/get/",
            tokens,
            header=self.api_header,
            params={"business_id": business_id, "fields": '["username","display_name","profile_image"]'},
        )
        user = reply.get("data") or {}
        if reply.get("code") != 0 or not isinstance(user, dict):
            raise OAuthFailed(f"TIKTOK: the business account lookup failed (code {reply.get('code')})")
        return Account(
            str(business_id),
            str(user.get("display_name") or user.get("username") or business_id),
            {"avatarUrl": user.get("profile_image"), "username": user.get("username"), "accountType": "business"},
        )

    async def revoke(self, tokens: TokenSet, tenant) -> None:
        body = {**self._app(), "access_token": tokens.access_token}
        reply = await self.http(
            "POST", self.url("REVOKE"), json=body, secrets=(tokens.access_token, self._app()["client_secret"])
        )
        if self.token_error(reply) is not None:
            raise ProviderError(f"TIKTOK: revoke refused (code {reply.get('code')})")


# Business API codes for a refresh token that will never work again (40105: incorrect or revoked token).
DEAD_CODES = ("40105", "40104")


class TikTokAds(OAuth2Adapter):
    def authorization_url(self, state: str, verifier, tenant=None, extra_scopes=()) -> str:
        params = {"app_id": self.creds.client_id or "", "state": state, "redirect_uri": self.redirect_uri}
        return f"{self.url('AUTH')}?{urlencode(params)}"

    def code_from(self, query) -> str:
        code = query.get("auth_code") or query.get("code")
        if not code:
            raise OAuthFailed("TIKTOK_ADS: the callback carries no auth_code")
        return code

    def _app(self) -> dict:
        return {
            "app_id": self.creds.client_id or "",
            "secret": self.creds.client_secret.get() if self.creds.client_secret else "",
        }

    async def token_request(self, form: dict, tenant, *, secrets: tuple = ()) -> Reply:
        body = {**self._app(), "auth_code": form.get("code")}
        return await self.http("POST", self.url("TOKEN"), json=body, secrets=secrets + (self._app()["secret"],))

    def rate_limit(self, reply: Reply):
        return None if reply.get("code") == 40100 else False  # "too many requests", sent with HTTP 200

    def token_error(self, reply: Reply) -> str | None:
        if reply.status >= 400 or not isinstance(reply.body, dict):
            return f"HTTP {reply.status}"
        code = reply.get("code")
        return None if code == 0 else str(code)

    def tokens_from(self, body: dict) -> TokenSet:
        data = body.get("data") or {}
        if not data.get("access_token"):
            raise ProviderError("TIKTOK_ADS: the token answer has no data.access_token")
        return TokenSet(
            access_token=data["access_token"],
            token_type="Bearer",
            scope=[str(s) for s in split_scope(data.get("scope"), ",")],
            metadata={"advertiserIds": [str(a) for a in data.get("advertiser_ids") or []]},
        )

    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.api_json("GET", f"{self.url('API')}/open_api/v1.3/user/info/", tokens, header="Access-Token")
        user = reply.get("data") or {}
        if reply.get("code") != 0 or not user.get("id"):
            raise OAuthFailed(f"TIKTOK_ADS: the user info lookup failed (code {reply.get('code')})")
        return Account(str(user["id"]), str(user.get("display_name") or user.get("email") or user["id"]), {})

    async def revoke(self, tokens: TokenSet, tenant) -> None:
        body = {**self._app(), "access_token": tokens.access_token}
        reply = await self.http(
            "POST", self.url("REVOKE"), json=body, secrets=(tokens.access_token, self._app()["secret"])
        )
        if self.token_error(reply) is not None:
            raise ProviderError(f"TIKTOK_ADS: revoke refused (code {reply.get('code')})")
