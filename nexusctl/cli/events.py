"""`nexusctl events ...`: the outbox (what this service published), emitting and ingesting events."""

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from typer._click.core import ParameterSource  # typer vendors click: its contexts say this one

from nexusctl import clock
from nexusctl.cli.context import out, state
from nexusctl.cli.options import (
    EXIT_TIMED_OUT,
    Cursor,
    Json,
    Limit,
    complete_event_filter,
    complete_platform_event,
    parse_json_object,
    parse_since,
)
from nexusctl.cli.output import printable
from nexusctl.core.paging import DEFAULT_LIMIT
from nexusctl.errors import UsageProblem

app = typer.Typer(
    help="Platform events: what this service published (the outbox), emit to webhooks, "
    "ingest from other services.\n\nExample:  nexusctl events tail --type 'webhook.*'",
    no_args_is_help=True,
)

COLUMNS = [
    ("occurredAt", "OCCURRED"),
    ("type", "TYPE"),
    ("integrationId", "INTEGRATION"),
    ("id", "ID"),
    ("publishedAt", "PUBLISHED"),
]
TypeFilter = Annotated[
    str | None,
    typer.Option(
        "--type",
        "-t",
        help="Only this type (integration.connected) or prefix (integration.*).",
        autocompletion=complete_event_filter,
    ),
]
IntegrationFilter = Annotated[str | None, typer.Option("--integration", "-i", help="Only this integration's events.")]
Data = Annotated[str, typer.Option("--data", help="JSON object, @FILE, or - for stdin (a file or stdin in UTF-8).")]


def read_data(data: str) -> dict:
    """--data as given: inline JSON, @FILE or - (stdin); a file or stdin strictly UTF-8 (JSON's encoding)."""
    if data == "-":
        data = utf8(sys.stdin.buffer.read(), "--data - (stdin)", field="data")
    elif data.startswith("@"):
        name = data[1:]
        if not name:
            raise UsageProblem("--data @ names no file: give @FILE (or - for stdin)", field="data")
        try:
            raw = Path(name).read_bytes()
        except OSError as exc:
            raise UsageProblem(f"cannot read {name}: {exc.strerror}", field="data") from None
        data = utf8(raw, name, field="data")
    return parse_json_object(data, "data")


BOM = b"\xef\xbb\xbf"


def utf8(raw: bytes, what: str, *, field: str | None = None, bom: bool = True) -> str:
    """``raw`` as text, strictly UTF-8 (``bom``: a UTF-8 BOM at its start left out, as most tools do): anything
    else is a usage error naming the byte, and saying so when it looks like UTF-16."""
    skip = len(BOM) if bom and raw.startswith(BOM) else 0
    try:
        return raw[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = exc.start + skip
        hint = " (a UTF-16 file? convert it: iconv -f UTF-16 -t UTF-8)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise UsageProblem(
            f"{what} is not UTF-8 (byte 0x{raw[at : at + 1].hex()} at position {at}){hint}", field=field
        ) from None


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    event_type: TypeFilter = None,
    since: Annotated[str | None, typer.Option("--since", help="Only events since: 1h, 2d or an ISO time.")] = None,
    integration: IntegrationFilter = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    as_json: Json = False,
) -> None:
    """Events this service published (the outbox), newest first; the record when there is no Redis.

    Example:  nexusctl events list --type 'integration.*' --since 1h
    """
    # start-up: only this command needs it
    from nexusctl.core import outbox

    moment = parse_since(since) if since else None
    state(ctx).database()
    page = outbox.list_view(event_type=event_type, since=moment, integration_id=integration, limit=limit, cursor=cursor)
    rows = page.items
    out(ctx).json(rows) if as_json else out(ctx).table(rows, COLUMNS)
    if page.next_cursor:
        out(ctx).info(f"more: add --cursor {page.next_cursor}")


