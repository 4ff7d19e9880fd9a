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


class DiscordRig:
    """What proxy_ab and proxy_floor set up alike: the emulators in this process, a work folder, the settings
    (``base_env``, the emulators' URLs, FRONTEND_URL, no refresh sweep during the run, and ``settings``), the
    bench database migrated, a user and their token; the servers a script starts go into ``servers`` and are
    stopped with the emulators at ``close`` (or the end of a ``with`` block)."""

    def __init__(self, database_url: str | None, prefix: str, **settings: str) -> None:
        self.work = Path(tempfile.mkdtemp(prefix=prefix))
        self.emu = Emulators().start()
        self.servers: dict[str, subprocess.Popen] = {}
        try:
            self.env = base_env(self.work, database_url)
            self.env.update(self.emu.env(), FRONTEND_URL=FRONTEND, REFRESH_SWEEP_INTERVAL="3600", **settings)
            migrate(self.env)
            self.user = uuid.uuid4()
            self.token = user_token(self.env, self.user)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> DiscordRig:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def daemon(self, name: str, port: int, env: dict | None = None, **start) -> str:
        """``nexusctl daemon`` on ``port`` (with ``env``, default the rig's; ``start``: start_daemon's options),
        its address registered with the emulators as a redirect base; its base URL."""
        base = f"http://127.0.0.1:{port}"
        self.emu.register_callback_base(base)  # the emulators accept only registered redirects
        self.servers[name] = start_daemon(self.env if env is None else env, port, **start)
        return base

    def connect(self, base: str) -> str:
        """One more Discord integration of the user, connected through the daemon at ``base``: its id."""
        return connect(base, self.token, self.user)

    def direct(self) -> tuple[str, str]:
        """The baseline: (URL, credential) of the emulator's ``/v10/users/@me`` GET with the access token it
        issued (to the first connect)."""
        access = [value for value, t in self.emu["DISCORD"].tokens.items() if t.kind == "access"][0]
        return f"{self.emu.env()['DISCORD_API_URL']}/v10/users/@me", access

    def close(self) -> None:
        for server in self.servers.values():
            server.terminate()
            server.wait(20)
        self.emu.stop()
        shutil.rmtree(self.work, ignore_errors=True)


def phases(urls: dict, concurrency: int, seconds: float, rounds: int, pid_of, orders) -> dict:
    """``rounds`` rounds of ``load`` on each of ``urls`` ({name: (url, credential)}, warmed up first), in the
    order ``orders(round_)`` gives; per name the requests, seconds and errors, and the CPU seconds of the server
    (``pid_of(name)``, user and system apart; None: no server), of this process (the emulators') and of the load
    generator."""
    for url, credential in urls.values():
        load(url, credential, concurrency, 1.0)  # warm up
    keys = ("requests", "seconds", "errors", "user", "system", "emulator", "client")
    totals = {name: dict.fromkeys(keys, 0) for name in urls}
    for round_ in range(rounds):
        for name in orders(round_):
            pid = pid_of(name)
            before, emulator_before = cpu_times(pid) if pid else (0.0, 0.0), cpu_seconds(os.getpid())
            out = load(*urls[name], concurrency, seconds)
            after, emulator_after = cpu_times(pid) if pid else (0.0, 0.0), cpu_seconds(os.getpid())
            t = totals[name]
            t["requests"] += out["requests"]
            t["seconds"] += out["seconds"]
            t["errors"] += out["errors"]
            t["user"] += after[0] - before[0]
            t["system"] += after[1] - before[1]
            t["emulator"] += emulator_after - emulator_before
            t["client"] += out.get("cpu", 0.0)
    return totals


def per_call(totals: dict) -> dict:
    """``phases``' totals as each name's rate, ratio to ``direct``'s and CPU µs per call."""
    direct = totals["direct"]["requests"] / totals["direct"]["seconds"]
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
            "ratio": round(t["requests"] / t["seconds"] / direct, 3),
            "errors": t["errors"],
        }
    return result


def run(
    database_url: str | None,
    variants: list,
    seconds: float,
    rounds: int,
    concurrency: int,
    read: int = 0,
    pool: int = 3,
) -> dict:
    # Several daemons share one PostgreSQL server (and its max_connections) with whatever else runs there.
    with DiscordRig(database_url, "nexus-bench-proxy-ab-", DATABASE_POOL_SIZE=str(pool)) as rig:
        bases = {}
        for name, path, extra in variants:
            port = free_port()
            own = dict(rig.env, PUBLIC_URL=f"http://127.0.0.1:{port}", **extra)
            if path != "-":
                own["PYTHONPATH"] = path
            bases[name] = rig.daemon(
                name,
                port,
                own,
                command=[sys.executable, "-m", "nexusctl"],
                log=rig.work / f"{name}.log",
                cwd=rig.work,  # not this checkout: PYTHONPATH decides which code runs
            )
        first = bases[variants[0][0]]
        integration = rig.connect(first)
        for _ in range(read - 1):  # --read N: the user's list is N rows
            rig.connect(first)
        urls = {"direct": rig.direct()}
        for name, base in bases.items():
            path = f"/integrations/user/{rig.user}" if read else f"/integrations/{integration}/proxy/v10/users/@me"
            urls[name] = (base + path, rig.token)
        daemons = list(bases)
        totals = phases(
            urls,
            concurrency,
            seconds,
            rounds,
            # direct: the emulators' process
            lambda name: os.getpid() if name == "direct" else rig.servers[name].pid,
            lambda round_: ["direct", *(daemons if round_ % 2 == 0 else reversed(daemons))],
        )
    return {
        "path": f"GET /integrations/user/:id ({read} rows)" if read else "GET /integrations/:id/proxy/v10/users/@me",
        "variants": per_call(totals),
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
