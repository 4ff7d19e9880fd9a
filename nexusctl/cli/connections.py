"""`nexusctl integrations connect | add | refresh`: connecting from the operator's shell."""

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer

from nexusctl import enums
from nexusctl.cli.context import out, state
from nexusctl.cli.flows import run_flow
from nexusctl.cli.options import Json, Organization, complete_provider, parse_json_object
from nexusctl.core.serializers import integration_to_dict
from nexusctl.errors import RefreshFailed, UsageProblem

User = Annotated[str, typer.Option("--user", "-u", help="The user who owns the connection (UUID).", show_default=False)]
Provider = Annotated[
    str, typer.Argument(help="Provider, e.g. SLACK.", show_default=False, autocompletion=complete_provider)
]
Metadata = Annotated[str | None, typer.Option("--metadata", help="JSON object kept on the integration.")]


def connect_cmd(
    ctx: typer.Context,
    provider: Provider,
    user: User,
    redirect_uri: Annotated[
        str | None, typer.Option("--redirect-uri", help="Where the browser lands afterwards (default: FRONTEND_URL).")
    ] = None,
    shop: Annotated[str | None, typer.Option("--shop", help="SHOPIFY: the shop (demo.myshopify.com).")] = None,
    store_url: Annotated[str | None, typer.Option("--store-url", help="WOOCOMMERCE: the store's URL.")] = None,
    metadata: Metadata = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="An optional scope to ask for as well (repeatable): DISCORD webhook.incoming lets the "
            "user pick a channel to publish to through its webhook.",
        ),
    ] = None,
    organization: Organization = None,
    tiktok_app: Annotated[
        str | None,
        typer.Option(
            "--tiktok-app",
            help="TIKTOK: the kind of TikTok app to connect with: login_kit (posts, analytics, publishing) or "
            "business (a TikTok API for Business app: comments); default TIKTOK_APP. Same as "
            'metadata {"provider": {"tiktokApp": ...}}.',
        ),
    ] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the URL in a browser too.")] = False,
    as_json: Json = False,
) -> None:
    """Print the authorization URL that connects PROVIDER for a user.

    The user opens it, consents, and the provider sends them to the daemon's
    callback, which stores the connection. The URL works for 10 minutes, once.

    Example:  nexusctl integrations connect SLACK --user 6f1c2a9e-0d4b-4f7e-9a51-2b8c3d4e5f60 --open
    """
    # start-up: only this command needs it
    from nexusctl.core import connect

    parsed = parse_json_object(metadata, "metadata") if metadata is not None else None
    if tiktok_app is not None:  # checked by core (connect.initiate) like the API's metadata.provider.tiktokApp
        if enums.Provider.parse(provider) is not enums.Provider.TIKTOK:
            raise UsageProblem("--tiktok-app is for TIKTOK connections only", field="tiktokApp")
        parsed = {**(parsed or {}), "provider": {"tiktokApp": tiktok_app}}
    settings = state(ctx).settings
    answer = run_flow(
        ctx,
        lambda svc: connect.initiate(
            svc,
            user_id=user,
            provider=provider,
            redirect_uri=redirect_uri or settings.frontend_url,
            metadata=parsed,
            shop=shop,
            store_url=store_url,
            scopes=scope,
            organization_id=organization,
        ),
    )
    if as_json:
        out(ctx).json(answer)
    else:
        out(ctx).value(answer["authorizationUrl"])
        out(ctx).info(
            f"Open this URL to connect (valid 10 minutes, once). The provider returns to "
            f"{settings.public_url}/integrations/oauth/callback/..., so the daemon must be running."
        )
    if open_browser:
        # start-up: only this command opens a browser
        import webbrowser

        webbrowser.open(answer["authorizationUrl"])


