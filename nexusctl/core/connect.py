"""Connecting an account: initiate, callback, WooCommerce keys, API keys.

The flow (RFC 9700 for clients): initiate checks the caller's redirectUri
against the allowed origins (no open redirector), makes a 256-bit state and,
where the provider supports it, a PKCE S256 verifier; the callback consumes
the state once, exchanges the code, asks the provider who the account is,
stores the tokens encrypted and answers with a redirect to the caller's
redirectUri carrying ``status=success&integrationId=…`` or
``status=error&code=…`` — never a code, token or verifier.

Everything here is ``async``; database work goes through ``svc.run`` (the
daemon's DB threads, or a direct call in the CLI).
"""

from __future__ import annotations

import logging
import re
import unicodedata
import uuid
from urllib.parse import urlencode, urlsplit, urlunsplit

from nexusctl import ssrf, telemetry
from nexusctl.config import Settings, origin_of
from nexusctl.core import connections, integrations
from nexusctl.core.ids import parse_uuid
from nexusctl.core.metadata import check_metadata
from nexusctl.core.oauth_states import Flow, new_state
from nexusctl.core.runtime import Runtime
from nexusctl.core.storable import check_one_line
from nexusctl.enums import Provider
from nexusctl.errors import NexusError, OAuthFailed, ProviderNotConfigured, UsageProblem
from nexusctl.providers.adapters import tiktok
from nexusctl.providers.adapters.commerce import normalise_shop, normalise_store
from nexusctl.providers.oauth2 import new_verifier
from nexusctl.providers.registry import SPECS
from nexusctl.providers.spec import ConnectKind, TokenSet

log = logging.getLogger(__name__)

_ERROR_CODE = re.compile(r"[^a-z0-9_]")


def check_redirect(settings: Settings, redirect_uri) -> str:
    """Only the frontend's origin or an ALLOWED_REDIRECT_ORIGINS one: never an open redirector."""
    if not isinstance(redirect_uri, str) or not redirect_uri.strip(ssrf.ASCII_BLANKS):
        raise UsageProblem("redirectUri is required", field="redirectUri")
    # ASCII blanks only: str.strip() took U+0085 or U+2028 off the ends, and kept the URL as if it had none.
    redirect_uri = redirect_uri.strip(ssrf.ASCII_BLANKS)
    check_one_line(redirect_uri, "redirectUri")  # controls, and the bidi ones that make a URL read other than it is
    if any(c.isspace() or unicodedata.category(c) == "Cf" for c in redirect_uri):  # U+3000, a zero-width space
        raise UsageProblem("redirectUri contains whitespace or an invisible character", field="redirectUri")
    if problem := ssrf.authority_problem(redirect_uri):  # urlsplit's ValueError was a 500
        raise UsageProblem(f"redirectUri is not a valid URL: {problem}", field="redirectUri")
    try:
        parts = urlsplit(redirect_uri)
    except ValueError:  # a bracket after a backslash ("https://app\\[::1"): urlsplit's netloc runs on past it
        raise UsageProblem("redirectUri is not a valid URL: an unclosed IPv6 bracket", field="redirectUri") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise UsageProblem("redirectUri must be an http(s) URL without credentials", field="redirectUri")
    allowed = {origin_of(settings.frontend_url), *settings.allowed_redirect_origins}
    if origin_of(redirect_uri) not in allowed:
        raise UsageProblem(
            "redirectUri is not on an allowed origin (FRONTEND_URL or ALLOWED_REDIRECT_ORIGINS)", field="redirectUri"
        )
    return redirect_uri


def _check_metadata(metadata) -> dict:
    if metadata is None:
        return {}
    check_metadata(metadata)
    if "provider" in metadata:
        raise UsageProblem("metadata.provider is reserved for the provider's facts", field="metadata")
    return metadata


