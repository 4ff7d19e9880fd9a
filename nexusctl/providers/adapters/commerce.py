"""Shopify (per-shop hosts, signed callbacks, expiring offline tokens),
WooCommerce (a key-granting redirect, not OAuth) and Stripe Connect.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from urllib.parse import urlencode, urlsplit

from nexusctl import ssrf
from nexusctl.errors import OAuthFailed, ProviderError, UsageProblem
from nexusctl.providers.http import basic_auth, describe
from nexusctl.providers.oauth2 import OAuth2Adapter
from nexusctl.providers.spec import Account, TokenSet

_SHOP = re.compile(r"^[a-z0-9][a-z0-9-]{0,60}\.myshopify\.com$")
SHOPIFY_API_VERSION = "2025-10"


def normalise_shop(value) -> str:
    """`demo`, `demo.myshopify.com` or `https://demo.myshopify.com/` -> `demo.myshopify.com`."""
    if not isinstance(value, str) or not value.strip():
        raise UsageProblem("shop is required for SHOPIFY (e.g. demo.myshopify.com)", field="shop")
    text = value.strip().lower()
    if "://" in text:
        try:
            text = urlsplit(text).hostname or ""
        except ValueError:  # an unclosed IPv6 host ("https://[::1"): a 400, not a 500
            text = ""
    text = text.rstrip("/")
    if "." not in text:
        text += ".myshopify.com"
    if not _SHOP.match(text):
        raise UsageProblem(f"shop {value!r} is not a *.myshopify.com shop", field="shop")
    return text


def throttle_wait(cost) -> int | None:
    """Seconds until the bucket holds the query's cost: (requested - currentlyAvailable) / restoreRate."""
    status = cost.get("throttleStatus") if isinstance(cost, dict) else None
    if not isinstance(status, dict):
        return None
    try:
        requested = float(cost.get("requestedQueryCost") or 0)
        available = float(status.get("currentlyAvailable") or 0)
        rate = float(status.get("restoreRate") or 0)
    except (TypeError, ValueError):
        return None
    if rate <= 0:
        return None
    return max(1, math.ceil(round((requested - available) / rate, 3)))


class Shopify(OAuth2Adapter):
    THROTTLES_IN_OK = True  # GraphQL throttling is HTTP 200 (the API proxy reads such answers too)

    def user_supplied(self, url: str) -> bool:
        # The default endpoints (https://{shop}/...) put the user's shop in the host; an operator's
        # SHOPIFY_*_URL on another host (a proxy, the emulators) is theirs. A shop is always *.myshopify.com.
        return (urlsplit(url).hostname or "").endswith(".myshopify.com")

    def rate_limit(self, reply):
        # GraphQL throttling comes as HTTP 200 with errors[].extensions.code == THROTTLED; the cost extension
        # says how many points the query needs, how many are available and how fast they come back.
        errors = reply.get("errors") if isinstance(reply.body, dict) else None
        if isinstance(errors, list) and any(
            isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors
        ):
            return throttle_wait(reply.get("extensions", "cost"))
        return False

    def authorization_url(self, state: str, verifier, tenant=None, extra_scopes=()) -> str:
        params = {
            "client_id": self.creds.client_id or "",
            "scope": ",".join(self.scopes),
            "redirect_uri": self.redirect_uri,
            "state": state,
        }
        return f"{self.url('AUTH', tenant)}?{urlencode(params)}"

    def check_callback(self, query, tenant) -> None:
        # Shopify signs the callback: hex HMAC-SHA256 of the other parameters, sorted.
        given = query.get("hmac", "")
        message = "&".join(f"{k}={v}" for k, v in sorted((k, v) for k, v in query.items() if k != "hmac"))
        secret = (self.creds.client_secret.get() if self.creds.client_secret else "").encode()
        expected = hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()
        if not given or not hmac.compare_digest(given, expected):
            raise OAuthFailed("SHOPIFY: the callback's hmac does not verify")
        if query.get("shop", "").lower() != tenant:
            raise OAuthFailed("SHOPIFY: the callback names a different shop than the one the flow started with")

    async def token_request(self, form: dict, tenant, *, secrets: tuple = ()):
        secret = self.creds.client_secret.get() if self.creds.client_secret else ""
        body = {"client_id": self.creds.client_id or "", "client_secret": secret}
        if form["grant_type"] == "authorization_code":
            body.update(code=form["code"], expiring="1")  # expiring offline tokens (mandatory from 2027)
        else:
            body.update(grant_type="refresh_token", refresh_token=form["refresh_token"])
        return await self.http(
            "POST",
            self.url("TOKEN", tenant),
            data=body,
            headers={"Accept": "application/json"},
            secrets=secrets + (secret,),
        )

    def tokens_from(self, body: dict) -> TokenSet:
        tokens = super().tokens_from(body)
        # Shopify's answer has no token_type; its access token is a bearer token (holding it is enough),
        # sent in its own header (providers.sync.registry.AUTH_HEADER): the header is not the type.
        tokens.token_type = "Bearer"
        return tokens

    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        url = f"{self.url('API', tenant)}/admin/api/{SHOPIFY_API_VERSION}/graphql.json"
        reply = await self.api_json(
            "POST", url, tokens, header="X-Shopify-Access-Token", json={"query": "{ shop { name myshopifyDomain } }"}
        )
        shop = reply.get("data", "shop") or {}
        domain = shop.get("myshopifyDomain") or tenant
        return Account(str(domain), str(shop.get("name") or domain), {"shop": tenant})

    async def revoke(self, tokens: TokenSet, tenant) -> None:
        reply = await self.http(
            "DELETE",
            self.url("REVOKE", tenant),
            headers={"X-Shopify-Access-Token": tokens.access_token},
            secrets=(tokens.access_token,),
        )
        if reply.status >= 400:
            raise ProviderError(f"SHOPIFY: uninstall refused (HTTP {reply.status})")


