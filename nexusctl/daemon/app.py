"""The aiohttp application factory: lifecycles in cleanup_ctx, no globals. The routes are in routes.py."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from nexusctl import telemetry
from nexusctl.config import Settings
from nexusctl.core import activity, runtime
from nexusctl.crypto import keyring_from_settings
from nexusctl.daemon import api_health, api_proxy
from nexusctl.daemon.auth import TokenVerifier
from nexusctl.daemon.consumer import EventConsumer
from nexusctl.daemon.dbexec import DbExecutor
from nexusctl.daemon.delivery import DeliveryWorker
from nexusctl.daemon.keys import DB, LISTENING, REDIS, SERVICES, SETTINGS, SYNCS, VERIFIER, WORKER  # noqa: F401 - LISTENING: server.py sets it
from nexusctl.daemon.keys import ROUTES as ROUTES_KEY
from nexusctl.daemon.middleware import auth_middleware, error_middleware
from nexusctl.daemon.observe import METRICS, Metrics, observe_middleware
from nexusctl.daemon.relay import OutboxRelay
from nexusctl.daemon.routes import ROUTES
from nexusctl.daemon.routing import BODY_TIMEOUT, add_routes
from nexusctl.daemon.stopping import REQUESTS, Requests, grace_middleware
from nexusctl.daemon.sync_runner import SyncRunner
from nexusctl.db.database import bind, open_database

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[observe_middleware, error_middleware, grace_middleware, auth_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[REQUESTS] = Requests()
    app.on_shutdown.append(app[REQUESTS].begin_grace)  # SIGTERM: the requests in flight get daemon.stopping.GRACE
    app[SETTINGS] = settings
    app[BODY_TIMEOUT] = settings.http_body_timeout
    app[METRICS] = Metrics()
    app[METRICS].db_reader(api_health.metrics_reader(app))
    app[METRICS].db_reader(_delivery_queue_reader(app))
    app[VERIFIER] = TokenVerifier(settings)
    app.cleanup_ctx.append(_telemetry)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_services)
    app.cleanup_ctx.append(_delivery_worker)
    app.cleanup_ctx.append(_jobs)
    app.cleanup_ctx.append(_event_bus)
    app.cleanup_ctx.append(_sync_runner)
    routes = ROUTES + (api_proxy.FRONT_ROUTES if settings.proxy_front_secret is not None else [])
    app[ROUTES_KEY] = routes
    add_routes(app, routes)
    return app


async def _telemetry(app: web.Application):
    """What core and the providers report (nexusctl.telemetry) goes to this app's /metrics while it runs."""
    telemetry.install(app[METRICS])
    yield
    if telemetry.installed() is app[METRICS]:
        telemetry.install(None)


def _delivery_queue_reader(app: web.Application):
    async def read() -> None:
        metrics = app[METRICS]
        for row in await app[DB].run(activity.queue):
            metrics.queue_depth.labels(row["status"]).set(row["depth"])
            metrics.queue_oldest.labels(row["status"]).set(row["oldestDueSeconds"] or 0.0)  # none due: 0

    return read


async def _database(app: web.Application):
    settings = app[SETTINGS]
    db = bind(open_database(settings.database_url.get(), settings.database_pool_size))
    app[DB] = DbExecutor(db, settings.database_pool_size)
    yield
    app[DB].close()


async def _redis(app: web.Application):
    settings = app[SETTINGS]
    if settings.redis_url is None:
        if settings.is_production:  # the spec requires Redis; running without it is allowed but said
            log.warning(
                "REDIS_URL is not set in production: OAuth states and events stay in "
                "the database (the spec requires Redis; set REDIS_URL=redis://host:6379/0)"
            )
        app[REDIS] = None
        yield
        return
    from nexusctl.redisconn import open_client  # start-up: redis loads only with REDIS_URL set

    client = open_client(settings.redis_url.get())
    app[REDIS] = client
    yield
    await client.aclose()


async def _services(app: web.Application):
    """The outbound HTTP sessions for provider calls (plain and SSRF-guarded), closed on shutdown."""
    settings = app[SETTINGS]
    async with runtime.opened(settings, keyring_from_settings(settings), app[DB].run, redis=app[REDIS]) as opened:
        app[SERVICES] = opened
        yield


async def _delivery_worker(app: web.Application):
    worker = DeliveryWorker(app[SETTINGS], app[DB], app[SERVICES].keyring, app[METRICS])
    app[WORKER] = worker
    starting = asyncio.create_task(_when_listening(app, worker.start))
    yield
    await _stop(starting, worker.stop)


async def _when_listening(app: web.Application, start) -> None:
    gate = app.get(LISTENING)
    if gate is not None:
        await gate.wait()
    await start()


async def _stop(starting: asyncio.Task, stop) -> None:
    if not starting.done():
        starting.cancel()  # never started (the daemon could not listen): nothing to stop
        await asyncio.gather(starting, return_exceptions=True)
        return
    await stop()


async def _jobs(app: web.Application):
    from nexusctl.daemon.jobs import start_scheduler, stop_scheduler, warn_about_settings  # start-up: APScheduler

    warn_about_settings(app[SETTINGS])  # once, before listening: what would make the scheduled work misbehave
    scheduler = []

    async def start():
        scheduler.append(start_scheduler(app[SETTINGS], app[SERVICES]))

    async def stop():  # before the database closes (cleanup runs in reverse): interrupted runs store what they got
        await stop_scheduler(scheduler[0])

    starting = asyncio.create_task(_when_listening(app, start))
    yield
    await _stop(starting, stop)


async def _event_bus(app: web.Application):
    """With REDIS_URL: the outbox relay and the consumer group (without it the outbox is the record)."""
    settings, redis_client = app[SETTINGS], app[REDIS]
    if redis_client is None:
        yield
        return

    parts = [OutboxRelay(settings, app[DB], redis_client, app[METRICS])]
    if settings.events_consume_streams:
        parts.append(EventConsumer(settings, app[SERVICES], redis_client))

    async def start():
        for part in parts:
            await part.start()

    async def stop():
        for part in parts:
            await part.stop()

    starting = asyncio.create_task(_when_listening(app, start))
    yield
    await _stop(starting, stop)


async def _sync_runner(app: web.Application):
    runner = SyncRunner(app[SERVICES], app[METRICS])
    app[SYNCS] = runner
    starting = asyncio.create_task(_when_listening(app, runner.start))
    yield
    await _stop(starting, runner.stop)
