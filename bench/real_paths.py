"""Benchmark: the paths users take, through the HTTP API, each against a baseline doing the same work in the same run.

Default settings of `nexusctl daemon` (only WEBHOOK_ALLOWED_NETWORKS opens 127.0.0.1 for the local receiver);
every figure is paired with a baseline measured in the same run, and with the CPU each operation costs
each process (user + system from /proc/<pid>/stat: the server, this database's PostgreSQL backends, the
receiver), which holds on a shared machine where rates wander.

1. emit   - events POSTed to `/integrations/:id/events` (--concurrency 32 at once, a user's JWT) until every
            delivery has been received: an integration with one webhook, and one with 20. Baseline: a
            non-durable aiohttp relay in its own process (JWT check, parse, validate, 202, then sign as
            Standard Webhooks and POST to each endpoint), the same events, the same receiver. Then the
            emit-to-received latency (p50/p99) at half the one-endpoint rate the daemon reached.
2. read   - `GET /integrations/user/:id` (20 integrations, 32 at once, alternating rounds) against a bare
            aiohttp handler: PyJWT, the same SELECT of the shown columns through psycopg2 (sqlite3 on
            SQLite) in a thread, the same JSON.
   deliveries - `GET /integrations/webhooks/:id/deliveries` (20 deliveries with one attempt each; only with
            --only ...,deliveries) against the same bare handler's route: the owner check, the deliveries' and
            their attempts' SELECTs, the same JSON.
3. refresh- bench/token_refresh.py: the daemon's sweep over N expiring integrations against raw token POSTs to
            the same emulator (tests/emulators) at the sweep's concurrency.

    .venv/bin/python bench/real_paths.py --database-url postgresql://postgres@127.0.0.1:5432/bench_b
    .venv/bin/python bench/real_paths.py --only emit,read        # SQLite in a temporary directory
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ROOT,
    CpuMeter,
    PgStats,
    base_env,
    bench_database,
    delivery_settings,
    free_port,
    is_postgres,
    pg_stats_markdown,
    start_daemon,
    start_python,
    user_token,
    wait_http,
    write_json,
)

sys.path.insert(0, str(ROOT))

# Counts what it receives and how long after the emitter stamped it (data.t) it arrived.
RECEIVER = r"""
import json, sys, time
from aiohttp import web
state = {"count": 0, "last": 0.0, "lags": []}
async def hook(request):
    body = await request.read()
    now = time.time()
    t = json.loads(body)["data"].get("t")
    if t:
        state["lags"].append(now - t)
    state["count"] += 1
    state["last"] = now
    return web.Response(text="ok")
async def stats(request):
    lags = sorted(state["lags"])
    pick = lambda p: lags[min(len(lags) - 1, int(len(lags) * p))] * 1000 if lags else None
    return web.json_response({"count": state["count"], "last": state["last"], "p50_ms": pick(0.5),
                              "p99_ms": pick(0.99)})
async def reset(request):
    state.update(count=0, last=0.0, lags=[])
    return web.json_response({})
app = web.Application()
app.router.add_post("/hook/{n}", hook)
app.router.add_get("/stats", stats)
app.router.add_post("/reset", reset)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

# The relay's request half, also bench/emit_path.py's floor (@bare): PyJWT on every request, the body parsed and its
# type checked. ``checked`` gives the event's body, or the answer (401, 400) to send instead.
RELAY_CHECKS = r"""
import re, sys, uuid
import jwt
from aiohttp import web
port, key = int(sys.argv[1]), sys.argv[2]
TYPE = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)+")
async def checked(request):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        jwt.decode(token, key, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.InvalidTokenError:
        return None, web.json_response({"success": False}, status=401)
    body = await request.json()
    if not TYPE.fullmatch(body.get("type", "")) or not isinstance(body.get("data", {}), dict):
        return None, web.json_response({"success": False}, status=400)
    return body, None
"""

