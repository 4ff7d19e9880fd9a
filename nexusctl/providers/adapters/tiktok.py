"""TikTok (Login Kit v2) and TikTok Ads (Business API).

TikTok calls the client id ``client_key`` and rotates refresh tokens. TikTok
Ads is its own world: ``app_id`` on the authorize URL, a JSON token request
``{app_id, secret, auth_code}``, the answer wrapped in ``data``, errors as
HTTP 200 with ``code != 0``, the token sent as an ``Access-Token`` header,
and long-term tokens that never refresh.
"""

from __future__ import annotations

from urllib.parse import urlencode

from nexusctl.errors import OAuthFailed, ProviderError
from nexusctl.providers.http import Reply
from nexusctl.providers.oauth2 import OAuth2Adapter
from nexusctl.providers.spec import Account, TokenSet, split_scope


class TikTok(OAuth2Adapter):
    def tokens_from(self, body: dict) -> TokenSet:
        tokens = super().tokens_from(body)
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
