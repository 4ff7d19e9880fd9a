"""Benchmark: CLI wall time against a hello-world Typer app.

Each command runs ``--runs`` times, each in a fresh process (what a user or a cron job pays), in
rounds that alternate the commands so machine noise hits all of them; the figure is the median wall
time, and the ratio is against the hello-world app run the same way (``python hello.py ...``, the
same interpreter, Typer imported):

- ``nexusctl --help`` against ``hello.py --help``;
- ``nexusctl integrations list --json`` (a migrated database with 20 integrations) against
  ``hello.py hello`` (prints one line).

    .venv/bin/python bench/cli.py                      # SQLite in a temporary directory
    .venv/bin/python bench/cli.py --database-url postgresql://postgres@127.0.0.1:5432/bench_b --runs 20
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    NEXUSCTL,
    base_env,
    compile_bytecode,
    is_postgres,
    median,
    migrate,
    write_json,
)

HELLO = '''import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    print(f"hello {name}")


@app.command()
def bye() -> None:
    """Say goodbye (a second command, so Typer builds a group as nexusctl does)."""
    print("bye")


if __name__ == "__main__":
    app()
'''

SEED = """
import uuid
from nexusctl.db.database import bind, open_database
from nexusctl.db.models import Integration
from nexusctl import config
from nexusctl.enums import Provider
settings = config.load()
bind(open_database(settings.database_url.get()))
Integration.delete().execute()
providers = list(Provider)
for i in range(20):
    Integration.create(user_id=uuid.UUID("{user}"), provider=providers[i % 20], name=f"@cli{{i}}", metadata={{"i": i}})
"""


def _wall(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv[1:]} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def run(database_url: str | None, runs: int) -> dict:
    compile_bytecode()
    work = Path(tempfile.mkdtemp(prefix="nexus-bench-cli-"))
    database_url = database_url or f"sqlite:///{work}/cli.db"
    env = base_env(work, database_url)
    migrate(env)
    subprocess.run([sys.executable, "-c", SEED.format(user=uuid.uuid4())], env=env, check=True)
    hello = work / "hello.py"
    hello.write_text(HELLO)
    commands = {
        "hello --help": [sys.executable, str(hello), "--help"],
        "hello hello": [sys.executable, str(hello), "hello"],
        "nexusctl --help": [str(NEXUSCTL), "--help"],
        "nexusctl integrations list --json": [str(NEXUSCTL), "integrations", "list", "--json"],
    }
    for argv in commands.values():
        _wall(argv, env)  # warm the page cache
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            samples[name].append(_wall(argv, env))
    shutil.rmtree(work, ignore_errors=True)
    ms = {name: median(values) * 1000 for name, values in samples.items()}
    return {
        "database": "PostgreSQL" if is_postgres(database_url) else "SQLite",
        "runs": runs,
        "median_ms": ms,
        "min_ms": {name: min(values) * 1000 for name, values in samples.items()},
        "ratios": {
            "nexusctl --help": ms["nexusctl --help"] / ms["hello --help"],
            "nexusctl integrations list --json": ms["nexusctl integrations list --json"] / ms["hello hello"],
        },
    }


def markdown(result: dict) -> str:
    ms, low = result["median_ms"], result["min_ms"]
    rows = [("nexusctl --help", "hello --help"), ("nexusctl integrations list --json", "hello hello")]
    out = [
        f"| Command ({result['database']}, {result['runs']} fresh processes each) | median ms (min) "
        "| hello-world Typer median ms (min) | ratio |",
        "|---|---|---|---|",
    ]
    for mine, base in rows:
        out.append(
            f"| `{mine}` | {ms[mine]:.0f} ({low[mine]:.0f}) | `{base}`: {ms[base]:.0f} ({low[base]:.0f}) "
            f"| **{result['ratios'][mine]:.2f}** |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per command")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    result = run(args.database_url, args.runs)
    write_json(args.json, result)
    print(markdown(result))


if __name__ == "__main__":
    main()
