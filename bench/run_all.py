"""Run every benchmark and write docs/benchmarks.md: the machine, the method and the figures.

Each figure is a ratio against a baseline measured in the same run (raw POSTs into the same
receiver, /health of the same daemon, raw token POSTs to the same emulator, a hello-world Typer
app, the smallest table size), so a noisy machine moves both sides. Each benchmark is its own
script in bench/ (run in a fresh process, figures handed back as JSON); a benchmark that fails is
reported as failed and the others still run (exit status 1).

    .venv/bin/python bench/run_all.py --database-url postgresql://postgres@127.0.0.1:5432/bench_b
    .venv/bin/python bench/run_all.py --quick          # small sizes, a couple of minutes
    .venv/bin/python bench/run_all.py --quick --only growth,cli --output /tmp/b.md

Without --database-url the PostgreSQL runs are left out (and the report says so); SQLite runs use
temporary files. The benchmarks empty their own tables first: use a database of their own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import ROOT  # noqa: E402

SECTIONS = ("paths", "webhooks", "api", "refresh", "cli", "growth", "proxy")

# Sizes: (full, quick).
SIZES = {
    "paths": (
        {"--only": "emit,read", "--events": 3000, "--seconds": 5, "--rounds": 2, "--latency-seconds": 5},
        {"--only": "emit,read", "--events": 600, "--seconds": 2, "--rounds": 1, "--latency-seconds": 2},
    ),
    "webhooks": (
        {
            "--deliveries": 20000,
            "--raw-seconds": 5,
            "--latency-seconds": 10,
            "--rate": 500,
            "--backlog": 1_000_000,
            "--backlog-seconds": 30,
        },
        {
            "--deliveries": 2000,
            "--raw-seconds": 2,
            "--latency-seconds": 3,
            "--rate": 100,
            "--backlog": 20000,
            "--backlog-seconds": 5,
        },
    ),
    "api": ({"--seconds": 5, "--rounds": 2}, {"--seconds": 2, "--rounds": 1}),
    "refresh": ({"--integrations": 10000, "--raw-seconds": 5}, {"--integrations": 500, "--raw-seconds": 2}),
    "cli": ({"--runs": 15}, {"--runs": 5}),
    "growth": ({"--sizes": "1000,100000,1000000", "--repeat": 50}, {"--sizes": "1000,10000,100000", "--repeat": 10}),
    "proxy": ({"--seconds": 5, "--rounds": 2}, {"--seconds": 2, "--rounds": 1}),
}


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def postgres_version(url: str | None) -> str:
    if not url:
        return "not used (no --database-url)"
    try:
        import psycopg2

        with psycopg2.connect(url, connect_timeout=5) as conn, conn.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return cursor.fetchone()[0]
    except Exception as exc:  # noqa: BLE001 - the report says what went wrong
        return f"unknown ({type(exc).__name__})"


def redis_version(url: str) -> str:
    try:
        import redis

        return (
            redis.Redis.from_url(url, socket_connect_timeout=2).info("server")["redis_version"]
            + " (reachable; no benchmark here uses Redis: every daemon runs without REDIS_URL)"
        )
    except Exception as exc:  # noqa: BLE001
        return f"not reachable at {url} ({type(exc).__name__}); no benchmark here uses Redis"


def git_commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.strip()
    return (done.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")


class Runner:
    def __init__(self, args) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="nexus-bench-all-"))
        self.failures: list[str] = []
        self.loads: list[tuple[str, str, str, float]] = []

    def script(
        self, name: str, section: str, database_url: str | None, extra: dict | None = None, label: str = ""
    ) -> dict | None:
        """Run bench/<name>.py with the section's sizes; its JSON figures, or None if it failed."""
        sizes = dict(SIZES[section][1 if self.args.quick else 0])
        sizes.update(extra or {})
        out = self.work / f"{name}-{label or 'run'}.json"
        argv = [sys.executable, str(HERE / f"{name}.py"), "--json", str(out)]
        if database_url:
            argv += ["--database-url", database_url]
        for flag, value in sizes.items():
            argv += [flag, str(value)]
        title = f"{name}{' ' + label if label else ''}"
        print(f"== {title}: {' '.join(argv[2:])}", file=sys.stderr, flush=True)
        before, started = load_average(), time.monotonic()
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.loads.append((title, before, load_average(), time.monotonic() - started))
        if done.returncode != 0 or not out.exists():
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            self.failures.append(f"{title}: exit {done.returncode}\n{tail}")
            print(f"   failed:\n{tail}", file=sys.stderr, flush=True)
            return None
        return json.loads(out.read_text())

    def databases(self) -> list[tuple[str, str | None]]:
        pg = [("PostgreSQL", self.args.database_url)] if self.args.database_url else []
        return pg + [("SQLite", None)]