# The non-durable relay: what a team would write without nexusctl (no database, nothing survives a crash).
RELAY = (
    RELAY_CHECKS
    + r"""
import asyncio, base64, hashlib, hmac, json, time, datetime as dt
import aiohttp
hooks = json.loads(sys.argv[3])  # {integration id: [[url, secret]]}
tasks = set()
def sign(secret, msg_id, ts, body):
    raw = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(raw, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()
async def send(session, url, secret, body):
    msg_id, ts = str(uuid.uuid4()), int(time.time())
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sign(secret, msg_id, ts, body),
               "content-type": "application/json"}
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
async def emit(request):
    body, refused = await checked(request)
    if refused is not None:
        return refused
    integration = request.match_info["id"]
    targets = hooks.get(integration)
    if targets is None:
        return web.json_response({"success": False}, status=404)
    payload = json.dumps({"type": body["type"], "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(),
                          "data": {**body.get("data", {}), "integrationId": integration}},
                         separators=(",", ":")).encode()
    for url, secret in targets:
        task = asyncio.create_task(send(request.app["session"], url, secret, payload))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    return web.json_response({"success": True, "data": {"id": str(uuid.uuid4()), "deliveriesQueued": len(targets)}},
                             status=202)
async def start(app):
    app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50))
app = web.Application()
app.on_startup.append(start)
app.router.add_post("/integrations/{id}/events", emit)
web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
"""
)

# The bare read handler: PyJWT, the same SELECT through the driver in a thread, the same JSON.
BARE = r"""
import asyncio, datetime as dt, json, sys, threading, uuid
import jwt
from aiohttp import web
port, key, url = int(sys.argv[1]), sys.argv[2], sys.argv[3]
COLUMNS = ("id, user_id, organization_id, provider, name, is_active, token_type, expires_at, scope, metadata, "
           "last_sync_at, last_error, refresh_failures, refresh_retry_at, created_at, updated_at")
local = threading.local()
if url.startswith("postgres"):
    import psycopg2
    SQL = f"SELECT {COLUMNS} FROM integrations WHERE user_id = %s ORDER BY created_at DESC, id DESC LIMIT 51"
    def connect():
        return psycopg2.connect(url.replace("postgresql://", "postgres://", 1))
else:
    import sqlite3
    SQL = f"SELECT {COLUMNS} FROM integrations WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT 51"
    def connect():
        return sqlite3.connect(url.split("sqlite:///", 1)[1])
def iso(v):
    return v.isoformat() if isinstance(v, dt.datetime) else v
def j(v):
    return json.loads(v) if isinstance(v, str) else v
mark = "%s" if url.startswith("postgres") else "?"
OWNER = ("SELECT i.user_id FROM webhooks w JOIN integrations i ON i.id = w.integration_id WHERE w.id = " + mark)
DELIVERIES = ("SELECT id, webhook_id, event, payload, status, attempts, response, error, delivered_at, "
              "next_attempt_at, created_at, updated_at FROM webhook_deliveries WHERE webhook_id = " + mark +
              " ORDER BY created_at DESC, id DESC LIMIT 51")
ATTEMPTS = ("SELECT delivery_id, number, started_at, status_code, duration_ms, error, response_body "
            "FROM webhook_attempts WHERE delivery_id IN ({}) ORDER BY number")
def fetch_deliveries(hook, user):
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = local.conn = connect()
    cur = conn.cursor()
    cur.execute(OWNER, (hook,))
    owner = cur.fetchone()
    if owner is None or str(owner[0]).replace("-", "") != user.replace("-", ""):
        conn.rollback()
        return None
    cur.execute(DELIVERIES, (hook,))
    rows = cur.fetchall()[:50]
    log = {r[0]: [] for r in rows}
    if rows:
        cur.execute(ATTEMPTS.format(", ".join([mark] * len(rows))), list(log))
        for a in cur.fetchall():
            log[a[0]].append({"number": a[1], "startedAt": iso(a[2]), "statusCode": a[3], "durationMs": a[4],
                              "error": a[5], "responseBody": a[6]})
    conn.rollback()
    return [{"id": str(r[0]), "webhookId": str(r[1]), "event": r[2], "payload": j(r[3]), "status": r[4],
             "attempts": r[5], "response": j(r[6]), "error": r[7], "deliveredAt": iso(r[8]),
             "nextAttemptAt": iso(r[9]), "createdAt": iso(r[10]), "updatedAt": iso(r[11]), "attemptLog": log[r[0]]}
            for r in rows]
def fetch(user):
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = local.conn = connect()
    cur = conn.cursor()
    cur.execute(SQL, (user,))
    rows = cur.fetchall()
    conn.rollback()
    return [{"id": str(r[0]), "userId": str(r[1]), "organizationId": r[2] and str(r[2]), "provider": r[3],
             "name": r[4], "isActive": bool(r[5]), "tokenType": r[6], "expiresAt": iso(r[7]), "scope": j(r[8]) or [],
             "metadata": j(r[9]) or {}, "lastSyncAt": iso(r[10]), "lastError": r[11], "refreshFailures": r[12] or 0,
             "refreshRetryAt": iso(r[13]), "createdAt": iso(r[14]), "updatedAt": iso(r[15])} for r in rows[:50]]
def verified(request):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        return jwt.decode(token, key, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.InvalidTokenError:
        return None
async def deliveries(request):
    claims = verified(request)
    if claims is None:
        return web.json_response({"success": False}, status=401)
    hook = str(uuid.UUID(request.match_info["id"]))
    hook_value = hook if url.startswith("postgres") else uuid.UUID(hook).hex
    rows = await asyncio.get_running_loop().run_in_executor(None, fetch_deliveries, hook_value, claims["sub"])
    if rows is None:
        return web.json_response({"success": False}, status=404)
    return web.json_response({"success": True, "data": rows, "paging": {"nextCursor": None}})
async def read(request):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.InvalidTokenError:
        return web.json_response({"success": False}, status=401)
    user = str(uuid.UUID(request.match_info["id"]))
    if claims["sub"] != user:
        return web.json_response({"success": False}, status=403)
    key_value = user if url.startswith("postgres") else uuid.UUID(user).hex  # peewee stores SQLite UUIDs as hex
    rows = await asyncio.get_running_loop().run_in_executor(None, fetch, key_value)
    return web.json_response({"success": True, "data": rows, "paging": {"nextCursor": None}})
app = web.Application()
app.router.add_get("/integrations/user/{id}", read)
app.router.add_get("/integrations/webhooks/{id}/deliveries", deliveries)
web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
"""

