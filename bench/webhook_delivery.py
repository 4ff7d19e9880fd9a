"""Benchmark: durable webhook deliveries against raw POSTs, failing receivers, emit-to-attempt latency, memory.

One run, one machine, one local receiver process (aiohttp, answers 200 at once, or 500 on /fail/*):

1. raw     - aiohttp POSTs of the same signed-size body at the worker's concurrency (WEBHOOK_CONCURRENCY).
2. durable - N deliveries queued in the database, then one `nexusctl daemon` sends them all; rate from the
             first attempt to the last delivered_at (database timestamps).
3. failing - rounds of N/2 deliveries over 20 webhooks (receivers): all healthy, 10% of them answering 500
             (retried on WEBHOOK_RETRY_SCHEDULE meanwhile), again, all healthy again: healthy deliveries/s
             of each kind over its two rounds.
4. latency - (PostgreSQL) events emitted at a fixed rate (default 500/s) through core.events.emit while the
             daemon runs; emit-to-first-attempt = attempt.started_at - delivery.created_at, p50 / p99.
5. backlog - (PostgreSQL) a backlog of B deliveries (default 1,000,000) inserted in SQL; the daemon's peak
             RSS while it works on it (VmHWM from /proc).

    .venv/bin/python bench/webhook_delivery.py --database-url postgresql://postgres@127.0.0.1:5432/bench_hooks
    .venv/bin/python bench/webhook_delivery.py                  # SQLite: runs 1-3

Goals (issue 5): durable >= 0.5 x raw; p99 emit-to-attempt < 100 ms at 500 events/s; backlog RSS < 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import peewee

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ROOT,
    CpuMeter,
    base_env,
    bench_database,
    cpu_seconds,
    delivery_settings,
    free_port,
    is_postgres,
    percentile,
    start_daemon,
    start_receiver,
    write_json,
)

sys.path.insert(0, str(ROOT))


async def raw_rate(url: str, concurrency: int, seconds: float, body: bytes) -> float:
    import aiohttp

    done = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker():
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.post(url, data=body, headers={"content-type": "application/json"}) as r:
                    await r.read()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started), done


EMITTER = r"""
import sys, time
from nexusctl.db.database import bind, open_database
from nexusctl.core import events
bind(open_database(sys.argv[1]))
integration, rate, count, start = sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
interval, late = 1.0 / rate, 0
for i in range(count):
    pause = start + i * interval - time.time()
    if pause > 0:
        time.sleep(pause)
    else:
        late += 1
    events.emit(integration, "post.created", {"i": i})
