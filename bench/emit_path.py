"""Benchmark: the emit path alone, from `POST /integrations/:id/events` until the caller is answered (its event and
its delivery rows durable), with the daemon's delivery worker kept from starting, so the CPU read from /proc
(the server and this database's PostgreSQL backends) is that path's own: bench/real_paths.py's emit figures
also hold the sending and recording of every delivery.

Same daemon settings, load generator and events as bench/real_paths.py (--concurrency 32 at once, a user's JWT),
to an integration with one webhook and one with 20 (each event then queues 20 delivery rows); alternating rounds.

Before/after in the same minutes: ``--variant NAME=PATH[:VAR=VALUE,...]`` (repeatable) runs one daemon per
variant, each with its own code on PYTHONPATH (``-`` for this checkout) and settings, against the same database
(``@bare``: the floor, a bare aiohttp handler doing the relay's request half); each round runs every variant in
turn, the order reversed every other round. ``--request-path-only`` answers each emit at once without writing
it (the batcher stubbed), leaving the HTTP request path's own CPU. ``--py-spy DIR`` also samples each daemon
(py-spy ``record --gil``, raw stacks) over its measured phases: a separate run from the one whose CPU you
compare, as sampling costs CPU.

    .venv/bin/python bench/emit_path.py --database-url postgresql://postgres@127.0.0.1:5432/bench_b
    .venv/bin/python bench/emit_path.py        # SQLite in a temporary directory
    git archive main nexusctl | tar -x -C /tmp/main-src
    .venv/bin/python bench/emit_path.py --database-url ... --fans 1 --variant main=/tmp/main-src --variant branch=- \\
        --variant uvloop=-:NEXUSCTL_EVENT_LOOP=uvloop --variant bare=@bare --request-path-only
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CpuMeter, free_port, is_postgres, start_daemon, wait_http, write_json  # noqa: E402
from real_paths import RELAY_CHECKS, Setup, _loadgen  # noqa: E402

# `nexusctl daemon` whose delivery worker never starts (the deliveries stay queued).
NO_WORKER = r"""
import sys
from nexusctl.daemon import delivery
async def idle(self, *args, **kwargs):
    return None
delivery.DeliveryWorker.start = idle
delivery.DeliveryWorker.stop = idle
if sys.argv[1] == "--request-path-only":  # the emit answered at once, nothing written: the request path's own CPU
    sys.argv.pop(1)
    from nexusctl.daemon import emits
    async def answered(self, integration_id, event_type, data, owner_id):
        return {"id": "00000000-0000-4000-8000-000000000000", "type": event_type, "integrationId": integration_id,
                "deliveriesQueued": 1}
    emits.EmitBatcher.emit = answered
from nexusctl.cli.entry import main
sys.argv = ["nexusctl", *sys.argv[1:]]
main()
"""

# The floor: the relay's request half (bench/real_paths.py's RELAY_CHECKS) on a bare aiohttp server answering 202
# with an id, nothing stored: `--variant bare=@bare`.
BARE = (
    RELAY_CHECKS
    + r"""
async def emit(request):
    body, refused = await checked(request)
    if refused is not None:
        return refused
    return web.json_response({"success": True, "data": {"id": str(uuid.uuid4()), "deliveriesQueued": 1}}, status=202)