@app.command("tail")
def tail_cmd(
    ctx: typer.Context,
    event_type: TypeFilter = None,
    integration: IntegrationFilter = None,
    last: Annotated[int, typer.Option("--last", min=0, max=1000, help="Events to show before following.")] = 10,
    exit_after: Annotated[
        int | None,
        typer.Option("--exit-after", min=1, help="Stop after this many new events (a script waiting for one)."),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option("--timeout", help="Give up after this long (30s, 5m); exit 124 if --exit-after was not reached."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Print the latest events, then each new one as it is written (Ctrl-C stops).

    With --json, one JSON object per line.

    Example:  nexusctl events tail --type 'webhook.*' --json
    """
    # start-up: only this command needs it
    from nexusctl.config import parse_duration
    from nexusctl.config_values import MAX_DURATION_TEXT
    from nexusctl.core import outbox

    limit_s = None
    if timeout is not None:
        limit_s = parse_duration(timeout)
        if limit_s is None:
            raise UsageProblem(
                f"--timeout {timeout!r} is not a duration like 30s or 5m ({MAX_DURATION_TEXT})", field="timeout"
            )
    state(ctx).database()
    output = out(ctx)

    def show(event) -> None:
        row = outbox.to_dict(event)
        if as_json:
            output.value(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
        else:
            payload = json.dumps(row["payload"], ensure_ascii=False, separators=(",", ":"))
            line = f"{row['occurredAt']}  {row['type']:<28} {row['integrationId'] or '-'}  {payload[:160]}"
            output.value(printable(line))  # JSON left C1 controls and U+2028 as they were

    seen, cursor = set(), (clock.now(), None)
    for event in outbox.latest(last, event_type=event_type, integration_id=integration) if last else ():
        show(event)  # as they are loaded (a few MB at a time), not all --last of them first
        seen.add(event.id)
        cursor = (event.created_at, event.id)
    new, started = 0, time.monotonic()
    # Ctrl-C ends it as any command's: "interrupted", exit 130 (the root group's handler), so a script tells
    # an interrupted wait from one that saw its events.
    while exit_after is None or new < exit_after:
        if limit_s is not None and time.monotonic() - started > limit_s:
            output.error(f"timed out after {timeout} with {new} new events")
            raise typer.Exit(EXIT_TIMED_OUT)
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


@app.command("emit")
def emit_cmd(
    ctx: typer.Context,
    integration_id: Annotated[str | None, typer.Argument(help="Integration id.", show_default=False)] = None,
    event_type: Annotated[
        str | None,
        typer.Argument(
            help="Event name, e.g. post.created (not one of this service's own families).", show_default=False
        ),
    ] = None,
    data: Data = "{}",
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            "-f",
            help="Many events: a file of JSON lines "
            '(or - for stdin, UTF-8), each {"integrationId", "type", '
            '"data"}; sent in transactions of '
            "500. A refused line is reported and the others go; exit 2 (VALIDATION_ERROR) if any was refused, "
            "and the summary says how to send only those lines again. "
            "An error that stops it (the database gone) first says up to which line all is done, so a retry "
            "sends only the rest.",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Emit an event: one delivery per matching webhook, queued atomically. With --file, many events.

    The events only this service writes cannot be emitted: integration.*, webhook.*, sync.*, the families its
    syncs write (media.*, comment.*, analytics.*, order.* ...), user.deleted, content.published, slack.command.
    An event's data is a JSON object of at most 256 KiB (its JSON text): a larger one is refused (VALIDATION_ERROR).
    An inactive integration gets no events: refused (INTEGRATION_INACTIVE, exit 15; with --file, that line's refusal).

    Example:  nexusctl events emit 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10 post.created --data '{"postId": "p1"}'
    Example:  nexusctl events emit --file events.ndjson
    """
    # start-up: only this command needs it
    from nexusctl.core import events

    if file is not None:
        if integration_id is not None or event_type is not None:
            raise UsageProblem("give either --file or an integration id and an event type, not both", field="file")
        if ctx.get_parameter_source("data") is not ParameterSource.DEFAULT:
            raise UsageProblem("--data goes with one event: with --file each line has its own data", field="data")
        state(ctx).database()
        _emit_file(ctx, file, as_json)
        return
    if integration_id is None or event_type is None:
        raise UsageProblem(
            "give an integration id and an event type (or --file with JSON lines)",
            field="integration_id" if integration_id is None else "event_type",
        )
    value = read_data(data)
    st = state(ctx)
    st.database()
    result = events.emit(integration_id, event_type, value, deliveries_max=st.settings.emit_deliveries_max)
    out(ctx).success(f"Emitted {event_type}: {result['deliveriesQueued']} deliveries queued")
    if as_json:
        out(ctx).json(result)


LINE_MAX = 1024 * 1024  # bytes of one JSON line (an event's data is at most 256 KiB)


def _emit_file(ctx: typer.Context, file: str, as_json: bool) -> None:
    """Each JSON line an event; batches of events.BATCH_MAX in one transaction each; a bad line is reported
    with its line number and the others go. Exit status 2, VALIDATION_ERROR's (refused input), when any was
    refused: 1 is INTERNAL_ERROR, a bug."""
    # start-up: only this command needs it
    from nexusctl.core import events

    try:
        # Bytes, each line decoded on its own: one line that is not UTF-8 is that line's refusal, not a crash
        # after the batches before it were emitted.
        stream = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UsageProblem(f"cannot read {file}: {exc.strerror}", field="file") from None
    emitted = queued = refused = 0
    results = []
    warnings: list = []  # (line, text): printed in line order once the lines before them are answered
    sending: list = []  # the first line of the part being sent (nothing of it committed if that fails)

    def report(number: int, outcome) -> None:
        nonlocal emitted, queued, refused
        if isinstance(outcome, Exception):
            refused += 1
            code = getattr(outcome, "code", "VALIDATION_ERROR")
            warnings.append((number, f"line {number}: {code}: {getattr(outcome, 'message', outcome)}"))
            results.append({"line": number, "error": {"code": code, "message": getattr(outcome, "message", "")}})
        else:
            emitted += 1
            queued += outcome["deliveriesQueued"]
            results.append({"line": number, **outcome})

    def warn_before(line: int | None = None) -> None:
        warnings.sort()
        while warnings and (line is None or warnings[0][0] < line):
            out(ctx).warn(warnings.pop(0)[1])

    limit = state(ctx).settings.emit_deliveries_max

    def flush(batch) -> None:
        sending[:] = [batch[0][0]]
        try:
            outcomes = events.emit_many([item for _, item in batch], deliveries_max=limit)
        except events.TooManyDeliveries as exc:
            # EMIT_DELIVERIES_MAX bounds one transaction's deliveries: the batch goes in halves (nothing of it
            # was written); a single event over it is its line's refusal.
            if len(batch) == 1:
                sending.clear()
                report(batch[0][0], exc)
                return
            flush(batch[: len(batch) // 2])
            flush(batch[len(batch) // 2 :])
            return
        sending.clear()
        for (number, _), outcome in zip(batch, outcomes, strict=True):
            report(number, outcome)

    batch: list = []
    number = 0
    try:
        with stream:
            for number, line in enumerate(iter(lambda: stream.readline(LINE_MAX + 1), b""), start=1):
                if not line.strip():
                    continue
                try:
                    if len(line) > LINE_MAX:
                        raise UsageProblem(f"the line is over {LINE_MAX // (1024 * 1024)} MiB")
                    item = parse_json_object(_decode(line, number), f"line {number}")
                    unknown = sorted(set(item) - {"integrationId", "type", "data"})
                    if unknown:
                        raise UsageProblem(f"unknown field(s): {', '.join(unknown)}")
                    batch.append((number, (item.get("integrationId"), item.get("type"), item.get("data", {}), None)))
                except UsageProblem as exc:
                    report(number, exc)
                    if len(line) > LINE_MAX:  # skip the rest of the over-long line
                        while line and not line.endswith(b"\n"):
                            line = stream.readline(LINE_MAX + 1)
                    continue
                if len(batch) >= events.BATCH_MAX:
                    flush(batch)
                    batch = []
                    warn_before()
            if batch:
                flush(batch)
    except BaseException:
        # A database error (or Ctrl-C) midway: the batches before it are committed. Say how far, so a retry
        # sends the rest only (not duplicates of what went), then the error as any command's.
        resume = sending[0] if sending else batch[0][0] if batch else max(number, 1)
        warn_before(resume)
        _stopped(ctx, file, resume, results, as_json)
        raise
    warn_before()
    results.sort(key=lambda r: r["line"])
    out(ctx).success(
        f"Emitted {emitted} events: {queued} deliveries queued" + (f"; {refused} refused" if refused else "")
    )
    if refused:
        out(ctx).info(_resend_hint(file, [r["line"] for r in results if "error" in r]))
    if as_json:
        out(ctx).json({"emitted": emitted, "deliveriesQueued": queued, "refused": refused, "results": results})
    if refused:
        raise typer.Exit(UsageProblem.exit_code)


RESEND_LINES_MAX = 20  # refused lines named in the hint's sed command; more: the warnings name them


def _resend_hint(file: str, lines: list[int]) -> str:
    """How to send the refused ``lines`` again without the others (emitted already: the whole file again would
    emit them twice)."""
    which = f"line {lines[0]}" if len(lines) == 1 else f"{len(lines)} lines"
    if file != "-" and len(lines) <= RESEND_LINES_MAX:
        picked = ";".join(f"{n}p" for n in lines)
        how = f"e.g. sed -n '{picked}' {shlex.quote(file)} > refused.ndjson, fix it, then --file refused.ndjson"
    else:
        how = "the lines the warnings above name"
    return (
        f"{which} refused, the others emitted: fix and send only those again ({how}); "
        f"the whole {'file' if file != '-' else 'input'} again would emit the others twice"
    )


def _stopped(ctx: typer.Context, file: str, resume: int, results: list, as_json: bool) -> None:
    """What ``_emit_file`` had done when an error stopped it before line ``resume``: every line before it was
    answered (emitted, committed, or refused), none from it on."""
    done = sorted((r for r in results if r["line"] < resume), key=lambda r: r["line"])
    emitted = [r for r in done if "error" not in r]
    queued = sum(r["deliveriesQueued"] for r in emitted)
    refused = len(done) - len(emitted)
    rest = f"tail -n +{resume} {file}" if file != "-" else f"from line {resume} of the input"
    done_text = (
        f"lines 1-{resume - 1} are done ({len(emitted)} events emitted, {queued} deliveries queued, {refused} refused)"
        if resume > 1
        else "nothing was emitted"
    )
    out(ctx).warn(
        f"stopped at line {resume}: {done_text}; nothing from line {resume} on was emitted: send only those "
        f"again ({rest})"
    )
    if as_json:
        summary = {"emitted": len(emitted), "deliveriesQueued": queued, "refused": refused, "results": done}
        out(ctx).json({**summary, "stoppedAtLine": resume})


def _decode(line: bytes, number: int) -> str:
    """One line's text, strictly UTF-8 (JSON's encoding): anything else is that line's refusal, naming the byte.
    A UTF-8 BOM opens the first line only."""
    return utf8(line, f"line {number}", bom=number == 1)


@app.command("ingest")
def ingest_cmd(
    ctx: typer.Context,
    event_type: Annotated[
        str,
        typer.Argument(
            help="user.deleted or content.published.", show_default=False, autocompletion=complete_platform_event
        ),
    ],
    data: Data = "{}",
    event_id: Annotated[
        str | None, typer.Option("--id", help="The event's id: ingesting the same id again changes nothing.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Handle a platform event here, as the consumer group does with Redis (idempotent with --id).

    user.deleted {"userId"}: revoke and delete the user's integrations. content.published
    {"userId", "contentId", "title", "url", "media", "format"}: a publish run per capable integration, run
    now ("format": "story" publishes one image or video as an Instagram story).

    Example:  nexusctl events ingest user.deleted --data '{"userId": "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"}' --id e-42
    """
    # start-up: only this command needs it
    from nexusctl.cli.flows import run_flow
    from nexusctl.core import inbound

    event = inbound.make(event_type, read_data(data), event_id=event_id)

    async def flow(svc):
        # start-up: only this command needs it
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
        out(ctx).success(
            f"Deleted {outcome['integrationsDeleted']} integrations of user {outcome['userId']}"
            + (
                f" ({outcome['revokeFailures']} could not be revoked at the provider)"
                if outcome["revokeFailures"]
                else ""
            )
        )
    else:
        done = [i for i in outcome["syncLogs"] if i.get("status") == "COMPLETED"]
        out(ctx).success(
            f"Published content {outcome['contentId']} to {len(done)} of {len(outcome['syncLogs'])} integrations"
        )
        for item in outcome["syncLogs"]:
            if item.get("status") == "FAILED":
                out(ctx).warn(f"{item['provider']} {item['integrationId']}: {item['error']}")
    if as_json:
        out(ctx).json(outcome)