print(late)
"""


def emit_at_rate(
    database_url: str, integration_id, rate: int, seconds: float, processes: int, env: dict
) -> tuple[int, float]:
    """Real ``core.events.emit`` calls (each its own committed transaction) from ``processes``
    processes, each at rate/processes on a shared schedule; the events emitted and the rate reached."""
    count = int(rate * seconds) // processes
    start = time.time() + 3.0  # every emitter imported and connected before the clock starts
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                EMITTER,
                database_url,
                str(integration_id),
                str(rate / processes),
                str(count),
                str(start + k / rate),
            ],
            env={**env, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(processes)
    ]
    for proc in procs:
        proc.communicate(timeout=seconds * 20 + 60)
        if proc.returncode:
            raise RuntimeError("an emitter failed")
    return count * processes, count * processes / (time.time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url",
        help="an empty database (it is migrated); default: a SQLite file in a "
        "temporary directory (durable and failing-receiver runs only)",
    )
    parser.add_argument("--deliveries", type=int, default=20000)
    parser.add_argument("--rate", type=int, default=500, help="events per second for the latency run")
    parser.add_argument("--latency-seconds", type=float, default=10, help="0: no latency run")
    parser.add_argument("--backlog", type=int, default=1_000_000, help="0: no backlog-memory run")
    parser.add_argument("--backlog-seconds", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--per-endpoint",
        type=int,
        help="WEBHOOK_CONCURRENCY_PER_ENDPOINT (default: the product's, 16; the raw POSTs stay at --concurrency)",
    )
    parser.add_argument("--raw-seconds", type=float, default=5)
    parser.add_argument("--receivers", type=int, default=20, help="webhooks (receivers) of the failing-receiver run")
    parser.add_argument(
        "--failing", type=float, default=0.1, help="share of those receivers answering 500; 0: no failing-receiver run"
    )
    parser.add_argument(
        "--emitters",
        type=int,
        default=4,
        help="emitter processes for the latency run (one Python loop cannot reach 500 emits/s)",
    )
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    result = run(args)
    write_json(args.json, result)
    print(markdown(result))


def run(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="nexus-bench-hooks-"))
    database_url = args.database_url or f"sqlite:///{work}/hooks.db"
    postgres = is_postgres(database_url)
    env = base_env(work, database_url)
    env.update(delivery_settings(args.concurrency, args.per_endpoint))
    db = bench_database(env, database_url)  # a rerun measures only its own rows

    from nexusctl import config
    from nexusctl.core import webhooks
    from nexusctl.crypto import keyring_from_settings
    from nexusctl.db.models import Integration
    from nexusctl.enums import Provider

    settings = config.load()
    ring = keyring_from_settings(settings)
    port = free_port()
    receiver = start_receiver(port)
    url = f"http://127.0.0.1:{port}/hook"
    daemon = None
    out: dict = {
        "database": "PostgreSQL" if postgres else "SQLite",
        "concurrency": args.concurrency,
        "deliveries": args.deliveries,
    }
    try:
        integration = Integration.create(
            user_id="00000000-0000-4000-8000-000000000001", provider=Provider.SHOPIFY, name="bench"
        )
        hook, _ = webhooks.create(ring, integration_id=integration.id, url=url, events=["*"])
        body = (
            b'{"type":"post.created","timestamp":"2026-11-25T00:00:00Z","data":{"integrationId":"'
            + str(integration.id).encode()
            + b'","provider":"SHOPIFY","i":1}}'
        )

        # 1. raw POSTs into the receiver.
        client_cpu, receiver_cpu = time.process_time(), cpu_seconds(receiver.pid)
        raw, raw_count = asyncio.run(raw_rate(url, args.concurrency, args.raw_seconds, body))
        out["raw_per_s"] = raw
        out["raw_cpu_us"] = {
            "client": (time.process_time() - client_cpu) / raw_count * 1e6,
            "receiver": (cpu_seconds(receiver.pid) - receiver_cpu) / raw_count * 1e6,
        }

        # 2. durable: queue N, then one daemon sends them.
        _queue(db, [hook.id], args.deliveries)
        dport = free_port()
        daemon = start_daemon(env, dport)
        meter = CpuMeter(db, daemon=daemon.pid, receiver=receiver.pid)
        _wait_delivered(args.deliveries, 600)
        out["durable_cpu_us"] = meter.per_item_us(args.deliveries)
        first, last = _window(db)
        out["durable_per_s"] = args.deliveries / max((last - first).total_seconds(), 1e-6)
        out["ratio"] = out["durable_per_s"] / raw

        # 3. healthy deliveries/s with a share of the receivers failing, against all healthy.
        if args.failing > 0:
            out["failing"] = _failing_run(db, ring, integration.id, port, args)

        # 4. latency at a fixed emit rate (PostgreSQL: the emitters are separate processes).
        if postgres and args.latency_seconds > 0:
            _clear(db)
            count, achieved = emit_at_rate(
                database_url, integration.id, args.rate, args.latency_seconds, args.emitters, env
            )
            _wait_delivered(count, 300)
            lags = [
                float(row[0]) * 1000
                for row in db.execute_sql(
                    "SELECT EXTRACT(EPOCH FROM (a.started_at - d.created_at)) FROM webhook_attempts a "
                    "JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE a.number = 1"
                ).fetchall()
            ]
            out["latency"] = {
                "events": count,
                "achieved_per_s": achieved,
                "target_per_s": args.rate,
                "p50_ms": percentile(lags, 0.5),
                "p99_ms": percentile(lags, 0.99),
            }

        # 5. backlog memory (PostgreSQL: the backlog is inserted in one statement).
        if postgres and args.backlog > 0:
            daemon.terminate()
            daemon.wait(30)
            _clear(db)
            db.execute_sql(_insert_sql(args.backlog), (str(hook.id),))
            daemon = start_daemon(env, dport)
            time.sleep(args.backlog_seconds)  # let it work through the backlog (a measurement window, not a wait)
            sent = db.execute_sql("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'DELIVERED'").fetchone()[0]
            out["backlog"] = {
                "rows": args.backlog,
                "peak_rss_mb": _peak_rss_mb(daemon.pid),
                "seconds": args.backlog_seconds,
                "sent": sent,
            }
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(30)
        receiver.terminate()
        receiver.wait(10)
    db.close()
    shutil.rmtree(work, ignore_errors=True)
    return out


def _clear(db) -> None:
    """Empty the delivery tables between phases, while the daemon runs: TRUNCATE would need an exclusive
    lock against the daemon's own writes (a retry being recorded: deadlock), so DELETE, then VACUUM on
    PostgreSQL (it runs beside the writers) so the next phase does not wade through dead rows."""
    db.execute_sql("DELETE FROM webhook_attempts")
    db.execute_sql("DELETE FROM webhook_deliveries")
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql("VACUUM ANALYZE webhook_attempts, webhook_deliveries")


def _failing_run(db, ring, integration_id, port: int, args) -> dict:
    """N/2 deliveries over ``receivers`` webhooks per round, in the order healthy, failing, failing, healthy
    (so a drift over the run, the machine's load or the tables' growth, weighs on both alike); a
    failing round has a share of the receivers answering 500. Healthy deliveries/s of each kind."""
    from nexusctl.core import webhooks
    from nexusctl.db.models import Webhook, WebhookAttempt, WebhookDelivery
    from nexusctl.enums import DeliveryStatus

    failing = max(1, round(args.receivers * args.failing))
    per_round = max(args.deliveries // 2, args.receivers)
    hooks = [
        webhooks.create(ring, integration_id=integration_id, url=f"http://127.0.0.1:{port}/hook/{i}", events=["*"])[
            0
        ].id
        for i in range(args.receivers)
    ]
    totals = {name: {"healthy_deliveries": 0, "seconds": 0.0, "failed_attempts": 0} for name in ("healthy", "failing")}
    for name in ("healthy", "failing", "failing", "healthy"):
        bad = failing if name == "failing" else 0
        _clear(db)
        for i, hook_id in enumerate(hooks):
            path = "fail" if i < bad else "hook"
            Webhook.update(url=f"http://127.0.0.1:{port}/{path}/{i}", failing_since=None).where(
                Webhook.id == hook_id
            ).execute()
        time.sleep(1.5)  # the worker reads a webhook's URL once per claimed batch: let no batch span the switch
        _queue(db, hooks, per_round)
        healthy = sum(1 for k in range(per_round) if k % len(hooks) >= bad)
        _wait_delivered(healthy, 600)
        first, last = _window(db)
        totals[name]["healthy_deliveries"] += healthy
        totals[name]["seconds"] += max((last - first).total_seconds(), 1e-6)
        totals[name]["failed_attempts"] += (
            WebhookAttempt.select()
            .join(WebhookDelivery)
            .where(WebhookDelivery.status != DeliveryStatus.DELIVERED)
            .count()
        )
    for hook_id in hooks:
        Webhook.delete().where(Webhook.id == hook_id).execute()
    result = {"receivers": args.receivers, "failing_receivers": failing, "per_round": per_round}
    for name, total in totals.items():
        result[name] = {**total, "healthy_per_s": total["healthy_deliveries"] / total["seconds"]}
    result["ratio"] = result["failing"]["healthy_per_s"] / result["healthy"]["healthy_per_s"]
    return result


def _ts(value):
    import datetime as dt

    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=None) if value is not None and value.tzinfo is None else value


def _window(db):
    """First attempt's start to the last delivered_at (database timestamps)."""
    from peewee import fn

    from nexusctl.db.models import WebhookAttempt, WebhookDelivery

    first = WebhookAttempt.select(fn.MIN(WebhookAttempt.started_at)).scalar()
    last = WebhookDelivery.select(fn.MAX(WebhookDelivery.delivered_at)).scalar()
    return _ts(first), _ts(last)


