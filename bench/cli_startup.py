"""How fast `nexusctl integrations list --json` starts, against a hello-world Typer app.

Both run as fresh processes of the same interpreter, alternating, on the same
machine; the figure is the ratio of the medians (goal: within 1.3x). The list
reads a SQLite database in a temporary directory holding ``--rows`` integrations.
The project's .pyc files are written first, as `pip install` writes them.

A third line runs the same command through ``nexusctl.cli.main`` instead of the
console script (nexusctl.cli.entry): what the entry's two steps (no psycopg2 on
SQLite, no interpreter teardown) are worth.

    .venv/bin/python bench/cli_startup.py              # 30 rounds
    .venv/bin/python bench/cli_startup.py --rounds 50 --rows 50
    .venv/bin/python bench/cli_startup.py --instructions   # also count instructions (valgrind)

Wall time on a shared machine wanders by tens of percent between runs; the
instruction counts (valgrind's cachegrind, user space only) are the same every
run, so they show what a change is worth. hyperfine gives the same comparison
when it is installed; this script needs nothing but the project.
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HELLO = '''\
import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world", json: bool = False) -> None:
    """Say hello."""
    print(f"hello {name}")


if __name__ == "__main__":
    app()
'''

GOAL = 1.3
# The command without the console script's entry (nexusctl.cli.entry), as `import nexusctl` code runs it.
PLAIN = "import sys; sys.argv[0] = 'nexusctl'; from nexusctl.cli.main import main; main()"


def _seed(database_url: str, rows: int) -> None:
    """``rows`` integrations with sealed tokens, as a connected user would have."""
    from nexusctl import config
    from nexusctl.crypto import keyring_from_settings
    from nexusctl.db.database import bind, open_database
    from nexusctl.db.models import Integration
    from nexusctl.db.secrets import seal
    from nexusctl.enums import Provider

    bind(open_database(database_url))
    keyring = keyring_from_settings(config.load())
    user = uuid.uuid4()
    providers = list(Provider)
    for i in range(rows):
        row = Integration(user_id=user, provider=providers[i % len(providers)], name=f"@bench{i}")
        seal(keyring, row, "access_token", f"access-{i}")
        row.save(force_insert=True)


def _time(command: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child): CPU time tells more on a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.decode()[-400:]}")
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _instructions(command: list[str], env: dict) -> int | None:
    """Instructions the process executes (user space), or None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    done = subprocess.run(
        [valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    counts = [line.rsplit(":", 1)[1] for line in done.stderr.splitlines() if "I   refs:" in line]
    return int(counts[-1].replace(",", "")) if counts else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="timed runs of each (alternating)")
    parser.add_argument("--rows", type=int, default=20, help="integrations in the database")
    parser.add_argument("--instructions", action="store_true", help="also count instructions with valgrind")
    args = parser.parse_args()

    from common import compile_bytecode

    compile_bytecode()

    python = Path(sys.executable)
    nexusctl = python.parent / "nexusctl"
    with tempfile.TemporaryDirectory(prefix="nexusctl-bench-") as tmp:
        database_url = f"sqlite:///{tmp}/bench.db"
        env = {key: value for key, value in os.environ.items() if not key.startswith(("NEXUS", "DATABASE_", "REDIS_"))}
        env.update(
            DATABASE_URL=database_url,
            NEXUS_DATA_DIR=f"{tmp}/data",
            NODE_ENV="development",
            ENCRYPTION_KEY=base64.b64encode(os.urandom(32)).decode(),
        )
        env.pop("REDIS_URL", None)
        os.environ.update(env)
        subprocess.run([str(nexusctl), "-q", "db", "migrate"], env=env, check=True)
        _seed(database_url, args.rows)
        hello = Path(tmp) / "hello.py"
        hello.write_text(HELLO)
        commands = {
            "hello-world Typer app": [str(python), str(hello), "--json"],
            "nexusctl integrations list --json": [str(nexusctl), "integrations", "list", "--json"],
            "  same, via nexusctl.cli.main": [str(python), "-c", PLAIN, "integrations", "list", "--json"],
        }
        for command in commands.values():  # warm the page cache
            _time(command, env)
            _time(command, env)
        times = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, command in commands.items():
                times[name].append(_time(command, env))
        counts = {name: _instructions(command, env) for name, command in commands.items()} if args.instructions else {}

    print(
        f"{args.rounds} rounds, {args.rows} integrations, Python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for name, values in times.items():
        wall, cpu = [w for w, _ in values], [c for _, c in values]
        print(
            f"  {name:<36} wall median {statistics.median(wall) * 1000:5.0f} ms (min {min(wall) * 1000:4.0f}, "
            f"max {max(wall) * 1000:4.0f})   CPU median {statistics.median(cpu) * 1000:5.0f} ms"
        )
    (base_wall, base_cpu), (wall, cpu), (plain_wall, _) = (
        (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for v in times.values()
    )
    ratio = wall / base_wall
    print(
        f"ratio (wall, median) {ratio:.2f}x   ratio (CPU, median) {cpu / base_cpu:.2f}x   "
        f"goal <= {GOAL}x (wall): {'met' if ratio <= GOAL else 'NOT met'}   "
        f"(via nexusctl.cli.main: {plain_wall / base_wall:.2f}x)"
    )
    if counts:
        base = counts["hello-world Typer app"]
        print(
            "instructions (valgrind): "
            + "   ".join(
                f"{name.strip()} {count / 1e6:.0f}M ({count / base:.2f}x)" for name, count in counts.items() if count
            )
        )


if __name__ == "__main__":
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
    main()