def _connection_metadata(settings: Settings, provider: Provider, metadata) -> dict:
    """The caller's metadata for a new connection. TikTok's may hold ``provider: {tiktokApp}``, the one provider
    fact a caller chooses: the kind of TikTok app to connect with (default TIKTOK_APP). It rides in the OAuth
    state (the callback redeems the code where that kind's tokens come from) and the callback's provider facts
    replace it, stamped by the adapter of that kind."""
    if provider is not Provider.TIKTOK or not isinstance(metadata, dict) or "provider" not in metadata:
        metadata = _check_metadata(metadata)
        if provider is Provider.TIKTOK:
            return {**metadata, "provider": {"tiktokApp": tiktok.chosen_app(None, settings.tiktok_app)}}
        return metadata
    facts = metadata["provider"]
    if not isinstance(facts, dict) or set(facts) - {"tiktokApp"}:
        raise UsageProblem(
            "metadata.provider is reserved for the provider's facts; TIKTOK takes only metadata.provider.tiktokApp "
            f"({' or '.join(tiktok.APPS)})",
            field="metadata.provider",
        )
    rest = _check_metadata({k: v for k, v in metadata.items() if k != "provider"})
    return {**rest, "provider": {"tiktokApp": tiktok.chosen_app(facts.get("tiktokApp"), settings.tiktok_app)}}


def _tiktok_app_of(flow: Flow) -> str | None:
    """The kind of TikTok app a flow was started with (None: a flow sealed before the kind was chosen per
    connection, whose default is TIKTOK_APP's, as then)."""
    return ((flow.metadata or {}).get("provider") or {}).get("tiktokApp")


def _configured(settings: Settings, provider: Provider, app: str | None = None) -> None:
    """PROVIDER_NOT_CONFIGURED, naming the variables to set, unless the client the connection would use is set:
    for TikTok, that of the kind of app chosen (``app``), each kind being an app of its own at TikTok with its own
    credentials, so a kind without them is refused here rather than by TikTok at the code exchange."""
    spec = SPECS[provider]
    creds = settings.providers[provider].of_app(app if provider is Provider.TIKTOK else None)
    if spec.needs_credentials and not creds.configured:
        missing = creds.missing(provider)
        kind = " (a TikTok API for Business app, tiktokApp business)" if creds.prefix else ""
        raise ProviderNotConfigured(
            f"{provider.value}{kind} is not configured: set {' and '.join(missing)}", provider=provider.value
        )


def _optional_scopes(provider: Provider, scopes) -> tuple[str, ...]:
    """The optional scopes asked for at initiate (Discord's webhook.incoming): only the provider's own."""
    if not scopes:
        return ()
    allowed = SPECS[provider].optional_scopes
    if not isinstance(scopes, (list, tuple)) or not all(isinstance(s, str) and s in allowed for s in scopes):
        offered = ", ".join(allowed) if allowed else "none"
        raise UsageProblem(f"scopes: {provider.value} offers these optional scopes: {offered}", field="scopes")
    return tuple(dict.fromkeys(scopes))


def _organization(organization_id) -> uuid.UUID | None:
    return None if organization_id is None else parse_uuid(organization_id, "organizationId")


async def initiate(
    svc: Runtime,
    *,
    user_id,
    provider,
    redirect_uri,
    metadata=None,
    shop=None,
    store_url=None,
    scopes=None,
    organization_id=None,
) -> dict:
    """Start a connection; answers the spec's {authorizationUrl, state}. ``scopes``: optional scopes to ask for
    as well (see ProviderSpec.optional_scopes). ``organization_id`` (the spec's organizationId) is kept on the
    integration the callback makes."""
    provider = Provider.parse(provider)
    user_id = parse_uuid(user_id, "userId")
    organization_id = _organization(organization_id)
    spec = SPECS[provider]
    if spec.kind is ConnectKind.API_KEY:
        raise UsageProblem(
            f"{provider.value} connects with an API key: POST /integrations/api-key "
            f"or `nexusctl integrations add {provider.value}`",
            field="provider",
        )
    app = None
    if provider is Provider.TIKTOK:  # the kind of TikTok app chosen decides which client must be set
        metadata = _connection_metadata(svc.settings, provider, metadata)
        app = metadata["provider"]["tiktokApp"]
    _configured(svc.settings, provider, app)
    redirect_uri = check_redirect(svc.settings, redirect_uri)
    if provider is not Provider.TIKTOK:
        metadata = _connection_metadata(svc.settings, provider, metadata)
    adapter = svc.adapter(provider, tiktok_app=app)
    extra_scopes = _optional_scopes(provider, scopes)
    tenant = await _checked_tenant(svc.settings, adapter, spec.tenant, shop=shop, store_url=store_url)
    state = new_state()
    verifier = new_verifier() if spec.pkce else None
    flow = Flow(
        provider,
        user_id,
        redirect_uri,
        metadata,
        tenant,
        {"verifier": verifier} if verifier else {},
        organization_id=organization_id,
    )
    await svc.states("save", state, flow)
    url = adapter.authorization_url(state, verifier, tenant, extra_scopes=extra_scopes)
    telemetry.oauth_flow(provider.value, "started")
    return {"authorizationUrl": url, "state": state}


