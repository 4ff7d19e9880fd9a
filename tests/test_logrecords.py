"""nexusctl.logrecords: a line's record, made from a template, is the record logging itself would make."""

from __future__ import annotations

import logging
import threading
import time

from nexusctl import logrecords

TIMED = ("created", "msecs", "relativeCreated")


def _untimed(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in TIMED}


def test_a_line_logged_where_no_callers_place_is_looked_up_is_the_record_logging_makes(monkeypatch, caplog):
    """The daemon's mode (logging._srcfile None): what a formatter reads (the level's name, the thread, the process,
    the message, the time) is as Logger.info would have set it, in the caller's thread, the second time too."""
    monkeypatch.setattr(logging, "_srcfile", None)
    log = logging.getLogger("nexusctl.test.logrecords")
    caplog.set_level(logging.INFO, logger=log.name)
    for n in range(2):
        log.info("refreshed %s in %.0f ms", "it", n)
        before = time.time()
        logrecords.info(log, "refreshed %s in %.0f ms", "it", n)
        after = time.time()
    made, ours = caplog.records[-2:]
    assert _untimed(ours) == _untimed(made) and ours.getMessage() == "refreshed it in 1 ms"
    assert before <= ours.created <= after and ours.msecs == int(ours.created * 1000) % 1000
    assert made.relativeCreated <= ours.relativeCreated <= made.relativeCreated + (after - before) * 1000 + 1

    seen = []

    def elsewhere():
        logrecords.info(log, "from %s", "a thread")
        seen.append(caplog.records[-1])

    for name in ("another", "a second"):  # one after the other: the second may get the first's thread id
        thread = threading.Thread(target=elsewhere, name=name)
        thread.start()
        thread.join()
        assert seen[-1].threadName == name and seen[-1].thread == thread.ident
    current = threading.current_thread()
    monkeypatch.setattr(current, "name", "renamed")
    logrecords.info(log, "after a rename")
    assert caplog.records[-1].threadName == "renamed"


def test_the_times_are_read_as_logging_reads_them(monkeypatch):
    """created, msecs and relativeCreated as this Python's LogRecord works them out from the same clock reading."""
    log = logging.getLogger("nexusctl.test.logrecords")
    for now in (1_796_650_884.9995, 1_796_650_884.0004, 1_796_650_885.1234567):
        monkeypatch.setattr(time, "time", lambda now=now: now)
        monkeypatch.setattr(time, "time_ns", lambda now=now: int(now * 1e9))
        made = log.makeRecord(log.name, logging.INFO, logrecords.UNKNOWN_FILE, 0, "m", (), None, "(unknown function)")
        ours = logrecords.record(log, logging.INFO, "m", ())
        assert (ours.created, ours.msecs, ours.relativeCreated) == (made.created, made.msecs, made.relativeCreated)


def test_where_the_callers_place_is_looked_up_the_line_says_it(caplog):
    """The CLI's mode (logging's default): the record names the caller's file and line, not logrecords'."""
    log = logging.getLogger("nexusctl.test.logrecords")
    caplog.set_level(logging.INFO, logger=log.name)
    logrecords.info(log, "hello %s", "there")
    record = caplog.records[-1]
    assert (
        record.pathname == __file__ and record.funcName == "test_where_the_callers_place_is_looked_up_the_line_says_it"
    )


def test_below_the_level_nothing_is_made(monkeypatch, caplog):
    monkeypatch.setattr(logging, "_srcfile", None)
    log = logging.getLogger("nexusctl.test.logrecords")
    caplog.set_level(logging.WARNING, logger=log.name)
    logrecords.info(log, "quiet")
    assert not [r for r in caplog.records if r.name == log.name]
