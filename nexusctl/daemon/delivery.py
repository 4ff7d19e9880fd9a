"""The delivery worker inside `nexusctl daemon`: claim -> sign -> POST -> record.

It claims as many due deliveries as it has free sending slots
(``WEBHOOK_CONCURRENCY``), and for endpoints that answer as many again to wait
for their next free slots, within a bound on all it holds, so memory stays flat
however large the backlog; each endpoint also has its own cap
(``WEBHOOK_CONCURRENCY_PER_ENDPOINT``) so one slow receiver cannot take every
slot; an endpoint whose sends come back 2xx and fast borrows slots beyond it,
step by step, up to ``WEBHOOK_CONCURRENCY`` less that cap, and is back at the cap
on its first slow or failed answer (``_Pace``). It wakes when a delivery is queued
(PostgreSQL LISTEN/NOTIFY, or an in-process signal on SQLite) and otherwise
polls once a second as the safety net. Requests go out over kept-alive
connections (sender.py), each connected only to checked addresses (the SSRF
guard), never follow redirects and time out after ``WEBHOOK_TIMEOUT``.

Deliveries leased at emit: an event POSTed to this daemon (daemon.emits) leases the deliveries this worker has room
for (``offer``: the same per-endpoint and held bounds as a claim) to it in the INSERT that queues them, and once that
is committed the worker holds and sends them as a claim's (``adopt``): no claim statement, no NOTIFY wake-up. The
rest are queued unleased and NOTIFYed, for the claims. An offer and a claim are never under way at once.

Leases: a claim leases its deliveries for ``2 x WEBHOOK_TIMEOUT + 5`` s, and
while a delivery is held here (its send waiting to start, in flight, or its
outcome waiting for its commit) the lease is renewed: every fifth of the lease
(on the product's clock) one statement moves on every held lease at once,
fenced by each claim's token, so however loaded the machine, another daemon
never finds a live daemon's delivery expired and sends it again. A renewal
that finds a lease taken over (this daemon stalled or lost the database for
longer than the lease) marks it lost: a send not started yet is abandoned, a
finished one is not recorded as this daemon's. A send does not start on a lease
with less than ``WEBHOOK_TIMEOUT`` + 1 s left (renewals failing), so a lease
cannot run out under a send this daemon just started.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import email.utils
import json
import logging
import math
import time
import uuid
from urllib.parse import urlsplit

import orjson

from nexusctl import clock, ssrf, telemetry, tracing
from nexusctl.core import attempts, deliveries, key_usage, signing
from nexusctl.core.attempts import Result
from nexusctl.daemon import sender
from nexusctl.db.fields import utcnow
from nexusctl.errors import DatabaseUnavailable, UsageProblem

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# How long a webhook whose secret is under a key this daemon lacks is left out of its claims before it looks
# again (another daemon, or a re-saved secret, may have moved it to a key this one has).
LOCKED_SECONDS = 30.0
RECORD_BATCH = 100  # outcomes per transaction
RECORD_WINDOW = 0.005  # seconds an outcome may wait for others to share its commit
# Deliveries held unsent per sending slot, at most: sending or waiting for a slot.
HELD_PER_SLOT = 4
# And sent, waiting for their outcome's commit, as many again (their bodies dropped: a few hundred bytes each). A
# record batch's trip takes ~10-20 ms, in which a fast endpoint's sends go on: counted under one bound with the
# unsent, they held ~90 of its 200 at 4,000 deliveries/s, and the claims that refill its slots were cut to ~40 rows
# (bench/delivery_ab.py, a sampler of the worker: slots full 48-57% of the time, none waiting in half the samples).
SENT_PER_SLOT = 4
# Of an endpoint that answers, deliveries sending or waiting per slot of its own (its limit: ``_Pace``), until its
# answers' pace is known (``_ahead``).
AHEAD_PER_SLOT = 2
# Then, as many waiting for its slots as it takes in this long at that pace (its limit over its mean answer time),
# from one limit's worth (AHEAD_PER_SLOT's) to AHEAD_MOST - 1 limits' worth: a fast receiver's slots do not run
# dry between two claims (with two limits' worth, the one busy endpoint of bench/delivery_ab.py found none waiting
# in 8 samples of 10, its slots a third empty, and the claims, one at a time, set its rate; with three, 40-44 rows a
# claim; with seven, a fast endpoint's claims are bounded by what the worker may hold, 55-66 rows), and a slow one's
# deliveries do not wait past SIGNING_FRESH_SECONDS to be given back.
AHEAD_SECONDS = 0.25
AHEAD_MOST = 8
# Deliveries waiting for a slot, over all endpoints, per sending slot (WEBHOOK_CONCURRENCY) at most: with one, the
# claims ahead of the bench's one busy endpoint were cut to ~38 (what it may hold waiting came to 102), and claimed
# back to back; with two, ~51 a claim, 13% more deliveries/s and 9% less of the daemon's CPU a delivery; with four
# (HELD_PER_SLOT's: the bound on what is held unsent is the one that counts), up to 60. Memory stays bounded by
# HELD_PER_SLOT and SENT_PER_SLOT.
WAITING_PER_SLOT = 4
# How long after an endpoint's last answer an emit may hand it as much as a claim ahead would (``offer``).
ANSWERED_SECONDS = 1.0
# An endpoint's pace (``_Pace``): an answer slower than this (or than half WEBHOOK_TIMEOUT, if less) is slow. A
# healthy receiver answers in milliseconds to a few hundred; one that takes a second holding 16 sends answers 16
# a second at most, and lending it more slots would only let it hold more of them, which the cap is there to stop.
SLOW_SECONDS = 1.0
# An endpoint with no send in flight and no answer for this long is back at the cap: "recent" answers only.
PACE_IDLE_SECONDS = 10.0
RENEW_FRACTION = 5  # leases are renewed this many times per lease length
# A delivery held waiting for a sending slot longer than this is given back, not sent: it would go with its webhook's
# URL, secrets and active state as the claim or the emit read them, and the webhook may have been changed (a new
# URL, a rotated secret, switched off) since. Given back, it is claimed again with what the webhook is now. A fast
# receiver's deliveries wait milliseconds; those of one slower than this come back by the claims.
SIGNING_FRESH_SECONDS = 1.0
REFUSALS_KEPT = 4096  # webhook URLs whose static check's verdict is kept
# A delivery's body, compact (json.dumps with these options would build a new encoder for every send).
_JSON_BODY = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class _Pace:
    """An endpoint's current limit on its sends in flight, slow start after TCP's: at WEBHOOK_CONCURRENCY_PER_ENDPOINT
    (``base``) until it proves fast. Each window of ``limit`` sends started at the limit (the endpoint had that many
    in flight) that all come back 2xx within the slow bound raises it by ``step``, up to ``top``; the first answer
    that is not (slow, non-2xx, a timeout or a connection error), or a send in flight past the slow bound when one
    more would start beyond the base, drops it straight back to ``base``. Sends already in flight above it finish;
    no new one starts until the endpoint is under it again."""

    __slots__ = ("limit", "proved", "epoch", "last", "sending", "seconds")

    def __init__(self, base: int, now: float) -> None:
        self.limit = base
        self.proved = 0  # fast 2xx answers of this window (sends started at the limit since it was last set)
        self.epoch = 0  # moved on each change of the limit: an answer of a send started before it does not count
        self.last = now  # the last answer (monotonic)
        self.seconds: float | None = None  # how long its sends take, a moving mean (``_ahead``)
        self.sending: dict = {}  # sends in flight: {task: when it started (monotonic)}, oldest first

    def reset(self, base: int) -> None:
        if self.limit != base or self.proved:
            self.limit, self.proved, self.epoch = base, 0, self.epoch + 1


def _body(payload) -> bytes:
    """The payload as compact UTF-8 JSON, the bytes that are signed and sent: orjson's (a tenth of the standard
    library's CPU; the same text but for a small float's exponent, ``1e-7`` for ``1e-07``), the standard library's
    for what orjson refuses (an integer beyond 64 bits, a lone surrogate)."""
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError:
        return _JSON_BODY(payload).encode()


class DeliveryWorker:
    def __init__(self, settings, db, keyring, metrics=None) -> None:
        self.settings = settings
        self.db = db  # daemon.dbexec.DbExecutor
        self.keyring = keyring
        self.metrics = metrics
        self.free = settings.webhook_concurrency
        # Long enough for a send to time out and be recorded; short enough that a crashed
        # daemon's claims come back soon (default 35 s). Renewed while held (``_renew_loop``).
        self.lease = 2 * settings.webhook_timeout + 5
        # Deliveries claimed and not yet recorded or abandoned, by id: the leases the renewals keep. They are
        # waiting to be sent (``waiting``), being sent, or sent and waiting for their outcome's commit. A sending
        # slot is freed as soon as its HTTP exchange ends, and the next delivery waiting for that endpoint starts
        # at once: no trip to the database between two sends to a busy endpoint (the claims that refill
        # ``waiting`` run beside the record batches, and claim ahead only for endpoints that just answered:
        # ``_claim_args``, ``_claim_ahead``). At most HELD_PER_SLOT x WEBHOOK_CONCURRENCY unsent are held (and
        # SENT_PER_SLOT x WEBHOOK_CONCURRENCY more sent, waiting for their record: ``_held_room``), and of one
        # endpoint at most its limit and what it answers in AHEAD_SECONDS (``_ahead``; its limit is
        # WEBHOOK_CONCURRENCY_PER_ENDPOINT, or more for a fast one:
        # ``_Pace``) sending or waiting: past that nothing more is claimed.
        self.held: dict = {}
        self.max_held = HELD_PER_SLOT * settings.webhook_concurrency  # unsent
        self.max_sent = SENT_PER_SLOT * settings.webhook_concurrency  # sent and waiting for their record, beyond it
        self.unrecorded = 0  # held, sent and waiting for their outcome's commit (``_held_room``)
        # Claimed deliveries waiting for a sending slot, by webhook: {webhook id: deque of (item, signing)}.
        self.waiting: dict[object, collections.deque] = {}
        self.queued = 0  # how many wait, over all webhooks
        self.renewing = False  # the last renewal failed (the database away): one warning per outage
        # Sends in flight per webhook. A webhook at its cap is left out of the next claim, and the
        # claim takes of each webhook only what fits under its cap: a slow receiver never holds
        # more than its share of the slots, so it cannot starve the others.
        self.inflight: collections.Counter = collections.Counter()
        # Webhooks whose signing secret is under a key this daemon was not given (a rotation under way):
        # {webhook id: monotonic time until which its deliveries are left to daemons that have the key}.
        self.locked: dict = {}
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()
        self.stopping = False
        self.db_away = False  # the last claim found the database unreachable
        self.sender: sender.Sender | None = None
        self.sent = 0
        self.to_record: list = []
        # Sends whose HTTP exchange is under way, by delivery id: (item, its task, when it started on the product's
        # clock, and on the monotonic one). What a stop's grace finds here at its end is cut and recorded (``stop``).
        self.posting: dict = {}
        # Claims are made one at a time in this process (two at once would each count every endpoint's room
        # from the same sends in flight, and skip each other's locked rows: an endpoint could get twice its cap).
        # A claim ahead under way (``_claim_ahead``): the loop leaves the claiming to it meanwhile, and is woken
        # when it comes back short.
        self.refilling = 0
        # Webhooks whose sends ended since the last claim ahead (they answer: claimed ahead for), and those whose
        # last claim filled the room it was given (more of theirs may be due: claimed again as their room reopens,
        # without waiting for a record batch).
        self.answered: set = set()
        self.more: set = set()
        self.owed = False  # a record batch's claim waits for the claim under way
        # The loop's last claim found nothing: short claims ahead do not send it to look past their endpoints again
        # until something is queued or the poll's second passes (``_due``).
        self.looked_past = False
        # Whether a claim would find nothing: the last one came back short with no endpoint given all its room, and
        # nothing was queued since (``due_seen`` counts the wake-ups: ``_due``). Then the record batches claim
        # nothing ahead (with the deliveries handed at emit, a claim per batch found nothing each time): only the
        # loop's poll looks, once a second, for retries come due and leases run out.
        self.nothing_due = False
        self.due_seen = 0
        # Slots the loop's claim under way is for: no claim ahead starts meanwhile (the loop refills).
        self.claiming = 0
        # The ``_claim_args`` of the claim under way (the loop's or a claim ahead): an emit's offer waits for it.
        self.under_way: tuple | None = None
        # An emit under way whose deliveries may be leased to this worker in its own INSERT (``offer``): the room
        # it was offered is reserved for it until it is back (``adopt``), and no claim starts meanwhile (claims
        # and offers are one at a time, as claims are): a claim that would have run then waits for it
        # (``claim_wanted``), and the next emit is offered nothing until that claim has started.
        self.handing: deliveries.Offer | None = None
        self.handed_back: asyncio.Future | None = None  # resolved by ``adopt`` (``stop`` waits for it)
        self.handing_started = 0  # ``started`` when the offer under way (or the last one) was made
        self.claim_wanted = False
        # An emit waiting for the claim under way to end before it is offered room (no new claim starts meanwhile),
        # and the futures that tell it the claim ended.
        self.offer_wanted = 0
        self.claim_ended: list[asyncio.Future] = []
        # When each webhook's last send ended with an answer (monotonic): an emit may hand such an endpoint as
        # much as a claim ahead gives it (``_ahead``); bounded (pruned past a second).
        self.answers: dict = {}
        # Each endpoint's pace (``_Pace``): its current limit on sends in flight, from WEBHOOK_CONCURRENCY_PER_ENDPOINT
        # (``base``) up to ``top`` (WEBHOOK_CONCURRENCY less the base: at least a base's worth of slots stays for the
        # other endpoints), raised by ``step`` per fast window. Bounded: pruned of endpoints idle past
        # PACE_IDLE_SECONDS once there are more than ``max_held`` (``_paced``).
        self.base = settings.webhook_concurrency_per_endpoint
        self.top = max(self.base, settings.webhook_concurrency - self.base)
        self.step = max(1, self.base // 2)
        self.slow = min(SLOW_SECONDS, settings.webhook_timeout / 2)
        self.paces: dict = {}
        self.flush_now = asyncio.Event()
        self.flusher: asyncio.Task | None = None
        # check_url's verdict per webhook URL: static rules of the text alone (no DNS; the connector checks
        # every address it connects to, rebinding included), so the verdict cannot change while the settings
        # that shape it (production, WEBHOOK_ALLOWED_NETWORKS) stay those of this worker. Bounded.
        self.refusals: dict[str, str | None] = {}
        # Webhooks a record batch of this worker disabled (a 410): {webhook id: (until when (monotonic) it is kept,
        # how many claims and offers had started then)}. A claim or an offer that was under way then may still bring
        # theirs: what it holds of them unsent is failed, not sent (``_drop_disabled``). One started later read the
        # webhook active: enabled again since, and sent to at once (``_hold``).
        self.disabled: dict = {}
        self.started = 0  # claims and offers started, counted
        # Webhooks with a 410 answer not yet recorded, how many: their waiting deliveries are not started (the record
        # is about to disable the webhook) and nothing more is claimed for them until the record says.
        self.gone: collections.Counter = collections.Counter()
        # Totals since start, on /metrics: the mean claim and record batch sizes show how far
        # the database work is shared between deliveries.
        self.counts = collections.Counter()
        if metrics is not None:
            for name, help_text in (
                ("claims", "Claim statements run by the delivery worker."),
                ("claimed", "Deliveries claimed by the delivery worker."),
                ("handed", "Deliveries leased to the delivery worker by this daemon's emits (sent without a claim)."),
                ("record_batches", "Transactions recording delivery outcomes."),
                ("recorded", "Delivery outcomes recorded."),
                ("lease_renewals", "Statements renewing the leases of held deliveries (one per interval)."),
                ("leases_lost", "Held deliveries whose lease another worker took over."),
                (
                    "given_back",
                    "Held deliveries given back unsent after waiting over a second for a slot, to be claimed again "
                    "with their webhook as it is then.",
                ),
            ):
                metrics.counter_from(f"nexus_webhook_{name}_total", help_text, lambda name=name: self.counts[name])
            metrics.gauge_from(
                "nexus_webhook_endpoints_above_cap",
                "Webhooks whose fast 2xx answers have raised their limit on sends in flight above "
                "WEBHOOK_CONCURRENCY_PER_ENDPOINT.",
                lambda: sum(1 for webhook_id in list(self.paces) if self._limit(webhook_id) > self.base),
            )
            metrics.gauge_from(
                "nexus_webhook_endpoint_limit_max",
                "The highest limit on sends in flight of any webhook now (WEBHOOK_CONCURRENCY_PER_ENDPOINT, or above "
                "it for a fast one).",
                lambda: max((self._limit(webhook_id) for webhook_id in list(self.paces)), default=self.base),
            )

    # --- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        # Kept-alive connections below aiohttp's ClientSession (sender.py): the SSRF guard at every connect, no
        # cookies (one receiver's Set-Cookie never rides along on the next delivery to its host), no redirects.
        self.sender = sender.Sender(
            allowed_networks=self.settings.webhook_allowed_networks,
            timeout=self.settings.webhook_timeout,
            per_endpoint=self.top,  # a fast endpoint's limit may grow to it (``_Pace``)
            max_idle=self.settings.webhook_concurrency,  # no more kept than could be in flight at once
        )
        loop = asyncio.get_running_loop()
        self._listener = lambda: loop.call_soon_threadsafe(self._due)
        deliveries.LISTENERS.append(self._listener)
        self._pg = None
        if self.settings.database_kind == "postgresql":
            self._listen(loop)
        self.loop_task = asyncio.create_task(self._loop(), name="delivery-worker")
        self.renew_task = asyncio.create_task(self._renew_loop(), name="delivery-leases")

    def _listen(self, loop) -> None:
        """LISTEN on a connection of its own: other processes' commits wake us at once."""
        # start-up: psycopg2 loads only on PostgreSQL
        import psycopg2

        try:
            conn = psycopg2.connect(self.settings.database_url.get(), connect_timeout=5)
            conn.autocommit = True
            conn.cursor().execute(f"LISTEN {deliveries.NOTIFY_CHANNEL}")
        except psycopg2.Error as exc:
            log.warning(
                "delivery worker: LISTEN unavailable (%s); polling every %.0f s", type(exc).__name__, POLL_SECONDS
            )
            return

        fd = conn.fileno()

        def readable():
            try:
                conn.poll()
                conn.notifies.clear()
            except psycopg2.Error:  # the server dropped it: poll until _loop listens again
                loop.remove_reader(fd)
                self._pg = None
                conn.close()
                return
            self._due()

        loop.add_reader(fd, readable)
        self._pg, self._pg_fd = conn, fd

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let in-flight sends finish within ``grace``; cut and record those still in flight then
        (``_cut_sends``)."""
        self.stopping = True
        self.wake.set()
        await asyncio.gather(self.loop_task, return_exceptions=True)
        if self.handed_back is not None and not self.handed_back.done():
            # An emit under way may lease deliveries to this worker: they are held (and given back below) once it
            # is back; should it not come back within the grace, their leases run out and bring them back.
            await asyncio.wait([self.handed_back], timeout=grace)
        await self._release_waiting()
        # Until every send has ended (within the grace): a claim ahead that was under way when
        # stopping began starts its sends as the recorded ones end, so the set is looked at again.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self.tasks), timeout=left)
        await self._cut_sends()
        self.renew_task.cancel()  # after the sends: their leases are renewed while they finish
        await asyncio.gather(self.renew_task, return_exceptions=True)
        if self.sender is not None:
            await self.sender.close()
        if self._listener in deliveries.LISTENERS:
            deliveries.LISTENERS.remove(self._listener)
        if self._pg is not None:
            asyncio.get_running_loop().remove_reader(self._pg_fd)
            self._pg.close()

    async def _cut_sends(self) -> None:
        """The sends still in flight when the stop's grace ends: cut, and recorded as failed attempts in one batch,
        each retried on the schedule (another daemon, or this one restarted, sends it again when it is due, not once
        its lease runs out), with one warning line. Before, they were dropped unrecorded: the receiver had the
        request, the attempt log never showed it, and (on PostgreSQL) it was sent again after the lease.

        The record is fenced by each claim's lease token as every record is: one whose lease another worker took
        (``lost``) gets nothing written. Should the database be away, nothing is written: their leases run out and
        bring them back, as after a crash."""
        cut = [entry for entry in self.posting.values() if not entry[0].lost]
        if not cut:
            return
        for _, task, _, _ in cut:
            task.cancel()
        await asyncio.gather(*(task for _, task, _, _ in cut), return_exceptions=True)
        ended = time.monotonic()
        batch = [
            (
                item,
                Result(
                    started_at=started,
                    duration_ms=int((ended - began) * 1000),
                    error=attempts.STOPPED,
                ),
            )
            for item, _, started, began in cut
        ]
        try:
            outcomes = await self.db.run(attempts.record_many, batch, self.settings.webhook_retry_schedule)
        except Exception as exc:  # noqa: BLE001 - their leases bring them back
            log.warning(
                "delivery worker: stopping: %d send(s) still in flight when the grace ended were cut and could not be "
                "recorded (%s); they are sent again once their leases run out",
                len(cut),
                getattr(exc, "message", type(exc).__name__),
            )
            return
        recorded = sum(1 for outcome in outcomes if outcome not in ("lost", "released"))
        self.counts["record_batches"] += 1
        self.counts["recorded"] += recorded
        log.warning(
            "delivery worker: stopping: %d send(s) still in flight when the grace ended were cut and recorded as "
            "failed attempts (the daemon stopped before the receiver answered); retried on the schedule%s",
            recorded,
            f"; {len(cut) - recorded} whose lease another worker took not recorded" if recorded < len(cut) else "",
        )

    def poke(self) -> None:
        """Something was queued: look now (thread-safe via call_soon_threadsafe by callers)."""
        self._due()

    def _due(self) -> None:
        """Deliveries may be due that no claim has seen (queued, or the poll's second passed): look now."""
        self.looked_past = False
        self.nothing_due = False
        self.due_seen += 1
        self.wake.set()

    # --- the loop ------------------------------------------------------------

    async def _loop(self) -> None:
        relisten_at = 0.0
        while not self.stopping:
            if self.settings.database_kind == "postgresql" and self._pg is None and time.monotonic() >= relisten_at:
                relisten_at = time.monotonic() + 5  # LISTEN again after a dropped connection
                self._listen(asyncio.get_running_loop())
            # Clear before claiming, not after: a NOTIFY that lands while the claim runs must
            # wake the next round, or its delivery waits for the 1 s poll.
            self.wake.clear()
            try:
                claimed, locked = [], {}
                if self.handing is None:
                    self.claim_wanted = False  # set again below by whatever still wants a claim
                if self.nothing_due and not self.more:
                    pass  # woken by a slot freed or a record batch, with nothing due: until the poll or a queueing
                elif self.free > 0 and self._claimable() > 0 and (self.handing is not None or self.offer_wanted):
                    self.claim_wanted = True  # once the emit under way is back (``adopt`` wakes the loop)
                elif self.free > 0 and self._claimable() > 0 and not self.refilling:
                    now = time.monotonic()
                    self.claiming = self._claimable()  # a record batch claims nothing meanwhile
                    args = self._claim_args(self.claiming, now)
                    self.under_way, self.claim_wanted, seen = args, False, self.due_seen
                    self.started += 1
                    started = self.started
                    try:
                        claimed, signing, locked = await self.db.run(_claim_and_sign, self.keyring, *args)
                    finally:
                        self.claiming = 0
                        self._claim_over()
                    self._start_sends(claimed, signing, locked, now, started)
                    self._note_due(args, claimed, self._note_more(args, claimed), seen)
                    self.looked_past = not claimed
                    if self.owed:
                        self._claim_ahead()
                if (claimed or locked) and self.free > 0 and self._claimable() > 0:
                    continue  # there may be more due right now (for other endpoints)
            except DatabaseUnavailable as exc:  # an outage: one line when it starts and one when it ends
                if not self.db_away:
                    log.warning("delivery worker: cannot claim (%s); retrying every %.0f s", exc.message, POLL_SECONDS)
                self.db_away = True
            except Exception:  # noqa: BLE001 - keep the worker alive whatever happened
                log.exception("delivery worker: claiming failed; retrying in %.0f s", POLL_SECONDS)
            else:
                if self.db_away:
                    log.info("delivery worker: claiming again")
                self.db_away = False
            try:
                await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)
            except asyncio.TimeoutError:
                self.looked_past = self.nothing_due = False

    def _claimable(self, ahead: bool = False) -> int:
        """How many deliveries a claim may take now: one for each free sending slot, and when claiming ``ahead``
        up to WAITING_PER_SLOT x WEBHOOK_CONCURRENCY waiting for the next ones; within the bound on those held."""
        wanted = self.free + (WAITING_PER_SLOT * self.settings.webhook_concurrency - self.queued if ahead else 0)
        return max(0, min(self._held_room(), wanted))

    def _held_room(self) -> int:
        """How many more deliveries this worker may claim to hold: ``max_held`` unsent (waiting or sending), and
        ``max_sent`` more sent and waiting for their outcome's commit (``unrecorded``)."""
        unsent = len(self.held) - self.unrecorded
        return min(self.max_held - unsent, self.max_held + self.max_sent - len(self.held))

    def _claim_args(self, slots: int, now: float, warm=frozenset()) -> tuple:
        """What a claim for ``slots`` deliveries passes to ``_claim_and_sign`` after the keyring: the limit, the
        lease, the webhooks left out (holding their most, or locked) and the others' rooms.

        An endpoint is claimed what it can send now (its limit, WEBHOOK_CONCURRENCY_PER_ENDPOINT or more for a fast
        one: ``_Pace``, less what it holds); one in ``warm`` (its sends just ended: it answers) more, to wait for its
        next free slots (``_ahead``). Only those: deliveries of a receiver that holds its requests are not claimed
        ahead, where another daemon with free slots could send them now."""
        cap = self.base
        self.locked = {w: until for w, until in self.locked.items() if until > now}
        held = self.inflight.copy()
        for webhook_id, waiting in self.waiting.items():
            held[webhook_id] += len(waiting)
        for webhook_id in warm:
            held[webhook_id] += 0  # named, so that its room is given below even when it holds none
        for webhook_id, pace in self.paces.items():
            if pace.limit > cap:
                held[webhook_id] += 0  # named: its room is its own limit's, not the base cap's
        most = {w: self._ahead(w, now) if w in warm else self._limit(w, now) for w in held}
        busy = [w for w, n in held.items() if n >= most[w]] + list(self.locked) + list(self.gone)
        # The claim counts per endpoint: a busy endpoint's deliveries are not claimed to be handed back.
        rooms = {w: most[w] - n for w, n in held.items() if n < most[w] and w not in self.gone}
        return min(slots, 100), self.lease, busy, rooms, cap

    # --- deliveries leased at emit ------------------------------------------------

    def _claim_over(self) -> None:
        """The claim under way has ended: an emit waiting for it may be offered room now."""
        self.under_way = None
        for future in self.claim_ended:
            if not future.done():
                future.set_result(None)
        self.claim_ended.clear()

    async def offer(self) -> deliveries.Offer | None:
        """The room this worker has for an emit's deliveries, reserved for that emit until ``adopt`` (None: no room,
        or another offer or a claim that waits for one is under way, or stopping). On the loop, before the emit's
        trip to the database; once the claim under way, if any, has ended (no claim starts from then until
        ``adopt``: claims and offers are one at a time, as claims are, so that neither counts an endpoint's room
        without the other's deliveries).

        The same limits as a claim's (``_claim_args``): at most what a claim ahead may take (``_claimable``), of an
        endpoint at most its limit (WEBHOOK_CONCURRENCY_PER_ENDPOINT, or more for a fast one: ``_Pace``) less what
        it holds (sending or waiting), ``_ahead`` of it for one that answered within ANSWERED_SECONDS, none
        of a locked webhook's."""
        if self.stopping or self.sender is None or self.handing is not None or self.claim_wanted:
            return None
        if self.under_way is not None:
            # A claim is under way: offered less what it may lease, the emit got nothing most of the time under load
            # (the record batches' claims ran back to back). It waits for it instead (a claim's trip, a few ms, in
            # which its batch gathers more events), and no other claim starts meanwhile.
            self.offer_wanted += 1
            try:
                while self.under_way is not None and not self.stopping:
                    ended = asyncio.get_running_loop().create_future()
                    self.claim_ended.append(ended)
                    await ended
            finally:
                self.offer_wanted -= 1
            if self.stopping or self.handing is not None:
                self._resume_claims()
                return None
        total = self._claimable(ahead=True)
        if total <= 0:
            self._resume_claims()
            return None
        now = time.monotonic()
        cap = self.base
        if len(self.answers) > self.max_held:
            self.answers = {w: at for w, at in self.answers.items() if at > now - ANSWERED_SECONDS}
        self.locked = {w: until for w, until in self.locked.items() if until > now}
        held = self.inflight.copy()
        for webhook_id, waiting in self.waiting.items():
            held[webhook_id] += len(waiting)
        answered = {w for w, at in self.answers.items() if at > now - ANSWERED_SECONDS}
        named = set(held) | answered | {w for w, pace in self.paces.items() if pace.limit > cap}
        rooms = {w: (self._ahead(w, now) if w in answered else self._limit(w, now)) - held[w] for w in named}
        # Left out as a claim leaves them out: at their most, locked, or gone (a 410 waiting for its record).
        exclude = frozenset({w for w, room in rooms.items() if room <= 0} | set(self.locked) | set(self.gone))
        offer = deliveries.Offer(
            self.keyring,
            uuid.uuid4(),
            self.lease,
            total,
            cap,  # an endpoint that holds nothing here and did not answer lately
            {w: room for w, room in rooms.items() if room > 0},
            exclude,
        )
        self.handing = offer
        self.started += 1
        self.handing_started = self.started
        self.handed_back = asyncio.get_running_loop().create_future()
        return offer

    def adopt(self, offer: deliveries.Offer, handed: deliveries.Handed | None) -> None:
        """The emit that was made ``offer`` is back: hold and send what it leased to this worker (``handed``; None
        when it failed: nothing was leased), and give back the rest of the room. On the loop."""
        if self.handing is offer:
            self.handing = None
        if self.handed_back is not None and not self.handed_back.done():
            self.handed_back.set_result(None)
        if handed is not None and (handed.claimed or handed.locked):
            self.counts["handed"] += len(handed.claimed)
            self._hold(handed.claimed, handed.signing, handed.locked, time.monotonic(), self.handing_started)
        self._resume_claims()

    def _resume_claims(self) -> None:
        """No offer under way any more: the claims that waited for it go."""
        if self.offer_wanted or self.handing is not None:
            return
        if self.owed:
            self._claim_ahead()
        if self.claim_wanted:
            self.wake.set()

    def _claim_ahead(self, owed: bool = False) -> bool:
        """Claim, in a trip to a database thread of its own, for the free slots and ahead for the endpoints that
        answered since the last such claim; unless a claim is under way already (claims are one at a time): then,
        when ``owed`` (a record batch's), once that one is back. Whether it claims now."""
        if self.stopping:
            return False
        if self.nothing_due and not self.more:
            return False  # nothing to claim: the loop's poll looks again
        if self.claiming or self.refilling or self.handing is not None or self.offer_wanted:
            self.owed |= owed
            self.claim_wanted |= owed and (self.handing is not None or bool(self.offer_wanted))
            return False
        self.owed = False
        slots = self._claimable(ahead=True)
        if slots <= 0:
            return False
        now = time.monotonic()
        warm, self.answered = self.answered, set()
        args = self._claim_args(slots, now, warm)
        self.refilling += 1
        self.under_way, self.claim_wanted = args, False
        self.started += 1
        task = asyncio.create_task(self._claimed_ahead(args, now, self.due_seen, self.started))
        task.webhook_id, task.slot_open = None, False  # ``stop`` waits for it with the sends
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return True

    async def _claimed_ahead(self, args: tuple, now: float, seen: int, started: int) -> None:
        try:
            claimed, signing, locked = await self.db.run(_claim_and_sign, self.keyring, *args)
        except Exception:  # noqa: BLE001 - the loop claims again (and reports an outage), woken here
            log.debug("delivery worker: claiming ahead failed; left to the loop", exc_info=True)
            self.refilling -= 1
            self._claim_over()
            self.wake.set()
            return
        self.refilling -= 1
        self._claim_over()
        self._start_sends(claimed, signing, locked, now, started)  # given back at once if stopping began meanwhile
        capped = self._note_more(args, claimed)
        self._note_due(args, claimed, capped, seen)
        if len(claimed) < args[0] and capped and not self.looked_past:
            # Short, and an endpoint got all its room: of what is due, the claim reads the first ``limit`` rows, and
            # a backlog of the endpoints claimed ahead for can fill those up to their rooms, hiding other endpoints'
            # rows. The loop's claim, which leaves out the endpoints at their most, looks past them; once it found
            # nothing there it is not sent again until something is queued or the poll's second passes.
            self.wake.set()
        if self.owed:
            self._claim_ahead()
            return
        for webhook_id in list(self.more):
            if self._claim_more(webhook_id):
                break

    def _note_more(self, args: tuple, claimed: list) -> bool:
        """After a claim made with ``args`` (``_claim_args``): the endpoints it gave as many as it could (the limit
        reached, or their room filled) may have more due; the others it looked at have none now. Whether one of
        them got all its room."""
        limit, rooms, cap = args[0], args[3], args[4]
        got = collections.Counter(item.webhook_id for item in claimed)
        full, capped = len(claimed) >= limit, False
        for webhook_id in set(rooms) | set(got):
            filled = got[webhook_id] >= rooms.get(webhook_id, cap)
            capped |= bool(got[webhook_id]) and filled
            if got[webhook_id] and (full or filled):
                self.more.add(webhook_id)
            else:
                self.more.discard(webhook_id)
        return capped

    def _note_due(self, args: tuple, claimed: list, capped: bool, seen: int) -> None:
        """After a claim made with ``args`` when ``due_seen`` was ``seen``: nothing is due if it came back short, no
        endpoint got all its room (``_note_more``) nor was left out at its most, and nothing was queued meanwhile."""
        left_out = any(w not in self.locked for w in args[2])  # endpoints at their most: theirs may be due
        self.nothing_due = len(claimed) < args[0] and not capped and not left_out and self.due_seen == seen

    def _claim_more(self, webhook_id) -> bool:
        """Claim ahead now if ``webhook_id`` may have more due and has room again for more than half its limit (not a
        claim per send): its waiting deliveries are topped up before they run out, whatever the record batches do."""
        if (
            webhook_id not in self.more
            or self.claiming
            or self.refilling
            or self.stopping
            or self.handing is not None
            or self.offer_wanted
        ):
            return False
        now = time.monotonic()
        cap = self._limit(webhook_id, now)
        if webhook_id in self.gone:  # a 410 being recorded: nothing more claimed for it until the record says
            return False
        waiting = self.waiting.get(webhook_id)
        room = self._ahead(webhook_id, now) - self.inflight[webhook_id] - (len(waiting) if waiting else 0)
        if room <= cap // 2 or self._claimable(ahead=True) <= cap // 2:
            return False
        self._claim_ahead()
        return True

    def _start_sends(self, claimed: list, signing: dict, locked: dict, now: float, started: int) -> None:
        """Hold the claimed deliveries (their leases renewed from now on) and start a send for each."""
        self.counts["claims"] += 1
        self.counts["claimed"] += len(claimed)
        self._hold(claimed, signing, locked, now, started)

    def _hold(self, claimed: list, signing: dict, locked: dict, now: float, started: int) -> None:
        """``_start_sends`` of deliveries leased to this worker, by a claim or by an emit (``adopt``)."""
        self._leave_locked(locked, now)
        if not claimed:
            return
        # The URL rules, once per webhook per batch (not per send); the connector still checks every address
        # it connects to.
        signing = {hook_id: (url, secrets, self._refusal(url)) for hook_id, (url, secrets) in signing.items()}
        if self.disabled:
            self.disabled = {w: kept for w, kept in self.disabled.items() if kept[0] > now}
            for webhook_id in {item.webhook_id for item in claimed if item.webhook_id in self.disabled}:
                if started > self.disabled[webhook_id][1]:  # read active after the disable: enabled again since
                    del self.disabled[webhook_id]
            dropped = [item for item in claimed if item.webhook_id in self.disabled]
            if dropped:
                claimed = [item for item in claimed if item.webhook_id not in self.disabled]
                self._fail_held(dropped)
        # From now, not from the claim's start: what is sent at once is never given back, however long the
        # database took (a claim trip over a second would otherwise give back every delivery it brought, each time).
        held_since = time.monotonic()
        for item in claimed:
            self.held[item.id] = item
            item.held_since = held_since
            waiting = self.waiting.get(item.webhook_id)
            if waiting is None:
                waiting = self.waiting[item.webhook_id] = collections.deque()
            waiting.append((item, signing.get(item.webhook_id)))
            self.queued += 1
        if self.stopping:  # a claim ahead that ended after stopping began: nothing more is sent
            task = asyncio.create_task(self._release_waiting())
            task.webhook_id, task.slot_open = None, False  # ``stop`` waits for it with the sends
            self.tasks.add(task)
            task.add_done_callback(self._done)
            return
        self._start_waiting()

    def _drop_disabled(self, webhook_ids: set) -> None:
        """Webhooks a record batch just disabled (a 410): what this worker holds of theirs waiting for a slot is not
        sent (each would be one more request to a receiver that asked to be left alone); it ends FAILED as the
        disable ends the queued ones (``attempts.fail_held``). Sends already in flight finish and are recorded."""
        if not webhook_ids:
            return
        until = time.monotonic() + self.lease
        dropped = []
        for webhook_id in webhook_ids:
            self.disabled[webhook_id] = (until, self.started)
            self.more.discard(webhook_id)
            self.answered.discard(webhook_id)
            waiting = self.waiting.pop(webhook_id, None)
            if waiting:
                self.queued -= len(waiting)
                dropped.extend(item for item, _ in waiting)
        self._fail_held(dropped)

    def _fail_held(self, items: list) -> None:
        """Fail ``items`` (held, unsent, their webhook disabled) in a task ``stop`` waits for; their leases are
        renewed until it is done."""
        if not items:
            return
        for item in items:
            self.held[item.id] = item

        async def fail() -> None:
            try:
                await self.db.run(attempts.fail_held, items)
            except Exception as exc:  # noqa: BLE001 - left under their leases: claimed again if it is enabled
                log.warning(
                    "delivery worker: %d deliveries of a disabled webhook not failed (%s)",
                    len(items),
                    getattr(exc, "message", type(exc).__name__),
                )
            finally:
                for item in items:
                    if self.held.get(item.id) is item:
                        del self.held[item.id]

        task = asyncio.create_task(fail())
        task.webhook_id, task.slot_open = None, False  # ``stop`` waits for it with the sends
        self.tasks.add(task)
        task.add_done_callback(self._done)

    async def _release_waiting(self) -> None:
        """Stopping: the deliveries still waiting for a slot are given back untouched (claimable at once by another
        daemon, not after their leases run out). A claim ahead that ends later releases its own."""
        items = [item for waiting in self.waiting.values() for item, _ in waiting]
        self.waiting.clear()
        self.queued = 0
        for item in items:
            self.held.pop(item.id, None)
        if items:
            try:
                await self.db.run(deliveries.release, items)
            except Exception as exc:  # noqa: BLE001 - their leases run out and bring them back anyway
                log.warning("delivery worker: %d waiting deliveries not given back (%s)", len(items), exc)

    def _start_waiting(self) -> None:
        """Start a send for each waiting delivery that has a free slot under the worker's and its endpoint's caps,
        endpoint after endpoint (one that got a slot goes to the back of the line). The endpoint's cap is its
        current limit (``_Pace``): WEBHOOK_CONCURRENCY_PER_ENDPOINT, or more for one that proved fast."""
        if self.stopping:
            return
        now, stale = time.monotonic(), []
        try:
            self._start_fresh(now, stale)
        finally:
            if stale:
                self._give_back(stale)

    def _start_fresh(self, now: float, stale: list) -> None:
        """``_start_waiting``'s loop; a delivery held past SIGNING_FRESH_SECONDS goes to ``stale`` instead."""
        for webhook_id in list(self.waiting):
            if self.free <= 0:
                return
            if webhook_id in self.gone:  # a 410 being recorded: left waiting
                continue
            waiting = self.waiting.pop(webhook_id)
            pace = self._pace(webhook_id, now)  # its limit (the base unless top > base) and how fast it answers
            cap = pace.limit
            while waiting and self.free > 0 and self.inflight[webhook_id] < cap:
                if self.inflight[webhook_id] >= self.base and pace.sending:
                    # One more beyond the base: not while a send of this endpoint is in flight past the slow bound.
                    if now - next(iter(pace.sending.values())) > self.slow:
                        pace.reset(self.base)
                        cap = self.base
                        continue
                item, signing = waiting.popleft()
                self.queued -= 1
                if now - item.held_since > SIGNING_FRESH_SECONDS:
                    stale.append(item)
                    continue
                self.inflight[webhook_id] += 1
                self.free -= 1
                task = asyncio.create_task(self._send(item, signing))
                task.webhook_id = webhook_id
                task.slot_open = True  # until its HTTP exchange ends (``_free_slot``)
                # Counted in its endpoint's window if it started at the limit (``_paced``).
                task.pace = (pace.epoch, self.inflight[webhook_id] >= cap)
                pace.sending[task] = now
                self.tasks.add(task)
                task.add_done_callback(self._done)
            if waiting:  # at its cap: back of the line
                self.waiting[webhook_id] = waiting
            elif self.inflight[webhook_id] <= 0:
                del self.inflight[webhook_id]

    def _give_back(self, items: list) -> None:
        """Deliveries held too long to be sent with what was read of their webhooks (SIGNING_FRESH_SECONDS): given back
        untouched (no attempt counted), then claimed again, with the webhook's URL, secrets and state as they are."""
        for item in items:
            self.held.pop(item.id, None)
        self.counts["given_back"] += len(items)

        async def give_back() -> None:
            try:
                await self.db.run(deliveries.release, items)
            except Exception as exc:  # noqa: BLE001 - their leases run out and bring them back anyway
                log.warning("delivery worker: %d deliveries held too long not given back (%s)", len(items), exc)
            self._due()  # claimable again: the loop claims what it can send now

        task = asyncio.create_task(give_back())
        task.webhook_id, task.slot_open = None, False  # ``stop`` waits for it with the sends
        self.tasks.add(task)
        task.add_done_callback(self._done)

    # --- each endpoint's pace ----------------------------------------------------

    def _limit(self, webhook_id, now: float | None = None) -> int:
        """``webhook_id``'s current limit on sends in flight (``_Pace``): the base cap for one idle past
        PACE_IDLE_SECONDS (nothing in flight, no answer), as its next send will find it (``_pace``). ``now``: the
        caller's monotonic time, if it has one (a claim asks this of every endpoint it names)."""
        pace = self.paces.get(webhook_id)
        if pace is None:
            return self.base
        if not pace.sending and (time.monotonic() if now is None else now) - pace.last > PACE_IDLE_SECONDS:
            return self.base
        return pace.limit

    def _ahead(self, webhook_id, now: float | None = None) -> int:
        """How many deliveries of ``webhook_id``, an endpoint that answers, this worker may hold sending or waiting
        for its slots: its limit, and as many more as it answers in AHEAD_SECONDS at the pace of its recent sends,
        from one limit's worth to AHEAD_MOST - 1 limits' worth (AHEAD_PER_SLOT limits while that pace is unknown)."""
        limit = self._limit(webhook_id, now)
        pace = self.paces.get(webhook_id)
        if pace is None or pace.seconds is None:
            return AHEAD_PER_SLOT * limit
        waiting = limit * AHEAD_SECONDS / max(pace.seconds, 0.001)
        return limit + int(min((AHEAD_MOST - 1) * limit, max((AHEAD_PER_SLOT - 1) * limit, waiting)))

    def _pace(self, webhook_id, now: float) -> _Pace:
        """``webhook_id``'s pace; one idle past PACE_IDLE_SECONDS (nothing in flight, no answer) starts over at the
        base cap."""
        pace = self.paces.get(webhook_id)
        if pace is None:
            pace = self.paces[webhook_id] = _Pace(self.base, now)
        elif not pace.sending and now - pace.last > PACE_IDLE_SECONDS:
            pace.reset(self.base)
        return pace

    def _paced(self, task: asyncio.Task, result: Result) -> None:
        """The send ``task`` ended with ``result``: its endpoint's window counts it if it was a fast 2xx of a send
        started at the limit (a full window raises the limit by ``step``); anything else that is not a fast 2xx
        drops the limit back to the base cap."""
        started = getattr(task, "pace", None)
        pace = self.paces.get(task.webhook_id)
        if started is None or pace is None:
            return
        pace.sending.pop(task, None)
        now = time.monotonic()
        pace.last = now
        took = result.duration_ms / 1000
        pace.seconds = took if pace.seconds is None else pace.seconds + (took - pace.seconds) / 8
        if not (200 <= (result.status_code or 0) < 300) or result.duration_ms >= self.slow * 1000:
            pace.reset(self.base)
        elif started[1] and started[0] == pace.epoch:
            pace.proved += 1
            if pace.proved >= pace.limit and pace.limit < self.top:
                pace.limit, pace.proved, pace.epoch = min(self.top, pace.limit + self.step), 0, pace.epoch + 1
        if len(self.paces) > self.max_held:  # the idle ones first; then all but those with sends in flight
            self.paces = {w: p for w, p in self.paces.items() if p.sending or now - p.last <= PACE_IDLE_SECONDS}
            if len(self.paces) > self.max_held:
                self.paces = {w: p for w, p in self.paces.items() if p.sending}

    # --- leases --------------------------------------------------------------

    async def _renew_loop(self) -> None:
        """Renew the held leases every fifth of the lease, on the product's clock (a test that moves it
        moves the renewals with it), looking every second at most."""
        interval = self.lease / RENEW_FRACTION
        tick = min(1.0, interval / 2)
        due = clock.time() + interval
        while True:
            await asyncio.sleep(tick)
            if clock.time() < due:
                continue
            due = clock.time() + interval
            if self.held:
                await self._renew()

    async def _renew(self) -> None:
        """One statement for every held lease; a lease found taken over marks its delivery lost."""
        items = list(self.held.values())
        try:
            kept, expires = await self.db.run(deliveries.renew, [(i.id, i.lease) for i in items], self.lease)
        except Exception as exc:  # noqa: BLE001 - the sends check their lease before starting
            if not self.renewing:
                log.warning(
                    "delivery worker: cannot renew %d lease(s) (%s); sends whose lease runs low are left to the "
                    "next claim",
                    len(items),
                    getattr(exc, "message", type(exc).__name__),
                )
            self.renewing = True
            return
        if self.renewing:
            log.info("delivery worker: renewing leases again")
        self.renewing = False
        self.counts["lease_renewals"] += 1
        for item in items:
            if item.id in kept:
                item.expires = max(item.expires, expires)
            elif self.held.get(item.id) is item and not item.recording and not item.lost:
                # Not ours any more: it expired (this daemon stalled or lost the database) and another worker
                # claimed it. An outcome already queued for its commit is left to the record's own fence.
                item.lost = True
                self.counts["leases_lost"] += 1
                log.warning("delivery %s: lease lost to another worker; this daemon will not record it", item.id)

    def _may_start(self, item: deliveries.Claimed) -> bool:
        """Whether the lease holds long enough for a whole send (WEBHOOK_TIMEOUT) and then some."""
        if item.lost:
            return False
        left = item.expires - clock.time()
        if left < self.settings.webhook_timeout + 1:
            log.warning(
                "delivery %s: lease has %.0f s left and could not be renewed; not sent, left to the next claim",
                item.id,
                max(left, 0),
            )
            return False
        return True

    def _leave_locked(self, locked: dict, now: float) -> None:
        """Their deliveries went back untouched (no attempt counted): leave those webhooks out for a while."""
        for webhook_id, kid in locked.items():
            self.locked[webhook_id] = now + LOCKED_SECONDS
            key_usage.warn_once(kid, f"delivery worker: the signing secret of webhook {webhook_id}")

    def _free_slot(self, task: asyncio.Task) -> None:
        """The send's HTTP exchange is over (or never began): its sending slot, and its place under its endpoint's
        cap, are free for the next send, whether or not its outcome is recorded yet."""
        if not task.slot_open:
            return
        task.slot_open = False
        self.free += 1
        pace = self.paces.get(task.webhook_id)
        if pace is not None:
            pace.sending.pop(task, None)
        self.inflight[task.webhook_id] -= 1
        if self.inflight[task.webhook_id] <= 0:
            del self.inflight[task.webhook_id]
        # A slot no waiting delivery can take is refilled by a claim ahead (with the record batch this send's outcome
        # goes to, or sooner once its endpoint has room for half its cap: ``_claim_more``), not by a claim of the
        # loop's now: not a claim per send.
        self._start_waiting()

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        self._free_slot(task)
        if self.queued == 0 and self._held_room() <= self.free:
            self.wake.set()  # one fewer held, and the bound on them is what keeps slots from being claimed for

    async def _send(self, item: deliveries.Claimed, signing) -> None:
        try:
            await self._send_held(item, signing)
        finally:
            if self.held.get(item.id) is item:
                del self.held[item.id]

    async def _send_held(self, item: deliveries.Claimed, signing) -> None:
        if not self._may_start(item):
            return
        if signing is None:  # webhook deleted meanwhile: its deliveries went with it (cascade)
            log.info("delivery %s: webhook %s is gone", item.id, item.webhook_id)
            return
        if not tracing.enabled():
            return await self._attempt(item, signing, None)
        # The attempt's span is a child of the request (or job) that emitted the event: its context was
        # stored with the delivery row. The receiver is named by its host only: its path may carry a token.
        with tracing.span(
            "webhook delivery attempt",
            {
                "nexus.delivery.id": str(item.id),
                "nexus.webhook.id": str(item.webhook_id),
                "nexus.event.type": item.event,
                "nexus.delivery.attempt": item.attempts + 1,
                "server.address": urlsplit(signing[0]).hostname or "?",
                "http.request.method": "POST",
            },
            parent=item.trace_parent,
            kind=tracing.CLIENT,
        ) as span:
            return await self._attempt(item, signing, span)

    async def _attempt(self, item: deliveries.Claimed, signing, span) -> None:
        url, secrets, refusal = signing
        if refusal is not None:  # e.g. an http URL once NODE_ENV=production
            result = Result(started_at=utcnow(), duration_ms=0, error=refusal)
        else:
            body = _body(item.payload)
            # Known while its HTTP exchange is under way: a stop whose grace ends first cuts it and records it.
            self.posting[item.id] = (item, asyncio.current_task(), utcnow(), time.monotonic())
            try:
                result = await self._post(url, secrets, str(item.id), body)
            finally:
                self.posting.pop(item.id, None)
        if result.status_code == 410 and not item.lost:
            self.gone[item.webhook_id] += 1  # until its record (``_record``)
        self._paced(asyncio.current_task(), result)
        self._free_slot(asyncio.current_task())
        self.answered.add(item.webhook_id)
        if result.status_code:
            self.answers[item.webhook_id] = time.monotonic()
        self._claim_more(item.webhook_id)
        if item.lost:  # another worker holds it now and sends it itself: its outcome is that worker's to record
            log.warning(
                "delivery %s: attempt %d not recorded: the lease was lost while sending", item.id, item.attempts + 1
            )
            return
        item.recording = True
        item.payload = None  # sent: what is left to do (its record) needs no body, and it may wait a while
        self.unrecorded += 1
        try:
            outcome = await self._record(item, result)
        except DatabaseUnavailable as exc:
            log.warning(
                "delivery %s: attempt %d not recorded (%s); it is sent again once its lease expires",
                item.id,
                item.attempts + 1,
                exc.message,
            )
            return
        except Exception:  # noqa: BLE001 - the lease will expire and the attempt is made again
            log.exception("delivery %s: recording the attempt failed", item.id)
            return
        finally:
            self.unrecorded -= 1
        self.sent += 1
        telemetry.delivery_attempt(outcome)
        if span is not None:
            span.set_attribute("nexus.delivery.outcome", outcome)
            if result.status_code:
                span.set_attribute("http.response.status_code", result.status_code)
        if item.attempts == 0 and item.created_at is not None:
            telemetry.emit_to_attempt((result.started_at - item.created_at).total_seconds())
        log.info(
            "delivery %s (%s) attempt %d -> %s %s (the send took %d ms)",  # not "retrying in 17 ms": the send's time
            item.id,
            item.event,
            item.attempts + 1,
            result.status_code or "-",
            outcome,
            result.duration_ms,
        )

    async def _record(self, item, result) -> str:
        """Queue the outcome for the next batched write; resolves once it is committed."""
        future = asyncio.get_running_loop().create_future()
        self.to_record.append((item, result, future))
        if len(self.to_record) >= RECORD_BATCH:
            self.flush_now.set()
        elif self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._flush_soon())
        try:
            return await future
        finally:
            if result.status_code == 410:
                self.gone[item.webhook_id] -= 1
                if self.gone[item.webhook_id] <= 0:  # recorded (its waiting ones dropped if it disabled the webhook)
                    del self.gone[item.webhook_id]
                    self._start_waiting()

    async def _flush_soon(self) -> None:
        # Outcomes that arrive within a few milliseconds share one transaction.
        try:
            await asyncio.wait_for(self.flush_now.wait(), RECORD_WINDOW)
        except asyncio.TimeoutError:
            pass
        while self.to_record:
            self.flush_now.clear()
            batch, self.to_record = self.to_record[:RECORD_BATCH], self.to_record[RECORD_BATCH:]
            # The deliveries waiting for a slot are topped up by a claim of their own that runs beside the record,
            # not after it nor in its trip (a record batch takes ~10 ms, in which a fast endpoint's waiting ones
            # ran out): at least one claim per batch, for the endpoints whose sends ended, and more in between
            # when an endpoint's room reopens (``_claim_more``).
            claims = self._claim_ahead(owed=True)
            try:
                outcomes = await self.db.run(
                    attempts.record_many, [(i, r) for i, r, _ in batch], self.settings.webhook_retry_schedule
                )
            except Exception as exc:  # noqa: BLE001 - handed to each sender, which logs it
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                if not claims and not self.refilling:
                    self.wake.set()  # no claim under way: the free slots are the loop's
            self.counts["record_batches"] += 1
            self.counts["recorded"] += len(batch)
            for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
            self._drop_disabled({i.webhook_id for (i, _, _), o in zip(batch, outcomes, strict=True) if o == "disabled"})

    async def _post(self, url: str, secrets: list[str], message_id: str, body: bytes) -> Result:
        started, clock = utcnow(), time.monotonic()
        headers = signing.headers(secrets, message_id, int(time.time()), body)

        def done(**kw) -> Result:
            return Result(started_at=started, duration_ms=int((time.monotonic() - clock) * 1000), **kw)

        try:
            answer = await self.sender.post(url, headers, body)
        except TimeoutError:
            return done(error=f"timed out after {self.settings.webhook_timeout:g} s")
        except ssrf.BlockedAddress as exc:
            return done(error=f"refused address: {exc}")
        except sender.SendError as exc:
            return done(error=str(exc))
        except Exception as exc:  # noqa: BLE001 - whatever it is, it is this attempt's error
            log.warning("delivery %s: the send failed unexpectedly", message_id, exc_info=True)
            return done(error=f"the send failed unexpectedly ({str(exc)[:200] or type(exc).__name__})")
        return done(
            status_code=answer.status,
            body=answer.preview.decode("utf-8", "replace"),
            retry_after=_retry_after(answer.retry_after),
        )

    def _refusal(self, url: str) -> str | None:
        try:
            return self.refusals[url]
        except KeyError:
            pass
        if len(self.refusals) >= REFUSALS_KEPT:
            self.refusals.clear()
        self.refusals[url] = refusal = self._check(url)
        return refusal

    def _check(self, url: str) -> str | None:
        try:
            ssrf.check_url(
                url, production=self.settings.is_production, allowed_networks=self.settings.webhook_allowed_networks
            )
        except UsageProblem as exc:  # what the operator reads in the attempt log: the rule, not our class name
            return f"not sent: {exc.message[:200]}"
        return None


