"""The API proxy's cache of integrations and their decrypted tokens, per process, for TTL seconds.

Without it every proxied call read the row and opened three ciphertexts
(a database round trip through the daemon's database threads): most of the
proxy's cost per call (docs/benchmarks.md, Provider API proxy).

How stale an entry may be, and why:

- Changes made by this process are seen at once: every request that changes
  one integration (``/integrations/{id}...`` other than GET: disconnect,
  deactivate, reconnect, settings), every token written by a refresh
  (nexusctl.core.refresh) and every refusal or refresh the proxy itself meets
  drop the entry (``forget``); a load that began before such a drop does not
  put its older row back: it records what ``generation`` said when it began
  (a counter per id, under a global epoch) and ``put`` keeps its row only if
  that is unchanged. The per-id counters matter only while a load is in
  flight, so past 4 x MAX_ENTRIES of them they are all dropped at once; the
  epoch moves on then (and on ``clear``), so a load in flight across that
  drop is discarded too, rather than taking its id's counter back to zero for
  a match.
- Changes made by another daemon or the CLI (a disconnect, a deactivation, a
  refresh, ``keys rotate``) are seen within TTL seconds (1 s): the entry is
  read again from the database after that. One read per integration per second
  keeps the proxy's cost flat under load, and one second is shorter than any
  caller could act on a disconnect it did not make itself. What an old entry
  can do in that second is what the integration could do a second earlier: a
  refreshed-away token the provider refuses is refreshed (single-flight) and
  the call retried, as without the cache; a key rotation changes ciphertexts,
  not the token.

Entries hold plaintext tokens: they are dropped when they expire (the oldest
are purged on every insert) and never leave the process.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

TTL = 1.0  # seconds an entry is used without reading the row again
MAX_ENTRIES = 10_000

_entries: OrderedDict = OrderedDict()  # id -> (expires (monotonic), row, tokens)
_generation: dict[str, int] = {}
_epoch = 0  # moved on whenever _generation is dropped whole: a load begun before never matches again
_lock = threading.Lock()


def get(integration_id: str):
    """(row, tokens) while fresh, else None."""
    now = time.monotonic()
    with _lock:
        entry = _entries.get(integration_id)
        if entry is None:
            return None
        if entry[0] <= now:
            del _entries[integration_id]
            return None
        return entry[1], entry[2]


def generation(integration_id: str) -> tuple[int, int]:
    """What a load records before it reads the row, for ``put``: (epoch, this id's counter)."""
    with _lock:
        return _epoch, _generation.get(integration_id, 0)


def put(integration_id: str, row, tokens, seen_generation: tuple[int, int]) -> None:
    """Keep (row, tokens) unless the entry was dropped since the load that read them began."""
    now = time.monotonic()
    with _lock:
        if (_epoch, _generation.get(integration_id, 0)) != seen_generation:
            return
        _entries.pop(integration_id, None)
        _entries[integration_id] = (now + TTL, row, tokens)
        while _entries:
            oldest, (expires, _row, _tokens) = next(iter(_entries.items()))
            if expires > now and len(_entries) <= MAX_ENTRIES:
                break
            del _entries[oldest]


def forget(integration_id) -> None:
    """This process changed the integration: the next proxied call reads it again."""
    global _epoch
    key = str(integration_id)
    with _lock:
        _entries.pop(key, None)
        _generation[key] = _generation.get(key, 0) + 1
        if len(_generation) > 4 * MAX_ENTRIES:  # counters only matter while a load is in flight
            _generation.clear()
            _entries.clear()
            _epoch += 1  # every load in flight now is discarded by put


def clear() -> None:
    global _epoch
    with _lock:
        _entries.clear()
        _generation.clear()
        _epoch += 1