LOADGEN = r"""
import asyncio, json, sys, time
import aiohttp
mode, url, token, concurrency = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
amount, rate = float(sys.argv[5]), float(sys.argv[6])  # events (post) or seconds (get); events/s (0: flat out)
async def main():
    latencies, errors, n = [], 0, 0
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def post_worker():
            nonlocal errors, n
            while n < amount:
                i = n
                n += 1
                if rate:
                    pause = started + i / rate - time.perf_counter()
                    if pause > 0:
                        await asyncio.sleep(pause)
                body = {"type": "post.created", "data": {"i": i, "t": time.time()}}
                async with session.post(url, json=body, headers=headers) as response:
                    await response.read()
                    if response.status != 202:
                        errors += 1
        async def get_worker():
            nonlocal errors
            while time.perf_counter() - started < amount:
                t = time.perf_counter()
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t)
        worker = post_worker if mode == "post" else get_worker
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.sort()
    print(json.dumps({"requests": len(latencies) if mode == "get" else int(amount), "errors": errors,
                      "seconds": time.perf_counter() - started, "cpu": time.process_time(),
                      "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else None,
                      "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else None}))
asyncio.run(main())
"""


def _get_json(url: str, method: str = "GET") -> dict:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


def _loadgen(*args, env) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", LOADGEN, *map(str, args)], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout)


