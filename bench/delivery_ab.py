"""Queued deliveries sent by several daemons (other code or other settings), alternated in the same minutes.

On a shared machine rates wander with the load, so a before/after pair of the delivery worker is best
measured side by side: one receiver (bench/webhook_delivery.py's), one database, one webhook, and for each
round and each variant a fresh ``nexusctl daemon`` with its own PYTHONPATH (e.g. a ``git archive`` of main)
and/or environment, given N queued deliveries to send; raw aiohttp POSTs of the same body into the same
receiver at the same concurrency are the baseline, measured in every round too. The order of the variants
is reversed every other round. Figures: CPU µs per delivery of the daemon and of this database's PostgreSQL
backends, from /proc (user + system), from the queueing to the last delivery, and the ratio of the daemon's
CPU to the raw client's per POST.

    git archive main nexusctl | tar -x -C /tmp/main-src
    .venv/bin/python bench/delivery_ab.py --database-url postgresql://postgres@127.0.0.1:5432/bench_b \\
        main=/tmp/main-src branch=-
    (NAME=PYTHONPATH[:VAR=VALUE,...]; "-" for this checkout's code)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ROOT,
    CpuMeter,
    base_env,
    bench_database,
    delivery_settings,
    empty_tables,
    free_port,
    median,
    start_daemon,
    start_receiver,
    variant,
    write_json,
)
from webhook_delivery import _queue, _wait_delivered, raw_rate  # noqa: E402

sys.path.insert(0, str(ROOT))


def run(args) -> dict:
    variants = [variant(v) for v in args.variants]
    work = Path(tempfile.mkdtemp(prefix="nexus-bench-delivery-ab-"))
    database_url = args.database_url or f"sqlite:///{work}/hooks.db"
    env = base_env(work, database_url)
    env.update(delivery_settings(args.concurrency))
    db = bench_database(env, database_url)

    from nexusctl import config
    from nexusctl.core import webhooks
    from nexusctl.crypto import keyring_from_settings
    from nexusctl.db.models import Integration
    from nexusctl.enums import Provider

    ring = keyring_from_settings(config.load())
    tables = ("webhook_attempts", "webhook_deliveries", "outbox_events")
    port = free_port()
    receiver = start_receiver(port)
    url = f"http://127.0.0.1:{port}/hook"
    figures: dict[str, list] = {name: [] for name, _, _ in variants}
    figures["raw"] = []
    try:
        integration = Integration.create(
            user_id="00000000-0000-4000-8000-000000000001", provider=Provider.SHOPIFY, name="bench"
        )
        hook, _ = webhooks.create(ring, integration_id=integration.id, url=url, events=["*"])
        body = b'{"type":"post.created","data":{"i":1}}'
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for name, path, extra in order:
                empty_tables(db, *tables)
                figures[name].append(_one(db, env, work, path, extra, hook.id, args.deliveries, receiver.pid))
                print(f"round {r + 1} {name}: {json.dumps(figures[name][-1])}", file=sys.stderr)
            started = time.process_time()
            rate, count = asyncio.run(raw_rate(url, args.concurrency, args.raw_seconds, body))
            figures["raw"].append({"client": (time.process_time() - started) / count * 1e6, "per_s": rate})
            print(f"round {r + 1} raw: {json.dumps(figures['raw'][-1])}", file=sys.stderr)
    finally:
        receiver.terminate()
        receiver.wait(10)
        db.close()
        shutil.rmtree(work, ignore_errors=True)
    raw_us = median(f["client"] for f in figures["raw"])
    out = {"deliveries": args.deliveries, "rounds": args.rounds, "raw_client_us": raw_us, "variants": {}}
    for name, _, _ in variants:
        rows = figures[name]
        out["variants"][name] = {
            "daemon_us": median(f["daemon"] for f in rows),
            "postgres_us": median(f.get("postgres", 0.0) for f in rows),
            "per_s": median(f["per_s"] for f in rows),
            "daemon_us_each": [round(f["daemon"]) for f in rows],
            "ratio_to_raw": median(f["daemon"] for f in rows) / raw_us,
        }
    return out


def _one(db, env, work, path, extra, hook_id, count: int, receiver_pid: int) -> dict:
    """One fresh daemon of one variant, idle first, then sending ``count`` queued deliveries."""
    own = dict(env, **extra)
    if path != "-":
        own["PYTHONPATH"] = path
    port = free_port()
    # cwd: not this checkout, so that PYTHONPATH decides which code runs
    daemon = start_daemon(own, port, command=[sys.executable, "-m", "nexusctl"], cwd=work)
    try:
        time.sleep(1.0)  # start-up done
        meter = CpuMeter(db, daemon=daemon.pid, receiver=receiver_pid)
        started = time.monotonic()
        _queue(db, [hook_id], count)
        _wait_delivered(count, 600)
        seconds = time.monotonic() - started
        return {**meter.per_item_us(count), "per_s": count / seconds}
    finally:
        daemon.terminate()
        daemon.wait(30)


def markdown(r: dict) -> str:
    lines = [
        f"{r['deliveries']:,} queued deliveries per daemon per round, {r['rounds']} rounds; raw aiohttp client "
        f"{r['raw_client_us']:.0f} µs CPU per POST (median of the rounds).",
        "",
        "| variant | daemon µs / delivery (each round) | PostgreSQL µs | deliveries/s | daemon / raw client |",
        "|---|---|---|---|---|",
    ]
    for name, v in r["variants"].items():
        lines.append(
            f"| {name} | {v['daemon_us']:.0f} ({', '.join(map(str, v['daemon_us_each']))}) | {v['postgres_us']:.0f} "
            f"| {v['per_s']:.0f} | **{v['ratio_to_raw']:.2f}x** |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help="NAME=PYTHONPATH[:VAR=VALUE,...] ('-': this checkout)")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--raw-seconds", type=float, default=3)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    result = run(args)
    write_json(args.json, result)
    print(markdown(result))


if __name__ == "__main__":
    main()
