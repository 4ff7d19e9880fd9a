"""Benchmark: N integrations refreshed by the daemon's sweep against the OAuth emulator vs raw token POSTs.

One run, one machine:

1. The provider emulators of tests/emulators (the same ``Emulators`` server the tests start) run in
   their own process; they issue N YouTube (Google) refresh tokens.
2. raw   - aiohttp POSTs ``grant_type=refresh_token`` to the emulator's token endpoint, with those
           tokens, at the sweep's concurrency (5; --concurrency), for a fixed time: the provider's ceiling here.
           --provider-latency makes the token endpoint answer as slowly as a real provider does.
3. sweep - N integrations holding those tokens (sealed as the service seals them), all expiring
           within TOKEN_REFRESH_WINDOW, then one ``nexusctl daemon`` refreshes them with its scheduled
           sweep with the default REFRESH_SWEEP_INTERVAL (60 s): its first run, at start, drains them in passes of
           500 (REFRESH_SWEEP_BATCH) that follow each other at once, 5 at a time. (Until 2026-12-07 the interval
           was shortened to 0.2 s: each run then did one pass and the next waited for the next tick, ~100 ms lost
           a pass of ~500 ms: not what a user's daemon does.) Rate = N / (last refresh's updated_at - first's),
           every one checked: a new expiry about an hour ahead, one provider call each.
           The integrations are seeded as long-connected ones are: checked healthy a minute ago, next
           check in HEALTH_RECHECK (15 min). The daemon's health job runs every second, and the CPU
           window lasts until no integration is due for a check, so the health work the refreshes
           cause (a check each, before the refresh recorded health itself) is counted per refresh.

    .venv/bin/python bench/token_refresh.py --database-url postgresql://postgres@127.0.0.1:5432/bench_b
    .venv/bin/python bench/token_refresh.py --integrations 500      # SQLite in a temporary directory
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ROOT,
    CpuMeter,
    base_env,
    bench_database,
    free_port,
    is_postgres,
    start_daemon,
    write_json,
)

sys.path.insert(0, str(ROOT))

CONCURRENCY = 5  # REFRESH_SWEEP_CONCURRENCY's default; --concurrency sets both the daemon's and the raw client's

EMULATOR = r"""
import json, sys
from tests.emulators.server import Emulators
emu = Emulators().start()
yt = emu["YOUTUBE"]
grant = yt.new_grant(["https://www.googleapis.com/auth/youtube.readonly"])
tokens = [yt.issue(grant, "refresh", None).value for _ in range(int(sys.argv[2]))]
yt.delay("refresh", float(sys.argv[3]))  # a real provider's answer takes this long (0: at once)
with open(sys.argv[1], "w") as out:
    json.dump({"env": emu.env(), "tokens": tokens, "base": emu.base_url}, out)
