"""Salesforce (instance_url, no expires_in), Mailchimp (data centre, tokens
that never expire), SendGrid (API keys) and Slack (HTTP 200 errors, optional
rotation).
"""

from __future__ import annotations

import datetime as dt

from nexusctl import clock
from nexusctl.errors import OAuthFailed, ProviderError, UsageProblem
from nexusctl.providers.http import Reply
from nexusctl.providers.oauth2 import OAuth2Adapter
from nexusctl.providers.spec import Account, TokenSet, expires_at

# Salesforce sends no expires_in; when introspection fails we assume the
# default session timeout and let a refused call trigger a refresh.
SALESFORCE_DEFAULT_SESSION = dt.timedelta(hours=2)


class Salesforce(OAuth2Adapter):
    def rate_limit(self, reply):
        # The org's 24 h API allowance: 403 [{"errorCode": "REQUEST_LIMIT_EXCEEDED", ...}].
        body = reply.body[0] if isinstance(reply.body, list) and reply.body else reply.body
        codes = {body.get("errorCode"), body.get("error")} if isinstance(body, dict) else set()
        return None if reply.status == 403 and "REQUEST_LIMIT_EXCEEDED" in codes else False

    def tokens_from(self, body: dict) -> TokenSet:
        tokens = super().tokens_from(body)
        for key, name in (("instance_url", "instanceUrl"), ("id", "identityUrl")):
            if body.get(key):
                tokens.metadata[name] = body[key]
        return tokens

    def instance(self, tokens: TokenSet) -> str:
        url = tokens.metadata.get("instanceUrl")
        if not url:
            raise ProviderError("SALESFORCE: the token answer has no instance_url")
        return str(url).rstrip("/")

    async def _expiry(self, tokens: TokenSet) -> TokenSet:
        secret = self.creds.client_secret.get() if self.creds.client_secret else ""
        form = {
            "token": tokens.access_token,
            "token_type_hint": "access_token",
            "client_id": self.creds.client_id or "",
            "client_secret": secret,
        }
        try:
            reply = await self.http(
                "POST",
                f"{self.instance(tokens)}/services/oauth2/introspect",
                data=form,
                secrets=(tokens.access_token, secret),
            )
            exp = reply.get("exp") if reply.status == 200 and reply.get("active") else None
        except ProviderError:
            exp = None
        if isinstance(exp, (int, float)):
            tokens.expires_at = dt.datetime.fromtimestamp(exp, dt.timezone.utc)
        else:
            tokens.expires_at = clock.now() + SALESFORCE_DEFAULT_SESSION
        return tokens

    async def after_exchange(self, tokens: TokenSet, tenant) -> TokenSet:
        return await self._expiry(tokens)

    async def refresh(self, tokens: TokenSet, tenant) -> TokenSet:
        return await self._expiry(await super().refresh(tokens, tenant))

    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.api_json("GET", f"{self.instance(tokens)}/services/oauth2/userinfo", tokens)
        if not reply.get("user_id"):
            raise OAuthFailed("SALESFORCE: the userinfo answer has no user_id")
        return Account(
            str(reply.get("user_id")),
            str(reply.get("name") or reply.get("preferred_username")),
            {"organizationId": reply.get("organization_id")},
        )

    async def revoke(self, tokens: TokenSet, tenant) -> None:
        token = tokens.refresh_token or tokens.access_token
        reply = await self.http(
            "POST", f"{self.instance(tokens)}/services/oauth2/revoke", data={"token": token}, secrets=(token,)
        )
        if reply.status >= 400:
            raise ProviderError(f"SALESFORCE: revoke refused (HTTP {reply.status})")


class Mailchimp(OAuth2Adapter):
    async def after_exchange(self, tokens: TokenSet, tenant) -> TokenSet:
        # The data centre (and so the API host) is only known from the metadata call.
        reply = await self.http(
            "GET",
            f"{self.url('API')}/oauth2/metadata",
            headers={"Authorization": f"OAuth {tokens.access_token}"},
            secrets=(tokens.access_token,),
        )
        if reply.status >= 400 or not reply.get("api_endpoint"):
            raise OAuthFailed(f"MAILCHIMP: the metadata lookup failed (HTTP {reply.status})")
        tokens.metadata.update(
            dc=reply.get("dc"),
            apiEndpoint=reply.get("api_endpoint"),
            accountName=reply.get("accountname"),
            mailchimpUserId=reply.get("user_id"),
        )
        return tokens

    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        user = tokens.metadata.get("mailchimpUserId") or tokens.metadata.get("accountName")
        return Account(str(user), str(tokens.metadata.get("accountName") or user), {})


class SendGrid(OAuth2Adapter):
    """API keys: nothing to exchange or refresh; the key is checked with a who-am-I call."""

    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.http(
            "GET",
            f"{self.url('API')}/v3/user/username",
            headers={"Authorization": f"Bearer {tokens.access_token}"},
            secrets=(tokens.access_token,),
        )
        if reply.status in (401, 403):
            raise UsageProblem("SendGrid refused this API key (check it and its permissions)", field="apiKey")
        if reply.status >= 400 or reply.get("user_id") is None:
            raise ProviderError(f"SENDGRID: the key check failed (HTTP {reply.status})")
        return Account(str(reply.get("user_id")), str(reply.get("username") or reply.get("user_id")), {})

    async def revoke(self, tokens: TokenSet, tenant) -> None:
        return  # the key belongs to the customer's account; they delete it there


class Slack(OAuth2Adapter):
    def token_error(self, reply: Reply) -> str | None:
        # Slack answers errors with HTTP 200 and {"ok": false, "error": "..."}.
        if reply.status >= 400:
            return str(reply.get("error") or f"HTTP {reply.status}")
        if not isinstance(reply.body, dict) or reply.get("ok") is not True:
            return str(reply.get("error") or "ok:false")
        return None

    def is_dead_grant(self, reply, error: str) -> bool:
        return error in {"invalid_auth", "account_inactive", "token_revoked", "invalid_refresh_token"}

    def tokens_from(self, body: dict) -> TokenSet:
        tokens = super().tokens_from(body)
        tokens.token_type = str(body.get("token_type") or "bot")
        tokens.expires_at = expires_at(body.get("expires_in"))
        team = body.get("team") or {}
        tokens.metadata.update(
            teamId=team.get("id"),
            teamName=team.get("name"),
            botUserId=body.get("bot_user_id"),
            appId=body.get("app_id"),
            authedUserId=(body.get("authed_user") or {}).get("id"),
        )
        return tokens

    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.api_json("POST", f"{self.url('API')}/auth.test", tokens)
        if reply.get("ok") is not True:
            raise OAuthFailed(f"SLACK: auth.test failed ({reply.get('error')})")
        team = reply.get("team_id") or tokens.metadata.get("teamId")
        return Account(
            str(team), str(reply.get("team") or tokens.metadata.get("teamName") or team), {"url": reply.get("url")}
        )

    async def revoke(self, tokens: TokenSet, tenant) -> None:
        reply = await self.http(
            "POST",
            self.url("REVOKE"),
            headers={"Authorization": f"Bearer {tokens.access_token}"},
            secrets=(tokens.access_token,),
        )
        if self.token_error(reply) is not None:
            raise ProviderError(f"SLACK: auth.revoke failed ({reply.get('error')})")