app = web.Application()
app.router.add_post("/integrations/{id}/events", emit)
web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
"""
)


def _daemon(setup: Setup, variant: str = "-", request_path_only: bool = False) -> tuple[subprocess.Popen, str]:
    port = free_port()
    code, _, settings = variant.partition(":")
    env = {**setup.env, **dict(item.split("=", 1) for item in settings.split(",") if item)}
    if code == "@bare":
        proc = setup.start(BARE, port, setup.jwt_key)
        wait_http(f"http://127.0.0.1:{port}/health")
        return proc, f"http://127.0.0.1:{port}"
    if code != "-":
        env["PYTHONPATH"] = str(Path(code).resolve())
    proc = start_daemon(
        env,
        port,
        command=[sys.executable, "-c", NO_WORKER, *(["--request-path-only"] if request_path_only else [])],
        log=setup.work / "daemon.log",
        cwd=setup.work,  # `-c` puts the working directory first on sys.path: not this checkout's code
    )
    setup.procs.append(proc)
    return proc, f"http://127.0.0.1:{port}"


def _phase(setup: Setup, daemon, base: str, integration, token: str, events: int, concurrency: int) -> dict:
    meter = CpuMeter(setup.db if is_postgres(setup.url) else None, server=daemon.pid)
    load = _loadgen("post", f"{base}/integrations/{integration}/events", token, concurrency, events, 0, env=setup.env)
    cpu = meter.per_item_us(events)
    return {"events": events, "seconds": load["seconds"], "errors": load["errors"], "cpu_us": cpu}


def _sampler(pid: int, out: Path) -> subprocess.Popen:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [py_spy, "record", "--gil", "-r", "200", "-f", "raw", "-o", str(out), "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--events", type=int, default=3000, help="events per round (a fifth of it to 20 webhooks)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fans", default="1,20", help="webhooks per integration to measure (comma-separated)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=PATH[:VAR=VALUE,...]: a daemon with PATH on PYTHONPATH (-: this one; @bare: a bare aiohttp "
        "handler) and those settings",
    )
    parser.add_argument(
        "--request-path-only",
        action="store_true",
        help="answer each emit at once without writing it (the batcher stubbed): the HTTP request path's own CPU",
    )
    parser.add_argument("--py-spy", help="a directory: sample each daemon with py-spy over its phases")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    fans = [int(f) for f in args.fans.split(",")]
    variants = [v.split("=", 1) for v in args.variant] or [["this", "-"]]
    setup = Setup(args.database_url)
    samplers: list[subprocess.Popen] = []
    try:
        from nexusctl.core import webhooks
        from nexusctl.db.models import Integration
        from nexusctl.enums import Provider

        load_before = os.getloadavg()
        user = uuid.uuid4()
        targets = {}
        for fan in fans:
            integration = Integration.create(user_id=user, provider=Provider.SHOPIFY, name=f"bench-{fan}")
            for k in range(fan):
                webhooks.create(setup.ring, integration_id=integration.id, url=f"http://127.0.0.1:9/{k}", events=["*"])
            targets[fan] = str(integration.id)
        token = setup.token(user)
        daemons = {name: _daemon(setup, code, args.request_path_only) for name, code in variants}
        for daemon, base in daemons.values():
            _phase(setup, daemon, base, targets[fans[0]], token, 300, args.concurrency)  # warm: connections, imports
        if args.py_spy:
            Path(args.py_spy).mkdir(parents=True, exist_ok=True)
            samplers = [_sampler(d.pid, Path(args.py_spy) / f"{name}.raw") for name, (d, _) in daemons.items()]
        runs: dict = {name: {fan: [] for fan in fans} for name in daemons}
        for round_ in range(args.rounds):
            order = list(daemons) if round_ % 2 == 0 else list(reversed(daemons))
            for fan in fans:
                events = args.events if fan == 1 else args.events // 5
                for name in order:
                    daemon, base = daemons[name]
                    runs[name][fan].append(_phase(setup, daemon, base, targets[fan], token, events, args.concurrency))
        out = {
            "database": "PostgreSQL" if is_postgres(setup.url) else "SQLite",
            "load_before": load_before,
            "runs": runs,
            "load_after": os.getloadavg(),
        }
        print(f"emit path ({out['database']}, {args.concurrency} at once, delivery worker off), load {load_before}")
        print("| daemon | webhooks | events/s answered | CPU µs per event: server + PostgreSQL | errors |")
        print("|---|---|---|---|---|")
        for fan in fans:
            for name in daemons:
                for r in runs[name][fan]:
                    cpu = r["cpu_us"]
                    pg = cpu.get("postgres", 0.0)
                    print(
                        f"| {name} | {fan} | {r['events'] / r['seconds']:,.0f} | {cpu['server']:,.0f} + {pg:,.0f} = "
                        f"{cpu['server'] + pg:,.0f} | {r['errors']} |"
                    )
        print(f"load after {out['load_after']}")
        write_json(args.json, out)
    finally:
        for sampler in samplers:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            sampler.wait(30)
        setup.close()  # the daemons and the receiver


if __name__ == "__main__":
    main()
