"""Benchmark: proxied GETs per second (`/integrations/:id/proxy/...`) against direct GETs to the same emulator.

One run, one machine:

1. The provider emulators of tests/emulators run in this process (their own thread and loop); one Discord
   integration is connected through the daemon the way a browser does it (initiate, authorize, callback).
2. direct - a load generator (another process, aiohttp, fixed concurrency and duration) GETs the
            emulator's ``/v10/users/@me`` with the access token the emulator issued: the ceiling.
3. proxy  - the same load generator GETs ``/integrations/:id/proxy/v10/users/@me`` from one
            ``nexusctl daemon`` with a user JWT: the daemon checks the JWT, loads and decrypts the
            integration, signs and streams the same emulator answer back.
4. read   - ``GET /integrations/:id`` of the same daemon: one authenticated row read, what every proxied
            call does before its provider call (the daemon's own ceiling for it).
5. front  - with ``--front nginx``: the same proxied GETs through nginx in front of the daemon
            (deploy/nginx/nexusctl-proxy.conf, PROXY_FRONT_SECRET set): nginx asks the daemon for a grant
            (auth_request) and sends the call to the emulator itself, over kept-alive connections.
Rounds alternate them so machine noise hits all; the figure is proxy/direct (goal: >= 0.5), and front/direct.

    .venv/bin/python bench/proxy.py --database-url postgresql://postgres@127.0.0.1:5432/bench_b
    .venv/bin/python bench/proxy.py --seconds 3 --rounds 1        # SQLite in a temporary directory
    .venv/bin/python bench/proxy.py --front nginx --nginx-workers 1   # also through nginx (Debian's nginx-light)
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_read import load  # noqa: E402
from common import (  # noqa: E402
    ROOT,
    CpuMeter,
    base_env,
    free_port,
    is_postgres,
    migrate,
    start_daemon,
    user_token,
    write_json,
)

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from emulators.server import Emulators  # noqa: E402
from emulators.testkit import call  # noqa: E402
from support.front import NginxFront  # noqa: E402

FRONTEND = "http://app.bench.test"


def connect(base: str, token: str, user: uuid.UUID) -> str:
    """Discord, through the browser journey: the integration's id."""
    started = call(
        "POST",
        f"{base}/integrations/oauth/initiate",
        headers={"Authorization": f"Bearer {token}"},
        json_body={"userId": str(user), "provider": "DISCORD", "redirectUri": f"{FRONTEND}/done"},
    )
    at_provider = call("GET", started.json()["data"]["authorizationUrl"])
    if not at_provider.location:
        raise RuntimeError(f"authorizing failed: {at_provider.status} {at_provider.text[:300]}")
    final = call("GET", at_provider.location)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(final.location).query))
    if query.get("status") != "success":
        raise RuntimeError(f"connecting failed: {final.location}")
    return query["integrationId"]


