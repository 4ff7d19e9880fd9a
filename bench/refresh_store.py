"""Benchmark: a refresh's database work alone, in-process: the sweep's claim, then the store, per integration.

No daemon, no provider, no thread hop: N expiring integrations (seeded as bench/token_refresh.py seeds them)
are claimed one by one with ``refresh._claim_expiring`` (the UPDATE ... RETURNING that leases and reads the
row), then each stores a new token with ``connections.store_refreshed`` (the fenced UPDATE with the health
the refresh leaves, its ``integration.refreshed`` event). Reported: CPU µs per claim and per store of this
process (Python, psycopg2, AES-GCM) and of its PostgreSQL backend, from /proc. On a shared machine the
least noisy of the refresh figures: no scheduling between processes, one backend.

    createdb -h 127.0.0.1 -U postgres bench_store
    .venv/bin/python bench/refresh_store.py --database-url postgresql://postgres@127.0.0.1:5432/bench_store
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, base_env, bench_database, cpu_seconds  # noqa: E402
from token_refresh import seed  # noqa: E402

sys.path.insert(0, str(ROOT))


def run(database_url: str, integrations: int) -> dict:
    env = base_env(Path(tempfile.mkdtemp(prefix="nexus-bench-store-")), database_url)
    db = bench_database(env, database_url)

    from nexusctl import config
    from nexusctl.core import connections, refresh
    from nexusctl.crypto import keyring_from_settings
    from nexusctl.providers.spec import TokenSet

    settings = config.load()
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
    seed(settings, [f"rt-{i}" for i in range(integrations)], expires)
    db.execute_sql("VACUUM ANALYZE integrations")
    ring = keyring_from_settings(settings)
    window, lead = dt.timedelta(minutes=10), dt.timedelta(seconds=settings.token_expiry_warning)
    ids = refresh.expiring(window, integrations, lead)
    backend = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]

    def cpu() -> tuple[float, float]:
        return time.process_time(), cpu_seconds(backend)

    start = cpu()
    claimed = []
    for row_id in ids:
        lease = uuid.uuid4()
        claimed.append((lease, refresh._claim_expiring(ring, row_id, lease, window, lead, None)))
    middle = cpu()
    health = refresh._health_after(settings)
    for lease, (row, tokens) in claimed:
        fresh = TokenSet(
            access_token=f"ya29.new-{row.id}",
            refresh_token=tokens.refresh_token,
            expires_at=expires + dt.timedelta(hours=1),
            token_type="Bearer",
        )
        assert connections.store_refreshed(ring, row, fresh, lease, refresh._settled(row, False), health)
    end = cpu()
    n = max(len(ids), 1)
    db.close()
    return {
        "integrations": len(ids),
        "claim_python_us": (middle[0] - start[0]) / n * 1e6,
        "claim_postgres_us": (middle[1] - start[1]) / n * 1e6,
        "store_python_us": (end[0] - middle[0]) / n * 1e6,
        "store_postgres_us": (end[1] - middle[1]) / n * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database of its own (emptied)")
    parser.add_argument("--integrations", type=int, default=2000)
    args = parser.parse_args()
    r = run(args.database_url, args.integrations)
    print(
        f"{r['integrations']:,} refreshes, CPU µs each: claim {r['claim_python_us']:,.0f} here + "
        f"{r['claim_postgres_us']:,.0f} PostgreSQL; store {r['store_python_us']:,.0f} here + "
        f"{r['store_postgres_us']:,.0f} PostgreSQL"
    )


if __name__ == "__main__":
    main()
