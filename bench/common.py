"""Helpers the benchmark scripts share: ports, waiting for a server, the environment, the bench database, a
daemon, a webhook receiver, a user's token, CPU from /proc, results.

Every script can run alone (it prints a Markdown summary) and writes its figures as JSON with
``--json PATH`` so ``bench/run_all.py`` can put them into docs/benchmarks.md.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import peewee

ROOT = Path(__file__).resolve().parent.parent
NEXUSCTL = Path(sys.executable).parent / "nexusctl"


def compile_bytecode() -> None:
    """Write the project's .pyc files, as `pip install` does for an installed package.

    Where PYTHONDONTWRITEBYTECODE is set (this project's CI machines set it) an editable checkout
    is compiled from source at every start, which no installed copy ever is: a start-up timing
    would measure the compiler."""
    import compileall

    # One package: its subpackages (nexusctl.db, .providers, .daemon ...) are compiled with it.
    compileall.compile_dir(ROOT / "nexusctl", quiet=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, method: str = "GET", timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(
                urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None), timeout=1
            )
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up") from None
            time.sleep(0.05)


def base_env(work: Path, database_url: str | None) -> dict:
    """A clean environment for nexusctl processes: no inherited database, Redis or webhook settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_", "WEBHOOK_", "JWT_", "ENCRYPTION_"))
    }
    env.update(
        NEXUS_DATA_DIR=str(work),
        NODE_ENV="test",
        JWT_SECRET="bench-" + "x" * 32,
        ENCRYPTION_KEY=base64.b64encode(os.urandom(32)).decode(),
        PYTHONPATH=str(ROOT),
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def migrate(env: dict, **popen) -> None:
    """``nexusctl db migrate`` with ``env`` (``popen``: e.g. ``cwd``)."""
    subprocess.run([str(NEXUSCTL), "-q", "db", "migrate"], env=env, check=True, **popen)


# Every table a benchmark writes, children first: a rerun on the same database measures only its own rows.
TABLES = (
    "webhook_attempts",
    "webhook_deliveries",
    "webhooks",
    "outbox_events",
    "integration_sync_logs",
    "integrations",
)


def bench_database(env: dict, database_url: str, tables=TABLES):
    """The bench database migrated, this process bound to it (with ``env`` as its settings: in os.environ) and
    ``tables`` emptied; the peewee database."""
    os.environ.update(env)
    migrate(env)
    import nexusctl.db.models  # noqa: F401 - before bind(): its fields learn the database kind then
    from nexusctl.db.database import bind, open_database

    db = bind(open_database(database_url))
    empty_tables(db, *tables)
    return db


def user_token(env: dict, user, ttl: int = 3600) -> str:
    """A bearer token of ``user`` (``nexusctl token mint``) that the daemons of ``env`` accept."""
    return subprocess.run(
        [str(NEXUSCTL), "token", "mint", "--user", str(user), "--ttl", str(ttl)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def start_daemon(
    env: dict, port: int, *, command: list | None = None, log: Path | None = None, cwd=None
) -> subprocess.Popen:
    """``nexusctl daemon --port PORT`` with ``env`` (and PORT), returned once /health answers. ``command`` runs
    instead of `nexusctl` (``[python, -m, nexusctl]`` for a variant's PYTHONPATH, a profiling wrapper ...);
    ``log`` takes its stderr (appended), else it goes nowhere; ``cwd``: e.g. not this checkout, so that a
    variant's PYTHONPATH decides which code runs. Stopped again if it never answers."""
    daemon = subprocess.Popen(
        [*(command or [str(NEXUSCTL)]), "daemon", "--port", str(port)],
        env={**env, "PORT": str(port)},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "a") if log else subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
    except BaseException:
        daemon.kill()
        daemon.wait()
        raise
    return daemon


def start_python(code: str, *args, env=None, **popen) -> subprocess.Popen:
    """``python -c code args...``: a receiver, a bare baseline server, a load generator."""
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, **popen)


# A webhook receiver answering 200 to POST /hook and /hook/N, 500 to POST /fail/N.
RECEIVER = r"""
import sys
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(text="ok")
async def fail(request):
    await request.read()
    return web.Response(status=500, text="receiver down")
app = web.Application()
app.router.add_post("/hook", ok)
app.router.add_post("/hook/{n}", ok)
app.router.add_post("/fail/{n}", fail)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def start_receiver(port: int) -> subprocess.Popen:
    """The RECEIVER on ``port``, once it answers."""
    receiver = start_python(RECEIVER, port)
    try:
        wait_http(f"http://127.0.0.1:{port}/hook", "POST")
    except BaseException:
        receiver.kill()
        receiver.wait()
        raise
    return receiver


def variant(text: str) -> tuple[str, str, dict]:
    """``NAME=PATH[:VAR=VALUE,...]`` (a before/after variant: its code on PYTHONPATH, '-' this checkout, and its
    settings) as (name, path, settings)."""
    name, _, rest = text.partition("=")
    path, _, envs = rest.partition(":")
    return name, path, dict(item.split("=", 1) for item in envs.split(",") if item)


def delivery_settings(concurrency: int | None = None, per_endpoint: int | None = None) -> dict:
    """A daemon that delivers webhooks to a receiver on 127.0.0.1 (the SSRF guard lets it), JSON logs, and
    nothing else running (no event consumer; syncs and the refresh sweep hourly); with ``concurrency``, the
    delivery worker's sending slots in all (WEBHOOK_CONCURRENCY). The per-endpoint cap stays the product's default
    (WEBHOOK_CONCURRENCY_PER_ENDPOINT, 16) unless ``per_endpoint`` is given: until 2026-12-06 it was set to
    ``concurrency`` too, so the queued-delivery figures of one webhook were of a cap of 50, not of the defaults."""
    settings = dict(
        WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32",
        LOG_FORMAT="json",
        EVENTS_CONSUME_STREAMS="none",
        SYNC_POLL_INTERVAL="1h",
        REFRESH_SWEEP_INTERVAL="1h",
    )
    if concurrency is not None:
        settings.update(WEBHOOK_CONCURRENCY=str(concurrency))
    if per_endpoint is not None:
        settings.update(WEBHOOK_CONCURRENCY_PER_ENDPOINT=str(per_endpoint))
    return settings


def empty_tables(db, *tables: str) -> None:
    """Empty the benchmark's tables. TRUNCATE on PostgreSQL: DELETE would leave the previous run's dead
    rows (a million after the backlog run) in the heap and the indexes until autovacuum comes, and
    the next benchmark on the same database would be measured against them."""
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql(f"TRUNCATE {', '.join(tables)} CASCADE")
        return
    for table in tables:
        db.execute_sql(f"DELETE FROM {table}")


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def write_json(path: str | None, result: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(result, indent=2, default=str))


def is_postgres(url: str | None) -> bool:
    return bool(url) and url.startswith("postgres")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (all its threads) so far, from /proc/<pid>/stat (utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / os.sysconf("SC_CLK_TCK"), int(fields[12]) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process so far (0 for one that has gone)."""
    try:
        return sum(cpu_times(pid))
    except OSError:
        return 0.0


class CpuMeter:
    """CPU seconds spent by named processes and by this database's PostgreSQL backends over a phase.

    The backends are the bench database's connections (pg_stat_activity), so other databases' load on
    the same server is not counted. ``db`` is a peewee database (or None on SQLite: the work is then
    inside the daemon's own process)."""

    def __init__(self, db, **pids: int) -> None:
        self.db, self.pids = db, pids
        self.start = self._sample()

    def _backends(self) -> list[int]:
        if self.db is None or not isinstance(self.db, peewee.PostgresqlDatabase):
            return []
        return [
            r[0]
            for r in self.db.execute_sql(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]

    def _sample(self) -> dict:
        sample = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        sample.update({f"pg:{pid}": cpu_seconds(pid) for pid in self._backends()})
        return sample

    def per_item_us(self, items: int) -> dict[str, float]:
        end = self._sample()
        used: dict[str, float] = {name: 0.0 for name in self.pids}
        if self.db is not None and isinstance(self.db, peewee.PostgresqlDatabase):
            used["postgres"] = 0.0
        for key, value in end.items():
            name = "postgres" if key.startswith("pg:") else key
            used[name] = used.get(name, 0.0) + value - self.start.get(key, 0.0)
        return {name: seconds / max(items, 1) * 1e6 for name, seconds in used.items()}


class PgStats:
    """What PostgreSQL did for this database over a phase, from its statistics views: per statement
    (pg_stat_statements, if loaded: calls, execution and planning time, rows, WAL), per table (rows inserted,
    updated, of which HOT, deleted), per index (bytes grown) and the cluster's WAL (pg_stat_wal). Table and WAL
    counters reach the views when a backend flushes them (at most once a second, or 10 s after it went idle):
    ``end`` waits ``settle`` seconds first. Only for a private cluster: the WAL figure is the cluster's."""

    def __init__(self, db) -> None:
        self.db = db
        self.has_statements = (
            bool(db.execute_sql("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchall())
            or self._create_extension()
        )
        self.start = self._sample()

    def _create_extension(self) -> bool:
        try:
            self.db.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self.db.execute_sql("SELECT 1 FROM pg_stat_statements LIMIT 1")
            return True
        except peewee.DatabaseError:
            return False

    def _sample(self) -> dict:
        q = self.db.execute_sql
        sample: dict = {"statements": {}, "tables": {}, "indexes": {}}
        if self.has_statements:
            for row in q(
                "SELECT query, calls, total_exec_time, total_plan_time, rows, wal_bytes, wal_records, wal_fpi "
                "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ):
                key = " ".join(row[0].split())
                old = sample["statements"].get(key, (0,) * 7)
                sample["statements"][key] = tuple(float(a) + float(b) for a, b in zip(old, row[1:]))
        for row in q("SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables"):
            sample["tables"][row[0]] = tuple(float(v) for v in row[1:])
        for row in q("SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes"):
            sample["indexes"][row[0]] = (float(row[1]),)
        for row in q("SELECT relname, pg_relation_size(relid) FROM pg_stat_user_tables"):
            sample["indexes"]["(heap) " + row[0]] = (float(row[1]),)
        sample["wal"] = tuple(float(v) for v in q("SELECT wal_bytes, wal_records, wal_fpi FROM pg_stat_wal").fetchone())
        return sample

    def end(self, items: int, settle: float = 11.0) -> dict:
        """Per item (e.g. delivered event) over the phase."""
        time.sleep(settle)
        end, n = self._sample(), max(items, 1)

        def delta(part):
            out = {}
            for key, values in end[part].items():
                old = self.start[part].get(key, (0.0,) * len(values))
                d = [(a - b) for a, b in zip(values, old)]
                if any(d):
                    out[key] = d
            return out

        statements = []
        for query, (calls, exec_ms, plan_ms, rows, wal, records, fpi) in delta("statements").items():
            if "pg_stat_" in query or "pg_database" in query:
                continue  # this meter's own reads
            statements.append(
                {
                    "query": query[:160],
                    "calls_per_item": calls / n,
                    "mean_exec_us": exec_ms * 1000 / max(calls, 1),
                    "exec_us_per_item": exec_ms * 1000 / n,
                    "plan_us_per_item": plan_ms * 1000 / n,
                    "rows_per_item": rows / n,
                    "wal_bytes_per_item": wal / n,
                    "wal_fpi_per_item": fpi / n,
                }
            )
        statements.sort(key=lambda s: -s["exec_us_per_item"])
        tables = {
            name: dict(zip(("ins", "upd", "hot_upd", "del"), (v / n for v in d))) for name, d in delta("tables").items()
        }
        wal = [a - b for a, b in zip(end["wal"], self.start["wal"])]
        return {
            "statements": statements,
            "exec_us_per_item": sum(s["exec_us_per_item"] for s in statements),
            "plan_us_per_item": sum(s["plan_us_per_item"] for s in statements),
            "statement_wal_bytes_per_item": sum(s["wal_bytes_per_item"] for s in statements),
            "tables_per_item": tables,
            "relation_bytes_per_item": {k: d[0] / n for k, d in delta("indexes").items()},
            "wal_bytes_per_item": wal[0] / n,
            "wal_records_per_item": wal[1] / n,
            "wal_fpi_per_item": wal[2] / n,
        }


def pg_stats_markdown(name: str, stats: dict) -> str:
    """A phase's PgStats as text: statements by execution time per item, then tables and WAL."""
    lines = [
        f"{name}: statements {stats['exec_us_per_item']:.0f} µs executing + {stats['plan_us_per_item']:.0f} planning"
        f" per item; WAL {stats['wal_bytes_per_item']:.0f} B/item ({stats['wal_records_per_item']:.1f} records,"
        f" {stats['wal_fpi_per_item']:.2f} full pages; statements' own {stats['statement_wal_bytes_per_item']:.0f} B)",
        "  calls/item  mean µs  exec µs/item  plan µs/item  rows/item  WAL B/item  query",
    ]
    for s in stats["statements"]:
        if s["exec_us_per_item"] < 0.5 and s["wal_bytes_per_item"] < 5:
            continue
        lines.append(
            f"  {s['calls_per_item']:10.3f} {s['mean_exec_us']:8.1f} {s['exec_us_per_item']:13.1f}"
            f" {s['plan_us_per_item']:13.1f} {s['rows_per_item']:10.2f} {s['wal_bytes_per_item']:11.0f}"
            f"  {s['query'][:110]}"
        )
    for table, t in sorted(stats["tables_per_item"].items()):
        lines.append(
            f"  table {table}: ins {t['ins']:.2f} upd {t['upd']:.2f} (HOT {t['hot_upd']:.2f})"
            f" del {t['del']:.2f} per item"
        )
    for rel, b in sorted(stats["relation_bytes_per_item"].items()):
        lines.append(f"  size {rel}: +{b:.0f} B/item")
    return "\n".join(lines)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs so far, from /proc/stat (busy: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # guest time is already inside user/nice
    return total - fields[3] - fields[4], total


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Each thread of a process: tid -> (name, user + system CPU seconds so far), from /proc/<pid>/task/*/stat."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def schedstat(pid: int, tid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of a thread so far, from /proc/<pid>/task/<tid>/
    schedstat: what is neither was sleeping (I/O, a lock such as the GIL, an idle event loop)."""
    run, wait, _ = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
    return int(run) / 1e9, int(wait) / 1e9


class Load:
    """How busy the machine and named processes were over a phase, in cores (CPU seconds / wall seconds):
    the machine (/proc/stat; ``cores`` of it), each name of ``pids`` (a pid or a list of pids: summed), the
    threads of ``threads_of`` (its main thread and the rest), and this database's PostgreSQL backends
    (through a CpuMeter on ``db``). ``others``: what the machine did beyond all of these (other sessions,
    this bench's own polling)."""

    def __init__(self, db, threads_of: list[int] = (), **pids) -> None:
        self.pids = {name: pid if isinstance(pid, list) else [pid] for name, pid in pids.items()}
        flat = {f"{name}#{i}": p for name, ps in self.pids.items() for i, p in enumerate(ps)}
        self.threads_of = list(threads_of)
        self.meter = CpuMeter(db, **flat)
        self.threads = {pid: thread_cpu(pid) for pid in self.threads_of}
        self.sched = {pid: schedstat(pid, pid) for pid in self.threads_of}
        self.machine = machine_ticks()
        self.load = os.getloadavg()[0]
        self.wall = time.monotonic()

    def end(self) -> dict:
        wall = time.monotonic() - self.wall
        used = self.meter.per_item_us(1)  # µs over the phase, per name
        busy, total = (b - a for a, b in zip(self.machine, machine_ticks()))
        cores = os.cpu_count() or 1
        out = {"seconds": wall, "machine": cores * busy / max(total, 1), "loadavg": [self.load, os.getloadavg()[0]]}
        for name, ps in self.pids.items():
            out[name] = sum(used.get(f"{name}#{i}", 0.0) for i in range(len(ps))) / 1e6 / wall
        if "postgres" in used:
            out["postgres"] = used["postgres"] / 1e6 / wall
        main_threads, other_threads, main_waits = 0.0, 0.0, 0.0
        for pid in self.threads_of:
            try:
                now = thread_cpu(pid)
                sched = schedstat(pid, pid)
            except OSError:
                continue
            main_waits = max(main_waits, (sched[1] - self.sched[pid][1]) / wall)
            for tid, (_, seconds) in now.items():
                spent = seconds - self.threads[pid].get(tid, ("", 0.0))[1]
                if tid == pid:
                    main_threads = max(main_threads, spent / wall)
                else:
                    other_threads += spent / wall
        if self.threads_of:
            out["busiest_main_thread"] = main_threads
            out["other_threads"] = other_threads
            out["main_thread_runnable_waiting"] = main_waits  # the busiest such wait of the main threads
        measured = sum(v for k, v in out.items() if k in self.pids or k == "postgres")
        out["others"] = out["machine"] - measured
        return out