class Setup:
    """The database, the seeded rows, a running daemon and receiver."""

    def __init__(self, database_url: str | None, setup_sql: str | None = None) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="nexus-bench-paths-"))
        self.url = database_url or f"sqlite:///{self.work}/paths.db"
        self.env = base_env(self.work, self.url)
        self.env.update(delivery_settings())
        self.db = bench_database(self.env, self.url)
        if setup_sql:  # a variant's schema change over the migrated database (measurement only)
            for statement in filter(str.strip, Path(setup_sql).read_text().split(";")):
                self.db.execute_sql(statement)
        from nexusctl import config
        from nexusctl.config import jwt_signing_secret
        from nexusctl.crypto import keyring_from_settings

        self.settings = config.load()
        self.jwt_key = jwt_signing_secret(self.settings).get()
        self.ring = keyring_from_settings(self.settings)
        self.procs: list[subprocess.Popen] = []
        self.receiver_port = free_port()
        self.receiver = self.start(RECEIVER, self.receiver_port)
        wait_http(f"http://127.0.0.1:{self.receiver_port}/stats")

    def start(self, code: str, *args) -> subprocess.Popen:
        proc = start_python(
            code, *args, env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.work / "procs.log", "a")
        )
        self.procs.append(proc)
        return proc

    def daemon(self, profile: str | None = None) -> tuple[subprocess.Popen, str]:
        """A `nexusctl daemon`; with ``profile`` (a file) under bench/profile_daemon.py (cProfile in every thread)."""
        port = free_port()
        command, env = None, self.env
        if profile:
            command = [sys.executable, str(ROOT / "bench" / "profile_daemon.py")]
            env = {**env, "NEXUS_PROFILE_OUT": profile}
        proc = start_daemon(env, port, command=command, log=self.work / "daemon.log")
        self.procs.append(proc)
        return proc, f"http://127.0.0.1:{port}"

    def token(self, user) -> str:
        return user_token(self.env, user, ttl=7200)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.db.close()


def seed_integrations(setup: Setup, user, count: int) -> list:
    from nexusctl.db.models import Integration
    from nexusctl.db.secrets import seal
    from nexusctl.enums import Provider

    providers, ids = list(Provider), []
    for i in range(count):
        row = Integration(
            user_id=user, provider=providers[i % len(providers)], name=f"@bench{i}", scope=["a", "b"], metadata={"i": i}
        )
        seal(setup.ring, row, "access_token", "bench-access")
        seal(setup.ring, row, "refresh_token", "bench-refresh")
        row.save(force_insert=True)
        ids.append(row.id)
    return ids


def seed_deliveries(setup: Setup, integration, count: int):
    """A webhook of ``integration`` with ``count`` delivered deliveries, one attempt each; returns its id."""
    from nexusctl.core import webhooks
    from nexusctl.db.fields import utcnow
    from nexusctl.db.models import WebhookAttempt, WebhookDelivery
    from nexusctl.enums import DeliveryStatus

    hook, _secret = webhooks.create(
        setup.ring, integration_id=integration, url="https://hooks.example.com/x", events=["*"]
    )
    now = utcnow()
    for i in range(count):
        delivery = WebhookDelivery.create(
            webhook=hook.id,
            event="media.created",
            payload={"type": "media.created", "data": {"i": i}},
            status=DeliveryStatus.DELIVERED,
            attempts=1,
            response={"status": 200, "body": "ok"},
            delivered_at=now,
        )
        WebhookAttempt.create(delivery=delivery.id, number=1, started_at=now, status_code=200, duration_ms=3)
    return hook.id


def _deliver_phase(
    setup: Setup,
    server,
    base: str,
    integration,
    token: str,
    events: int,
    expected: int,
    concurrency: int,
    rate: float = 0.0,
    timeout: float = 600.0,
    pg_stats: bool = False,
) -> dict:
    """POST ``events`` events, wait until the receiver has ``expected`` deliveries; rate and CPU per delivery."""
    stats_url = f"http://127.0.0.1:{setup.receiver_port}"
    _get_json(stats_url + "/reset", "POST")
    meter = CpuMeter(setup.db if is_postgres(setup.url) else None, server=server.pid, receiver=setup.receiver.pid)
    stats_meter = PgStats(setup.db) if pg_stats and is_postgres(setup.url) else None
    worker_before = _worker_counts(base)
    started = time.time()
    load = _loadgen(
        "post", f"{base}/integrations/{integration}/events", token, concurrency, events, rate, env=setup.env
    )
    deadline = time.monotonic() + timeout
    while (stats := _get_json(stats_url + "/stats"))["count"] < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {stats['count']} of {expected} deliveries arrived (see {setup.work})")
        time.sleep(0.05)
    cpu = meter.per_item_us(expected)
    cpu["loadgen"] = load["cpu"] / expected * 1e6
    elapsed = stats["last"] - started
    pg = stats_meter.end(expected) if stats_meter else None
    worker_after = _worker_counts(base)
    worker = {k: v - worker_before.get(k, 0) for k, v in worker_after.items()}
    return {
        **({"pg_stats": pg} if pg else {}),
        **({"worker": worker} if worker else {}),
        "events": events,
        "deliveries": expected,
        "seconds": elapsed,
        "events_per_s": events / elapsed,
        "deliveries_per_s": expected / elapsed,
        "post_errors": load["errors"],
        "post_seconds": load["seconds"],
        "cpu_us": cpu,
        "p50_ms": stats["p50_ms"],
        "p99_ms": stats["p99_ms"],
    }