async def _checked_tenant(settings: Settings, adapter, kind, *, shop, store_url) -> str | None:
    """The shop or store URL, through the SSRF guard where its host is one we will call.

    Checked now (a 400 naming the field, the name resolved once as for a webhook URL) and again on every
    connection by the adapter's guarded session, which is what stops a name that changes its address later."""
    allowed = settings.webhook_allowed_networks
    if kind == "shop":
        tenant = normalise_shop(shop)
        token_url = adapter.url("TOKEN", tenant)
        if token_url and adapter.user_supplied(token_url):
            await ssrf.check_url_resolving(
                token_url, production=settings.is_production, allowed_networks=allowed, field="shop", label="shop"
            )
        return tenant
    if kind == "storeUrl":
        tenant = normalise_store(store_url, production=settings.is_production, allowed_networks=allowed)
        return await ssrf.check_url_resolving(
            tenant, production=settings.is_production, allowed_networks=allowed, field="storeUrl", label="storeUrl"
        )
    return None


def _with_query(url: str, **params) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit(parts._replace(query=query))


def error_code_of(value) -> str:
    """A provider's ?error=... reduced to a safe token for our redirect."""
    return _ERROR_CODE.sub("", str(value or "").lower())[:64] or "oauth_failed"


async def callback(svc: Runtime, provider, query) -> str:
    """Finish a connection; returns where to send the browser.

    Without a usable state (none, unknown, used, expired, another provider's, unreadable) or with a redirectUri
    no longer allowed, that is FRONTEND_URL with ``status=error&code=OAUTH_FAILED``: the flow's own redirectUri
    is never trusted then. (A state checked against the wrong provider is not consumed: the right callback
    still works.)"""
    provider = Provider.parse(provider)
    state = query.get("state") or (query.get("user_id") if SPECS[provider].kind is ConnectKind.KEY_GRANT else None)
    try:
        if not state:
            raise OAuthFailed("the callback carries no state")
        flow: Flow = await svc.states("take", state, provider)
        # The allow-list may have changed since initiate: a redirect no longer allowed is not followed.
        check_redirect(svc.settings, flow.redirect_uri)
    except (OAuthFailed, UsageProblem) as exc:  # StateUnreadable is an OAuthFailed
        log.warning("connect %s: the callback's state is unusable: %s", provider.value, exc.message)
        telemetry.oauth_flow(provider.value, "bad_state")
        return _with_query(svc.settings.frontend_url, status="error", code=OAuthFailed.code, provider=provider.value)
    try:
        if query.get("error") or (SPECS[provider].kind is ConnectKind.KEY_GRANT and query.get("success") != "1"):
            code = error_code_of(query.get("error") or "access_denied")
            log.info("connect %s for user %s: the provider answered %s", provider.value, flow.user_id, code)
            telemetry.oauth_flow(provider.value, "denied")
            return _with_query(flow.redirect_uri, status="error", code=code, provider=provider.value)
        row = await _finish(svc, provider, flow, query)
    except NexusError as exc:
        log.warning("connect %s for user %s failed: %s %s", provider.value, flow.user_id, exc.code, exc.message)
        telemetry.oauth_flow(provider.value, "failed")
        return _with_query(flow.redirect_uri, status="error", code=exc.code, provider=provider.value)
    telemetry.oauth_flow(provider.value, "connected")
    return _with_query(flow.redirect_uri, status="success", integrationId=str(row.id), provider=provider.value)


