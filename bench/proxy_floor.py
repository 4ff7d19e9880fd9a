"""The proxy's floor: direct GETs, the daemon's proxy route and a bare aiohttp pass-through, alternated.

The bare pass-through is what any aiohttp proxy costs before doing anything of its own: one route that GETs
the emulator with a fixed token (``ClientSession.get``, no cookies kept) and writes the answer back; no JWT,
no row, no rate budget, no path checks, no log line, no metrics. Its ratio to direct GETs is the most the
daemon's own route could reach with aiohttp on both legs. CPU per call of each server, of the emulators'
process (the benchmark's own) and of the load generator, from /proc.

    .venv/bin/python bench/proxy_floor.py --database-url postgresql://postgres@127.0.0.1:5432/bench_b
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_read import load  # noqa: E402
from common import (  # noqa: E402
    base_env,
    cpu_seconds,
    free_port,
    migrate,
    start_daemon,
    start_python,
    user_token,
    wait_http,
    write_json,
)
from proxy import FRONTEND, Emulators, connect  # noqa: E402

BARE = r"""
import os, sys
import aiohttp
from aiohttp import web

UPSTREAM, TOKEN = os.environ["BARE_UPSTREAM"], os.environ["BARE_TOKEN"]
DROPPED = {"content-length", "transfer-encoding", "connection", "keep-alive", "date", "server", "set-cookie",
           "content-encoding"}

async def started(app):
    app["session"] = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())

async def forward(request):
    url = UPSTREAM + "/" + request.match_info["path"]
    async with request.app["session"].get(url, headers={"Authorization": "Bearer " + TOKEN}) as answer:
        body = await answer.read()
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in DROPPED}
        return web.Response(status=answer.status, headers=headers, body=body)

async def health(request):
    return web.Response(text="ok")

app = web.Application()
app.on_startup.append(started)
app.router.add_get("/integrations/{id}/proxy/{path:.*}", forward)
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def run(database_url: str | None, seconds: float, rounds: int, concurrency: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="nexus-bench-proxy-floor-"))
    emu = Emulators().start()
    servers: dict[str, subprocess.Popen] = {}
    try:
        env = base_env(work, database_url)
        port, bare_port = free_port(), free_port()
        base = f"http://127.0.0.1:{port}"
        env.update(emu.env(), FRONTEND_URL=FRONTEND, REFRESH_SWEEP_INTERVAL="3600", PUBLIC_URL=base)
        emu.register_callback_base(base)
        migrate(env)
        user = uuid.uuid4()
        token = user_token(env, user)
        servers["daemon"] = start_daemon(env, port, log=work / "daemon.log")
        integration = connect(base, token, user)
        access = [value for value, t in emu["DISCORD"].tokens.items() if t.kind == "access"][0]
        api = emu.env()["DISCORD_API_URL"]
        servers["bare"] = start_python(
            BARE,
            bare_port,
            env=dict(env, BARE_UPSTREAM=api, BARE_TOKEN=access),
            stdout=subprocess.DEVNULL,
            stderr=open(work / "bare.log", "w"),
        )
        wait_http(f"http://127.0.0.1:{bare_port}/health")
        path = f"/integrations/{integration}/proxy/v10/users/@me"
        urls = {
            "direct": (f"{api}/v10/users/@me", access),
            "daemon": (base + path, token),
            "bare": (f"http://127.0.0.1:{bare_port}{path}", token),
        }
        for url, credential in urls.values():
            load(url, credential, concurrency, 1.0)  # warm up
        totals = {name: dict(requests=0, seconds=0.0, errors=0, server=0.0, emulator=0.0, client=0.0) for name in urls}
        for round_ in range(rounds):
            for name in ["direct", "daemon", "bare"] if round_ % 2 == 0 else ["direct", "bare", "daemon"]:
                server = servers.get(name)
                before = (cpu_seconds(server.pid) if server else 0.0, cpu_seconds(os.getpid()))
                out = load(*urls[name], concurrency, seconds)
                after = (cpu_seconds(server.pid) if server else 0.0, cpu_seconds(os.getpid()))
                t = totals[name]
                t["requests"] += out["requests"]
                t["seconds"] += out["seconds"]
                t["errors"] += out["errors"]
                t["server"] += after[0] - before[0]
                t["emulator"] += after[1] - before[1]
                t["client"] += out["cpu"]
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(20)
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    direct = totals["direct"]["requests"] / totals["direct"]["seconds"]
    result = {}
    for name, t in totals.items():
        calls = max(t["requests"], 1)
        result[name] = {
            "perSecond": round(t["requests"] / t["seconds"], 1),
            "ratio": round(t["requests"] / t["seconds"] / direct, 3),
            "serverUs": round(t["server"] / calls * 1e6, 1),
            "emulatorUs": round(t["emulator"] / calls * 1e6, 1),
            "clientUs": round(t["client"] / calls * 1e6, 1),
            "errors": t["errors"],
        }
    return {"paths": result, "rounds": rounds, "seconds": seconds, "loadAverage": round(os.getloadavg()[0], 1)}


def markdown(result: dict) -> str:
    lines = [
        f"GET /v10/users/@me of the Discord emulator: {result['rounds']} alternating rounds of {result['seconds']:g} s;"
        f" load average at the end {result['loadAverage']}.",
        "",
        "| path | req/s | ratio to direct | server CPU µs per call | emulator µs | client µs | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["paths"].items():
        lines.append(
            f"| {name} | {r['perSecond']} | {r['ratio']} | {r['serverUs']} | {r['emulatorUs']} | {r['clientUs']} | "
            f"{r['errors']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--seconds", type=float, default=4.0, help="per round and path")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    result = run(args.database_url, args.seconds, args.rounds, args.concurrency)
    print(markdown(result))
    write_json(args.json, result)


if __name__ == "__main__":
    main()