# --- sections: each returns Markdown ------------------------------------------------------------


def paths(run: Runner) -> str:
    import real_paths

    out = [METHOD["paths"]]
    for kind, url in run.databases():
        r = run.script("real_paths", "paths", url, label=kind.lower())
        out.append(f"### {kind}\n\n" + (real_paths.markdown(r) if r else "**Failed** (see below)."))
        if r:
            for name, label in (("one", "one webhook"), ("twenty", "20 webhooks")):
                n, b = r["emit"][f"{name}_nexusctl"], r["emit"][f"{name}_relay"]
                run.summary.append(
                    (
                        f"Events through the API until received, {label} ({kind}), deliveries/s",
                        f"{n['deliveries_per_s']:.0f}",
                        f"relay {b['deliveries_per_s']:.0f}",
                        f"{n['deliveries_per_s'] / b['deliveries_per_s']:.2f}",
                    )
                )
            n, b = r["read"]["nexusctl"], r["read"]["bare"]
            run.summary.append(
                (
                    f"GET /integrations/user/:id req/s ({kind})",
                    f"{n['per_s']:.0f}",
                    f"bare handler {b['per_s']:.0f}",
                    f"{n['per_s'] / b['per_s']:.2f}",
                )
            )
        else:
            run.summary.append((f"Real paths ({kind})", "failed", "", ""))
    return "\n\n".join(out)


def webhooks(run: Runner) -> str:
    import webhook_delivery

    out = [METHOD["webhooks"]]
    for kind, url in run.databases():
        result = run.script("webhook_delivery", "webhooks", url, label=kind.lower())
        out.append(f"### {kind}\n\n" + (webhook_delivery.markdown(result) if result else "**Failed** (see below)."))
        run.summary += _summary_webhooks(kind, result)
    return "\n\n".join(out)


def _summary_webhooks(kind: str, r: dict | None) -> list:
    if not r:
        return [(f"Webhook delivery ({kind})", "failed", "", "")]
    rows = [
        (
            f"Durable deliveries/s ({kind})",
            f"{r['durable_per_s']:.0f}",
            f"raw POSTs/s {r['raw_per_s']:.0f}",
            f"{r['ratio']:.2f}",
        )
    ]
    if "failing" in r:
        f = r["failing"]
        rows.append(
            (
                f"Healthy deliveries/s, 10% of receivers failing ({kind})",
                f"{f['failing']['healthy_per_s']:.0f}",
                f"all healthy {f['healthy']['healthy_per_s']:.0f}",
                f"{f['ratio']:.2f}",
            )
        )
    if "latency" in r:
        lat = r["latency"]
        rows.append(
            (
                f"Emit-to-first-attempt p50 / p99 ({kind}, {lat['achieved_per_s']:.0f} events/s reached)",
                f"{lat['p50_ms']:.1f} / {lat['p99_ms']:.1f} ms",
                "",
                "",
            )
        )
    return rows


def api(run: Runner) -> str:
    out = [METHOD["api"]]
    rows = [
        "| Database | /health req/s | read req/s | read p50 / p99 ms | non-200 | ratio read / health |",
        "|---|---|---|---|---|---|",
    ]
    for kind, url in run.databases():
        r = run.script("api_read", "api", url, label=kind.lower())
        if r is None:
            rows.append(f"| {kind} | failed | | | | |")
            run.summary.append((f"API read req/s ({kind})", "failed", "", ""))
            continue
        rows.append(
            f"| {kind} | {r['health_per_s']:.0f} | {r['read_per_s']:.0f} | {r['read_p50_ms']:.0f} / "
            f"{r['read_p99_ms']:.0f} | {r['errors']} | **{r['ratio']:.2f}** |"
        )
        run.summary.append(
            (
                f"GET /integrations/user/:userId req/s ({kind})",
                f"{r['read_per_s']:.0f}",
                f"GET /health {r['health_per_s']:.0f}",
                f"{r['ratio']:.2f}",
            )
        )
    return "\n\n".join(out + ["\n".join(rows)])