def run(
    database_url: str | None,
    seconds: float,
    rounds: int,
    concurrency: int,
    redis_url: str | None = None,
    front: str | None = None,
    nginx_workers: int = 1,
    grant_cache: float = 0,
) -> dict:
    work = Path(tempfile.mkdtemp(prefix="nexus-bench-proxy-"))
    emu = Emulators().start()
    daemon = nginx = None
    secret = secrets.token_hex(32)
    try:
        env = base_env(work, database_url)
        port = free_port()
        env.update(
            emu.env(),
            PUBLIC_URL=f"http://127.0.0.1:{port}",
            FRONTEND_URL=FRONTEND,
            PORT=str(port),
            REFRESH_SWEEP_INTERVAL="3600",
            LOG_LEVEL="warning",
        )
        if redis_url:  # the scale-out shape: the rate budget (and OAuth states) in Redis
            env["REDIS_URL"] = redis_url
        if front:
            env["PROXY_FRONT_SECRET"] = secret
        emu.register_callback_base(f"http://127.0.0.1:{port}")  # the emulators accept only registered redirects
        migrate(env)
        user = uuid.uuid4()
        token = user_token(env, user)
        daemon = start_daemon(env, port, log=work / "daemon.log")
        base = f"http://127.0.0.1:{port}"
        integration = connect(base, token, user)
        discord = emu["DISCORD"]
        (access,) = [value for value, t in discord.tokens.items() if t.kind == "access"]
        direct_url = f"{emu.env()['DISCORD_API_URL']}/v10/users/@me"
        proxy_url = f"{base}/integrations/{integration}/proxy/v10/users/@me"
        load(proxy_url, token, concurrency, 1.0)  # warm up both paths
        load(direct_url, access, concurrency, 1.0)
        read_url = f"{base}/integrations/{integration}"
        nginx_pids: dict = {}
        if front == "nginx":
            origin = urllib.parse.urlsplit(direct_url)
            nginx = NginxFront(
                port,
                secret,
                work / "nginx",
                {f"{origin.scheme}://{origin.netloc}": "nexus_emulators"},
                nginx_workers,
                grant_cache,
            ).start()
            nginx_pids = {f"nginx{i}": pid for i, pid in enumerate([nginx.process.pid, *nginx.worker_pids()])}
            front_url = f"{nginx.base}/integrations/{integration}/proxy/v10/users/@me"
            check = call("GET", front_url, headers={"Authorization": f"Bearer {token}"})
            deadline = time.monotonic() + 5  # nginx writes its log line once the answer is out
            while '"DISCORD" 200' not in nginx.access_log.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            if check.status != 200 or '"DISCORD" 200' not in nginx.access_log.read_text():
                raise RuntimeError(f"nginx did not send the call itself: {check.status} {check.text[:200]}")
            load(front_url, token, concurrency, 1.0)
        direct, proxied, fronted, read = [], [], [], []
        cpu = {"direct": [], "proxy": [], "front": []}
        db = _database(database_url)
        for _ in range(rounds):
            meter = CpuMeter(db, daemon=daemon.pid, emulator=os.getpid(), **nginx_pids)
            direct.append(load(direct_url, access, concurrency, seconds))
            cpu["direct"].append(_with_client(meter, direct[-1]))
            meter = CpuMeter(db, daemon=daemon.pid, emulator=os.getpid(), **nginx_pids)
            proxied.append(load(proxy_url, token, concurrency, seconds))
            cpu["proxy"].append(_with_client(meter, proxied[-1]))
            if nginx is not None:
                meter = CpuMeter(db, daemon=daemon.pid, emulator=os.getpid(), **nginx_pids)
                fronted.append(load(front_url, token, concurrency, seconds))
                cpu["front"].append(_with_client(meter, fronted[-1]))
            read.append(load(read_url, token, concurrency, seconds))
        if db is not None:
            db.close()
    finally:
        if nginx is not None:
            nginx.stop()
        if daemon is not None:
            daemon.terminate()
            daemon.wait(20)
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)

    def rate(runs):
        return sum(r["requests"] for r in runs) / sum(r["seconds"] for r in runs)

    errors = sum(r["errors"] for r in direct + proxied + fronted + read)

    def cpu_per_call(phase):
        if not cpu[phase]:
            return {}
        merged = [  # nginx's master and workers as one
            {
                **{n: v for n, v in s.items() if not n.startswith("nginx")},
                **({"nginx": sum(v for n, v in s.items() if n.startswith("nginx"))} if nginx_pids else {}),
            }
            for s in cpu[phase]
        ]
        names = sorted({n for sample in merged for n in sample})
        return {n: round(sum(s.get(n, 0.0) for s in merged) / len(merged), 1) for n in names}

    result = {
        "database": ("PostgreSQL" if is_postgres(database_url) else "SQLite") + (" + Redis" if redis_url else ""),
        "concurrency": concurrency,
        "seconds": seconds,
        "rounds": rounds,
        "directPerSecond": round(rate(direct), 1),
        "proxyPerSecond": round(rate(proxied), 1),
        "ratio": round(rate(proxied) / rate(direct), 3),
        "proxyP50Ms": round(sorted(r["p50_ms"] for r in proxied)[len(proxied) // 2], 2),
        "directP50Ms": round(sorted(r["p50_ms"] for r in direct)[len(direct) // 2], 2),
        "errors": errors,
        "readPerSecond": round(rate(read), 1),
        "ratioToRead": round(rate(proxied) / rate(read), 3),
        "cpuUsPerCall": {phase: cpu_per_call(phase) for phase in cpu if cpu[phase]},
        "loadAverage": round(os.getloadavg()[0], 1),
    }
    if fronted:
        result.update(
            front=front,
            nginxWorkers=nginx_workers,
            grantCacheSeconds=grant_cache,
            frontPerSecond=round(rate(fronted), 1),
            frontRatio=round(rate(fronted) / rate(direct), 3),
            frontP50Ms=round(sorted(r["p50_ms"] for r in fronted)[len(fronted) // 2], 2),
        )
    return result


def _with_client(meter: CpuMeter, out: dict) -> dict:
    """The phase's CPU per call by process, the load generator's own (``client``: during the run) too."""
    used = meter.per_item_us(out["requests"])
    used["client"] = out["cpu"] / max(out["requests"], 1) * 1e6
    return used


def _database(url: str | None):
    """A connection for CpuMeter to find the bench database's PostgreSQL backends (None on SQLite)."""
    if not is_postgres(url):
        return None
    import peewee

    parts = urllib.parse.urlsplit(url)
    return peewee.PostgresqlDatabase(
        parts.path.lstrip("/"), user=parts.username, password=parts.password, host=parts.hostname, port=parts.port
    )


def markdown(result: dict) -> str:
    return "\n".join(
        [
            f"### Provider API proxy ({result['database']})",
            "",
            f"GET `/v10/users/@me` of the Discord emulator, {result['concurrency']} concurrent, "
            f"{result['rounds']} x {result['seconds']:.0f} s each, alternating.",
            "",
            "| Path | req/s | p50 ms |",
            "|---|---|---|",
            f"| direct to the emulator | {result['directPerSecond']} | {result['directP50Ms']} |",
            f"| through `/integrations/:id/proxy` | {result['proxyPerSecond']} | {result['proxyP50Ms']} |",
            *(
                [
                    f"| through nginx in front ({result['nginxWorkers']} worker(s)) and the daemon's grant"
                    + (f" (kept {result['grantCacheSeconds']:g} s in nginx)" if result["grantCacheSeconds"] else "")
                    + f" | "
                    f"{result['frontPerSecond']} | {result['frontP50Ms']} |"
                ]
                if "frontPerSecond" in result
                else []
            ),
            f"| `GET /integrations/:id` of the same daemon (one row read) | {result['readPerSecond']} | |",
            "",
            f"Ratio proxy/direct: **{result['ratio']}** (goal >= 0.5); proxy / one row read: "
            f"{result['ratioToRead']}; errors: {result['errors']}."
            + (f" Ratio through nginx/direct: **{result['frontRatio']}**." if "frontRatio" in result else ""),
            "",
            "CPU per call (microseconds, by process; `emulator` is the benchmark's own process, which also runs the "
            "emulators' loop):",
            "",
            *(
                f"- {phase}: " + ", ".join(f"{n} {us}" for n, us in result["cpuUsPerCall"][phase].items())
                for phase in result["cpuUsPerCall"]
            ),
            "",
            f"Load average at the end: {result['loadAverage']}.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="alternating direct/proxy rounds")
    parser.add_argument("--redis-url", help="REDIS_URL for the daemon (default: none)")
    parser.add_argument("--front", choices=("nginx",), help="also measure the proxied GETs through this front")
    parser.add_argument("--nginx-workers", type=int, default=1, help="nginx's worker_processes (with --front)")
    parser.add_argument(
        "--grant-cache",
        type=float,
        default=0,
        metavar="SECONDS",
        help="with --front nginx: keep grants this long in nginx's memory (lua_shared_dict; libnginx-mod-http-lua)",
    )
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    started = time.monotonic()
    result = run(
        args.database_url,
        args.seconds,
        args.rounds,
        args.concurrency,
        args.redis_url,
        args.front,
        args.nginx_workers,
        args.grant_cache,
    )
    result["wallSeconds"] = round(time.monotonic() - started, 1)
    print(markdown(result))
    write_json(args.json, result)


if __name__ == "__main__":
    main()