sys.stdin.read()  # serve until the bench closes our stdin
print(json.dumps(dict(yt.calls)))
"""


def start_emulator(work: Path, tokens: int, latency: float = 0.0):
    info = work / "emulator.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", EMULATOR, str(info), str(tokens), str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 60
    while not info.exists() or not info.stat().st_size:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the emulator did not start")
        time.sleep(0.05)
    time.sleep(0.1)  # the file is written in one go; let it be closed
    return proc, json.loads(info.read_text())


def stop_emulator(proc) -> dict:
    out, _ = proc.communicate("", timeout=30)
    return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}


async def raw_rate(
    url: str, client_id: str, secret: str, tokens: list[str], seconds: float, concurrency: int = CONCURRENCY
) -> tuple[float, int, int]:
    import aiohttp

    done, errors = 0, 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker(k: int):
            nonlocal done, errors
            i = k
            while time.perf_counter() < deadline:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": tokens[i % len(tokens)],
                    "client_id": client_id,
                    "client_secret": secret,
                }
                async with session.post(url, data=form) as response:
                    body = await response.json()
                    if response.status != 200 or "access_token" not in body:
                        errors += 1
                done += 1
                i += concurrency

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        return done / (time.perf_counter() - started), errors, done


def seed(settings, tokens: list[str], expires: dt.datetime) -> None:
    checked = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    from nexusctl.crypto import keyring_from_settings
    from nexusctl.db.database import database_proxy
    from nexusctl.db.models import Integration
    from nexusctl.db.secrets import seal
    from nexusctl.enums import Provider

    ring = keyring_from_settings(settings)
    rows = []
    for i, token in enumerate(tokens):
        row = Integration(
            user_id=uuid.uuid4(),
            provider=Provider.YOUTUBE,
            name=f"bench{i}",
            account_id=str(i),
            scope=["https://www.googleapis.com/auth/youtube.readonly"],
            expires_at=expires,
            token_type="Bearer",
            health_status="healthy",
            health_rank=0,
            health_reasons=[],
            health_checked_at=checked,
            health_due_at=checked + dt.timedelta(minutes=15),
        )
        seal(ring, row, "access_token", f"ya29.expiring-{i}")
        seal(ring, row, "refresh_token", token)
        rows.append(dict(row.__data__))
    for start in range(0, len(rows), 500):
        with database_proxy.atomic():
            Integration.insert_many(rows[start : start + 500]).execute()


def run(
    database_url: str | None,
    integrations: int,
    raw_seconds: float,
    timeout: float,
    concurrency: int = CONCURRENCY,
    latency: float = 0.0,
) -> dict:
    work = Path(tempfile.mkdtemp(prefix="nexus-bench-refresh-"))
    database_url = database_url or f"sqlite:///{work}/refresh.db"
    emulator, info = start_emulator(work, integrations, latency)
    daemon = None
    try:
        env = base_env(work, database_url)
        env.update(
            info["env"],
            TOKEN_REFRESH_WINDOW="10m",
            LOG_FORMAT="json",
            EVENTS_CONSUME_STREAMS="none",
            SYNC_POLL_INTERVAL="1h",
            HEALTH_CHECK_INTERVAL="1s",
            REFRESH_SWEEP_CONCURRENCY=str(concurrency),
        )
        db = bench_database(env, database_url)  # a rerun measures only its own rows

        from nexusctl import config
        from nexusctl.db.models import Integration

        settings = config.load()

        env_yt = info["env"]
        raw_cpu = time.process_time()
        raw, raw_errors, raw_done = asyncio.run(
            raw_rate(
                env_yt["YOUTUBE_TOKEN_URL"],
                env_yt["YOUTUBE_CLIENT_ID"],
                env_yt["YOUTUBE_CLIENT_SECRET"],
                info["tokens"],
                raw_seconds,
                concurrency,
            )
        )
        raw_cpu_us = (time.process_time() - raw_cpu) / max(raw_done, 1) * 1e6

        expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
        started = time.perf_counter()
        seed(settings, info["tokens"], expires)
        seeded_s = time.perf_counter() - started

        port = free_port()
        # NEXUS_PROFILE_OUT=FILE: the daemon runs under bench/profile_daemon.py (for a profile, not the figures).
        command = (
            [sys.executable, str(ROOT / "bench" / "profile_daemon.py")] if os.environ.get("NEXUS_PROFILE_OUT") else None
        )
        daemon = start_daemon(env, port, command=command, log=work / "daemon.log")
        meter = CpuMeter(db, daemon=daemon.pid)  # from /health on: start-up is not a refresh
        far = expires + dt.timedelta(minutes=30)
        deadline = time.monotonic() + timeout
        while Integration.select().where(Integration.expires_at > far).count() < integrations:
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError(
                    f"the sweep did not refresh {integrations} integrations in time (see {work / 'daemon.log'})"
                )
            time.sleep(0.25)
        first, last = (
            Integration.select(Integration.updated_at).order_by(order).scalar()
            for order in (Integration.updated_at.asc(), Integration.updated_at.desc())
        )
        sweep = integrations / max((last - first).total_seconds(), 1e-6)
        # The follow-up work the refreshes asked for (health checks) belongs to their cost too.
        while Integration.select().where(Integration.health_due_at <= dt.datetime.now(dt.timezone.utc)).count():
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError(f"the health checks did not catch up in time (see {work / 'daemon.log'})")
            time.sleep(0.25)
        cpu = meter.per_item_us(integrations)
        failures = Integration.select().where(Integration.last_error.is_null(False)).count()
        db.close()
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(30)
        calls = stop_emulator(emulator)
    sweep_calls = calls.get("refresh", 0) - raw_done  # one provider call per integration, no more
    shutil.rmtree(work, ignore_errors=True)  # kept when the run failed: daemon.log is there
    return {
        "database": "PostgreSQL" if is_postgres(database_url) else "SQLite",
        "integrations": integrations,
        "concurrency": concurrency,
        "provider_latency_s": latency,
        "raw_per_s": raw,
        "raw_errors": raw_errors,
        "sweep_per_s": sweep,
        "ratio": sweep / raw,
        "sweep_seconds": (last - first).total_seconds(),
        "seed_seconds": seeded_s,
        "sweep_provider_calls": sweep_calls,
        "failures": failures,
        "raw_cpu_us": raw_cpu_us,
        "daemon_cpu_us": cpu["daemon"],
        "postgres_cpu_us": cpu.get("postgres", 0.0),
    }


def markdown(result: dict) -> str:
    return "\n".join(
        [
            f"| Measure ({result['database']}) | Result |",
            "|---|---|",
            f"| raw token-endpoint POSTs/s ({result['concurrency']} concurrent) | {result['raw_per_s']:.0f} "
            f"({result['raw_errors']} errors) |",
            f"| integrations refreshed by the daemon's sweep /s ({result['integrations']:,}, in "
            f"{result['sweep_seconds']:.1f} s) | {result['sweep_per_s']:.0f} |",
            f"| ratio sweep / raw | **{result['ratio']:.2f}** |",
            f"| provider calls made by the sweep, failed refreshes | {result['sweep_provider_calls']:,}, "
            f"{result['failures']} |",
            f"| CPU µs per refresh: daemon, PostgreSQL; raw client per POST | {result['daemon_cpu_us']:,.0f}, "
            f"{result['postgres_cpu_us']:,.0f}; {result['raw_cpu_us']:,.0f} |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--integrations", type=int, default=10_000)
    parser.add_argument("--raw-seconds", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--concurrency", type=int, default=CONCURRENCY, help="REFRESH_SWEEP_CONCURRENCY and the raw client's"
    )
    parser.add_argument(
        "--provider-latency",
        type=float,
        default=0.0,
        help="seconds the emulator's token endpoint takes to answer (a real provider's tens to hundreds of ms)",
    )
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    result = run(
        args.database_url, args.integrations, args.raw_seconds, args.timeout, args.concurrency, args.provider_latency
    )
    write_json(args.json, result)
    print(markdown(result))


if __name__ == "__main__":
    main()