def add_cmd(
    ctx: typer.Context,
    provider: Provider,
    user: User,
    api_key_file: Annotated[
        Path,
        typer.Option(
            "--api-key-file",
            help="File holding the API key; '-' reads standard input (never pass keys as flags).",
            show_default=False,
        ),
    ],
    metadata: Metadata = None,
    organization: Organization = None,
    as_json: Json = False,
) -> None:
    """Connect a provider that uses API keys (SENDGRID); the key is checked, then stored encrypted.

    Example:  nexusctl integrations add SENDGRID --user 6f1c2a9e-0d4b-4f7e-9a51-2b8c3d4e5f60 --api-key-file key.txt
    """
    # start-up: only this command needs it
    from nexusctl.core import connect

    parsed = parse_json_object(metadata, "metadata") if metadata is not None else None
    key = _read_key(api_key_file)
    row = run_flow(
        ctx,
        lambda svc: connect.connect_api_key(
            svc, user_id=user, provider=provider, api_key=key, metadata=parsed, organization_id=organization
        ),
    )
    data = integration_to_dict(row)
    out(ctx).success(f"Connected {data['provider']} ({data['name']}) as integration {data['id']}")
    out(ctx).json(data) if as_json else out(ctx).record(data)


def _read_key(path: Path) -> str:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as exc:
        raise UsageProblem(f"cannot read the API key file {path}: {exc.strerror}", field="api-key-file") from None
    key = text.strip()
    if not key or "\n" in key:
        raise UsageProblem("the API key file must hold exactly one key", field="api-key-file")
    return key


def refresh_cmd(
    ctx: typer.Context,
    integration_id: Annotated[str | None, typer.Argument(help="Integration id (UUID).", show_default=False)] = None,
    expiring_within: Annotated[
        str | None,
        typer.Option(
            "--expiring-within", help="Instead of one id: refresh every token expiring within this long (10m, 1h)."
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Refresh an integration's access token now, or sweep every token about to expire.

    One provider call per integration, even if others refresh at the same time.

    Example:  nexusctl integrations refresh --expiring-within 1h
    """
    # start-up: only this command needs it
    from nexusctl.config import MAX_DURATION_TEXT, parse_duration
    from nexusctl.core import refresh

    if (integration_id is None) == (expiring_within is None):
        raise UsageProblem("give an integration id or --expiring-within (not both)")
    if expiring_within is not None:
        seconds = parse_duration(expiring_within)
        if seconds is None:
            raise UsageProblem(
                f"--expiring-within {expiring_within!r} is not a duration like 10m or 1h ({MAX_DURATION_TEXT})",
                field="expiring-within",
            )
        with out(ctx).progress("refreshing tokens") as update:
            counts = run_flow(
                ctx,
                lambda svc: refresh.drain(
                    svc, dt.timedelta(seconds=seconds), progress=lambda done, total: update(completed=done, total=total)
                ),
            )
        out(ctx).success(
            f"Refreshed {counts['refreshed']}, failed {counts['failed']}, "
            f"skipped {counts['skipped']} (refreshed elsewhere meanwhile)"
            + (f", not refreshable yet {counts['notYet']}" if counts["notYet"] else "")
        )
        if as_json:
            out(ctx).json(counts)
        if counts["failed"]:
            raise typer.Exit(RefreshFailed.exit_code)  # something needs a look
        return
    outcome = run_flow(ctx, lambda svc: refresh.refresh_now(svc, integration_id))
    data = integration_to_dict(outcome.row)
    if outcome.refreshed:
        out(ctx).success(
            f"Refreshed integration {data['id']} ({data['provider']}); expires {data['expiresAt'] or 'never'}"
        )
    else:  # not a failure: exit 0, the sweep renews it once it can
        out(ctx).info(
            f"Not refreshed: {outcome.message}; the sweep renews it from {outcome.to_dict()['refreshableAt']}"
        )
    out(ctx).json({**data, "refresh": outcome.to_dict()}) if as_json else out(ctx).record(data)


def register(app: typer.Typer) -> None:
    app.command("connect")(connect_cmd)
    app.command("add")(add_cmd)
    app.command("refresh")(refresh_cmd)
