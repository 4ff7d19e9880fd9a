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
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, start_python, wait_http, write_json  # noqa: E402
from proxy_ab import DiscordRig, per_call, phases  # noqa: E402

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
    port, bare_port = free_port(), free_port()
    with DiscordRig(database_url, "nexus-bench-proxy-floor-", PUBLIC_URL=f"http://127.0.0.1:{port}") as rig:
        base = rig.daemon("daemon", port, log=rig.work / "daemon.log")
        integration = rig.connect(base)
        direct, access = rig.direct()
        api = rig.emu.env()["DISCORD_API_URL"]
        rig.servers["bare"] = start_python(
            BARE,
            bare_port,
            env=dict(rig.env, BARE_UPSTREAM=api, BARE_TOKEN=access),
            stdout=subprocess.DEVNULL,
            stderr=open(rig.work / "bare.log", "w"),
        )
        wait_http(f"http://127.0.0.1:{bare_port}/health")
        path = f"/integrations/{integration}/proxy/v10/users/@me"
        urls = {
            "direct": (direct, access),
            "daemon": (base + path, rig.token),
            "bare": (f"http://127.0.0.1:{bare_port}{path}", rig.token),
        }
        totals = phases(
            urls,
            concurrency,
            seconds,
            rounds,
            lambda name: rig.servers[name].pid if name in rig.servers else None,  # direct: no server of its own
            lambda round_: ["direct", "daemon", "bare"] if round_ % 2 == 0 else ["direct", "bare", "daemon"],
        )
    paths = {  # the server's CPU as one figure (proxy_ab shows user and system apart)
        name: {
            "perSecond": r["perSecond"],
            "ratio": r["ratio"],
            "serverUs": r["cpuUs"],
            "emulatorUs": r["emulatorUs"],
            "clientUs": r["clientUs"],
            "errors": r["errors"],
        }
        for name, r in per_call(totals).items()
    }
    return {"paths": paths, "rounds": rounds, "seconds": seconds, "loadAverage": round(os.getloadavg()[0], 1)}


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
