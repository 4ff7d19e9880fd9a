"""Meta: Facebook and Meta Ads (fb_exchange_token), Instagram (ig_exchange/ig_refresh).

Neither issues refresh tokens. Facebook's "refresh" re-exchanges the current
long-lived token with ``grant_type=fb_exchange_token``; Instagram swaps the
short-lived code token for a 60-day one (``ig_exchange_token``) and renews it
with ``ig_refresh_token``, which only works on a token at least 24 hours old.
Graph errors are ``{"error": {"message", "type", "code"}}``; code 190 means
the token is dead.
"""

from __future__ import annotations

import datetime as dt
import json

from nexusctl import clock
from nexusctl.errors import OAuthFailed, ProviderError
from nexusctl.providers.http import describe
from nexusctl.providers.oauth2 import OAuth2Adapter
from nexusctl.providers.spec import Account, NotYetRefreshable, TokenSet

GRAPH_DEAD_CODES = {"190", "102", "463", "467"}
# Graph throttling: app (4), user (17), page (32), per-call (613), ads BUC (80000-80014).
GRAPH_THROTTLE_CODES = {4, 17, 32, 613, *range(80000, 80015)}
IG_MIN_AGE = dt.timedelta(hours=24)


def _now() -> dt.datetime:
    return clock.now()


class _Graph(OAuth2Adapter):
    def rate_limit(self, reply):
        if reply.status < 400 or reply.get("error", "code") not in GRAPH_THROTTLE_CODES:
            return False
        # The Business Use Case header says when access comes back (minutes).
        usage = next((v for k, v in reply.headers.items() if k.lower() == "x-business-use-case-usage"), None)
        try:
            entries = [e for items in json.loads(usage).values() for e in items] if usage else []
            minutes = max(int(e.get("estimated_time_to_regain_access") or 0) for e in entries) if entries else 0
        except (ValueError, TypeError, AttributeError):
            minutes = 0
        return minutes * 60 if minutes else None

    def is_dead_grant(self, reply, error: str) -> bool:
        return str(reply.get("error", "code", default=error)) in GRAPH_DEAD_CODES

    def _stamp(self, tokens: TokenSet) -> TokenSet:
        tokens.metadata["tokenIssuedAt"] = _now().isoformat().replace("+00:00", "Z")
        return tokens


class Facebook(_Graph):
    async def _fb_exchange(self, current: TokenSet, phase: str) -> TokenSet:
        secret = self.creds.client_secret.get() if self.creds.client_secret else ""
        params = {
            "grant_type": "fb_exchange_token",
            "client_id": self.creds.client_id or "",
            "client_secret": secret,
            "fb_exchange_token": current.access_token,
        }
        reply = await self.http("GET", self.url("TOKEN"), params=params, secrets=(current.access_token, secret))
        fresh = self.parse_tokens(reply, phase, secrets=(current.access_token,))
        fresh.metadata = {**current.metadata}
        return self._stamp(fresh)

    async def after_exchange(self, tokens: TokenSet, tenant) -> TokenSet:
        # The code gives a short-lived (1-2 h) token; swap it for the 60-day one.
        return await self._fb_exchange(tokens, "exchange")

    async def refresh(self, tokens: TokenSet, tenant) -> TokenSet:
        return await self._fb_exchange(tokens, "refresh")

    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.api_json("GET", f"{self.url('API')}/me", tokens, params={"fields": "id,name"})
        if not reply.get("id"):
            raise OAuthFailed(f"{self.name}: the /me answer has no id")
        return Account(str(reply.get("id")), str(reply.get("name") or reply.get("id")), {})

    async def revoke(self, tokens: TokenSet, tenant) -> None:
        reply = await self.http(
            "DELETE",
            self.url("REVOKE"),
            headers={"Authorization": f"Bearer {tokens.access_token}"},
            secrets=(tokens.access_token,),
        )
        if reply.status >= 400:
            raise ProviderError(
                f"{self.name}: revoke refused (HTTP {reply.status}){describe(reply, (tokens.access_token,), ': ')}"
            )


class Instagram(_Graph):
    def tokens_from(self, body: dict) -> TokenSet:
        # The code exchange answers either flat or as {"data": [{...}]}.
        if isinstance(body.get("data"), list) and body["data"]:
            body = body["data"][0]
        tokens = super().tokens_from(body)
        if body.get("user_id") is not None:
            tokens.metadata["userId"] = str(body["user_id"])
        if isinstance(body.get("permissions"), (str, list)):
            tokens.scope = tokens.scope or self._scope_list(body["permissions"])
        return tokens

    @staticmethod
    def _scope_list(value) -> list[str]:
        return value if isinstance(value, list) else [s for s in str(value).split(",") if s]

    async def _graph_token(self, path: str, params: dict, current: TokenSet, phase: str) -> TokenSet:
        reply = await self.http(
            "GET",
            f"{self.url('API')}{path}",
            params=params,
            secrets=(current.access_token, params.get("client_secret")),
        )
        fresh = self.parse_tokens(reply, phase, secrets=(current.access_token,))
        fresh.scope = fresh.scope or current.scope
        fresh.metadata = {**current.metadata, **fresh.metadata}
        return self._stamp(fresh)

    async def after_exchange(self, tokens: TokenSet, tenant) -> TokenSet:
        secret = self.creds.client_secret.get() if self.creds.client_secret else ""
        params = {"grant_type": "ig_exchange_token", "client_secret": secret, "access_token": tokens.access_token}
        return await self._graph_token("/access_token", params, tokens, "exchange")

    async def refresh(self, tokens: TokenSet, tenant) -> TokenSet:
        issued = tokens.metadata.get("tokenIssuedAt")
        if issued:
            # Instagram refuses ig_refresh_token for a token under 24 h old: not a failure, just not yet.
            ready = dt.datetime.fromisoformat(issued) + IG_MIN_AGE
            if _now() < ready:
                hours = int((ready - _now()).total_seconds() // 3600) + 1
                raise NotYetRefreshable(
                    f"INSTAGRAM renews a token only once it is 24 h old: not refreshed, the "
                    f"current token is still valid; refreshable in about {hours} h",
                    ready,
                )
        params = {"grant_type": "ig_refresh_token", "access_token": tokens.access_token}
        return await self._graph_token("/refresh_access_token", params, tokens, "refresh")

    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.api_json("GET", f"{self.url('API')}/me", tokens, params={"fields": "user_id,username"})
        account = reply.get("user_id") or reply.get("id")
        if not account:
            raise OAuthFailed("INSTAGRAM: the /me answer has no user_id")
        username = reply.get("username")
        return Account(str(account), f"@{username}" if username else str(account), {"username": username})
