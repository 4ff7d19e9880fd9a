"""Benchmark: do the delivery list and the worker's claim cost the same at 1k, 100k and 1M deliveries?

The table grows in steps (rows bulk-inserted in SQL: generate_series on PostgreSQL, a recursive
CTE on SQLite), spread over 10 webhooks of one integration; one row in ten is PENDING and due, the
rest DELIVERED, as a service with history and a backlog looks. After each step (and ANALYZE) it
times, warm, the product's own functions:

- list (first page): ``deliveries.page_with_attempts(webhook, limit=50)``, what
  ``GET /integrations/webhooks/:id/deliveries`` and ``nexusctl webhooks deliveries`` run;
- list (deep page): the same from a cursor half-way down that webhook's deliveries;
- list (quiet webhook): the first page of an 11th webhook that only ever has 60 deliveries, all
  older than the rest (the table grows around it);
- claim: ``deliveries.claim(50, ...)``, the worker's claim, in a transaction rolled back afterwards
  (so every repetition claims the same due rows).

Each figure is the fastest of ``--repeat`` warm calls (the one least disturbed by other processes on a
shared machine; the median is reported too); the ratio is against the smallest size measured in the
same run. The statements each call ran are captured (peewee's query log) and EXPLAINed at every
size: the report names the index each one uses and flags any sequential scan or sort.

    .venv/bin/python bench/growth.py --database-url postgresql://postgres@127.0.0.1:5432/bench_b
    .venv/bin/python bench/growth.py --sizes 1000,100000      # SQLite in a temporary directory
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ROOT,
    base_env,
    empty_tables,
    is_postgres,
    median,
    migrate,
    write_json,
)

sys.path.insert(0, str(ROOT))

WEBHOOKS = 10
PAGE = 50
RARE = 60
MEASURES = ("list_first", "list_deep", "list_quiet", "claim")


class Captured(logging.Handler):
    """The (sql, params) peewee ran while it was attached."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list = []

    def emit(self, record) -> None:
        if isinstance(record.msg, tuple) and len(record.msg) == 2:
            self.statements.append(record.msg)


