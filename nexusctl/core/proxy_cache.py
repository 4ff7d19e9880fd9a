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
  put its older row back (a generation per id).
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


def generation(integration_id: str) -> int:
    with _lock:
        return _generation.get(integration_id, 0)


def put(integration_id: str, row, tokens, seen_generation: int) -> None:
    """Keep (row, tokens) unless the entry was dropped since the load that read them began."""
    now = time.monotonic()
    with _lock:
        if _generation.get(integration_id, 0) != seen_generation:
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
    key = str(integration_id)
    with _lock:
        _entries.pop(key, None)
        _generation[key] = _generation.get(key, 0) + 1
        if len(_generation) > 4 * MAX_ENTRIES:  # generations only matter while a load is in flight
            _generation.clear()
            _entries.clear()


def clear() -> None:
    with _lock:
        _entries.clear()
        _generation.clear()