def _queue(db, hook_ids, count: int) -> None:
    """``count`` due deliveries spread round-robin over ``hook_ids``, as a burst of emits would leave them."""
    from nexusctl.db.fields import utcnow
    from nexusctl.db.models import WebhookDelivery
    from nexusctl.enums import DeliveryStatus

    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql(
            "INSERT INTO webhook_deliveries (id, created_at, updated_at, webhook_id, event, payload, status, "
            "attempts, next_attempt_at) SELECT gen_random_uuid(), now(), now(), (%s::uuid[])[1 + g %% %s], "
            "'post.created', jsonb_build_object('type', 'post.created', 'data', jsonb_build_object('i', g)), "
            f"'PENDING', 0, now() FROM generate_series(0, {int(count) - 1}) AS g",
            ([str(h) for h in hook_ids], len(hook_ids)),
        )
        # As the product's queueing does: the daemon starts now, not at its next 1 s poll (which added 0-1 s to
        # every run's time, a third of a run at 5,000 deliveries).
        db.execute_sql("SELECT pg_notify('nexus_deliveries', '')")
        return
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "webhook": hook_ids[g % len(hook_ids)],
            "event": "post.created",
            "payload": {"type": "post.created", "data": {"i": g}},
            "status": DeliveryStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for g in range(count)
    ]
    for start in range(0, count, 500):
        with db.atomic():
            WebhookDelivery.insert_many(rows[start : start + 500]).execute()