def refresh(run: Runner) -> str:
    import token_refresh

    out = [METHOD["refresh"]]
    for kind, url in run.databases():
        r = run.script("token_refresh", "refresh", url, label=kind.lower())
        out.append(f"### {kind}\n\n" + (token_refresh.markdown(r) if r else "**Failed** (see below)."))
        run.summary.append(
            (
                f"Integrations refreshed by the sweep /s ({kind}, {r['integrations']:,})",
                f"{r['sweep_per_s']:.0f}",
                f"raw token POSTs/s {r['raw_per_s']:.0f}",
                f"{r['ratio']:.2f}",
            )
            if r
            else (f"Token refresh ({kind})", "failed", "", "")
        )
    return "\n\n".join(out)


def cli(run: Runner) -> str:
    import cli as cli_bench

    out = [METHOD["cli"]]
    extra = {"--runs": run.args.cli_runs} if run.args.cli_runs else None
    r = run.script("cli", "cli", None, extra)
    out.append(cli_bench.markdown(r) if r else "**Failed** (see below).")
    if r:
        for name, base in (("nexusctl --help", "hello --help"), ("nexusctl integrations list --json", "hello hello")):
            run.summary.append(
                (
                    f"`{name}` wall ms (SQLite)",
                    f"{r['median_ms'][name]:.0f}",
                    f"hello-world Typer {r['median_ms'][base]:.0f}",
                    f"{r['ratios'][name]:.2f}",
                )
            )
    other = HERE / "cli_startup.py"
    if other.exists():  # the CLI start-up benchmark kept by the CLI's own work, when it is there
        argv = [sys.executable, str(other)]
        usage = subprocess.run(argv + ["--help"], capture_output=True, text=True, timeout=60).stdout
        if "--rounds" in usage:
            argv += ["--rounds", str(run.args.cli_runs or SIZES["cli"][1 if run.args.quick else 0]["--runs"])]
        before, started = load_average(), time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        run.loads.append(("cli_startup", before, load_average(), time.monotonic() - started))
        out.append(
            "#### bench/cli_startup.py\n\n"
            + (f"```\n{done.stdout.strip()}\n```" if done.returncode == 0 else f"Failed (exit {done.returncode}).")
        )
    return "\n\n".join(out)


def growth(run: Runner) -> str:
    import growth as growth_bench

    out = [METHOD["growth"]]
    for kind, url in run.databases():
        extra = {"--sizes": run.args.growth_sizes} if run.args.growth_sizes else {}
        if kind == "SQLite" and run.args.sqlite_growth_max:
            sizes = (run.args.growth_sizes or SIZES["growth"][1 if run.args.quick else 0]["--sizes"]).split(",")
            extra["--sizes"] = ",".join(s for s in sizes if int(s) <= run.args.sqlite_growth_max)
        r = run.script("growth", "growth", url, extra, label=kind.lower())
        out.append(f"### {kind}\n\n" + (growth_bench.markdown(r) if r else "**Failed** (see below)."))
        if r:
            first, last = r["sizes"][0], r["sizes"][-1]
            for key, name in (
                ("list_first_ms", "list, first page"),
                ("list_quiet_ms", "list, quiet webhook"),
                ("claim_ms", "claim 50"),
            ):
                run.summary.append(
                    (
                        f"{name} at {last['size']:,} deliveries ({kind}), fastest call",
                        f"{last[key]:.2f} ms",
                        f"at {first['size']:,}: {first[key]:.2f} ms",
                        f"{last[key] / first[key]:.2f}",
                    )
                )
    return "\n\n".join(out)


def proxy(run: Runner) -> str:
    import proxy as proxy_bench

    out = [METHOD["proxy"]]
    for kind, url in run.databases():
        r = run.script("proxy", "proxy", url, label=kind.lower())
        out.append(proxy_bench.markdown(r) if r else f"### {kind}\n\n**Failed** (see below).")
        run.summary.append(
            (
                f"Proxied GETs/s ({kind})",
                f"{r['proxyPerSecond']:.0f}" if r else "failed",
                f"direct to the emulator {r['directPerSecond']:.0f}" if r else "",
                f"{r['ratio']:.2f}" if r else "",
            )
        )
    return "\n\n".join(out)


RUNNERS = {
    "paths": ("The paths users take (HTTP API, default settings)", paths),
    "webhooks": ("Webhook delivery", webhooks),
    "api": ("API reads", api),
    "refresh": ("Token refresh", refresh),
    "cli": ("CLI", cli),
    "growth": ("Growth", growth),
    "proxy": ("Provider API proxy", proxy),
}

