"""The layers and the lint hold: import-linter's contracts (pyproject.toml [tool.importlinter], drawn in
docs/architecture.md), ruff's checks and ruff's format ([tool.ruff]).

cli | daemon over core over providers | db over the kernel; no import cycle between the modules of a package;
the CLI and the daemon reach the tables only through the core. A new import against them fails here, naming it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout, result.stdout[-2000:]


def test_ruff_finds_nothing():
    """pyflakes' checks (unused and undefined names), pycodestyle's errors, import order and the 120-column
    limit, as [tool.ruff] in pyproject.toml sets them, over the whole checkout."""
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_ruff_format_leaves_every_file_as_it_is():
    """One layout for the whole checkout (ruff format, the 120 columns of [tool.ruff]): a file written another
    way fails here, naming it; `ruff format .` rewrites it."""
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), "format", "--check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