def markdown(r: dict) -> str:
    lines = [
        f"| Measure ({r['database']}, concurrency {r['concurrency']}) | Result |",
        "|---|---|",
        f"| raw aiohttp POSTs/s | {r['raw_per_s']:.0f} |",
        f"| durable deliveries/s ({r['deliveries']:,} queued, one daemon) | {r['durable_per_s']:.0f} |",
        f"| ratio durable / raw | **{r['ratio']:.2f}** |",
    ]
    if "failing" in r:
        f = r["failing"]
        lines += [
            f"| healthy deliveries/s, {f['receivers']} receivers all healthy | {f['healthy']['healthy_per_s']:.0f} |",
            f"| healthy deliveries/s, {f['failing_receivers']} of {f['receivers']} answering 500 "
            f"({f['failing']['failed_attempts']:,} failed attempts meanwhile) "
            f"| {f['failing']['healthy_per_s']:.0f} |",
            f"| ratio failing / all healthy | **{f['ratio']:.2f}** |",
        ]
    if "latency" in r:
        lat = r["latency"]
        lines.append(
            f"| emit-to-first-attempt at {lat['achieved_per_s']:.0f} events/s (aim {lat['target_per_s']}; "
            f"{lat['events']:,} events) | p50 {lat['p50_ms']:.1f} ms, p99 **{lat['p99_ms']:.1f} ms** |"
        )
    if "backlog" in r:
        b = r["backlog"]
        lines.append(
            f"| daemon peak RSS with a {b['rows']:,} backlog ({b['seconds']:.0f} s, {b['sent']:,} sent) "
            f"| {b['peak_rss_mb']:.0f} MB |"
        )
    lines.append("")
    lines.append(
        f"CPU per message (µs; user + system from /proc): raw {_fmt(r['raw_cpu_us'])}; "
        f"durable {_fmt(r['durable_cpu_us'])}."
    )
    return "\n".join(lines)


def _fmt(cpu: dict) -> str:
    return ", ".join(f"{name} {us:.0f}" for name, us in sorted(cpu.items())) + f" (total {sum(cpu.values()):.0f})"


def _insert_sql(count: int) -> str:
    # Set-based: a large backlog in one statement, as a burst of emits would leave it.
    return (
        "INSERT INTO webhook_deliveries (id, created_at, updated_at, webhook_id, event, payload, status, attempts, "
        "next_attempt_at) SELECT gen_random_uuid(), now(), now(), %s, 'post.created', "
        "jsonb_build_object('type', 'post.created', 'data', jsonb_build_object('i', g)), 'PENDING', 0, now() "
        f"FROM generate_series(1, {int(count)}) AS g"
    )


def _wait_delivered(count: int, timeout: float) -> None:
    from nexusctl.db.models import WebhookDelivery
    from nexusctl.enums import DeliveryStatus

    deadline = time.monotonic() + timeout
    while WebhookDelivery.select().where(WebhookDelivery.status == DeliveryStatus.DELIVERED).count() < count:
        if time.monotonic() > deadline:
            raise RuntimeError("deliveries did not finish in time")
        time.sleep(0.2)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    main()
