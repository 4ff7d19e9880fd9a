"""Benchmark: GET /integrations/user/:userId (20 integrations) against GET /health.

Starts a real `nexusctl daemon` on the chosen database, seeds one user with 20
integrations, then drives both routes from a load generator in another
process (aiohttp, fixed concurrency, fixed duration), alternating the two so
machine noise hits both. Prints a Markdown report; the figure that matters is
the ratio read/health measured in the same run (goal: >= 0.5 on PostgreSQL).

    .venv/bin/python bench/api_read.py --database-url postgresql://postgres@127.0.0.1:5432/bench
    .venv/bin/python bench/api_read.py                       # SQLite in a temporary directory
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import base_env, free_port, migrate, start_daemon, user_token, write_json  # noqa: E402

LOADGEN = r"""
import asyncio, json, sys, time
import aiohttp

async def main(url, token, concurrency, seconds):
    latencies, errors, cpu = [], 0, time.process_time()  # the run's own CPU, not the start-up's
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker():
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.sort()
    print(json.dumps({"requests": len(latencies), "errors": errors, "seconds": seconds,
                      "p50_ms": latencies[len(latencies) // 2] * 1000,
                      "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
                      "cpu": time.process_time() - cpu}))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
"""


def seed(env: dict, user: uuid.UUID, count: int) -> None:
    code = f"""
import uuid
from nexusctl import config
from nexusctl.crypto import keyring_from_settings
from nexusctl.db.database import bind, open_database
from nexusctl.db.models import Integration
from nexusctl.db.secrets import seal
from nexusctl.enums import Provider
settings = config.load()
ring = keyring_from_settings(settings)
bind(open_database(settings.database_url.get()))
providers = list(Provider)
for i in range({count}):
    row = Integration(user_id=uuid.UUID("{user}"), provider=providers[i % 20], name=f"@bench{{i}}", scope=["a", "b"],
                      metadata={{"i": i}})
    seal(ring, row, "access_token", "bench-access")
    seal(ring, row, "refresh_token", "bench-refresh")
    row.save(force_insert=True)
"""
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def load(url: str, token: str, concurrency: int, seconds: float) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", LOADGEN, url, token, str(concurrency), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="alternating health/read rounds")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="nexus-bench-"))
    env = base_env(work, args.database_url)
    migrate(env)
    user = uuid.uuid4()
    seed(env, user, 20)
    token = user_token(env, user)
    port = free_port()
    daemon = start_daemon(env, port)
    try:
        base = f"http://127.0.0.1:{port}"
        load(base + "/health", "", args.concurrency, 1.0)  # warm up
        health, read = [], []
        for _ in range(args.rounds):
            health.append(load(base + "/health", "", args.concurrency, args.seconds))
            read.append(load(f"{base}/integrations/user/{user}", token, args.concurrency, args.seconds))
    finally:
        daemon.terminate()
        daemon.wait(20)

    def rate(runs):
        return sum(r["requests"] for r in runs) / sum(r["seconds"] for r in runs)

    h, r = rate(health), rate(read)
    kind = "PostgreSQL" if args.database_url and args.database_url.startswith("postgres") else "SQLite"
    write_json(
        args.json,
        {
            "database": kind,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "seconds": args.seconds,
            "health_per_s": h,
            "read_per_s": r,
            "ratio": r / h,
            "health_p50_ms": health[-1]["p50_ms"],
            "health_p99_ms": health[-1]["p99_ms"],
            "read_p50_ms": read[-1]["p50_ms"],
            "read_p99_ms": read[-1]["p99_ms"],
            "errors": sum(x["errors"] for x in health + read),
        },
    )
    print(f"""## API read benchmark

- Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; database: {kind}
- Method: one daemon; a separate aiohttp load-generator process, {args.concurrency} concurrent requests,
  {args.rounds} alternating rounds of {args.seconds:.0f} s per route.

| Route | requests/s | p50 ms | p99 ms | non-200 |
|---|---|---|---|---|
| GET /health | {h:.0f} | {health[-1]["p50_ms"]:.1f} | {health[-1]["p99_ms"]:.1f} | {sum(x["errors"] for x in health)} |
| GET /integrations/user/:userId (20 rows) | {r:.0f} | {read[-1]["p50_ms"]:.1f} | {read[-1]["p99_ms"]:.1f} \
| {sum(x["errors"] for x in read)} |

Ratio read/health: **{r / h:.2f}** (goal: >= 0.50 on PostgreSQL)""")


if __name__ == "__main__":
    main()
