"""Providers that follow RFC 6749 closely: only who-am-I and revocation differ.

Google (YouTube, Google Ads), X, LinkedIn, HubSpot, PayPal, Zapier, Discord.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

from nexusctl import clock
from nexusctl.errors import OAuthFailed, ProviderError, RateLimited
from nexusctl.providers.http import describe
from nexusctl.providers.oauth2 import OAuth2Adapter
from nexusctl.providers.spec import Account, TokenSet

# Google API throttling sent as HTTP 403 (YouTube Data API): per-user rate and the daily project quota.
GOOGLE_THROTTLE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"}
# The daily project quota: nothing gets through before it resets, at midnight Pacific time (Google's docs).
GOOGLE_QUOTA_REASONS = {"quotaExceeded", "dailyLimitExceeded"}
PACIFIC = zoneinfo.ZoneInfo("America/Los_Angeles")
# ASCII: \d also takes other scripts' digits, which fromisoformat() then refuses (a ValueError, not a wait).
_RETRY_AFTER = re.compile(r"Retry after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)", re.ASCII)


def google_throttle(reply) -> int | None | bool:
    """403 with a throttling reason: the wait from "Retry after <time>" when given (quota: None), else False."""
    if reply.status != 403:
        return False
    errors = reply.get("error", "errors") or []
    if not any(isinstance(e, dict) and e.get("reason") in GOOGLE_THROTTLE_REASONS for e in errors):
        return False
    found = _RETRY_AFTER.search(str(reply.get("error", "message") or ""))
    if not found:
        return None
    try:
        when = dt.datetime.fromisoformat(found.group(1).replace("Z", "+00:00"))
    except ValueError:  # "2026-13-45T...": throttled all the same, for as long as it did not say
        return None
    return max(1, int((when - clock.now()).total_seconds() + 0.999))


def google_quota_reset(reply, now: dt.datetime) -> dt.datetime | None:
    """When the daily quota a 403 quotaExceeded says is spent comes back (next midnight Pacific), else None."""
    if reply.status != 403:
        return None
    errors = reply.get("error", "errors") or []
    if not any(isinstance(e, dict) and e.get("reason") in GOOGLE_QUOTA_REASONS for e in errors):
        return None
    local = now.astimezone(PACIFIC)
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), PACIFIC)
    return midnight.astimezone(dt.timezone.utc)


YOUTUBE_ANALYTICS = "https://youtubeanalytics.googleapis.com"


class YouTube(OAuth2Adapter):
    def url(self, kind: str, tenant: str | None = None) -> str | None:
        # YouTube Analytics (fetch_analytics) has its own host; YOUTUBE_ANALYTICS_URL overrides it (emulators).
        if kind == "ANALYTICS":
            return self.creds.endpoints.get("ANALYTICS", YOUTUBE_ANALYTICS)
        return super().url(kind, tenant)

    def rate_limit(self, reply):
        now = clock.now()
        reset = google_quota_reset(reply, now)
        if reset is not None:  # waiting a few seconds and asking again only spends calls until midnight Pacific
            raise RateLimited(
                f"{self.name}: the project's daily YouTube Data API quota is spent; it resets at "
                f"{reset.strftime('%Y-%m-%dT%H:%M:%SZ')} (midnight Pacific)",
                provider=self.name,
                retry_after=max(1, int((reset - now).total_seconds() + 0.999)),
                quotaResetAt=reset.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        return google_throttle(reply)

    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.api_json(
            "GET",
            f"{self.url('API')}/youtube/v3/channels",
            tokens,
            params={"part": "snippet,contentDetails", "mine": "true"},
        )
        channel = reply.get("items", 0)
        if not isinstance(channel, dict):
            raise OAuthFailed("YOUTUBE: this Google account has no YouTube channel")
        uploads = reply.get("items", 0, "contentDetails", "relatedPlaylists", "uploads")
        return Account(
            str(channel.get("id")),
            str(reply.get("items", 0, "snippet", "title") or channel.get("id")),
            {"channelId": channel.get("id"), "uploadsPlaylistId": uploads},
        )

    async def revoke(self, tokens: TokenSet, tenant) -> None:
        # Google's revoke takes the token alone (no client authentication).
        token = tokens.refresh_token or tokens.access_token
        reply = await self.http("POST", self.url("REVOKE"), data={"token": token}, secrets=(token,))
        if reply.status >= 400:
            raise ProviderError(f"{self.name}: revoke refused (HTTP {reply.status}){describe(reply, (token,), ': ')}")


GOOGLE_USERINFO = "https://openidconnect.googleapis.com/v1/userinfo"


class GoogleAds(YouTube):
    """GOOGLE_ADS_API_URL is the Google Ads API (googleads.googleapis.com/vNN, what the syncs read); the
    account lookup is OpenID userinfo, at GOOGLE_ADS_USERINFO_URL when overridden (emulators)."""

    def url(self, kind: str, tenant: str | None = None) -> str | None:
        if kind == "USERINFO":
            return self.creds.endpoints.get("USERINFO", GOOGLE_USERINFO)
        return super().url(kind, tenant)

    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.api_json("GET", self.url("USERINFO"), tokens)
        sub = reply.get("sub")
        if not sub:
            raise OAuthFailed("GOOGLE_ADS: the userinfo answer has no subject")
        return Account(str(sub), str(reply.get("email") or reply.get("name") or sub), {"email": reply.get("email")})


class Twitter(OAuth2Adapter):
    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.api_json(
            "GET", f"{self.url('API')}/2/users/me", tokens, params={"user.fields": "username,name"}
        )
        user = reply.get("data") or {}
        if not user.get("id"):
            raise OAuthFailed("TWITTER: the users/me answer has no id")
        return Account(
            str(user["id"]),
            f"@{user.get('username')}" if user.get("username") else str(user["id"]),
            {"username": user.get("username")},
        )

    def is_dead_grant(self, reply, error: str) -> bool:
        # X answers a reused (rotated-away) refresh token with invalid_request.
        text = str(reply.get("error_description") or "").lower()
        return error == "invalid_request" and "token" in text


class LinkedIn(OAuth2Adapter):
    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.api_json("GET", f"{self.url('API')}/v2/userinfo", tokens)
        if not reply.get("sub"):
            raise OAuthFailed("LINKEDIN: the userinfo answer has no subject")
        return Account(str(reply.get("sub")), str(reply.get("name") or reply.get("sub")), {})


class HubSpot(OAuth2Adapter):
    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.api_json("GET", f"{self.url('API')}/oauth/v1/access-tokens/{tokens.access_token}", tokens)
        hub_id = reply.get("hub_id")
        if hub_id is None:
            raise OAuthFailed("HUBSPOT: the token information has no hub_id")
        granted = reply.get("scopes")
        if not tokens.scope and isinstance(granted, list):
            # The token answer lists no scopes; the token information does: kept with the connection, so health
            # and the sync engine see what was granted (a portal whose tier lacks a scope grants without it).
            tokens.scope = [str(s) for s in granted]
        return Account(
            str(hub_id), str(reply.get("hub_domain") or hub_id), {"hubId": hub_id, "hubDomain": reply.get("hub_domain")}
        )

    async def revoke(self, tokens: TokenSet, tenant) -> None:
        if not tokens.refresh_token:
            return
        url = f"{self.url('REVOKE')}/{tokens.refresh_token}"
        reply = await self.http("DELETE", url, secrets=(tokens.refresh_token,))
        if reply.status >= 400:
            raise ProviderError(f"HUBSPOT: revoke refused (HTTP {reply.status})")


class PayPal(OAuth2Adapter):
    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.api_json(
            "GET", f"{self.url('API')}/v1/identity/openidconnect/userinfo", tokens, params={"schema": "openid"}
        )
        user_id = reply.get("user_id") or reply.get("payer_id")
        if not user_id:
            raise OAuthFailed("PAYPAL: the userinfo answer has no user_id")
        return Account(str(user_id), str(reply.get("name") or reply.get("email") or user_id), {})


class Zapier(OAuth2Adapter):
    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.api_json("GET", f"{self.url('API')}/v1/profiles/me", tokens)
        if reply.get("id") is None:
            raise OAuthFailed("ZAPIER: the profile answer has no id")
        return Account(str(reply.get("id")), str(reply.get("full_name") or reply.get("email") or reply.get("id")), {})


class Discord(OAuth2Adapter):
    """With the optional ``webhook.incoming`` scope, Discord has the user pick a channel at consent and answers
    the code exchange with a ``webhook`` object (id, token, channel_id, guild_id, url): a webhook in that
    channel. Its token is kept apart from the provider facts (TokenSet.webhook_token, encrypted at rest); its
    URL is never kept: it is rebuilt from the API base, id and token (``webhook_url``)."""

    def tokens_from(self, body: dict) -> TokenSet:
        tokens = super().tokens_from(body)
        webhook = body.get("webhook")
        if isinstance(webhook, dict) and webhook.get("id") and webhook.get("token"):
            tokens.webhook_token = str(webhook["token"])
            tokens.metadata["webhook"] = {
                "id": str(webhook["id"]),
                "channelId": _str(webhook.get("channel_id")),
                "guildId": _str(webhook.get("guild_id")),
                "name": webhook.get("name"),
            }
        return tokens

    def webhook_url(self, webhook_id: str, token: str) -> str:
        return f"{self.url('API')}/v10/webhooks/{webhook_id}/{token}"

    async def release(self, tokens: TokenSet, tenant) -> None:
        """DELETE /webhooks/{id}/{token} (no bot token: the webhook's token is its own authority). Already gone
        (404) is fine: the user may have deleted it in the channel's settings."""
        webhook_id = (tokens.metadata.get("webhook") or {}).get("id")
        if not webhook_id or not tokens.webhook_token:
            return
        reply = await self.http(
            "DELETE", self.webhook_url(webhook_id, tokens.webhook_token), secrets=(tokens.webhook_token,)
        )
        if reply.status >= 400 and reply.status != 404:
            raise ProviderError(
                f"DISCORD: deleting the channel webhook {webhook_id} answered HTTP {reply.status}"
                f"{describe(reply, (tokens.webhook_token,), ': ')}",
                provider="DISCORD",
                status=reply.status,
            )

    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.api_json("GET", f"{self.url('API')}/v10/users/@me", tokens)
        if not reply.get("id"):
            raise OAuthFailed("DISCORD: the users/@me answer has no id")
        return Account(
            str(reply.get("id")),
            str(reply.get("global_name") or reply.get("username")),
            {"username": reply.get("username")},
        )


def _str(value) -> str | None:
    return None if value is None else str(value)
