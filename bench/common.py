"""Helpers the benchmark scripts share: ports, waiting for a server, the environment, results.

Every script can run alone (it prints a Markdown summary) and writes its figures as JSON with
``--json PATH`` so ``bench/run_all.py`` can put them into docs/benchmarks.md.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import statistics
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

    for package in ("nexusctl", "db", "providers", "daemon"):
        compileall.compile_dir(ROOT / package, quiet=1)


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


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process (all its threads) so far, from /proc/<pid>/stat (utime + stime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
