"""What the daemon keeps on its aiohttp application, one typed key each.

Handlers read these (``request.app[SERVICES]``); ``nexusctl.daemon.app`` fills them in
its cleanup contexts. They live here, not in ``app.py``, so that a handler
module can import them without importing the module that imports every
handler (the cycle this file ends).
"""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from nexusctl.config import Settings
from nexusctl.core.runtime import Runtime
from nexusctl.daemon.auth import TokenVerifier
from nexusctl.daemon.dbexec import DbExecutor
from nexusctl.daemon.delivery import DeliveryWorker
from nexusctl.daemon.sync_runner import SyncRunner

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", DbExecutor)
REDIS: web.AppKey[Redis | None] = web.AppKey("redis")  # None: the embedded default runs without Redis
VERIFIER = web.AppKey("verifier", TokenVerifier)
SERVICES = web.AppKey("services", Runtime)  # settings, keyring, db runner, provider sessions, Redis
WORKER = web.AppKey("worker", DeliveryWorker)
SYNCS = web.AppKey("syncs", SyncRunner)
ROUTES = web.AppKey("routes", list)  # the route table (daemon.routing.Route), for /openapi.json
# Set by `nexusctl daemon` once the socket is bound: background work (the delivery worker, the
# scheduler) waits for it, so a daemon that cannot listen does no work and exits cleanly.
LISTENING = web.AppKey("listening", object)  # an asyncio.Event, or None when nothing waits