async def _finish(svc: Runtime, provider: Provider, flow: Flow, query):
    adapter = svc.adapter(provider, tiktok_app=_tiktok_app_of(flow))
    if SPECS[provider].kind is ConnectKind.KEY_GRANT:
        keys = flow.secret.get("keys")
        if not keys:
            raise OAuthFailed("WOOCOMMERCE: the store never sent the keys")
        tokens = TokenSet(
            access_token=f"{keys['consumer_key']}:{keys['consumer_secret']}",
            token_type="Basic",
            scope=[str(keys.get("key_permissions") or "read_write")],
            metadata={"keyId": keys.get("key_id")},
        )
    else:
        adapter.check_callback(query, flow.tenant)
        tokens = await adapter.exchange(query, flow.secret.get("verifier"), flow.tenant)
    account = await adapter.whoami(tokens, flow.tenant)
    row, reconnected = await svc.run(
        connections.save,
        svc.keyring,
        user_id=flow.user_id,
        provider=provider,
        account=account,
        tokens=tokens,
        metadata=flow.metadata,
        tenant=flow.tenant,
        organization_id=flow.organization_id,
    )
    log.info(
        "connected %s integration %s for user %s%s",
        provider.value,
        row.id,
        flow.user_id,
        " (reconnected)" if reconnected else "",
    )
    if row.replaced_webhook is not None:  # a reconnect made a new channel webhook: the old one goes
        await _release(svc, row, row.replaced_webhook)
    return row


async def receive_keys(svc: Runtime, body) -> None:
    """WooCommerce POSTs {key_id, user_id, consumer_key, consumer_secret, key_permissions} here."""
    if not isinstance(body, dict):
        raise UsageProblem("expected a JSON object")
    state = body.get("user_id")
    key, secret = body.get("consumer_key"), body.get("consumer_secret")
    if not isinstance(state, str) or not isinstance(key, str) or not isinstance(secret, str) or not key or not secret:
        raise UsageProblem("expected user_id, consumer_key and consumer_secret")
    keys = {
        "consumer_key": key,
        "consumer_secret": secret,
        "key_id": body.get("key_id"),
        "key_permissions": body.get("key_permissions"),
    }
    await svc.states("attach_keys", state, Provider.WOOCOMMERCE, keys)


async def connect_api_key(svc: Runtime, *, user_id, provider, api_key, metadata=None, organization_id=None):
    """SendGrid: check the key with a who-am-I call, then store it encrypted."""
    provider = Provider.parse(provider)
    if SPECS[provider].kind is not ConnectKind.API_KEY:
        raise UsageProblem(f"{provider.value} does not connect with an API key; use the OAuth flow", field="provider")
    user_id = parse_uuid(user_id, "userId")
    organization_id = _organization(organization_id)
    # Printable and one word: the key goes into an Authorization header, where a control character
    # was a 500 (aiohttp refuses to send it; found by tests/fault/test_api_fuzz.py).
    key = api_key.strip() if isinstance(api_key, str) else ""
    if not key or len(api_key) > 512 or not key.isprintable() or any(c.isspace() for c in key):
        raise UsageProblem("apiKey must be a single non-empty key", field="apiKey")
    tokens = TokenSet(access_token=key, token_type="Bearer")
    account = await svc.adapter(provider).whoami(tokens, None)
    row, _ = await svc.run(
        connections.save,
        svc.keyring,
        user_id=user_id,
        provider=provider,
        account=account,
        tokens=tokens,
        metadata=_check_metadata(metadata),
        organization_id=organization_id,
    )
    return row


async def _release(svc: Runtime, row, tokens: TokenSet) -> bool:
    """Best effort: delete what the connection made at the provider (Discord's channel webhook); never blocks."""
    try:
        await svc.adapter_of(row).release(tokens, tokens.metadata.get("tenant"))
        return True
    except NexusError as exc:
        log.warning(
            "removing the %s channel webhook of integration %s failed (going on): %s",
            row.provider.value,
            row.id,
            exc.message,
        )
        return False


async def disconnect(svc: Runtime, integration_id, *, owner_id=None, dry_run: bool = False):
    """Revoke at the provider where it can (a failure is logged, not fatal), delete what the connection made
    there (a channel webhook; likewise), then delete."""
    row, tokens = await svc.run(connections.load, svc.keyring, integration_id, owner_id=owner_id)
    revoked = None
    if not dry_run and SPECS[row.provider].can_revoke and tokens.access_token:
        try:
            await svc.adapter_of(row).revoke(tokens, tokens.metadata.get("tenant"))
            revoked = True
        except NexusError as exc:
            revoked = False
            log.warning(
                "revoking %s integration %s failed (deleting anyway): %s", row.provider.value, row.id, exc.message
            )
    if not dry_run and tokens.webhook_token:
        await _release(svc, row, tokens)
    return await svc.run(integrations.delete, row.id, owner_id=owner_id, dry_run=dry_run, revoked=revoked)