def _worker_counts(base: str) -> dict:
    """The delivery worker's counters on the daemon's /metrics (claims, claimed, handed, ...); {} for the relay."""
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    counts = {}
    for line in text.splitlines():
        if line.startswith("nexus_webhook_") and line.split(" ", 1)[0].endswith("_total"):
            name, value = line.split(" ", 1)
            counts[name.removeprefix("nexus_webhook_").removesuffix("_total")] = float(value)
    return counts


def run_emit(setup: Setup, args) -> dict:
    from nexusctl.core import webhooks
    from nexusctl.db.models import Integration
    from nexusctl.enums import Provider

    user = uuid.uuid4()
    hook_base = f"http://127.0.0.1:{setup.receiver_port}/hook"
    targets: dict = {}
    for fan in (1, 20):
        integration = Integration.create(user_id=user, provider=Provider.SHOPIFY, name=f"bench-{fan}")
        targets[str(integration.id)] = [
            webhooks.create(setup.ring, integration_id=integration.id, url=f"{hook_base}/{fan}-{k}", events=["*"])
            for k in range(fan)
        ]
    one, twenty = list(targets)
    relay_hooks = {i: [[h.url, s] for h, s in hooks] for i, hooks in targets.items()}
    token = setup.token(user)
    relay_port = free_port()
    relay = setup.start(RELAY, relay_port, setup.jwt_key, json.dumps(relay_hooks))
    wait_http(f"http://127.0.0.1:{relay_port}/integrations/x/events", "POST")
    relay_base = f"http://127.0.0.1:{relay_port}"
    daemon, base = setup.daemon(args.profile and f"{args.profile}/emit.txt")
    out: dict = {}
    # Warm both (connections, imports), then alternate nexusctl and relay so machine noise hits both.
    _deliver_phase(setup, daemon, base, one, token, 200, 200, args.concurrency)
    _deliver_phase(setup, relay, relay_base, one, token, 200, 200, args.concurrency)
    for name, integration, fan, events in (("one", one, 1, args.events), ("twenty", twenty, 20, args.events // 5)):
        out[f"{name}_nexusctl"] = _deliver_phase(
            setup, daemon, base, integration, token, events, events * fan, args.concurrency, pg_stats=args.pg_stats
        )
        out[f"{name}_relay"] = _deliver_phase(
            setup, relay, relay_base, integration, token, events, events * fan, args.concurrency
        )
    half = out["one_nexusctl"]["events_per_s"] / 2
    events = int(half * args.latency_seconds)
    if events == 0:  # --latency-seconds 0 (or too short for one event): no latency phase; the report says so
        return out
    out["latency_nexusctl"] = _deliver_phase(
        setup, daemon, base, one, token, events, events, args.concurrency, rate=half
    )
    out["latency_nexusctl"]["target_per_s"] = half
    return out


def run_read(setup: Setup, args) -> dict:
    user = uuid.uuid4()
    seed_integrations(setup, user, 20)
    return _read_against_bare(setup, args, user, f"/integrations/user/{user}", "read")


def run_read_deliveries(setup: Setup, args) -> dict:
    """`GET /integrations/webhooks/:id/deliveries`: 20 delivered deliveries with one attempt each."""
    user = uuid.uuid4()
    [integration] = seed_integrations(setup, user, 1)
    hook = seed_deliveries(setup, integration, 20)
    return _read_against_bare(setup, args, user, f"/integrations/webhooks/{hook}/deliveries", "deliveries")


def _read_against_bare(setup: Setup, args, user, path: str, name: str) -> dict:
    """``path`` on the daemon and on the bare handler, the same rows, alternating rounds; rates and CPU."""
    token = setup.token(user)
    daemon, base = setup.daemon(args.profile and f"{args.profile}/{name}.txt")
    bare_port = free_port()
    bare = setup.start(BARE, bare_port, setup.jwt_key, setup.url)
    wait_http(f"http://127.0.0.1:{bare_port}{path}")
    targets = {"nexusctl": (daemon, f"{base}{path}"), "bare": (bare, f"http://127.0.0.1:{bare_port}{path}")}
    same = [len(_get_json_auth(url, token)["data"]) for _, url in targets.values()]
    assert same[0] == same[1] >= 20, same  # (the health job may announce the integration to the "*" webhook)
    for _, url in targets.values():  # warm up
        _loadgen("get", url, token, args.concurrency, 1.0, 0, env=setup.env)
    runs: dict = {name: [] for name in targets}
    for _ in range(args.rounds):
        for name, (proc, url) in targets.items():
            meter = CpuMeter(setup.db if is_postgres(setup.url) else None, server=proc.pid)
            load = _loadgen("get", url, token, args.concurrency, args.seconds, 0, env=setup.env)
            load["cpu_us"] = meter.per_item_us(load["requests"])
            runs[name].append(load)
    out = {}
    for name, loads in runs.items():
        requests = sum(r["requests"] for r in loads)
        out[name] = {
            "per_s": requests / sum(r["seconds"] for r in loads),
            "p50_ms": loads[-1]["p50_ms"],
            "p99_ms": loads[-1]["p99_ms"],
            "errors": sum(r["errors"] for r in loads),
            "cpu_us": {k: sum(r["cpu_us"][k] * r["requests"] for r in loads) / requests for k in loads[0]["cpu_us"]},
        }
    daemon.terminate()
    daemon.wait(30)
    bare.terminate()
    bare.wait(30)
    return out


def _get_json_auth(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


def run_refresh(database_url: str | None, args) -> dict:
    import token_refresh

    return token_refresh.run(database_url, args.refreshes, args.raw_seconds, 600.0)


def _cpu(cpu: dict) -> str:
    return ", ".join(f"{name} {value:,.0f}" for name, value in cpu.items())


def _server_cpu(cpu: dict) -> float:
    return cpu.get("server", 0.0) + cpu.get("postgres", 0.0)


def markdown(result: dict) -> str:
    db = result["database"]
    lines = [
        f"| Path ({db}) | nexusctl | baseline (same run) | ratio | CPU µs per op: nexusctl (server + PostgreSQL) "
        "vs baseline |",
        "|---|---|---|---|---|",
    ]
    emit = result.get("emit")
    if emit:
        for name, label, unit in (
            ("one", "events POSTed to `/integrations/:id/events`, one webhook, until received", "events_per_s"),
            ("twenty", "the same, 20 webhooks (deliveries/s)", "deliveries_per_s"),
        ):
            n, r = emit[f"{name}_nexusctl"], emit[f"{name}_relay"]
            lines.append(
                f"| {label} | {n[unit]:,.0f}/s | relay {r[unit]:,.0f}/s | **{n[unit] / r[unit]:.2f}** | "
                f"{_server_cpu(n['cpu_us']):,.0f} vs {_server_cpu(r['cpu_us']):,.0f} "
                f"({_server_cpu(n['cpu_us']) / max(_server_cpu(r['cpu_us']), 1):.1f}×) |"
            )
        lat = emit.get("latency_nexusctl")
        if lat is None:
            lines.append(
                "| emit-to-received latency | not measured (`--latency-seconds 0`, or too short for one event) | | | |"
            )
        else:
            lines.append(
                f"| emit-to-received at {lat['target_per_s']:,.0f} events/s (half the one-webhook rate) | "
                f"p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms | | | |"
            )
    read = result.get("read")
    if read:
        n, b = read["nexusctl"], read["bare"]
        lines.append(
            f"| `GET /integrations/user/:id`, 20 integrations, {result['concurrency']} at once | "
            f"{n['per_s']:,.0f} req/s | bare aiohttp + PyJWT + driver {b['per_s']:,.0f} req/s | "
            f"**{n['per_s'] / b['per_s']:.2f}** | {_server_cpu(n['cpu_us']):,.0f} vs "
            f"{_server_cpu(b['cpu_us']):,.0f} |"
        )
    listed = result.get("deliveries")
    if listed:
        n, b = listed["nexusctl"], listed["bare"]
        lines.append(
            f"| `GET /integrations/webhooks/:id/deliveries`, 20 with one attempt each, {result['concurrency']} at "
            f"once | {n['per_s']:,.0f} req/s | bare aiohttp + PyJWT + driver {b['per_s']:,.0f} req/s | "
            f"**{n['per_s'] / b['per_s']:.2f}** | {_server_cpu(n['cpu_us']):,.0f} vs {_server_cpu(b['cpu_us']):,.0f} |"
        )
    refresh = result.get("refresh")
    if refresh:
        lines.append(
            f"| refresh sweep, {refresh['integrations']:,} expiring integrations | "
            f"{refresh['sweep_per_s']:,.0f}/s | raw token POSTs {refresh['raw_per_s']:,.0f}/s "
            f"({refresh['concurrency']} at once) | **{refresh['ratio']:.2f}** | "
            f"daemon {refresh.get('daemon_cpu_us', float('nan')):,.0f} + PostgreSQL "
            f"{refresh.get('postgres_cpu_us', float('nan')):,.0f} vs raw client "
            f"{refresh.get('raw_cpu_us', float('nan')):,.0f} |"
        )
    lines.append("")
    lines.append("CPU µs per operation, every process:")
    for part in ("emit", "read", "deliveries"):
        for key, value in (result.get(part) or {}).items():
            if isinstance(value, dict) and "cpu_us" in value:
                lines.append(f"- {part} {key}: {_cpu(value['cpu_us'])}")
                if value.get("worker"):
                    lines.append(
                        f"  - its delivery worker: {', '.join(f'{k} {v:,.0f}' for k, v in value['worker'].items())}"
                    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--only", default="emit,read,refresh")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--events", type=int, default=3000, help="events to one webhook (a fifth of it to 20)")
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=5.0,
        help="the emit-to-received latency phase (at half the one-webhook rate); 0: no latency phase",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="per read round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--refreshes", type=int, default=1000)
    parser.add_argument("--raw-seconds", type=float, default=4.0)
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument(
        "--profile",
        help="a directory: run the daemons under bench/profile_daemon.py and write "
        "emit.txt and read.txt there (the sampler costs CPU: not for the figures)",
    )
    parser.add_argument(
        "--pg-stats",
        action="store_true",
        help="PostgreSQL only, a private cluster: per delivered event of each nexusctl emit phase, each statement's"
        " execution time, rows and WAL (pg_stat_statements), the tables' inserts/updates/HOT updates, the relations'"
        " growth and the cluster's WAL (waits 11 s after each phase for the counters to be flushed)",
    )
    parser.add_argument(
        "--setup-sql",
        help="a file of SQL statements (';'-separated) run on the database after it is migrated and emptied: a schema"
        " variant to measure (dropped indexes, constraints, storage settings)",
    )
    args = parser.parse_args()
    if args.latency_seconds < 0:
        parser.error("--latency-seconds must be 0 (no latency phase) or more")
    parts = set(args.only.split(","))
    result: dict = {
        "database": "PostgreSQL" if is_postgres(args.database_url) else "SQLite",
        "concurrency": args.concurrency,
        "load_before": os.getloadavg(),
    }
    if parts & {"emit", "read", "deliveries"}:
        setup = Setup(args.database_url, args.setup_sql)
        try:
            if "emit" in parts:
                result["emit"] = run_emit(setup, args)
            if "read" in parts:
                result["read"] = run_read(setup, args)
            if "deliveries" in parts:
                result["deliveries"] = run_read_deliveries(setup, args)
        finally:
            setup.close()
    if "refresh" in parts:
        result["refresh"] = run_refresh(args.database_url, args)
    result["load_after"] = os.getloadavg()
    write_json(args.json, result)
    print(markdown(result))
    for name, phase in result.get("emit", {}).items():
        if "pg_stats" in phase:
            print(pg_stats_markdown(f"emit {name} (per delivery)", phase["pg_stats"]))


if __name__ == "__main__":
    main()
