"""Proxied GETs alternated between several daemons (other code or other settings) in the same minutes.

On a shared machine rates wander with the load, so a before/after pair is best measured side by side:
one emulator, one database, one Discord integration (connected through the first daemon), and one
``nexusctl daemon`` per variant, each given its own PYTHONPATH (e.g. a ``git archive`` of main) and/or
environment. Rounds alternate the variants (and direct GETs of the emulator, the baseline), reversing
the order every other round; each variant's CPU per call is read from /proc (user and system apart).
``--read N`` measures ``GET /integrations/user/:id`` of N connected integrations instead (the read route).

    git archive main nexusctl | tar -x -C /tmp/main-src
    .venv/bin/python bench/proxy_ab.py --database-url postgresql://postgres@127.0.0.1:5432/bench_b \\
        main=/tmp/main-src asyncio=-:NEXUSCTL_EVENT_LOOP=asyncio branch=-
    (NAME=PYTHONPATH[:VAR=VALUE,...]; "-" for this checkout's code)
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
    cpu_times,
    free_port,
    migrate,
    start_daemon,
    user_token,
    variant,
    write_json,
)
from proxy import FRONTEND, Emulators, connect  # noqa: E402


def run(
    database_url: str | None,
    variants: list,
    seconds: float,
    rounds: int,
    concurrency: int,
    read: int = 0,
    pool: int = 3,
) -> dict:
    work = Path(tempfile.mkdtemp(prefix="nexus-bench-proxy-ab-"))
    emu = Emulators().start()
    daemons: dict[str, subprocess.Popen] = {}
    try:
        env = base_env(work, database_url)
        # Several daemons share one PostgreSQL server (and its max_connections) with whatever else runs there.
        env.update(emu.env(), FRONTEND_URL=FRONTEND, REFRESH_SWEEP_INTERVAL="3600", DATABASE_POOL_SIZE=str(pool))
        ports = {name: free_port() for name, _, _ in variants}
        for port in ports.values():
            emu.register_callback_base(f"http://127.0.0.1:{port}")
        migrate(env)
        user = uuid.uuid4()
        token = user_token(env, user)
        for name, path, extra in variants:
            own = dict(env, PUBLIC_URL=f"http://127.0.0.1:{ports[name]}", **extra)
            if path != "-":
                own["PYTHONPATH"] = path
            daemons[name] = start_daemon(
                own,
                ports[name],
                command=[sys.executable, "-m", "nexusctl"],
                log=work / f"{name}.log",
                cwd=work,  # not this checkout: PYTHONPATH decides which code runs
            )
        first = f"http://127.0.0.1:{ports[variants[0][0]]}"
        integration = connect(first, token, user)
        for _ in range(read - 1):  # --read N: the user's list is N rows
            connect(first, token, user)
        access = [value for value, t in emu["DISCORD"].tokens.items() if t.kind == "access"][0]
        urls = {"direct": (f"{emu.env()['DISCORD_API_URL']}/v10/users/@me", access)}
        for name in daemons:
            path = f"/integrations/user/{user}" if read else f"/integrations/{integration}/proxy/v10/users/@me"
            urls[name] = (f"http://127.0.0.1:{ports[name]}{path}", token)
        for url, credential in urls.values():
            load(url, credential, concurrency, 1.0)  # warm up
        totals = {
            name: {
                "requests": 0,
                "seconds": 0.0,
                "errors": 0,
                "user": 0.0,
                "system": 0.0,
                "emulator": 0.0,
                "client": 0.0,
            }
            for name in urls
        }
        for round_ in range(rounds):
            order = ["direct", *(daemons if round_ % 2 == 0 else reversed(daemons))]
            for name in order:
                pid = os.getpid() if name == "direct" else daemons[name].pid  # direct: the emulators' process
                before, emulator_before = cpu_times(pid), cpu_seconds(os.getpid())
                out = load(*urls[name], concurrency, seconds)
                after, emulator_after = cpu_times(pid), cpu_seconds(os.getpid())
                t = totals[name]
                t["requests"] += out["requests"]
                t["seconds"] += out["seconds"]
                t["errors"] += out["errors"]
                t["user"] += after[0] - before[0]
                t["system"] += after[1] - before[1]
                t["emulator"] += emulator_after - emulator_before
                t["client"] += out.get("cpu", 0.0)
    finally:
        for daemon in daemons.values():
            daemon.terminate()
            daemon.wait(20)
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    result = {}
    for name, t in totals.items():
        calls = max(t["requests"], 1)
        result[name] = {
            "perSecond": round(t["requests"] / t["seconds"], 1),
            "userUs": round(t["user"] / calls * 1e6, 1),
            "systemUs": round(t["system"] / calls * 1e6, 1),
            "cpuUs": round((t["user"] + t["system"]) / calls * 1e6, 1),
            "emulatorUs": round(t["emulator"] / calls * 1e6, 1),
            "clientUs": round(t["client"] / calls * 1e6, 1),
            "ratio": round(
                t["requests"] / t["seconds"] / (totals["direct"]["requests"] / totals["direct"]["seconds"]), 3
            ),
            "errors": t["errors"],
        }
    return {
        "path": f"GET /integrations/user/:id ({read} rows)" if read else "GET /integrations/:id/proxy/v10/users/@me",
        "variants": result,
        "rounds": rounds,
        "seconds": seconds,
        "loadAverage": round(os.getloadavg()[0], 1),
    }


def markdown(result: dict) -> str:
    lines = [
        f"{result['path']}: {result['rounds']} alternating rounds of {result['seconds']:g} s; load average at the end "
        f"{result['loadAverage']}. CPU per call of the daemon (direct: of the emulators' process), of the "
        "emulators' process (the benchmark's own) and of the load generator.",
        "",
        "| variant | req/s | ratio to direct | daemon CPU µs per call (user + system) | emulator µs | client µs |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in result["variants"].items():
        lines.append(
            f"| {name} | {r['perSecond']} | {r['ratio']} | {r['cpuUs']} ({r['userUs']} + {r['systemUs']}) | "
            f"{r['emulatorUs']} | {r['clientUs']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help="NAME=PYTHONPATH[:VAR=VALUE,...] ('-': this checkout)")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--seconds", type=float, default=5.0, help="per round and variant")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--read", type=int, default=0, help="N: measure GET /integrations/user/:id of N rows instead")
    parser.add_argument("--pool", type=int, default=3, help="DATABASE_POOL_SIZE of each daemon")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    variants = [variant(v) for v in args.variants]
    result = run(args.database_url, variants, args.seconds, args.rounds, args.concurrency, args.read, args.pool)
    print(markdown(result))
    write_json(args.json, result)


if __name__ == "__main__":
    main()