METHOD = {
    "paths": """`bench/real_paths.py`. A `nexusctl daemon` with default settings (only WEBHOOK_ALLOWED_NETWORKS
opens 127.0.0.1), driven through its HTTP API by an aiohttp load generator in another process, each
path against a baseline doing the same work without the product, in the same run:
- **Events**: POST `/integrations/:id/events` (32 at once, a user's JWT) until the receiver has every
  delivery, an integration with one webhook and one with 20. Baseline: a non-durable aiohttp relay
  (JWT check, parse, validate, 202, sign as Standard Webhooks, POST), same events, same receiver.
  Then emit-to-received p50/p99 at half the one-webhook rate the daemon reached.
- **Read**: `GET /integrations/user/:id` (20 integrations, 32 at once). Baseline: a bare aiohttp
  handler (PyJWT, the same SELECT through psycopg2 / sqlite3 in a thread, the same JSON).
- CPU µs per operation of each process (user + system from /proc/<pid>/stat; on PostgreSQL also this
  database's backends).""",
    "webhooks": """`bench/webhook_delivery.py`. One local receiver process (aiohttp; 200 at once, or 500 on the
failing paths), one `nexusctl daemon` (WEBHOOK_CONCURRENCY 50, no Redis), all on this machine.
- **Baseline**: raw aiohttp POSTs of the same body into the same receiver at the same concurrency.
- **Durable**: N deliveries queued in one SQL statement, then the daemon signs, sends and records them
  all; rate from the first attempt's `started_at` to the last `delivered_at` (database timestamps).
- **Failing receivers**: four rounds of N/2 deliveries spread over 20 webhooks: all healthy, 2 of the
  20 (10%) answering 500 (those deliveries retried on WEBHOOK_RETRY_SCHEDULE meanwhile), the same
  again, all healthy again (so drift over the run weighs on both kinds alike); healthy deliveries/s of
  each kind, each round timed from its first attempt to its last healthy `delivered_at`.
- **Latency** (PostgreSQL): real `core.events.emit` calls, each its own committed transaction, from 4
  processes on one schedule aiming at the given rate; lag = the delivery's `created_at` to its first
  attempt's `started_at`. The table says which rate the emitters actually reached.
- **Backlog memory** (PostgreSQL): the daemon's peak RSS (VmHWM) while it works on a large backlog.
- CPU per message: user + system time from /proc of each process (and on PostgreSQL of this
  database's backends).""",
    "api": """`bench/api_read.py`. One daemon with one user's 20 integrations; a load generator in another
process (aiohttp, 32 concurrent) alternates rounds of `GET /health` (baseline) and the authenticated
`GET /integrations/user/:userId` (20 rows, about 8 KB) on the same daemon.""",
    "refresh": """`bench/token_refresh.py`. The provider emulators of tests/emulators (the same `Emulators` server
the tests start) in their own process issue N YouTube (Google) refresh tokens.
- **Baseline**: raw aiohttp POSTs `grant_type=refresh_token` with those tokens to the emulator's token
  endpoint at the sweep's concurrency (5).
- **Sweep**: N integrations holding those tokens (encrypted as the service stores them), all expiring
  within TOKEN_REFRESH_WINDOW; one `nexusctl daemon` refreshes them with its scheduled sweep (500 a
  pass, 5 at a time; REFRESH_SWEEP_INTERVAL shortened to 0.2 s so the passes follow each other).
  Rate = N / (first to last refreshed row's `updated_at`). Each refresh is a lease claim, the
  provider call, the encrypted write fenced by the lease with its `integration.refreshed` outbox event;
  the report checks one provider call per integration.""",
    "cli": """`bench/cli.py`. Each command runs N times, each in a fresh process, in rounds alternating the
commands; median wall time. **Baseline**: a two-command hello-world Typer app run by the same
interpreter (`python hello.py --help`, `python hello.py hello`). `integrations list --json` reads a
SQLite database with 20 integrations.""",
    "growth": """`bench/growth.py`. Deliveries bulk-inserted in SQL (generate_series on PostgreSQL, a recursive
CTE on SQLite) over 10 webhooks, one in ten PENDING and due, the rest DELIVERED; an 11th, quiet
webhook keeps 60 deliveries older than all others. After each step (and VACUUM ANALYZE / ANALYZE),
the fastest of 50 warm calls (the least disturbed by other processes; the median is shown too) of the
product's functions: `deliveries.page_with_attempts` (the API's and CLI's delivery list:
first page, a page from a cursor half-way down, the quiet webhook's first page) and
`deliveries.claim(50)` (the worker's claim, rolled back after each call). **Baseline**: the same call
at the smallest size. The plans are EXPLAIN (PostgreSQL) / EXPLAIN QUERY PLAN (SQLite) of the
statements each call actually ran (captured from peewee's query log).""",
    "proxy": """`bench/proxy.py`. The provider emulators (tests/emulators) in the benchmark's process; one Discord
integration connected through the daemon's OAuth flow. A load generator in another process (aiohttp, 16
concurrent) alternates rounds of GETs of the emulator's `/v10/users/@me` with the issued access token
(**baseline**), the same path through `/integrations/:id/proxy/v10/users/@me` with a user JWT, and
`GET /integrations/:id` of the same daemon (one authenticated row read, which a proxied call
makes once a second per integration).""",
}


