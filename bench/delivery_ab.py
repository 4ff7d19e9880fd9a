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

Scale-out: ``--daemons N`` (or ``DAEMONS=N`` among a variant's settings) starts N daemons, each on its own
port, on the same database, sending the same backlog; their CPU is summed. Every phase (each variant's
run, the raw POSTs) also records how busy the machine and each process were, in cores (/proc/stat,
/proc/PID/stat), and the daemons' busiest main thread (/proc/PID/task/*/stat):

    .venv/bin/python bench/delivery_ab.py --database-url ... one=- two=-:DAEMONS=2 three=-:DAEMONS=3
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ROOT,
    CpuMeter,
    Load,
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
from webhook_delivery import _queue, _wait_delivered, _window, raw_rate  # noqa: E402

sys.path.insert(0, str(ROOT))


def run(args) -> dict:
    variants = [variant(v) for v in args.variants]
    work = Path(tempfile.mkdtemp(prefix="nexus-bench-delivery-ab-"))
    database_url = args.database_url or f"sqlite:///{work}/hooks.db"
    env = base_env(work, database_url)
    env.update(delivery_settings(args.concurrency, args.per_endpoint))
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
                figures[name].append(
                    _one(db, env, work, path, extra, hook.id, args.deliveries, receiver.pid, args.daemons)
                )
                print(f"round {r + 1} {name}: {json.dumps(figures[name][-1])}", file=sys.stderr)
            load = Load(None, client=os.getpid(), receiver=receiver.pid)
            started = time.process_time()
            rate, count = asyncio.run(raw_rate(url, args.concurrency, args.raw_seconds, body))
            figures["raw"].append(
                {"client": (time.process_time() - started) / count * 1e6, "per_s": rate, "load": load.end()}
            )
            print(f"round {r + 1} raw: {json.dumps(figures['raw'][-1])}", file=sys.stderr)
    finally:
        receiver.terminate()
        receiver.wait(10)
        db.close()
        shutil.rmtree(work, ignore_errors=True)
    raw_us = median(f["client"] for f in figures["raw"])
    out = {
        "deliveries": args.deliveries,
        "rounds": args.rounds,
        "raw_client_us": raw_us,
        "raw_per_s": median(f["per_s"] for f in figures["raw"]),
        "raw_each": figures["raw"],
        "variants": {},
    }
    for name, _, _ in variants:
        rows = figures[name]
        out["variants"][name] = {
            "daemon_us": median(f["daemon"] for f in rows),
            "postgres_us": median(f.get("postgres", 0.0) for f in rows),
            "per_s": median(f["per_s"] for f in rows),
            "daemon_us_each": [round(f["daemon"]) for f in rows],
            "ratio_to_raw": median(f["daemon"] for f in rows) / raw_us,
            "window_per_s": median(f["window_per_s"] for f in rows),
            "rate_to_raw": median(f["per_s"] / raw["per_s"] for f, raw in zip(rows, figures["raw"])),
            "rounds_each": rows,
        }
    return out


def _one(db, env, work, path, extra, hook_id, count: int, receiver_pid: int, daemons: int = 1) -> dict:
    """Fresh daemons of one variant (``daemons``, or its DAEMONS setting), idle first, then sending ``count``
    queued deliveries. ``daemon``: their CPU summed."""
    own = dict(env, **extra)
    daemons = int(own.pop("DAEMONS", daemons))
    if path != "-":
        own["PYTHONPATH"] = path
    # cwd: not this checkout, so that PYTHONPATH decides which code runs
    started_daemons, metrics_ports = [], []
    try:
        for _ in range(daemons):
            metrics_ports.append(free_port())  # /metrics: its claim and record counters, read after the run
            started_daemons.append(
                start_daemon(own, metrics_ports[-1], command=[sys.executable, "-m", "nexusctl"], cwd=work)
            )
        time.sleep(1.0)  # start-up done
        pids = [d.pid for d in started_daemons]
        meter = CpuMeter(db, **{f"daemon{i}": pid for i, pid in enumerate(pids)}, receiver=receiver_pid)
        load = Load(db, threads_of=pids, daemons=pids, receiver=receiver_pid)
        started = time.monotonic()
        _queue(db, [hook_id], count)
        _wait_delivered(count, 600)
        seconds = time.monotonic() - started
        used = meter.per_item_us(count)
        phase = load.end()
        first, last = _window(db)
        per_daemon = [used.pop(f"daemon{i}") for i in range(len(pids))]
        counts = collections.Counter()
        for port in metrics_ports:
            counts.update(_worker_counts(port))
        return {
            "claims": counts["claims"],
            "per_claim": counts["claimed"] / max(counts["claims"], 1),
            "per_record_batch": counts["recorded"] / max(counts["record_batches"], 1),
            **used,
            "daemon": sum(per_daemon),
            "daemon_each": [round(v) for v in per_daemon],
            "daemons": len(pids),
            "per_s": count / seconds,
            "window_per_s": count / max((last - first).total_seconds(), 1e-6),
            "window_seconds": (last - first).total_seconds(),
            "load": phase,
        }
    finally:
        for daemon in started_daemons:
            daemon.terminate()
        for daemon in started_daemons:
            daemon.wait(30)


def _worker_counts(port: int) -> dict[str, float]:
    """The delivery worker's totals on a daemon's /metrics (claims, claimed, record_batches, recorded)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("nexus_webhook_") and "_total" in line:
            name, _, value = line.partition(" ")
            out[name.removeprefix("nexus_webhook_").removesuffix("_total")] = float(value)
    return out


def markdown(r: dict) -> str:
    lines = [
        f"{r['deliveries']:,} queued deliveries per variant per round, {r['rounds']} rounds; raw aiohttp client "
        f"{r['raw_client_us']:.0f} µs CPU per POST, {r['raw_per_s']:,.0f} POSTs/s (medians of the rounds).",
        "",
        "| variant | daemon µs / delivery (each round) | PostgreSQL µs | deliveries/s (first attempt to last "
        "delivered) | rate / raw | daemon / raw client |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in r["variants"].items():
        lines.append(
            f"| {name} | {v['daemon_us']:.0f} ({', '.join(map(str, v['daemon_us_each']))}) | {v['postgres_us']:.0f} "
            f"| {v['per_s']:.0f} ({v['window_per_s']:.0f}) | {v['rate_to_raw']:.2f} | **{v['ratio_to_raw']:.2f}x** |"
        )
    lines += [
        "",
        "Load in cores (CPU s / wall s; medians of the rounds): machine busy (of "
        f"{os.cpu_count()}), and of it the daemons (their busiest main thread), PostgreSQL, receiver, raw client, "
        "others.",
        "",
        "| phase | machine | daemons (main thread; its wait for a CPU) | PostgreSQL | receiver | raw client | others "
        "| loadavg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    phases = {name: [f["load"] for f in v["rounds_each"]] for name, v in r["variants"].items()}
    phases["raw"] = [f["load"] for f in r["raw_each"]]
    for name, loads in phases.items():

        def m(key, loads=loads):
            values = [x[key] for x in loads if key in x]
            return f"{median(values):.2f}" if values else "-"

        spread = [x["loadavg"][0] for x in loads] + [x["loadavg"][1] for x in loads]
        lines.append(
            f"| {name} | {m('machine')} | {m('daemons')} ({m('busiest_main_thread')}; "
            f"{m('main_thread_runnable_waiting')}) | {m('postgres')} "
            f"| {m('receiver')} | {m('client')} | {m('others')} | {min(spread):.1f}-{max(spread):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help="NAME=PYTHONPATH[:VAR=VALUE,...] ('-': this checkout)")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--per-endpoint",
        type=int,
        help="WEBHOOK_CONCURRENCY_PER_ENDPOINT (default: the product's, 16; the raw POSTs stay at --concurrency)",
    )
    parser.add_argument("--raw-seconds", type=float, default=3)
    parser.add_argument("--daemons", type=int, default=1, help="daemons per variant (a variant's DAEMONS=N wins)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    result = run(args)
    write_json(args.json, result)
    print(markdown(result))


if __name__ == "__main__":
    main()
