"""nexusctl.daemon.protocol's pieces that a process test cannot provoke on demand: a failed accept's log, the cap."""

from __future__ import annotations

import asyncio
import errno
import logging
import resource

from nexusctl.daemon.protocol import connection_cap, install_accept_error_log


def test_a_failed_accept_is_logged_once_a_minute_not_once_per_try(caplog):
    loop = asyncio.new_event_loop()
    try:
        install_accept_error_log(loop)
        error = OSError(errno.EMFILE, "Too many open files")
        with caplog.at_level(logging.WARNING):
            for _ in range(5000):  # what asyncio reports, once per failed accept
                loop.call_exception_handler({"message": "socket.accept() out of system resource", "exception": error})
            loop.call_exception_handler({"message": "something else"})  # still asyncio's own handler
    finally:
        loop.close()
    lines = [r.getMessage() for r in caplog.records if "cannot accept connections" in r.getMessage()]
    assert len(lines) == 1 and "Too many open files" in lines[0] and "LimitNOFILE" in lines[0], lines
    assert any(r.getMessage() == "something else" for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records if "cannot accept" in r.getMessage())


def test_the_connection_cap_leaves_room_under_the_file_limit(monkeypatch):
    for soft, cap in ((256, 64), (1024, 768), (65536, 57216), (150, 8)):
        monkeypatch.setattr(resource, "getrlimit", lambda _which, soft=soft: (soft, soft))
        assert connection_cap(128) == cap
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert connection_cap(128) is None
