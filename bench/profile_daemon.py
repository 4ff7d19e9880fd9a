"""Run `nexusctl ...` (the daemon) under a sampling profiler of all its threads; for the benchmarks.

py-spy is not installed on the project machine and cProfile sees one thread only (the database work runs
in executor threads), so a thread samples every thread's stack (``sys._current_frames``) every
--interval seconds, drops the samples of threads that are waiting (their innermost frame is a wait: a
selector, a lock, a queue), and writes, every few seconds and at exit, the functions by samples:
own (innermost frame) and total (anywhere on the stack). A busy thread not holding the GIL is counted
too, so the figures are "where threads are busy", close to GIL-holder samples on a CPU-bound process.

    NEXUS_PROFILE_OUT=/tmp/prof.txt python bench/profile_daemon.py daemon --port 8080
    (bench/real_paths.py --profile DIR runs its daemons this way)
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time

IDLE = {("selectors.py", "select"), ("threading.py", "wait"), ("thread.py", "_worker"), ("queue.py", "get"),
        ("base_events.py", "_run_once"), ("threading.py", "_wait_for_tstate_lock"), ("socket.py", "accept")}
INTERVAL = float(os.environ.get("NEXUS_PROFILE_INTERVAL", "0.002"))


def _where(code) -> str:
    path = code.co_filename
    for marker in ("site-packages/", "/lib/python3", "wt-speed/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{code.co_name}"


class Sampler(threading.Thread):
    def __init__(self, out: str) -> None:
        super().__init__(daemon=True, name="profiler")
        self.out, self.own, self.total, self.samples = out, collections.Counter(), collections.Counter(), 0

    def run(self) -> None:
        me, last_dump = threading.get_ident(), time.monotonic()
        while True:
            time.sleep(INTERVAL)
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                code = frame.f_code
                if (os.path.basename(code.co_filename), code.co_name) in IDLE:
                    continue
                self.samples += 1
                self.own[_where(code)] += 1
                seen = set()
                while frame is not None:
                    name = _where(frame.f_code)
                    if name not in seen:
                        seen.add(name)
                        self.total[name] += 1
                    frame = frame.f_back
            if time.monotonic() - last_dump > 3:
                self.dump()
                last_dump = time.monotonic()

    def dump(self) -> None:
        n = max(self.samples, 1)
        lines = [f"busy-thread samples: {self.samples} (every {INTERVAL * 1000:g} ms)", "", "own:"]
        lines += [f"{c / n * 100:5.1f}% {name}" for name, c in self.own.most_common(60)]
        lines += ["", "total:"]
        lines += [f"{c / n * 100:5.1f}% {name}" for name, c in self.total.most_common(120)]
        with open(self.out + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(self.out + ".tmp", self.out)


def main() -> None:
    Sampler(os.environ["NEXUS_PROFILE_OUT"]).start()
    from nexusctl.cli.entry import main as cli_main

    sys.argv = ["nexusctl", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
