"""`nexusctl integrations call`: one provider API call with the integration's credentials (the API proxy's core)."""

import json
import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode

import typer

from nexusctl.cli.context import out
from nexusctl.cli.flows import run_flow
from nexusctl.cli.options import Json, complete_http_method
from nexusctl.errors import ProviderError, RateLimited, UsageProblem

MAX_JSON_BODY = 10 * 1024 * 1024  # --json holds the answer to print it as one document; raw output streams


def _data(value: str | None) -> tuple[bytes | None, str | None]:
    """(the body, its Content-Type) from --data: a JSON text, @FILE, or - for stdin."""
    if value is None:
        return None, None
    if value == "-":
        raw = sys.stdin.buffer.read()
    elif value.startswith("@"):
        try:
            raw = Path(value[1:]).read_bytes()
        except OSError as exc:
            raise UsageProblem(f"cannot read {value[1:]}: {exc.strerror}", field="data") from None
    else:
        try:
            json.loads(value)
        except ValueError:
            raise UsageProblem("--data must be JSON, @FILE or - (stdin)", field="data") from None
        return value.encode(), "application/json"
    try:
        json.loads(raw)
        return raw, "application/json"
    except ValueError:
        return raw, "application/octet-stream"


def _pairs(values: list[str], sep: str, flag: str) -> list[tuple[str, str]]:
    pairs = []
    for item in values:
        key, found, val = item.partition(sep)
        if not found or not key.strip():
            raise UsageProblem(f"{flag} takes name{sep}value, got {item!r}", field=flag.lstrip("-"))
        pairs.append((key.strip(), val.strip() if sep == ":" else val))
    return pairs


def call_cmd(
    ctx: typer.Context,
    integration_id: Annotated[str, typer.Argument(help="Integration id (UUID).", show_default=False)],
    method: Annotated[
        str,
        typer.Argument(
            help="GET, POST, PUT, PATCH or DELETE.", show_default=False, autocompletion=complete_http_method
        ),
    ],
    path: Annotated[
        str, typer.Argument(help="The provider path under its API base, e.g. /v10/users/@me.", show_default=False)
    ],
    data: Annotated[str | None, typer.Option("--data", "-d", help="Request body: JSON, @FILE or - (stdin).")] = None,
    query: Annotated[list[str] | None, typer.Option("--query", help="A query parameter, k=v (repeatable).")] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="A request header, k:v (repeatable).")
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", min=0, max=5, help="Retry an idempotent call this many times when throttled.")
    ] = 0,
    as_json: Json = False,
) -> None:
    """Call the integration's provider API with its credentials added (refreshed first when due).

    The provider's answer goes to stdout as it comes (with --json: status, headers and body as one JSON object);
    exit 0 for 2xx-3xx, 23 when throttled (429), 25 for any other provider error status.

    Example:  nexusctl integrations call 1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed GET /v10/users/@me --json
    """
    # start-up: asyncio (and ssl) load only for the commands that run a flow
    import asyncio

    from nexusctl.core import proxy

    body, content_type = _data(data)
    headers = dict(_pairs(header or [], ":", "--header"))
    if content_type and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = content_type
    encoded_path = quote(path if path.startswith("/") else "/" + path, safe="/@:,;=+!$&'()*~-._%")
    request = proxy.ProxyRequest(
        method.upper(), encoded_path, urlencode(_pairs(query or [], "=", "--query")), headers, body, retries
    )
    proxy.check_request(request)  # a bad path or method is a usage error before the database is opened

    async def flow(svc):
        async with proxy.call(svc, integration_id, request) as answer:
            if not as_json:
                stream = sys.stdout.buffer
                async for chunk in answer.chunks():
                    stream.write(chunk)
                    await asyncio.sleep(0)
                stream.flush()
                return answer.status, None
            raw, size = [], 0
            async for chunk in answer.chunks():
                size += len(chunk)
                if size > MAX_JSON_BODY:
                    raise UsageProblem("the answer is over 10 MiB: drop --json to stream it", field="json")
                raw.append(chunk)
            return answer.status, {"status": answer.status, "headers": answer.headers, "body": b"".join(raw)}

    status, result = run_flow(ctx, flow)
    if result is not None:
        text = result["body"].decode("utf-8", "replace")
        try:
            result["body"] = json.loads(text) if text else None
        except ValueError:
            result["body"] = text
        out(ctx).json(result)
    if status == 429:
        raise typer.Exit(RateLimited.exit_code)
    if status >= 400:
        raise typer.Exit(ProviderError.exit_code)


def register(app: typer.Typer) -> None:
    app.command("call")(call_cmd)
