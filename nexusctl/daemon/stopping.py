"""What a request still running when the daemon stops gets: GRACE seconds to finish, then an answer.

On SIGTERM (or Ctrl-C) aiohttp stops listening, closes the idle connections and sends the app's
``on_shutdown``, then waits ``shutdown_timeout`` for the requests still running, cancels them, and waits as
long again: a proxied call whose provider had not answered got no answer at all (an empty reply, curl's exit
52) after 20 s, and its request line said 500. Here the requests in flight are known (``grace_middleware``);
``on_shutdown`` starts the grace, and a request still running when it ends (a provider that has not answered,
a refresh at its provider) is cancelled and answered DAEMON_STOPPING 503 with ``Retry-After``, and said once
in the log, without a traceback. aiohttp's own wait (daemon.server) is a little longer than GRACE, so it only
meets a handler that would not stop.

A request whose body is still arriving at the stop reads it on within the grace (daemon.protocol: aiohttp's
stop drops what a connection sends from then on); a request sent after it on the same connection is not handled.

An answer whose status went out already (a provider's answer being streamed) cannot become a 503: it is cut
short, and the connection closed, as when the provider's answer breaks off.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from nexusctl.daemon.observe import REQUEST_ID, streamed
from nexusctl.errors import DaemonStopping

log = logging.getLogger(__name__)

GRACE = 10.0  # seconds a request in flight gets to finish once the daemon is stopping (README: systemd unit)


class Requests:
    """The requests running now (their tasks), and what the daemon's stop did to them."""

    def __init__(self) -> None:
        self.running: set[asyncio.Task] = set()
        self.ended = False  # the grace ended: what runs now is interrupted
        self.interrupted: set[asyncio.Task] = set()

    async def begin_grace(self, _app: web.Application) -> None:
        """on_shutdown: the requests in flight, and those their connections still bring, get GRACE seconds."""
        if self.running:
            log.info("stopping: %d request(s) in flight get up to %.0f s to finish", len(self.running), GRACE)
        asyncio.get_running_loop().call_later(GRACE, self._end_grace)

    def _end_grace(self) -> None:
        self.ended = True
        for task in self.running:
            self.interrupted.add(task)
            task.cancel()


REQUESTS = web.AppKey("requests", Requests)


@web.middleware
async def grace_middleware(request: web.Request, handler):
    requests = request.app[REQUESTS]
    if requests.ended:  # a request that came after the grace (pipelined on a connection still open)
        raise _stopping()
    task = asyncio.current_task()
    requests.running.add(task)
    try:
        return await handler(request)
    except asyncio.CancelledError:
        if task not in requests.interrupted:  # not ours (the loop's own end): as it was
            raise
        task.uncancel()
        route = request.match_info.route.resource
        label = route.canonical if route is not None else "(unmatched)"
        sent = streamed(request)
        if sent is not None or request.writer.output_size:  # its status went out already: only cutting it short is left
            log.warning(
                "%s %s cut short: the daemon is stopping and its answer was still being sent after %.0f s "
                "(request id %s)",
                request.method,
                label,
                GRACE,
                request.get(REQUEST_ID, "-"),
            )
            if sent is not None:  # the request's record keeps the status sent, with why its body is short
                sent.cut_short(request, "stopping")
            elif request.transport is not None:
                request.transport.close()
            raise
        log.warning(
            "%s %s answered 503 DAEMON_STOPPING: the daemon is stopping and it was still running after %.0f s "
            "(request id %s)",
            request.method,
            label,
            GRACE,
            request.get(REQUEST_ID, "-"),
        )
        raise _stopping() from None
    finally:
        requests.running.discard(task)
        requests.interrupted.discard(task)


def _stopping() -> DaemonStopping:
    return DaemonStopping(
        f"the daemon is stopping and this request did not finish within the {GRACE:.0f} s it gets; send it again "
        "(a change it asked for may have been made: a proxied POST may have reached the provider)"
    )
