"""Named leases (the outbox relay's): one holder at a time, renewals, takeover after expiry."""

from __future__ import annotations

import threading

from support import clock as shared_clock

from nexusctl.core import leases


def test_one_holder_at_a_time_and_a_dead_holders_lease_is_taken_over(database, monkeypatch, tmp_path):
    advance = shared_clock.own_file(monkeypatch, tmp_path / "clock")
    assert leases.acquire("relay", "daemon-a", 30)
    assert not leases.acquire("relay", "daemon-b", 30)  # held
    assert leases.acquire("relay", "daemon-a", 30)  # a renewal
    assert leases.holder_of("relay")[0] == "daemon-a"
    # daemon-a dies: it stops renewing, the lease runs out, daemon-b takes over.
    advance(29)
    assert not leases.acquire("relay", "daemon-b", 30)  # not run out yet
    advance(2)
    assert leases.acquire("relay", "daemon-b", 30)
    assert not leases.acquire("relay", "daemon-a", 30)


def test_release_lets_another_take_it_at_once(database):
    assert leases.acquire("relay", "daemon-a", 30)
    leases.release("relay", "daemon-b")  # not the holder: no effect
    assert not leases.acquire("relay", "daemon-b", 30)
    leases.release("relay", "daemon-a")
    assert leases.holder_of("relay") is None
    assert leases.acquire("relay", "daemon-b", 30)


def test_contenders_racing_for_a_new_lease_get_exactly_one_winner(database, db_url):
    from nexusctl.db.database import database_proxy

    wins, start = [], threading.Barrier(8)

    def contend(name):
        database_proxy.connect(reuse_if_open=True)
        try:
            start.wait()
            if leases.acquire("race", name, 30):
                wins.append(name)
        finally:
            if not db_url.startswith("sqlite"):
                database_proxy.close()

    threads = [threading.Thread(target=contend, args=(f"d{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1 and leases.holder_of("race")[0] == wins[0]
