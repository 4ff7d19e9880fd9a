"""nexusctl.clock: the system clock unless the test facility (NEXUSCTL_CLOCK_FILE) moves it; never in production."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from nexusctl import clock, config
from nexusctl.errors import ConfigError


def _write(path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)  # a new inode: the reader's stat sees the change even within one mtime tick


def test_the_system_clock_by_default(monkeypatch):
    monkeypatch.delenv(clock.ENV, raising=False)
    clock.reload()
    assert clock.offset() == 0.0 and clock.describe(always=True) is None
    before = time.time()
    assert before <= clock.time() <= time.time()
    assert clock.now().tzinfo is not None


def test_the_clock_file_moves_now_and_is_read_again_when_it_changes(monkeypatch, tmp_path):
    path = tmp_path / "offset"
    monkeypatch.setenv(clock.ENV, str(path))
    monkeypatch.setenv("NODE_ENV", "test")
    clock.reload()
    assert clock.offset() == 0.0  # no file yet: no offset
    _write(path, "86400\n")
    assert clock.offset() == 86400.0
    assert 86399 < clock.time() - time.time() < 86401
    assert "+86400 s" in clock.describe() and clock.ENV in clock.describe()
    _write(path, "-5.5\n")
    assert clock.offset() == -5.5
    _write(path, "0\n")
    assert clock.describe() is None and "+0 s" in clock.describe(always=True)  # on, but not offset
    _write(path, "not a number")
    assert clock.offset() == 0.0


def test_the_setting_is_read_once_per_process_the_file_whenever_it_changes(monkeypatch, tmp_path):
    """The environment is read at the first use (a lookup per now() was ~2% of the delivery path's CPU): a
    process gets NEXUSCTL_CLOCK_FILE at start; a test changing it in its own process reloads."""
    path = tmp_path / "offset"
    _write(path, "60")
    monkeypatch.setenv(clock.ENV, str(path))
    monkeypatch.setenv("NODE_ENV", "test")
    clock.reload()
    assert clock.offset() == 60.0
    monkeypatch.delenv(clock.ENV)  # not seen until reload(): the setting was read
    assert clock.offset() == 60.0
    _write(path, "120")  # the file, though, is re-read when it changes
    assert clock.offset() == 120.0
    clock.reload()
    assert clock.offset() == 0.0 and clock.path() is None


def test_never_in_production(monkeypatch, tmp_path):
    path = tmp_path / "offset"
    _write(path, "3600")
    monkeypatch.setenv(clock.ENV, str(path))
    monkeypatch.setenv("NODE_ENV", "production")
    clock.reload()
    assert clock.offset() == 0.0 and clock.describe(always=True) is None  # ignored even if something skipped config
    env = {
        "NODE_ENV": "production",
        clock.ENV: str(path),
        "DATABASE_URL": "postgresql://db/x",
        "FRONTEND_URL": "https://app.example.com",
        "ENCRYPTION_KEY": "A" * 43 + "=",
        "JWT_SECRET": "s" * 40,
    }
    with pytest.raises(ConfigError, match=f"{clock.ENV}: a test facility"):
        config.load(env)
    assert clock.ENV in config.variable_names()


def test_analytics_reporting_windows_end_on_the_product_clock(monkeypatch, tmp_path):
    """The providers' reporting windows (analytics) end "today" by the product's clock, as the emulators see it."""
    import datetime as dt

    from nexusctl.providers.sync import analytics

    path = tmp_path / "offset"
    _write(path, str(10 * 86400))
    monkeypatch.setenv(clock.ENV, str(path))
    monkeypatch.setenv("NODE_ENV", "test")
    clock.reload()
    since, until = analytics._days_window()
    assert until == (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=10)).date()
    assert since == until - dt.timedelta(days=analytics.WINDOW_DAYS - 1)


def test_a_wait_is_a_plain_sleep_without_the_facility(monkeypatch):
    monkeypatch.delenv(clock.ENV, raising=False)
    clock.reload()
    slept = []

    async def sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)  # the wait imports asyncio when it runs (start-up)
    monkeypatch.setattr(clock, "time", lambda: pytest.fail("the product clock is not looked at"))
    asyncio.run(clock.wait(30, since=12.0))
    assert slept == [30]  # one sleep of the whole wait, whatever ``since`` says


def _with_file(monkeypatch, tmp_path):
    path = tmp_path / "offset"
    _write(path, "0")
    monkeypatch.setenv(clock.ENV, str(path))
    monkeypatch.setenv("NODE_ENV", "test")
    clock.reload()
    return path


def test_a_wait_ends_early_once_the_clock_file_moves_time_past_it(monkeypatch, tmp_path):
    path = _with_file(monkeypatch, tmp_path)

    async def scenario():
        started = time.monotonic()
        waiting = asyncio.create_task(clock.wait(30))
        await asyncio.sleep(0.2)
        _write(path, "20")  # not past the end yet
        await asyncio.sleep(0.2)
        assert not waiting.done()
        _write(path, "31")
        await asyncio.wait_for(waiting, 5)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 5  # not the 30 s


def test_a_move_made_after_since_but_before_the_wait_began_counts(monkeypatch, tmp_path):
    """A test moves the clock once it sees the product say it waits: the wait counts from before that line."""
    path = _with_file(monkeypatch, tmp_path)
    since = clock.time()
    _write(path, "31")
    started = time.monotonic()
    asyncio.run(asyncio.wait_for(clock.wait(30, since=since), 5))
    assert time.monotonic() - started < 5


def test_a_wait_still_ends_in_real_time_when_the_clock_does_not_move(monkeypatch, tmp_path):
    _with_file(monkeypatch, tmp_path)
    started = time.monotonic()
    asyncio.run(clock.wait(0.3))
    assert time.monotonic() - started >= 0.3
