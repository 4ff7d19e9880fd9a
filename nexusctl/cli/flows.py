"""Running async core flows (connect, refresh, revoke) from a CLI command.

Builds what the daemon builds once: an outbound HTTP session, the keyring,
Redis for OAuth states when REDIS_URL is set (so a flow started here finishes
at the daemon's callback), and database calls made right here.
"""

import typer

from nexusctl.cli.context import state


def run_flow(ctx: typer.Context, flow):
    """``await flow(services)`` with everything a flow needs; returns its result."""
    import asyncio  # here, not at the top, for start-up speed: read commands start without it (and ssl)

    st = state(ctx)
    st.database()

    async def main():
        # start-up: loaded only when a command runs a flow
        from nexusctl.core import runtime

        redis = None
        if st.settings.redis_url is not None:
            # start-up: redis loads only where Redis is used
            from nexusctl.redisconn import open_client

            redis = open_client(st.settings.redis_url.get(), socket_timeout=5)
        try:
            async with runtime.opened(st.settings, st.keyring, redis=redis) as svc:
                return await flow(svc)
        finally:
            if redis is not None:
                await redis.aclose()

    return asyncio.run(main())
