"""`nexusctl integrations ...`: list, show, update and delete connections."""

import sys
from typing import Annotated

import typer

from nexusctl.cli import connections, health, proxy_call
from nexusctl.cli.context import out, state
from nexusctl.cli.options import (
    Cursor,
    DryRun,
    Json,
    Limit,
    Organization,
    ProviderFilter,
    Yes,
    confirmed,
    parse_json_object,
)
from nexusctl.core import integrations
from nexusctl.core.paging import DEFAULT_LIMIT
from nexusctl.core.serializers import integration_to_dict

app = typer.Typer(
    help="Connected integrations (one per user and provider account).\n\n"
    "Example:  nexusctl integrations list --provider SLACK --json",
    no_args_is_help=True,
)

COLUMNS = [
    ("id", "ID"),
    ("provider", "PROVIDER"),
    ("name", "NAME"),
    ("userId", "USER"),
    ("isActive", "ACTIVE"),
    ("expiresAt", "EXPIRES"),
    ("lastSyncAt", "LAST SYNC"),
    ("lastError", "LAST ERROR"),
]

IntegrationId = Annotated[str, typer.Argument(help="Integration id (UUID).", show_default=False)]
ActiveFlag = Annotated[bool | None, typer.Option("--active/--inactive", help="Active or inactive.", show_default=False)]


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's integrations (UUID).")] = None,
    provider: ProviderFilter = None,
    active: ActiveFlag = None,
    organization: Organization = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    as_json: Json = False,
) -> None:
    """List integrations, newest first, one page at a time (--organization: only that organization's).

    Example:  nexusctl integrations list --user 6f1c2a9e-0d4b-4f7e-9a51-2b8c3d4e5f60 --provider SLACK --active
    """
    state(ctx).database()
    page = integrations.list_view(
        user_id=user, provider=provider, is_active=active, limit=limit, cursor=cursor, organization_id=organization
    )
    rows = page.items
    if as_json:
        out(ctx).json(rows)
    else:
        out(ctx).table(rows, COLUMNS)
    if page.next_cursor:
        out(ctx).info(f"more: add --cursor {page.next_cursor}")


@app.command("show")
def show_cmd(ctx: typer.Context, integration_id: IntegrationId, as_json: Json = False) -> None:
    """Show one integration (never its tokens).

    Example:  nexusctl integrations show 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10 --json
    """
    state(ctx).database()
    data = integration_to_dict(integrations.get(integration_id))
    out(ctx).json(data) if as_json else out(ctx).record(data)


@app.command("update")
def update_cmd(
    ctx: typer.Context,
    integration_id: IntegrationId,
    name: Annotated[str | None, typer.Option("--name", help="New display name.")] = None,
    active: ActiveFlag = None,
    metadata: Annotated[str | None, typer.Option("--metadata", help="Replace metadata with this JSON object.")] = None,
    as_json: Json = False,
) -> None:
    """Rename, (de)activate, or replace the metadata of an integration.

    Example:  nexusctl integrations update 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10 --inactive --metadata '{"team": "ads"}'
    """
    parsed = parse_json_object(metadata, "metadata") if metadata is not None else None
    state(ctx).database()
    row = integrations.update(integration_id, name=name, is_active=active, metadata=parsed)
    data = integration_to_dict(row)
    out(ctx).success(f"Updated integration {data['id']} ({data['provider']}, {data['name']})")
    out(ctx).json(data) if as_json else out(ctx).record(data)


@app.command("delete")
def delete_cmd(
    ctx: typer.Context,
    integration_id: IntegrationId,
    yes: Yes = False,
    dry_run: DryRun = False,
    revoke: Annotated[
        bool,
        typer.Option(
            "--revoke/--no-revoke", help="Revoke the token at the provider first (a failure is reported, not fatal)."
        ),
    ] = True,
    as_json: Json = False,
) -> None:
    """Revoke at the provider, then delete an integration with its webhooks, deliveries and sync logs.

    Asks first on a terminal; in scripts pass --yes.

    Example:  nexusctl integrations delete 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10 --yes
    """
    state(ctx).database()
    if dry_run or not yes:
        preview = integrations.delete(integration_id, dry_run=True)
        if dry_run:
            out(ctx).info(f"Would delete {_describe(preview)}")
            if as_json:
                out(ctx).json({**preview.to_dict(), "deleted": False, "dryRun": True})
            return
        if not confirmed(ctx, f"Delete {_describe(preview)}?"):
            return
        integration_id = preview.integration.id
    if revoke:
        # start-up: only this command needs it
        from nexusctl.cli.flows import run_flow
        from nexusctl.core import connect

        result = run_flow(ctx, lambda svc: connect.disconnect(svc, integration_id))
        if result.revoked is False:
            out(ctx).warn("the provider did not confirm the revocation (see the log line above); deleted anyway")
    else:
        result = integrations.delete(integration_id)
    out(ctx).success(f"Deleted {_describe(result)}")
    if as_json:
        out(ctx).json(result.to_dict())


@app.command("reply")
def reply_cmd(
    ctx: typer.Context,
    integration_id: IntegrationId,
    comment_id: Annotated[
        str, typer.Argument(help="The provider's comment id (a comment.created event's item.id).", show_default=False)
    ],
    text: Annotated[str, typer.Argument(help="The reply; '-' reads it from stdin.", show_default=False)],
    video: Annotated[
        str | None,
        typer.Option(
            "--video",
            help="TikTok: the video the comment is on (the event's "
            "item.postId); else looked up among the latest videos.",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Reply to a comment at the provider (TikTok, YouTube, Instagram, Facebook); prints the reply's id.

    Exit code 28 when the connection lacks the scope replying needs (reconnect it), 10 for an unknown comment.

    Example:  nexusctl integrations reply 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10 UgzN2xl6tQ-demo "Thanks for watching!"
    """
    # start-up: only this command needs it
    from nexusctl.cli.flows import run_flow
    from nexusctl.core import comments

    if text == "-":
        text = sys.stdin.read()
    result = run_flow(ctx, lambda svc: comments.reply(svc, integration_id, comment_id, text, video_id=video))
    if as_json:
        out(ctx).json(result)
    else:
        out(ctx).success(f"Replied to {result['provider']} comment {result['commentId']}")
        out(ctx).value(result["replyId"])


def _describe(result: integrations.Deleted) -> str:
    row = result.integration
    return (
        f"integration {row.id} ({row.provider.value}, {row.name}) with {result.webhooks} webhook(s), "
        f"{result.deliveries} deliveries and {result.sync_logs} sync log(s)"
    )


def _register_connections() -> None:
    connections.register(app)
    health.register(app)
    proxy_call.register(app)


_register_connections()  # connect / add / refresh live in connections.py, health in health.py, under this group
