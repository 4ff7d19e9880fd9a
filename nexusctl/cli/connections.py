"""`nexusctl integrations connect | add | refresh`: connecting from the operator's shell."""

from __future__ import annotations

import sys
import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from nexusctl.cli.context import out, state
from nexusctl.cli.flows import run_flow
from nexusctl.cli.options import Json, parse_json_object
from nexusctl.core.serializers import integration_to_dict
from nexusctl.errors import UsageProblem

User = Annotated[str, typer.Option("--user", "-u", help="The user who owns the connection (UUID).",
                                   show_default=False)]
Provider = Annotated[str, typer.Argument(help="Provider, e.g. SLACK.", show_default=False)]
Metadata = Annotated[str | None, typer.Option("--metadata", help="JSON object kept on the integration.")]


def connect_cmd(
    ctx: typer.Context,
    provider: Provider,
    user: User,
    redirect_uri: Annotated[str | None, typer.Option(
        "--redirect-uri", help="Where the browser lands afterwards (default: FRONTEND_URL).")] = None,
    shop: Annotated[str | None, typer.Option("--shop", help="SHOPIFY: the shop (demo.myshopify.com).")] = None,
    store_url: Annotated[str | None, typer.Option("--store-url", help="WOOCOMMERCE: the store's URL.")] = None,
    metadata: Metadata = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the URL in a browser too.")] = False,
    as_json: Json = False,
) -> None:
    """Print the authorization URL that connects PROVIDER for a user.

    The user opens it, consents, and the provider sends them to the daemon's
    callback, which stores the connection. The URL works for 10 minutes, once.

    Example:  nexusctl integrations connect SLACK --user 6f1c2a9e-0d4b-4f7e-9a51-2b8c3d4e5f60 --open
    """
    from nexusctl.core import connect

    parsed = parse_json_object(metadata, "metadata") if metadata is not None else None
    settings = state(ctx).settings
    answer = run_flow(ctx, lambda svc: connect.initiate(
        svc, user_id=user, provider=provider, redirect_uri=redirect_uri or settings.frontend_url,
        metadata=parsed, shop=shop, store_url=store_url))
    if as_json:
        out(ctx).json(answer)
    else:
        out(ctx).value(answer["authorizationUrl"])
        out(ctx).info(f"Open this URL to connect (valid 10 minutes, once). The provider returns to "
                      f"{settings.public_url}/integrations/oauth/callback/..., so the daemon must be running.")
    if open_browser:
        webbrowser.open(answer["authorizationUrl"])


def add_cmd(
    ctx: typer.Context,
    provider: Provider,
    user: User,
    api_key_file: Annotated[Path, typer.Option(
        "--api-key-file", help="File holding the API key; '-' reads standard input (never pass keys as flags).",
        show_default=False)],
    metadata: Metadata = None,
    as_json: Json = False,
) -> None:
    """Connect a provider that uses API keys (SENDGRID); the key is checked, then stored encrypted.

    Example:  nexusctl integrations add SENDGRID --user 6f1c2a9e-0d4b-4f7e-9a51-2b8c3d4e5f60 --api-key-file key.txt
    """
    from nexusctl.core import connect

    parsed = parse_json_object(metadata, "metadata") if metadata is not None else None
    key = _read_key(api_key_file)
    row = run_flow(ctx, lambda svc: connect.connect_api_key(svc, user_id=user, provider=provider, api_key=key,
                                                            metadata=parsed))
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
    integration_id: Annotated[str, typer.Argument(help="Integration id (UUID).", show_default=False)],
    as_json: Json = False,
) -> None:
    """Refresh an integration's access token now (one provider call, even if others refresh too).

    Example:  nexusctl integrations refresh 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10
    """
    from nexusctl.core import refresh

    row = run_flow(ctx, lambda svc: refresh.refresh(svc, integration_id))
    data = integration_to_dict(row)
    out(ctx).success(f"Refreshed integration {data['id']} ({data['provider']}); expires {data['expiresAt'] or 'never'}")
    out(ctx).json(data) if as_json else out(ctx).record(data)


def register(app: typer.Typer) -> None:
    app.command("connect")(connect_cmd)
    app.command("add")(add_cmd)
    app.command("refresh")(refresh_cmd)
