"""Run `nexusctl ...` (the daemon) under cProfile in every thread; for the benchmarks.

py-spy is not installed on the project machine, and cProfile alone sees one thread (the database
work runs in executor threads; a sampler of ``sys._current_frames`` only ever sees other threads
where they have released the GIL, so it profiles system calls, not CPU). So each thread runs under
its own ``cProfile.Profile`` timed by that thread's CPU clock (``time.thread_time``: waits on the
database or the network cost nothing); when the process exits (SIGTERM stops the daemon gracefully) the
threads' statistics are merged and written as text: functions by own time and by cumulative time.
cProfile roughly doubles the CPU of Python code, so the figures are shares, never rates.

    NEXUS_PROFILE_OUT=/tmp/prof.txt python bench/profile_daemon.py daemon --port 8080
    (bench/real_paths.py --profile DIR runs its daemons this way)
"""

from __future__ import annotations

import atexit
import cProfile
import io
import os
import pstats
import sys
import threading
import time

_DONE: list = []
_LOCK = threading.Lock()


def _profiled_run(run):
    def wrapper(self):
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        try:
            run(self)
        finally:
            profile.disable()
            with _LOCK:
                _DONE.append(profile)

    return wrapper


def _dump(main_profile: cProfile.Profile, out: str) -> None:
    main_profile.disable()
    with _LOCK:
        profiles = [main_profile, *_DONE]
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        stats.add(profile)
    text = io.StringIO()
    stats.stream = text
    stats.strip_dirs()
    text.write(f"threads profiled: {len(profiles)}\n\n== by own time ==\n")
    stats.sort_stats("tottime").print_stats(45)
    text.write("\n== by cumulative time ==\n")
    stats.sort_stats("cumulative").print_stats(90)
    with open(out, "w") as f:
        f.write(text.getvalue())


def main() -> None:
    threading.Thread.run = _profiled_run(threading.Thread.run)
    profile = cProfile.Profile(time.thread_time)
    atexit.register(_dump, profile, os.environ["NEXUS_PROFILE_OUT"])
    from nexusctl.cli.entry import main as cli_main

    sys.argv = ["nexusctl", *sys.argv[1:]]
    profile.enable()
    cli_main()


if __name__ == "__main__":
    main()
