"""`nexusctl webhooks ...`: the same core calls as the API."""

from typing import Annotated

import typer

from nexusctl.cli.context import out, state
from nexusctl.cli.options import (
    Cursor,
    DryRun,
    Json,
    Limit,
    Yes,
    complete_delivery_status,
    complete_webhook_event,
    confirmed,
    parse_json_object,
    parse_since,
)
from nexusctl.core.paging import DEFAULT_LIMIT
from nexusctl.errors import UsageProblem

app = typer.Typer(
    help="Outbound webhooks: endpoints, secrets, deliveries.\n\n"
    "Example:  nexusctl webhooks list --integration 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10",
    no_args_is_help=True,
)

COLUMNS = [
    ("id", "ID"),
    ("integrationId", "INTEGRATION"),
    ("url", "URL"),
    ("events", "EVENTS"),
    ("isActive", "ACTIVE"),
    ("lastTriggeredAt", "LAST TRIGGERED"),
]
DELIVERY_COLUMNS = [
    ("id", "ID"),
    ("event", "EVENT"),
    ("status", "STATUS"),
    ("attempts", "ATTEMPTS"),
    ("error", "ERROR"),
    ("nextAttemptAt", "NEXT ATTEMPT"),
    ("createdAt", "CREATED"),
]
WebhookId = Annotated[str, typer.Argument(help="Webhook id (UUID).", show_default=False)]
Events = Annotated[
    list[str] | None,
    typer.Option(
        "--event",
        "-e",
        help="Event to subscribe to (repeatable): media.created, media.* or *.",
        autocompletion=complete_webhook_event,
    ),
]
# Required on create, as the API requires ``events``: leaving it out must not quietly mean everything.
RequiredEvents = Annotated[
    list[str],
    typer.Option(
        "--event",
        "-e",
        help="Event to subscribe to (repeatable): media.created, media.*, or '*' for everything"
        " (webhook.* events are not delivered to webhooks: see `events tail`).",
        show_default=False,
        autocompletion=complete_webhook_event,
    ),
]


def _db(ctx):
    st = state(ctx)
    st.database()
    return st


def _checked_url(ctx, url: str) -> str:
    # start-up: asyncio (and ssl) load only for the commands that run a flow
    import asyncio

    from nexusctl.core.webhooks import check_url_resolving

    return asyncio.run(check_url_resolving(state(ctx).settings, url))


def _show(ctx, data: dict, as_json: bool) -> None:
    out(ctx).json(data) if as_json else out(ctx).record(data)


@app.command("create")
def create_cmd(
    ctx: typer.Context,
    integration: Annotated[str, typer.Option("--integration", "-i", help="Integration id.", show_default=False)],
    url: Annotated[str, typer.Option("--url", help="Receiver URL (https in production).", show_default=False)],
    events: RequiredEvents,
    metadata: Annotated[str | None, typer.Option("--metadata", help="JSON object.")] = None,
    as_json: Json = False,
) -> None:
    """Create a webhook; prints its signing secret once (store it now).

    Example:  nexusctl webhooks create -i 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10 --url https://example.com/in -e 'media.*'
    """
    # start-up: only this command needs it
    from nexusctl.core import webhooks
    from nexusctl.core.serializers import webhook_to_dict

    st = _db(ctx)
    row, secret = webhooks.create(
        st.keyring,
        integration_id=integration,
        url=_checked_url(ctx, url),
        events=list(events),
        metadata=parse_json_object(metadata, "metadata") if metadata else None,
        limit=st.settings.webhooks_per_integration_max,
    )
    out(ctx).success(f"Created webhook {row.id}; its secret is shown this once")
    _show(ctx, webhook_to_dict(row, secret), as_json)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    integration: Annotated[str | None, typer.Option("--integration", "-i", help="Only this integration.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    as_json: Json = False,
) -> None:
    """List webhooks, newest first.

    Example:  nexusctl webhooks list --integration 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10
    """
    # start-up: only this command needs it
    from nexusctl.core import webhooks

    _db(ctx)
    page = webhooks.list_view(integration_id=integration, limit=limit, cursor=cursor)
    rows = page.items
    out(ctx).json(rows) if as_json else out(ctx).table(rows, COLUMNS)
    if page.next_cursor:
        out(ctx).info(f"more: add --cursor {page.next_cursor}")


@app.command("show")
def show_cmd(ctx: typer.Context, webhook_id: WebhookId, as_json: Json = False) -> None:
    """Show one webhook (never its secret).

    Example:  nexusctl webhooks show 3c1d9f7e-2b6a-4d8e-9f10-5a7b3c2d1e0f
    """
    # start-up: only this command needs it
    from nexusctl.core import webhooks
    from nexusctl.core.serializers import webhook_to_dict

    _db(ctx)
    _show(ctx, webhook_to_dict(webhooks.get(webhook_id)), as_json)


@app.command("update")
def update_cmd(
    ctx: typer.Context,
    webhook_id: WebhookId,
    url: Annotated[str | None, typer.Option("--url", help="New receiver URL.")] = None,
    events: Events = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Enable or disable.", show_default=False)
    ] = None,
    as_json: Json = False,
) -> None:
    """Change a webhook's URL, events or active flag (re-enabling clears its failure window).

    Example:  nexusctl webhooks update 3c1d9f7e-2b6a-4d8e-9f10-5a7b3c2d1e0f --active -e 'order.*'
    """
    # start-up: only this command needs it
    from nexusctl.core import webhooks
    from nexusctl.core.serializers import webhook_to_dict

    if url is None and not events and active is None:  # the core's message names the API's fields
        raise UsageProblem("nothing to update: give --url, --event (-e), --active or --inactive")
    _db(ctx)
    row = webhooks.update(
        webhook_id,
        url=_checked_url(ctx, url) if url else None,
        events=list(events) if events else None,
        is_active=active,
    )
    _show(ctx, webhook_to_dict(row), as_json)


