"""Run the provider emulators by hand (the README's tour): `python -m tests.emulators [--port N]`.

Prints `export <PROVIDER>_CLIENT_ID=... <PROVIDER>_AUTH_URL=...` lines for every
provider on stdout, so `. ./emulators.env` points nexusctl at them, then serves
until Ctrl-C or SIGTERM. The simulated user consents at once. Run it from the
repository root with the project's virtualenv (aiohttp is a dependency).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading

from .server import Emulators


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Emulators(args.host, args.port) as emulators:
        for name, value in sorted(emulators.env().items()):
            print(f"export {name}={shlex.quote(value)}")
        sys.stdout.flush()
        print(f"provider emulators on {emulators.base_url} (Ctrl-C stops)", file=sys.stderr)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