def report(run: Runner, sections: dict, started: dt.datetime, load_before: str, load_after: str, seconds: float) -> str:
    args = run.args
    command = (
        "bench/run_all.py"
        + (" --quick" if args.quick else "")
        + (f" --only {args.only}" if args.only else "")
        + (" --database-url <PostgreSQL>" if args.database_url else "")
    )
    lines = [
        "# Benchmarks",
        "",
        f"Written by `.venv/bin/python {command}` ({'quick sizes' if args.quick else 'full sizes'}; "
        f"{seconds / 60:.1f} min). Every figure is set against a baseline measured in the same run, "
        "so the ratios, not the absolute rates, are what compares between machines and runs. "
        "Method and scripts: bench/README.md and each script's docstring.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| Date (UTC) | {started:%Y-%m-%d %H:%M} |",
        f"| CPU | {cpu_model()}, {os.cpu_count()} cores ({platform.machine()}) |",
        f"| Load average (1, 5, 15 min) | before {load_before}; after {load_after} |",
        f"| Python | {platform.python_version()} |",
        f"| PostgreSQL | {postgres_version(args.database_url)} |",
        f"| Redis | {redis_version(args.redis_url)} |",
        f"| Commit | {git_commit()} |",
        "",
        "Every process (daemon, database server, receiver, emulator, load generator) shares these cores. "
        "Load average before / after each benchmark:",
        "",
        "| Benchmark | load before | load after | took s |",
        "|---|---|---|---|",
        *[f"| {title} | {before} | {after} | {took:.0f} |" for title, before, after, took in run.loads],
    ]
    if args.note:
        lines += ["", args.note]
    lines += [
        "",
        "## Summary",
        "",
        "| Measure | Result | Baseline (same run) | Ratio |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {f'**{d}**' if d else ''} |" for a, b, c, d in run.summary],
    ]
    for key, body in sections.items():
        lines += ["", f"## {RUNNERS[key][0]}", "", body]
    if run.failures:
        lines += ["", "## Failures", ""] + [f"```\n{failure}\n```" for failure in run.failures]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL database for the benchmarks alone (emptied)")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="only to report the server's version",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a couple of minutes")
    parser.add_argument("--only", help=f"comma-separated: {','.join(SECTIONS)}")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--growth-sizes", help="override, e.g. 1000,5000")
    parser.add_argument("--sqlite-growth-max", type=int, help="leave SQLite growth sizes above this out")
    parser.add_argument("--cli-runs", type=int, help="override the fresh processes per CLI command")
    parser.add_argument("--note", help="a paragraph for the report's machine section")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",")] if args.only else list(SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")

    run = Runner(args)
    run.summary = []
    started, load_before, clock = dt.datetime.now(dt.timezone.utc), load_average(), time.monotonic()
    sections = {}
    for key in SECTIONS:
        if key in chosen:
            try:
                sections[key] = RUNNERS[key][1](run)
            except Exception:  # noqa: BLE001 - a report bug in one section must not lose the others' figures
                run.failures.append(f"{key}: the report could not be written\n{traceback.format_exc()}")
                sections[key] = "**Failed** (see below)."
    text = report(run, sections, started, load_before, load_average(), time.monotonic() - clock)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text)
    shutil.rmtree(run.work, ignore_errors=True)
    print(
        f"wrote {args.output}" + (f"; {len(run.failures)} benchmark(s) failed" if run.failures else ""), file=sys.stderr
    )
    sys.exit(1 if run.failures else 0)


if __name__ == "__main__":
    main()