STORE_URL = ("storeUrl", "storeUrl")  # (field, label) for the SSRF guard's messages


def normalise_store(value, *, production: bool, allowed_networks=()) -> str:
    """The store's base URL, through the SSRF guard's static checks (the user names the host we will call)."""
    if not isinstance(value, str) or not value.strip():
        raise UsageProblem("storeUrl is required for WOOCOMMERCE (e.g. https://shop.example.com)", field="storeUrl")
    allowed = ("https",) if production else ("https", "http")
    text = value.strip(ssrf.ASCII_BLANKS)  # ASCII blanks only: ssrf.check_url refuses the rest, at the ends as within
    if text.split(":", 1)[0].lower() not in allowed or "?" in text or "#" in text:
        need = "an https URL" if production else "an http(s) URL"
        raise UsageProblem(f"storeUrl must be {need} of the store, without query or credentials", field="storeUrl")
    field, label = STORE_URL
    return ssrf.check_url(
        text, production=production, allowed_networks=allowed_networks, field=field, label=label
    ).rstrip("/")


class WooCommerce(OAuth2Adapter):
    """Keys, not tokens: the store POSTs consumer_key/secret to our callback, then redirects the user."""

    def user_supplied(self, url: str) -> bool:
        return True  # every call goes to the store the user named (there is no operator endpoint)

    @property
    def keys_url(self) -> str:
        return f"{self.redirect_uri}/keys"

    def authorization_url(self, state: str, verifier, tenant=None, extra_scopes=()) -> str:
        params = {
            "app_name": "NEXUS",
            "scope": "read_write",
            "user_id": state,
            "return_url": self.redirect_uri,
            "callback_url": self.keys_url,
        }
        return f"{tenant}/wc-auth/v1/authorize?{urlencode(params)}"

    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        key, _, secret = tokens.access_token.partition(":")
        reply = await self.http(
            "GET", f"{tenant}/wp-json/", headers={"Authorization": basic_auth(key, secret)}, secrets=(key, secret)
        )
        if reply.status >= 400:
            raise OAuthFailed(f"WOOCOMMERCE: the store refused the new keys (HTTP {reply.status})")
        host = urlsplit(tenant).hostname or tenant
        return Account(tenant, str(reply.get("name") or host), {"storeUrl": tenant})

    async def revoke(self, tokens: TokenSet, tenant) -> None:
        return  # keys are deleted by the merchant (WooCommerce > Settings > Advanced > REST API)


class Stripe(OAuth2Adapter):
    def tokens_from(self, body: dict) -> TokenSet:
        tokens = super().tokens_from(body)
        for key, name in (
            ("stripe_user_id", "stripeUserId"),
            ("stripe_publishable_key", "publishableKey"),
            ("livemode", "livemode"),
        ):
            if key in body:
                tokens.metadata[name] = body[key]
        return tokens

    async def whoami(self, tokens: TokenSet, tenant) -> Account:
        reply = await self.api_json("GET", f"{self.url('API')}/v1/account", tokens)
        account = reply.get("id") or tokens.metadata.get("stripeUserId")
        if not account:
            raise OAuthFailed("STRIPE: the account answer has no id")
        name = (
            reply.get("business_profile", "name")
            or reply.get("settings", "dashboard", "display_name")
            or reply.get("email")
            or account
        )
        return Account(str(account), str(name), {})

    async def revoke(self, tokens: TokenSet, tenant) -> None:
        account = tokens.metadata.get("stripeUserId")
        if not account:
            return
        secret = self.creds.client_secret.get() if self.creds.client_secret else ""
        reply = await self.http(
            "POST",
            self.url("REVOKE"),
            data={"client_id": self.creds.client_id or "", "stripe_user_id": account},
            headers={"Authorization": basic_auth(secret, "")},
            secrets=(secret,),
        )
        if reply.status >= 400:
            raise ProviderError(f"STRIPE: deauthorize refused (HTTP {reply.status}){describe(reply, (secret,), ': ')}")
