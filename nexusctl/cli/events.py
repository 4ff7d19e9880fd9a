"""`nexusctl events ...`: the outbox (what this service published), emitting and ingesting events."""

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from nexusctl import clock
from nexusctl.cli.context import out, state
from nexusctl.cli.options import Cursor, Json, Limit, parse_json_object
from nexusctl.core.paging import DEFAULT_LIMIT
from nexusctl.errors import UsageProblem

app = typer.Typer(help="Platform events: what this service published (the outbox), emit to webhooks, "
                       "ingest from other services.\n\nExample:  nexusctl events tail --type 'webhook.*'",
                  no_args_is_help=True)

COLUMNS = [("occurredAt", "OCCURRED"), ("type", "TYPE"), ("integrationId", "INTEGRATION"), ("id", "ID"),
           ("publishedAt", "PUBLISHED")]
TypeFilter = Annotated[str | None, typer.Option("--type", "-t", help="Only this type (integration.connected) "
                                                "or prefix (integration.*).")]
IntegrationFilter = Annotated[str | None, typer.Option("--integration", "-i", help="Only this integration's events.")]
Data = Annotated[str, typer.Option("--data", help="JSON object, @FILE, or - for stdin.")]


def read_data(data: str) -> dict:
    """--data as given: inline JSON, @FILE or - (stdin)."""
    if data == "-":
        data = sys.stdin.read()
    elif data.startswith("@"):
        try:
            data = Path(data[1:]).read_text()
        except OSError as exc:
            raise UsageProblem(f"cannot read {data[1:]}: {exc.strerror}", field="data") from None
    return parse_json_object(data, "data")


def parse_since(text: str) -> dt.datetime:
    """`1h`, `30m`, `2d` (that long ago) or an ISO time (`2026-11-24T00:00:00Z`)."""
    from nexusctl.config import parse_duration

    seconds = parse_duration(text)
    if seconds is not None:
        return clock.now() - dt.timedelta(seconds=seconds)
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageProblem(f"--since {text!r} is not a duration (1h, 30m, 2d) or an ISO time like "
                           "2026-11-24T00:00:00Z", field="since") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


@app.command("list")
def list_cmd(ctx: typer.Context, event_type: TypeFilter = None,
             since: Annotated[str | None, typer.Option("--since", help="Only events since: 1h, 2d or an ISO "
                                                       "time.")] = None,
             integration: IntegrationFilter = None, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
             as_json: Json = False) -> None:
    """Events this service published (the outbox), newest first; the record when there is no Redis.

    Example:  nexusctl events list --type integration.* --since 1h
    """
    from nexusctl.core import outbox

    moment = parse_since(since) if since else None
    state(ctx).database()
    page = outbox.list_view(event_type=event_type, since=moment, integration_id=integration, limit=limit,
                            cursor=cursor)
    rows = page.items
    out(ctx).json(rows) if as_json else out(ctx).table(rows, COLUMNS)
    if page.next_cursor:
        out(ctx).info(f"more: add --cursor {page.next_cursor}")


