"""The one way this service opens a Redis client (daemon and CLI alike)."""

from __future__ import annotations


def open_client(url: str, *, socket_timeout: float = 2.0):
    """An asyncio client that survives a Redis restart.

    After a restart every pooled socket is dead; without a retry each of them
    fails one command (an OAuth initiate answering 503 minutes after Redis came
    back). Retrying a connection error twice on a fresh socket hides that, and
    only that: timeouts are not retried, so a slow command is not sent twice.
    """
    # start-up: redis loads only where Redis is used
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), 2, supported_errors=(RedisConnectionError,))
    return aioredis.from_url(
        url, socket_connect_timeout=2, socket_timeout=socket_timeout, retry=retry, health_check_interval=30
    )
