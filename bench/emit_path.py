"""Benchmark: the emit path alone, from `POST /integrations/:id/events` until the caller is answered (its event and
its delivery rows durable), with the daemon's delivery worker kept from starting, so the CPU read from /proc
(the server and this database's PostgreSQL backends) is that path's own: bench/real_paths.py's emit figures
also hold the sending and recording of every delivery.

Same daemon settings, load generator and events as bench/real_paths.py (--concurrency 32 at once, a user's JWT),
to an integration with one webhook and one with 20 (each event then queues 20 delivery rows); alternating rounds.

    .venv/bin/python bench/emit_path.py --database-url postgresql://postgres@127.0.0.1:5432/bench_b
    .venv/bin/python bench/emit_path.py        # SQLite in a temporary directory
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CpuMeter, free_port, is_postgres, wait_http, write_json  # noqa: E402
from real_paths import Setup, _loadgen  # noqa: E402

# `nexusctl daemon` whose delivery worker never starts (the deliveries stay queued).
NO_WORKER = r"""
import sys
from nexusctl.daemon import delivery
async def idle(self, *args, **kwargs):
    return None
delivery.DeliveryWorker.start = idle
delivery.DeliveryWorker.stop = idle
from nexusctl.cli.entry import main
sys.argv = ["nexusctl", *sys.argv[1:]]
main()
"""


def _daemon(setup: Setup) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", NO_WORKER, "daemon", "--port", str(port)],
        env={**setup.env, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=open(setup.work / "daemon.log", "a"),
    )
    setup.procs.append(proc)
    wait_http(f"http://127.0.0.1:{port}/health")
    return proc, f"http://127.0.0.1:{port}"


def _phase(setup: Setup, daemon, base: str, integration, token: str, events: int, concurrency: int) -> dict:
    meter = CpuMeter(setup.db if is_postgres(setup.url) else None, server=daemon.pid)
    load = _loadgen("post", f"{base}/integrations/{integration}/events", token, concurrency, events, 0, env=setup.env)
    cpu = meter.per_item_us(events)
    return {"events": events, "seconds": load["seconds"], "errors": load["errors"], "cpu_us": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--events", type=int, default=3000, help="events per round (a fifth of it to 20 webhooks)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    setup = Setup(args.database_url)
    try:
        from nexusctl.core import webhooks
        from nexusctl.db.models import Integration
        from nexusctl.enums import Provider

        load_before = os.getloadavg()
        user = uuid.uuid4()
        targets = {}
        for fan in (1, 20):
            integration = Integration.create(user_id=user, provider=Provider.SHOPIFY, name=f"bench-{fan}")
            for k in range(fan):
                webhooks.create(setup.ring, integration_id=integration.id, url=f"http://127.0.0.1:9/{k}", events=["*"])
            targets[fan] = str(integration.id)
        token = setup.token(user)
        daemon, base = _daemon(setup)
        _phase(setup, daemon, base, targets[1], token, 300, args.concurrency)  # warm: connections, imports
        runs: dict = {1: [], 20: []}
        for _ in range(args.rounds):
            for fan, events in ((1, args.events), (20, args.events // 5)):
                runs[fan].append(_phase(setup, daemon, base, targets[fan], token, events, args.concurrency))
        out = {
            "database": "PostgreSQL" if is_postgres(setup.url) else "SQLite",
            "load_before": load_before,
            "runs": runs,
            "load_after": os.getloadavg(),
        }
        print(f"emit path ({out['database']}, {args.concurrency} at once, delivery worker off), load {load_before}")
        print("| webhooks | events/s answered | CPU µs per event: server + PostgreSQL | errors |")
        print("|---|---|---|---|")
        for fan, rounds in runs.items():
            for r in rounds:
                cpu = r["cpu_us"]
                pg = cpu.get("postgres", 0.0)
                print(
                    f"| {fan} | {r['events'] / r['seconds']:,.0f} | {cpu['server']:,.0f} + {pg:,.0f} = "
                    f"{cpu['server'] + pg:,.0f} | {r['errors']} |"
                )
        print(f"load after {out['load_after']}")
        write_json(args.json, out)
    finally:
        setup.close()  # the daemon and the receiver


if __name__ == "__main__":
    main()