@app.command("tail")
def tail_cmd(ctx: typer.Context, event_type: TypeFilter = None, integration: IntegrationFilter = None,
             last: Annotated[int, typer.Option("--last", min=0, max=1000, help="Events to show before "
                                               "following.")] = 10,
             exit_after: Annotated[int | None, typer.Option("--exit-after", min=1, help="Stop after this many new "
                                                            "events (a script waiting for one).")] = None,
             timeout: Annotated[str | None, typer.Option("--timeout", help="Give up after this long (30s, 5m); "
                                                         "exit 1 if --exit-after was not reached.")] = None,
             as_json: Json = False) -> None:
    """Print the latest events, then each new one as it is written (Ctrl-C stops).

    With --json, one JSON object per line.

    Example:  nexusctl events tail --type webhook.* --json
    """
    from nexusctl.config import parse_duration
    from nexusctl.core import outbox

    limit_s = None
    if timeout is not None:
        limit_s = parse_duration(timeout)
        if limit_s is None:
            raise UsageProblem(f"--timeout {timeout!r} is not a duration like 30s or 5m", field="timeout")
    state(ctx).database()
    output = out(ctx)

    def show(event) -> None:
        row = outbox.to_dict(event)
        if as_json:
            output.value(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
        else:
            payload = json.dumps(row["payload"], ensure_ascii=False, separators=(",", ":"))
            output.value(f"{row['occurredAt']}  {row['type']:<28} {row['integrationId'] or '-'}  "
                         f"{payload[:160]}")

    seen, cursor = set(), (clock.now(), None)
    for event in outbox.latest(last, event_type=event_type, integration_id=integration) if last else ():
        show(event)  # as they are loaded (a few MB at a time), not all --last of them first
        seen.add(event.id)
        cursor = (event.created_at, event.id)
    new, started = 0, time.monotonic()
    try:
        while exit_after is None or new < exit_after:
            if limit_s is not None and time.monotonic() - started > limit_s:
                output.error(f"timed out after {timeout} with {new} new events")
                raise typer.Exit(1)
            for event in outbox.newer_than(cursor, event_type=event_type, integration_id=integration):
                if event.id in seen:
                    continue
                seen.add(event.id)
                show(event)
                cursor = max(cursor, (event.created_at, event.id), key=lambda c: c[0])
                new += 1
                if exit_after is not None and new >= exit_after:
                    break
            if len(seen) > 10_000:  # only the look-back window needs remembering
                seen = {event_id for event_id in list(seen)[-1000:]}
            time.sleep(0.5)  # following a table: a poll, as `tail -f` does on a file
    except KeyboardInterrupt:
        pass


@app.command("emit")
def emit_cmd(ctx: typer.Context,
             integration_id: Annotated[str, typer.Argument(help="Integration id.", show_default=False)],
             event_type: Annotated[str, typer.Argument(help="Event name, e.g. media.created.", show_default=False)],
             data: Data = "{}",
             as_json: Json = False) -> None:
    """Emit an event: one delivery per matching webhook, queued atomically.

    Example:  nexusctl events emit 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10 media.created --data '{"mediaId": "m1"}'
    """
    from nexusctl.core import events

    value = read_data(data)
    state(ctx).database()
    result = events.emit(integration_id, event_type, value)
    out(ctx).success(f"Emitted {event_type}: {result['deliveriesQueued']} deliveries queued")
    if as_json:
        out(ctx).json(result)


@app.command("ingest")
def ingest_cmd(ctx: typer.Context,
               event_type: Annotated[str, typer.Argument(help="user.deleted or content.published.",
                                                         show_default=False)],
               data: Data = "{}",
               event_id: Annotated[str | None, typer.Option("--id", help="The event's id: ingesting the same id "
                                                            "again changes nothing.")] = None,
               as_json: Json = False) -> None:
    """Handle a platform event here, as the consumer group does with Redis (idempotent with --id).

    user.deleted {"userId"}: revoke and delete the user's integrations. content.published
    {"userId", "contentId", "title", "url", "media", "format"}: a publish run per capable integration, run
    now ("format": "story" publishes one image or video as an Instagram story).

    Example:  nexusctl events ingest user.deleted --data '{"userId": "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"}' --id evt-42
    """
    from nexusctl.cli.flows import run_flow
    from nexusctl.core import inbound

    event = inbound.make(event_type, read_data(data), event_id=event_id)

    async def flow(svc):
        from nexusctl.core import sync_runs

        outcome = await inbound.handle(svc, event)
        # No daemon needed: the publish runs it queued go now (a daemon that got there first wins the claim).
        for item in outcome.get("syncLogs", []) if not outcome.get("duplicate") else []:
            row = await sync_runs.run(svc, item["syncLogId"])
            item.update(status=row.status.value, error=row.error)
        return outcome

    outcome = run_flow(ctx, flow)
    if outcome.get("duplicate"):
        out(ctx).success(f"{event_type} {event.key} was handled before: nothing changed")
    elif event_type == inbound.USER_DELETED:
        out(ctx).success(f"Deleted {outcome['integrationsDeleted']} integrations of user {outcome['userId']}"
                         + (f" ({outcome['revokeFailures']} could not be revoked at the provider)"
                            if outcome["revokeFailures"] else ""))
    else:
        done = [i for i in outcome["syncLogs"] if i.get("status") == "COMPLETED"]
        out(ctx).success(f"Published content {outcome['contentId']} to {len(done)} of {len(outcome['syncLogs'])} "
                         "integrations")
        for item in outcome["syncLogs"]:
            if item.get("status") == "FAILED":
                out(ctx).warn(f"{item['provider']} {item['integrationId']}: {item['error']}")
    if as_json:
        out(ctx).json(outcome)
