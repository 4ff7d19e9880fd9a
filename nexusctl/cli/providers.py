"""`nexusctl providers list | show`: what each provider can do and whether it is set up."""

from typing import Annotated

import typer

from nexusctl.cli.context import out, state
from nexusctl.cli.options import Json, complete_provider
from nexusctl.config_values import redact_url

app = typer.Typer(
    help="The 20 providers: capabilities, scopes, endpoints, configured or not.\n\n"
    "Example:  nexusctl providers show SLACK",
    no_args_is_help=True,
)

COLUMNS = [
    ("provider", "PROVIDER"),
    ("displayName", "NAME"),
    ("category", "CATEGORY"),
    ("connect", "CONNECT"),
    ("refresh", "REFRESH"),
    ("configured", "CONFIGURED"),
    ("capabilities", "CAPABILITIES"),
]


def describe(settings, provider, *, full: bool = False) -> dict:
    # start-up: only this command needs it
    from nexusctl.config import ENDPOINT_KINDS, EXTRA_ENDPOINT_KINDS
    from nexusctl.core.refresh_window import duration_text
    from nexusctl.providers import scopes
    from nexusctl.providers.catalog import CATALOG
    from nexusctl.providers.registry import SPECS, adapter_for
    from nexusctl.providers.spec import ConnectKind

    spec, creds = SPECS[provider], settings.providers[provider]
    configured = creds.any_configured or not spec.needs_credentials
    data = {
        **CATALOG[provider].to_dict(configured),
        **spec.to_dict(),
        "scopes": list(scopes.requested(provider, creds.approved_scopes, getattr(settings, "tiktok_app", None))),
    }  # what the consent asks for (TIKTOK: that of TIKTOK_APP's kind of app; tiktokApps has both)
    # How long the provider's access tokens typically live, as TOKEN_REFRESH_WINDOW is written: the window must be
    # shorter (doctor warns otherwise). None where tokens do not expire (API keys, non-expiring tokens).
    data["tokenLifetime"] = None if spec.token_lifetime is None else duration_text(spec.token_lifetime)
    if full:
        data["actionScopes"] = _action_scopes(provider, creds.approved_scopes)
        if provider.value == "TIKTOK":
            data["tiktokApps"] = _tiktok_apps(settings, creds.approved_scopes)
        adapter = adapter_for(provider, settings)
        data["missing"] = [] if configured else creds.missing(provider)  # TIKTOK: tiktokApps has each kind's
        # An API-key provider (SendGrid) never sends a browser back: there is no callback to register.
        # PUBLIC_URL and the endpoint overrides are settings: a password or token in them is never shown.
        data["callbackUrl"] = None if spec.kind is ConnectKind.API_KEY else redact_url(adapter.redirect_uri)
        data["endpoints"] = {
            kind.lower(): {"url": redact_url(adapter.url(kind, "{shop}")), "overridden": kind in creds.endpoints}
            for kind in ENDPOINT_KINDS + EXTRA_ENDPOINT_KINDS.get(provider, ())
            if adapter.url(kind, "{shop}")
        }
    return data


def _action_scopes(provider, approved) -> dict[str, str]:
    """Each sync action (and publish) -> the scopes it needs; an approval-only one not configured says so."""
    # start-up: only this command needs it
    from nexusctl.core.health import capabilities_of_provider
    from nexusctl.enums import Provider
    from nexusctl.providers import scopes
    from nexusctl.providers.adapters.tiktok import BUSINESS_ONLY, LOGIN_KIT_ONLY

    out = {}
    for action in capabilities_of_provider(provider):
        needed = scopes.needed(provider, action)
        waiting = [s for s in needed if s in scopes.APPROVAL.get(provider, {}) and s not in approved]
        text = " ".join(needed) or "-"
        if waiting:
            text += f" (approval-only: set {provider.value}_APPROVED_SCOPES once {provider.value} approved the app)"
        if provider is Provider.TIKTOK and action in BUSINESS_ONLY:
            text += " (a TikTok API for Business connection, tiktokApp business, and a TikTok business account)"
        elif provider is Provider.TIKTOK and action in LOGIN_KIT_ONLY:
            text += " (a connection made with a Login Kit app, tiktokApp login_kit)"
        widening = scopes.WIDENING.get(provider, {}).get(action)
        if widening and widening[0] not in approved:
            text += f" (without {widening[0]}: {widening[1].split(':')[0]})"
        out[action] = text
    return out


def _tiktok_apps(settings, approved) -> dict:
    """TikTok's two kinds of app, side by side: each connection is made with one (metadata.provider.tiktokApp at
    initiate, `integrations connect --tiktok-app`), TIKTOK_APP being the default; what each asks for and offers."""
    # start-up: only this command needs them
    from nexusctl.enums import Provider
    from nexusctl.providers import scopes
    from nexusctl.providers.adapters.tiktok import APPS, BUSINESS, BUSINESS_ONLY, LOGIN_KIT_ONLY
    from nexusctl.providers.registry import adapter_for

    default = getattr(settings, "tiktok_app", None)
    apps = {}
    for app in APPS:
        adapter = adapter_for(Provider.TIKTOK, settings, tiktok_app=app)
        refused = LOGIN_KIT_ONLY if app == BUSINESS else BUSINESS_ONLY
        apps[app] = {
            "default": app == default,
            # Each kind is an app of its own at TikTok: TIKTOK_CLIENT_ID / TIKTOK_BUSINESS_CLIENT_ID and secrets.
            "configured": adapter.creds.configured,
            "missing": adapter.creds.missing(Provider.TIKTOK),
            "scopes": list(scopes.requested(Provider.TIKTOK, approved, app)),
            "actions": [a for a in BUSINESS_ONLY + LOGIN_KIT_ONLY if a not in refused],
            "tokenUrl": adapter.url("TOKEN"),
            "apiUrl": adapter.url("API"),
            "apiHeader": getattr(adapter, "api_header", None) or "Authorization: Bearer",
        }
    return apps


@app.command("list")
def list_cmd(ctx: typer.Context, as_json: Json = False) -> None:
    """List the providers with their capabilities and whether credentials are set.

    Example:  nexusctl providers list --json
    """
    # start-up: only this command needs it
    from nexusctl.enums import Provider

    rows = [describe(state(ctx).settings, p) for p in Provider]
    out(ctx).json(rows) if as_json else out(ctx).table(rows, COLUMNS)


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    provider: Annotated[
        str, typer.Argument(help="Provider, e.g. SHOPIFY.", show_default=False, autocompletion=complete_provider)
    ],
    as_json: Json = False,
) -> None:
    """Show one provider: scopes (and those each sync action needs), PKCE, refresh style, endpoints, missing variables.

    Example:  nexusctl providers show SHOPIFY
    """
    # start-up: only this command needs it
    from nexusctl.enums import Provider

    data = describe(state(ctx).settings, Provider.parse(provider), full=True)
    out(ctx).json(data) if as_json else out(ctx).record(data)