@app.command("delete")
def delete_cmd(
    ctx: typer.Context, webhook_id: WebhookId, yes: Yes = False, dry_run: DryRun = False, as_json: Json = False
) -> None:
    """Delete a webhook and its delivery log.

    Asks first on a terminal; in scripts pass --yes. --dry-run says what would go.

    Example:  nexusctl webhooks delete 3c1d9f7e-2b6a-4d8e-9f10-5a7b3c2d1e0f --yes
    """
    # start-up: only this command needs it
    from nexusctl.core import webhooks

    _db(ctx)
    if dry_run or not yes:
        hook, count = webhooks.delete_preview(webhook_id)  # WEBHOOK_NOT_FOUND before any question
        what = f"webhook {hook.id} ({hook.url}) and its {count} deliveries"
        if dry_run:
            out(ctx).info(f"Would delete {what}")
            if as_json:
                out(ctx).json({"id": str(hook.id), "deleted": False, "deliveriesDeleted": count, "dryRun": True})
            return
        if not confirmed(ctx, f"Delete {what}?"):
            return
    result = webhooks.delete(webhook_id)
    out(ctx).success(f"Deleted webhook {result['id']} and {result['deliveriesDeleted']} deliveries")
    if as_json:
        out(ctx).json(result)


@app.command("deliveries")
def deliveries_cmd(
    ctx: typer.Context,
    webhook_id: WebhookId,
    status: Annotated[
        str | None,
        typer.Option(
            "--status", "-s", help="PENDING, RETRYING, DELIVERED or FAILED.", autocompletion=complete_delivery_status
        ),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    as_json: Json = False,
) -> None:
    """A webhook's deliveries, newest first; --json adds every attempt.

    Example:  nexusctl webhooks deliveries 3c1d9f7e-2b6a-4d8e-9f10-5a7b3c2d1e0f --status FAILED --json
    """
    # start-up: only this command needs it
    from nexusctl.core import deliveries

    _db(ctx)
    page, rows = deliveries.page_with_attempts(webhook_id, status=status, limit=limit, cursor=cursor)
    out(ctx).json(rows) if as_json else out(ctx).table(rows, DELIVERY_COLUMNS)
    if page.next_cursor:
        out(ctx).info(f"more: add --cursor {page.next_cursor}")


@app.command("test")
def test_cmd(ctx: typer.Context, webhook_id: WebhookId, as_json: Json = False) -> None:
    """Queue a webhook.test event to this webhook (the daemon sends it); --json gives the delivery to watch.

    An inactive webhook is refused (WEBHOOK_INACTIVE, exit 14): enable it first with `update --active`.

    Example:  nexusctl webhooks test 3c1d9f7e-2b6a-4d8e-9f10-5a7b3c2d1e0f --json
    """
    # start-up: only this command needs it
    from nexusctl.core import deliveries, webhooks
    from nexusctl.core.serializers import delivery_to_dict

    _db(ctx)
    hook, delivery_id = webhooks.send_test(webhook_id)
    out(ctx).success(f"Queued webhook.test for {hook.id}; `nexusctl webhooks deliveries {hook.id}` shows it")
    if as_json:
        out(ctx).json(delivery_to_dict(deliveries.get(delivery_id)))


@app.command("rotate-secret")
def rotate_cmd(ctx: typer.Context, webhook_id: WebhookId, as_json: Json = False) -> None:
    """Issue a new secret (printed once); the one it replaces also signs for 24 hours, until a further rotation.

    Deliveries carry two signatures at most, the newest secret's and the one before it's: rotating again within the
    24 hours ends the older one at once.

    Example:  nexusctl webhooks rotate-secret 3c1d9f7e-2b6a-4d8e-9f10-5a7b3c2d1e0f
    """
    # start-up: only this command needs it
    from nexusctl.core import webhooks
    from nexusctl.core.serializers import webhook_to_dict

    st = _db(ctx)
    row, secret = webhooks.rotate_secret(st.keyring, webhook_id)
    out(ctx).success("New secret issued; deliveries carry both signatures for 24 hours")
    _show(ctx, webhook_to_dict(row, secret), as_json)


@app.command("redeliver")
def redeliver_cmd(
    ctx: typer.Context,
    delivery_id: Annotated[str, typer.Argument(help="Delivery id.", show_default=False)],
    as_json: Json = False,
) -> None:
    """Send one delivery again now (same webhook-id).

    One a daemon holds (sending it, or about to) is refused (DELIVERY_IN_FLIGHT, exit 16) until its lease runs
    out, at the time the error gives: try again after that.

    Example:  nexusctl webhooks redeliver 7e2a1c3b-9d8f-4e6a-b5c4-0f1e2d3c4b5a --json
    """
    # start-up: only this command needs it
    from nexusctl.core import deliveries
    from nexusctl.core.serializers import delivery_to_dict

    _db(ctx)
    row = deliveries.redeliver(delivery_id)
    out(ctx).success(f"Queued delivery {row.id} again")
    if as_json:
        out(ctx).json(delivery_to_dict(row))


REPLAY_BATCH = 500


@app.command("replay")
def replay_cmd(
    ctx: typer.Context,
    webhook_id: WebhookId,
    since: Annotated[
        str,
        typer.Option(
            "--since",
            help="A duration ago (1h, 30m, 2d) or an ISO time, e.g. 2026-11-24T00:00:00Z.",
            show_default=False,
        ),
    ],
    status: Annotated[
        str | None,
        typer.Option("--status", "-s", help="Only this status (e.g. FAILED).", autocompletion=complete_delivery_status),
    ] = None,
    dry_run: DryRun = False,
    as_json: Json = False,
) -> None:
    """Queue again every delivery of a webhook created since a time (a progress bar on a terminal).

    Example:  nexusctl webhooks replay 3c1d9f7e-2b6a-4d8e-9f10-5a7b3c2d1e0f --since 2026-11-24T00:00:00Z --status FAILED
    Example:  nexusctl webhooks replay 3c1d9f7e-2b6a-4d8e-9f10-5a7b3c2d1e0f --since 1h
    """
    # start-up: only this command needs it
    from nexusctl.core import deliveries

    moment = parse_since(since)  # as `events list --since` takes it
    _db(ctx)
    output = out(ctx)
    if dry_run:
        replayed = deliveries.replay(webhook_id, since=moment, status=status, dry_run=True)
        output.info(f"Would queue {replayed.queued} deliveries again{_skipping(replayed.skipped)}")
    else:
        total = None
        if output.shows_progress:
            predicted = deliveries.replay(webhook_id, since=moment, status=status, dry_run=True)
            total = predicted.queued + predicted.skipped
        with output.progress("queueing deliveries", total=total) as update:
            replayed = deliveries.replay(
                webhook_id, since=moment, status=status, batch_size=REPLAY_BATCH, progress=lambda n: update(advance=n)
            )
        output.success(f"Queued {replayed.queued} deliveries again{_skipping(replayed.skipped)}")
    if as_json:
        # start-up: only this command needs it
        from nexusctl.core.ids import parse_uuid

        output.json(
            {
                "webhookId": str(parse_uuid(webhook_id, "webhookId")),
                "queued": replayed.queued,
                "skipped": replayed.skipped,
                "dryRun": dry_run,
            }
        )


def _skipping(skipped: int) -> str:
    """The summary's note on the deliveries a daemon is sending now (left alone: no second send beside theirs)."""
    if not skipped:
        return ""
    return f"; skipped {skipped} being sent now (replay them once their attempts are recorded)"
