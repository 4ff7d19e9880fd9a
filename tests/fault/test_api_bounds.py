"""List answers are bounded in bytes whatever the page size, and so is the daemon's memory.

The review's case, scaled to stay quick: events of 250 KB emitted through the
API (each one delivery), then ``GET .../deliveries?limit=1000``. Before, the
answer held every payload (100 MB for 400 of them) and four such lists at once
took the daemon to 2 GB. Now a page ends at about 1 MiB with a cursor to the
rest, every delivery is reachable across the pages, and the daemon's peak RSS
(VmHWM of the real process) stays under 200 MB with four lists at once. The
CLI's `events list --json` prints the same outbox rows, bounded the same way,
and `events tail --last 1000` prints them all while loading a few MB at a time.
"""

from __future__ import annotations

import json
import threading
import urllib.parse

import pytest
from api_fixtures import api, receiver  # noqa: F401 - pytest fixtures
from apikit import bearer, call, seed_world

from nexusctl.core.paging import PAGE_BYTES

EVENTS = 200
BLOB = 250_000  # bytes of event data: under the 256 KiB an event may carry
ENVELOPE = 4096  # the answer's bytes besides its rows: success, paging
RSS_LIMIT_KB = 200 * 1024
CLI_RSS_LIMIT_KB = 100 * 1024


def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


@pytest.fixture(scope="module")
def big(api):  # noqa: F811
    """A world of its own with EVENTS deliveries of 250 KB (and its seed delivery), emitted through the API."""
    world = seed_world(api.stack, api.receiver)
    headers = bearer("owner", world.owner, world.other)
    for n in range(EVENTS):
        emitted = call(
            "POST",
            f"{api.base}/integrations/{world.integration}/events",
            headers=headers,
            json_body={"type": "post.created", "data": {"n": n, "blob": chr(97 + n % 26) * BLOB}},
        )
        assert emitted.status == 202 and emitted.json()["data"]["deliveriesQueued"] == 1, emitted.text
    return world, headers


def _page(api, world, headers, limit=1000, cursor=None):  # noqa: F811
    query = {"limit": limit, **({"cursor": cursor} if cursor else {})}
    answer = call(
        "GET",
        f"{api.base}/integrations/webhooks/{world.webhook}/deliveries?{urllib.parse.urlencode(query)}",
        headers=headers,
    )
    assert answer.status == 200, answer.text[:300]
    return answer


def test_a_delivery_list_is_bounded_in_bytes_and_its_cursor_reaches_every_delivery(api, big):  # noqa: F811
    world, headers = big
    seen, pages, cursor = [], 0, None
    while True:
        answer = _page(api, world, headers, cursor=cursor)
        body = answer.json()
        assert len(answer.body) <= PAGE_BYTES + ENVELOPE, len(answer.body)
        assert body["data"], "a page always holds at least one row"
        assert body["paging"]["limit"] == 1000
        for row in body["data"]:  # whole payloads: 250 KB is under what a list leaves out
            assert "payloadOmitted" not in row and len(row["payload"]["data"].get("blob", "")) in (0, BLOB)
        seen += [row["id"] for row in body["data"]]
        pages += 1
        cursor = body["paging"]["nextCursor"]
        assert body["paging"]["hasMore"] is (cursor is not None)
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == EVENTS + 1  # every delivery once (and the seeded one)
    assert pages >= EVENTS * BLOB // PAGE_BYTES  # about four of 250 KB per page
    emitted = sorted(row["payload"]["data"]["n"] for row in _all_rows(api, world, headers, seen))
    assert emitted == list(range(EVENTS))


def _all_rows(api, world, headers, ids):  # noqa: F811
    """Each delivery's own view (the whole payload): what the list's ids lead to."""
    rows = []
    for delivery_id in ids:
        one = call("GET", f"{api.base}/integrations/webhooks/deliveries/{delivery_id}", headers=headers)
        assert one.status == 200, one.text[:300]
        if "n" in one.json()["data"]["payload"]["data"]:
            rows.append(one.json()["data"])
    return rows


def test_four_large_lists_at_once_keep_the_daemon_under_200_mb(api, big):  # noqa: F811
    world, headers = big
    sizes, errors = [], []

    def list_twice():
        try:
            for _ in range(2):
                sizes.append(len(_page(api, world, headers).body))
        except AssertionError as exc:  # reported below, from the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=list_twice) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and len(sizes) == 8, errors
    assert max(sizes) <= PAGE_BYTES + ENVELOPE
    peak = _peak_rss_kb(api.stack.process.pid)
    assert peak < RSS_LIMIT_KB, f"the daemon's peak RSS was {peak // 1024} MB"


def test_the_cli_events_list_is_bounded_the_same_way(api, big):  # noqa: F811
    world, _headers = big
    listed = api.stack.cli("events", "list", "--integration", world.integration, "--limit", "1000", "--json")
    assert listed.returncode == 0, listed.stderr[-500:]
    assert len(listed.stdout.encode()) <= PAGE_BYTES + ENVELOPE, len(listed.stdout)
    rows = json.loads(listed.stdout)
    assert any(row["type"] == "post.created" and len(row["payload"]["blob"]) == BLOB for row in rows), rows[:1]
    assert "more: add --cursor" in listed.stderr


# The peak of the process's own memory map (VmHWM): ru_maxrss would also count the forked test process.
_PEAK_RSS_OF_CLI = """
import atexit, sys


def peak():
    with open("/proc/self/status") as status:
        hwm = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    sys.stderr.write(f"\\npeak-rss-kb {hwm}\\n")


atexit.register(peak)
sys.argv = ["nexusctl", *sys.argv[1:]]
from nexusctl.cli.entry import main  # noqa: E402
main()  # the console script's own entry (it leaves through the exit handlers)
"""


def test_events_tail_prints_a_thousand_large_events_without_holding_them_all(api, big):  # noqa: F811
    """`events tail --last 1000` loaded all of them (and `newer_than` 500) at once: 50 MB of 250 KB events here."""
    import subprocess
    import sys

    world, _headers = big
    tail = subprocess.run(
        [
            sys.executable,
            "-c",
            _PEAK_RSS_OF_CLI,
            "events",
            "tail",
            "--integration",
            world.integration,
            "--type",
            "post.created",
            "--last",
            "1000",
            "--json",
            "--timeout",
            "1s",
        ],
        env=api.stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    printed = [json.loads(line) for line in tail.stdout.splitlines() if line.strip()]
    assert sorted(row["payload"]["n"] for row in printed if "n" in row["payload"]) == list(range(EVENTS)), tail.stderr[
        -500:
    ]
    peak_kb = int(tail.stderr.rsplit("peak-rss-kb ", 1)[1].split()[0])
    assert peak_kb < CLI_RSS_LIMIT_KB, f"events tail peaked at {peak_kb // 1024} MB"
