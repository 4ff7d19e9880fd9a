"""The `nexusctl` console script: what happens before the CLI's modules load and after it ends.

Before: peewee imports psycopg2 at its own import whenever psycopg2 is installed,
and psycopg2 brings ssl: about 5% of what `nexusctl integrations list --json`
spends on SQLite (bench/cli_startup.py). A process whose DATABASE_URL is SQLite,
or unset (the embedded default), never talks to PostgreSQL, so its peewee is
shown no psycopg2 and the driver is never loaded. Every other process
(PostgreSQL, the tests, `import nexusctl` from code) imports peewee as it is.

After: once the command has finished, its database closed and its output
flushed, tearing the interpreter down (freeing every module and object one by
one) only delays the shell prompt, by as much as a tenth of a short command's
run. The exit handlers still run; then the process leaves at once. With any
other thread still alive (the daemon's pools) the interpreter exits as usual,
joining them.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import Mapping

EXIT_BROKEN_PIPE = 141  # as nexusctl.cli.main, not imported here: this module loads first


def main() -> None:
    if uses_sqlite(os.environ) and "peewee" not in sys.modules:
        # None in sys.modules makes `import psycopg2` raise ImportError, which
        # peewee takes as "not installed"; db.database refuses PostgreSQL then.
        sys.modules.setdefault("psycopg2", None)
    # start-up: after the psycopg2 block above, so a SQLite process never loads the PostgreSQL driver
    from nexusctl.cli.main import main as run

    try:
        run()
        code = 0
    except SystemExit as exc:
        code = exc.code
    leave(code)


def uses_sqlite(env: Mapping[str, str]) -> bool:
    """Whether config.load() will pick SQLite: DATABASE_URL unset, blank or sqlite:."""
    url = env.get("DATABASE_URL", "").strip()
    return not url or url.split(":", 1)[0].lower() == "sqlite"


def leave(code) -> None:
    """Exit with ``code`` (as SystemExit takes it) without the interpreter's teardown."""
    if threading.active_count() > 1:
        sys.exit(code)
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # logging's flush among them
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:  # `nexusctl ... | head`: the reader left before the last line
            code = code or EXIT_BROKEN_PIPE
        except (OSError, ValueError):
            code = code or 1
    os._exit(code & 0xFF)  # what the OS keeps of sys.exit(code) too
