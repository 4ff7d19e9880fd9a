"""The RFC 6749 client every adapter starts from.

``OAuth2Adapter`` does the standard thing, driven by the provider's spec:
the authorization URL (with PKCE S256 where the spec says so), the code
exchange, a refresh with ``grant_type=refresh_token``, revocation by RFC 7009
``token=``. Provider adapters override the hooks where the provider differs:
``token_request`` (parameter names, JSON bodies), ``token_error`` (errors with
HTTP 200), ``after_exchange`` (a second call for a long-lived token or the
tenant's data centre), ``whoami``, ``refresh``, ``revoke``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets as pysecrets
from urllib.parse import urlencode

import aiohttp

from nexusctl import ssrf
from nexusctl.config import ProviderCredentials
from nexusctl.errors import OAuthFailed, ProviderError, RateLimited, RefreshFailed
from nexusctl.providers.http import Reply, basic_auth, call, describe, session_options
from nexusctl.providers.poster import Poster
from nexusctl.providers.spec import Account, ProviderSpec, TokenSet, expires_at, split_scope

# Error codes that mean the grant itself is gone: the user must connect again.
DEAD_GRANT_ERRORS = frozenset(
    {
        "invalid_grant",
        "invalid_token",
        "token_revoked",
        "invalid_refresh_token",
        "expired_token",
        "token_expired",
        "refresh_token_expired",
        "BAD_REFRESH_TOKEN",
        "account_inactive",
    }
)


def new_verifier() -> str:
    """RFC 7636 code verifier: 32 random bytes, base64url (43 characters)."""
    return pysecrets.token_urlsafe(32)


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class OAuth2Adapter:
    # Exempt from the SSRF guard (WEBHOOK_ALLOWED_NETWORKS); registry.adapter_for sets it from the settings.
    allowed_networks: tuple = ()
    # The process's session through the SSRF guard (providers.http.provider_sessions); without one, a
    # user-supplied host gets a session of its own per call.
    guarded_session: aiohttp.ClientSession | None = None
    # The process's lean poster of form POSTs (providers.poster): token requests to operator-configured hosts.
    poster: Poster | None = None

    def __init__(
        self, spec: ProviderSpec, creds: ProviderCredentials, session: aiohttp.ClientSession | None, public_url: str
    ) -> None:
        self.spec = spec
        self.creds = creds
        self.session = session
        self.public_url = public_url.rstrip("/")
        self.name = spec.provider.value

    @property
    def scopes(self) -> tuple[str, ...]:
        """What the consent asks for: the spec's scopes and the approval-only ones the operator says the app has
        (<PROVIDER>_APPROVED_SCOPES; providers.scopes.requested says the same)."""
        return tuple(self.spec.scopes) + tuple(getattr(self.creds, "approved_scopes", ()))

    # --- URLs ---------------------------------------------------------------

    def url(self, kind: str, tenant: str | None = None) -> str | None:
        """An endpoint: the <PROVIDER>_<KIND>_URL override, else the spec's default."""
        default = {
            "AUTH": self.spec.auth_url,
            "TOKEN": self.spec.token_url,
            "API": self.spec.api_url,
            "REVOKE": self.spec.revoke_url,
        }[kind]
        value = self.creds.endpoints.get(kind, default)
        if value and "{shop}" in value:
            value = value.replace("{shop}", tenant or "")
        return value

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/integrations/oauth/callback/{self.name.lower()}"

    # --- connect ------------------------------------------------------------

    def authorization_url(
        self, state: str, verifier: str | None, tenant: str | None = None, extra_scopes: tuple[str, ...] = ()
    ) -> str:
        """``extra_scopes``: some of the spec's optional scopes, asked for this once."""
        params = {
            self.spec.client_id_param: self.creds.client_id or "",
            "response_type": "code",
            "redirect_uri": self.redirect_uri,
            "state": state,
        }
        scopes = self.scopes + tuple(s for s in extra_scopes if s not in self.scopes)
        if scopes:
            params["scope"] = self.spec.scope_separator.join(scopes)
        if self.spec.pkce and verifier:
            params["code_challenge"] = challenge_of(verifier)
            params["code_challenge_method"] = "S256"
        params.update(self.spec.authorize_params)
        return f"{self.url('AUTH', tenant)}?{urlencode(params)}"

    def code_from(self, query) -> str:
        code = query.get("code")
        if not code:
            raise OAuthFailed(f"{self.name}: the callback carries no authorization code")
        return code

    def check_callback(self, query, tenant: str | None) -> None:
        """Provider-specific checks of the callback's query (Shopify's hmac)."""

    async def exchange(self, query, verifier: str | None, tenant: str | None) -> TokenSet:
        code = self.code_from(query)
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        if self.spec.pkce and verifier:
            form["code_verifier"] = verifier
        reply = await self.token_request(form, tenant, secrets=(code, verifier))
        tokens = self.parse_tokens(reply, "exchange", secrets=(code,))
        return await self.after_exchange(tokens, tenant)

    async def after_exchange(self, tokens: TokenSet, tenant: str | None) -> TokenSet:
        return tokens

    async def whoami(self, tokens: TokenSet, tenant: str | None) -> Account:
        raise NotImplementedError

    # --- refresh / revoke ---------------------------------------------------

    async def refresh(self, tokens: TokenSet, tenant: str | None) -> TokenSet:
        if not tokens.refresh_token:
            raise RefreshFailed(
                f"{self.name}: this connection has no refresh token; connect it again when the access token expires",
                dead=False,
            )
        form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
        reply = await self.token_request(form, tenant, secrets=(tokens.refresh_token,))
        fresh = self.parse_tokens(reply, "refresh", secrets=(tokens.refresh_token,))
        if not fresh.refresh_token:  # not rotated: keep the one we have
            fresh.refresh_token = tokens.refresh_token
        fresh.metadata = {**tokens.metadata, **fresh.metadata}
        return fresh

    async def release(self, tokens: TokenSet, tenant: str | None) -> None:
        """Remove what the connection made at the provider besides the grant (Discord's channel webhook), when
        the integration is deleted; a failure raises NexusError (the caller logs it and deletes anyway)."""

    async def revoke(self, tokens: TokenSet, tenant: str | None) -> None:
        url = self.url("REVOKE", tenant)
        if not url:
            return
        token = tokens.refresh_token or tokens.access_token
        form = {"token": token, "token_type_hint": "refresh_token" if tokens.refresh_token else "access_token"}
        kwargs = self._client_auth(form)
        reply = await self.http("POST", url, data=form, secrets=(token,), **kwargs)
        if reply.status >= 400:
            raise ProviderError(f"{self.name}: revoke refused (HTTP {reply.status}){describe(reply, (token,), ': ')}")

    # --- plumbing -----------------------------------------------------------

    def user_supplied(self, url: str) -> bool:
        """True when ``url``'s host came from the user (a tenant such as a store URL or a shop), not from
        the operator's configuration: such calls go through the SSRF guard."""
        return False

    async def http(self, method: str, url: str, *, secrets: tuple = (), **kwargs) -> Reply:
        if self.session is None:
            raise RuntimeError("this adapter was built without an HTTP session")
        secrets = tuple(s for s in secrets if s)
        if not self.user_supplied(url):
            return await call(self.session, self.name, method, url, secrets=secrets, poster=self.poster, **kwargs)
        # A host the user chose: a session whose connector dials only checked addresses (resolved
        # once, so no DNS rebinding window; IP literals in any spelling too). A refusal reads like any
        # unreachable host ("could not reach ..."), the same whether a port is open or not.
        if self.guarded_session is not None:
            return await call(self.guarded_session, self.name, method, url, secrets=secrets, **kwargs)
        async with aiohttp.ClientSession(
            connector=ssrf.guarded_connector(self.allowed_networks), **session_options()
        ) as guarded:  # as the shared session
            return await call(guarded, self.name, method, url, secrets=secrets, **kwargs)

    def _client_auth(self, form: dict) -> dict:
        """Put the client credentials where this provider wants them; returns request kwargs."""
        secret = self.creds.client_secret.get() if self.creds.client_secret else ""
        if self.spec.client_auth == "basic":
            return {"headers": {"Authorization": basic_auth(self.creds.client_id or "", secret)}}
        form[self.spec.client_id_param] = self.creds.client_id or ""
        form["client_secret"] = secret
        return {}

    async def token_request(self, form: dict, tenant: str | None, *, secrets: tuple = ()) -> Reply:
        kwargs = self._client_auth(form)
        secret = self.creds.client_secret.get() if self.creds.client_secret else None
        headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
        return await self.http(
            "POST", self.url("TOKEN", tenant), data=form, headers=headers, secrets=secrets + (secret,), **kwargs
        )

    def token_error(self, reply: Reply) -> str | None:
        """The provider's error code if the reply is an error, else None."""
        if reply.status >= 400:
            code = reply.get("error")
            if isinstance(code, dict):
                code = code.get("code") or code.get("type")
            return str(code or reply.get("status") or f"HTTP {reply.status}")
        if isinstance(reply.body, dict) and reply.get("error") and not reply.get("access_token"):
            return str(reply.get("error"))
        if not isinstance(reply.body, dict):
            return "unreadable token response"
        return None

    def raise_token_error(self, reply: Reply, phase: str, error: str, secrets: tuple) -> None:
        detail = describe(reply, secrets + ((self.creds.client_secret.get(),) if self.creds.client_secret else ()))
        if phase == "exchange":
            raise OAuthFailed(f"{self.name} refused the authorization code: {detail or error}", provider=self.name)
        dead = error in DEAD_GRANT_ERRORS or self.is_dead_grant(reply, error)
        raise RefreshFailed(f"{self.name} refused the refresh: {detail or error}", provider=self.name, dead=dead)

    def is_dead_grant(self, reply: Reply, error: str) -> bool:
        return False

    def rate_limit(self, reply: Reply) -> int | None | bool:
        """Provider-specific throttling signals besides HTTP 429 (which http.call handles).

        False: not throttled; otherwise the seconds to wait (None when unknown).
        """
        return False

    def _check_throttle(self, reply: Reply) -> None:
        wait = self.rate_limit(reply)
        if wait is not False:
            raise RateLimited(f"{self.name}: rate limited by the provider", provider=self.name, retry_after=wait)

    def parse_tokens(self, reply: Reply, phase: str, *, secrets: tuple = ()) -> TokenSet:
        self._check_throttle(reply)
        error = self.token_error(reply)
        if error is not None:
            self.raise_token_error(reply, phase, error, secrets)
        return self.tokens_from(reply.body)

    def tokens_from(self, body: dict) -> TokenSet:
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise ProviderError(f"{self.name}: the token response has no access_token")
        tokens = TokenSet(
            access_token=access,
            refresh_token=body.get("refresh_token") or None,
            token_type=_token_type(body.get("token_type")),
            expires_at=expires_at(body.get("expires_in")),
            scope=split_scope(body.get("scope"), self.spec.scope_separator),
        )
        # Where the provider says when the refresh token itself dies (TikTok, LinkedIn, Shopify), keep it:
        # the health check warns before a connection can no longer renew.
        refresh_expiry = expires_at(body.get("refresh_token_expires_in", body.get("refresh_expires_in")))
        if tokens.refresh_token and refresh_expiry is not None:
            tokens.metadata["refreshTokenExpiresAt"] = refresh_expiry.isoformat().replace("+00:00", "Z")
        return tokens

    async def api_json(self, method: str, url: str, tokens: TokenSet, *, header: str = "bearer", **kwargs) -> Reply:
        """An API call with the access token; a refused token is OAUTH_FAILED naming the call."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if header == "bearer":
            headers["Authorization"] = f"Bearer {tokens.access_token}"
        else:
            headers[header] = tokens.access_token
        reply = await self.http(method, url, headers=headers, secrets=(tokens.access_token,), **kwargs)
        self._check_throttle(reply)
        if reply.status >= 400:
            raise OAuthFailed(
                f"{self.name}: the account lookup was refused (HTTP {reply.status})"
                f"{describe(reply, (tokens.access_token,), ': ')}",
                provider=self.name,
            )
        return reply


def _token_type(value) -> str | None:
    if not value:
        return "Bearer"
    return "Bearer" if str(value).lower() == "bearer" else str(value)[:32]