def _claim_and_sign(keyring, limit: int, lease: float, exclude, rooms=None, cap=None) -> tuple[list, dict, dict]:
    """A claim and its webhooks' URLs and secrets, in one trip to a database thread. Deliveries of webhooks
    whose secret is under a key this daemon lacks are given back at once, untouched, for a daemon that has it;
    the third value names those webhooks and their key ids."""
    claimed, signing, locked = deliveries.claim_signed(keyring, limit, lease, exclude, rooms=rooms, cap=cap)
    if locked:
        deliveries.release([c for c in claimed if c.webhook_id in locked])
        claimed = [c for c in claimed if c.webhook_id not in locked]
    return claimed, signing, locked


def _retry_after(value: str | None) -> int | None:
    """A receiver's ``Retry-After`` in seconds: delay-seconds in ASCII digits, or an HTTP-date (RFC 9110 allows
    both) counted from the product's clock (nexusctl.clock, as every "now" of the worker), 0 when it is past.
    Anything else is ignored: not ASCII (str.isdigit takes ``²`` and other digits int() refuses: one such header
    made the send raise, nothing was recorded, and the delivery was sent again each time its lease ran out) or
    not a date. ``attempts.wait_after`` bounds what comes of either form the same way."""
    if not value:  # none sent (nearly every answer): not a date either, without raising to find that out
        return None
    value = value.strip()
    if not value.isascii():
        return None
    if value.isdigit():
        return int(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):  # not a date: ignored, as any garbage
        return None
    if moment.tzinfo is None:  # "-0000": RFC 5322's "UTC, source unknown"
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return max(0, math.ceil(moment.timestamp() - clock.time()))