def capture(fn):
    logger = logging.getLogger("peewee")
    handler, level = Captured(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        fn()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return handler.statements


def _pg_insert(db, hooks, start: int, end: int, base: dt.datetime) -> None:
    db.execute_sql(
        "INSERT INTO webhook_deliveries (id, created_at, updated_at, webhook_id, event, payload, status, attempts, "
        "next_attempt_at, delivered_at) "
        "SELECT gen_random_uuid(), %(base)s - g * interval '1 millisecond', %(base)s, "
        "(%(hooks)s::uuid[])[1 + g %% %(n)s], 'media.created', "
        "jsonb_build_object('type', 'media.created', 'data', jsonb_build_object('i', g)), "
        "CASE WHEN g %% 10 = 0 THEN 'PENDING' ELSE 'DELIVERED' END, CASE WHEN g %% 10 = 0 THEN 0 ELSE 1 END, "
        "%(base)s - g * interval '1 millisecond', "
        "CASE WHEN g %% 10 = 0 THEN NULL ELSE %(base)s - g * interval '1 millisecond' END "
        "FROM generate_series(%(start)s, %(end)s) AS g",
        {"base": base, "hooks": [str(h) for h in hooks], "n": len(hooks), "start": start, "end": end},
    )
    db.execute_sql("VACUUM ANALYZE webhook_deliveries")  # as autovacuum would leave it: stats, visibility map


def _sqlite_insert(db, hooks, start: int, end: int, base: dt.datetime) -> None:
    # Stored as the models store them: ids as 32 hex digits, timestamps as fixed-width UTC text.
    base_us = int(base.timestamp() * 1_000_000)
    ts = (
        "(strftime('%Y-%m-%d %H:%M:%S', (:base - g * 1000) / 1000000, 'unixepoch') || '.' || "
        "printf('%06d', (:base - g * 1000) % 1000000))"
    )
    hook_case = "CASE g % {n} {whens} END".format(
        n=len(hooks), whens=" ".join(f"WHEN {i} THEN '{h.hex}'" for i, h in enumerate(hooks))
    )
    now = base.replace(tzinfo=None).isoformat(" ", "microseconds")
    with db.atomic():
        db.execute_sql(
            f"WITH RECURSIVE s(g) AS (SELECT :start UNION ALL SELECT g + 1 FROM s WHERE g < :end) "
            f"INSERT INTO webhook_deliveries (id, created_at, updated_at, webhook_id, event, payload, status, "
            f"attempts, next_attempt_at, delivered_at) "
            f"SELECT lower(hex(randomblob(16))), {ts}, :now, {hook_case}, 'media.created', "
            f"json_object('type', 'media.created', 'data', json_object('i', g)), "
            f"CASE WHEN g % 10 = 0 THEN 'PENDING' ELSE 'DELIVERED' END, CASE WHEN g % 10 = 0 THEN 0 ELSE 1 END, "
            f"{ts}, CASE WHEN g % 10 = 0 THEN NULL ELSE {ts} END FROM s",
            {"start": start, "end": end, "base": base_us, "now": now},
        )
    db.execute_sql("ANALYZE")


def _explain(db, postgres: bool, statements) -> list[str]:
    """The plan lines that say how each table is reached (index names, scans, sorts)."""
    lines = []
    for sql, params in statements:
        if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH")) or "webhook_deliveries" not in sql:
            continue
        if postgres:
            plan = [r[0] for r in db.execute_sql("EXPLAIN " + sql, params).fetchall()]
        else:
            plan = [r[-1] for r in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()]
        for line in plan:
            text = line.strip().lstrip("->").strip()
            text = re.sub(r"\s+\(cost=.*$", "", text)
            if text.startswith(("Index Cond", "Filter", "Sort Key", "Recheck", "Presorted")):
                continue  # conditions, not access paths
            if re.search(r"Index|Seq Scan|Sort|SCAN|SEARCH|TEMP B-TREE", text) and text not in lines:
                lines.append(text)
    return lines


def _timed(fn, repeat: int) -> tuple[float, float]:
    """(fastest, median) of ``repeat`` warm calls, in ms."""
    fn()  # warm
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return min(samples) * 1000, median(samples) * 1000


def run(database_url: str | None, sizes: list[int], repeat: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="nexus-bench-growth-"))
    database_url = database_url or f"sqlite:///{work}/growth.db"
    env = base_env(work, database_url)
    env["WEBHOOK_ALLOWED_NETWORKS"] = "127.0.0.1/32"
    os.environ.update(env)
    migrate(env)

    from nexusctl import config
    from nexusctl.core import deliveries, webhooks
    from nexusctl.core.paging import encode_cursor
    from nexusctl.crypto import keyring_from_settings
    from nexusctl.db.database import bind, open_database
    from nexusctl.db.models import Integration
    from nexusctl.enums import DeliveryStatus, Provider

    postgres = is_postgres(database_url)
    settings = config.load()
    db = bind(open_database(database_url))
    # A rerun measures only its own rows.
    empty_tables(db, "webhook_attempts", "webhook_deliveries", "webhooks", "outbox_events", "integrations")
    integration = Integration.create(
        user_id="00000000-0000-4000-8000-000000000002", provider=Provider.SHOPIFY, name="growth"
    )
    ring = keyring_from_settings(settings)
    hooks = [
        webhooks.create(ring, integration_id=integration.id, url=f"http://127.0.0.1:9/hook/{i}", events=["*"])[0].id
        for i in range(WEBHOOKS)
    ]
    base = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    insert = _pg_insert if postgres else _sqlite_insert
    # A quiet webhook: RARE deliveries, older than every other row, whatever the table's size. Its
    # page must not cost more as the busy webhooks' history grows.
    rare = webhooks.create(ring, integration_id=integration.id, url="http://127.0.0.1:9/hook/rare", events=["*"])[0].id
    old = base - dt.timedelta(days=10)
    deliveries.WebhookDelivery.insert_many(
        [
            {
                "id": uuid.uuid4(),
                "webhook": rare,
                "event": "media.created",
                "payload": {"i": i},
                "status": DeliveryStatus.DELIVERED,
                "attempts": 1,
                "created_at": old - dt.timedelta(seconds=i),
                "updated_at": old,
                "delivered_at": old - dt.timedelta(seconds=i),
            }
            for i in range(RARE)
        ]
    ).execute()

    results, have = [], 0
    hook = hooks[1]  # g % 10 == 1: DELIVERED rows only
    for size in sizes:
        started = time.perf_counter()
        insert(db, hooks, have + 1, size, base)
        inserted_s = time.perf_counter() - started
        have = size
        mine = size // WEBHOOKS
        middle = (
            deliveries.WebhookDelivery.select(deliveries.WebhookDelivery.created_at, deliveries.WebhookDelivery.id)
            .where(deliveries.WebhookDelivery.webhook == hook)
            .order_by(deliveries.WebhookDelivery.created_at.desc(), deliveries.WebhookDelivery.id.desc())
            .offset(min(mine // 2, mine - PAGE - 1))
            .limit(1)
            .first()
        )
        cursor = encode_cursor(middle)

        def first_page():
            assert len(deliveries.page_with_attempts(hook, limit=PAGE)[0].items) == PAGE

        def deep_page(cursor=cursor):
            assert len(deliveries.page_with_attempts(hook, limit=PAGE, cursor=cursor)[0].items) == PAGE

        def quiet_page():
            assert len(deliveries.page_with_attempts(rare, limit=PAGE)[0].items) == PAGE

        def claim(size=size):
            with db.atomic() as txn:
                assert len(deliveries.claim(PAGE, 30)) == min(PAGE, size // 10)
                txn.rollback()

        row = {"size": size, "insert_s": inserted_s}
        for name, fn in (
            ("list_first", first_page),
            ("list_deep", deep_page),
            ("list_quiet", quiet_page),
            ("claim", claim),
        ):
            row[f"{name}_ms"], row[f"{name}_median_ms"] = _timed(fn, repeat)
            row[f"{name}_plan"] = _explain(db, postgres, capture(fn))
        results.append(row)
        print(
            f"growth {'pg' if postgres else 'sqlite'} {size:>9,}: insert {inserted_s:.1f} s, "
            + ", ".join(f"{n} {row[n + '_ms']:.2f} ms" for n in MEASURES),
            file=sys.stderr,
        )
    db.close()
    shutil.rmtree(work, ignore_errors=True)  # the SQLite file is ~600 MB at 1M rows
    return {
        "database": "PostgreSQL" if postgres else "SQLite",
        "repeat": repeat,
        "page": PAGE,
        "webhooks": WEBHOOKS,
        "sizes": results,
    }


def markdown(result: dict) -> str:
    first = result["sizes"][0]
    out = [
        f"Fastest of {result['repeat']} warm calls in ms (ratio to the smallest size; median of the calls).",
        "",
        f"| Deliveries ({result['database']}) | insert s | list: first page | list: page half-way down "
        "| list: quiet webhook | claim 50 |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["sizes"]:
        cells = [
            f"{row[m + '_ms']:.2f} (**{row[m + '_ms'] / first[m + '_ms']:.2f}x**; median {row[m + '_median_ms']:.2f})"
            for m in MEASURES
        ]
        out.append(f"| {row['size']:,} | {row['insert_s']:.1f} | " + " | ".join(cells) + " |")
    last = result["sizes"][-1]
    out.append("")
    out.append(f"Plans at {last['size']:,} rows (EXPLAIN of the statements each call ran):")
    for name in MEASURES:
        out.append(f"- {name.replace('_', ' ')}: " + "; ".join(f"`{line}`" for line in last[f"{name}_plan"]))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--sizes", default="1000,100000,1000000", help="comma-separated, increasing")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    result = run(args.database_url, sizes, args.repeat)
    write_json(args.json, result)
    print(markdown(result))


if __name__ == "__main__":
    main()
