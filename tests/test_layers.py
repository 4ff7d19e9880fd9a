"""The layers and the lint hold: import-linter's contracts (pyproject.toml [tool.importlinter], drawn in
docs/architecture.md), ruff's checks and ruff's format ([tool.ruff]), and the rule that an import inside a
function is there for start-up speed and says so.

cli | daemon over core over providers | db over the kernel; no import cycle between the modules of a package;
the CLI and the daemon reach the tables only through the core. A new import against them fails here, naming it.
"""

from __future__ import annotations

import ast
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


def _function_level_imports(tree: ast.AST):
    """Every import statement inside a function (at any depth), in line order."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return sorted(set(found), key=lambda n: n.lineno)


def _gives_a_reason(comment: str) -> bool:
    return "start-up" in comment or "optional extra" in comment


def test_every_function_level_import_says_it_is_for_start_up_speed():
    """An import inside a function is for start-up speed (a command, or a module the CLI loads, leaves a
    costly module until it is needed) or of an optional extra that may not be installed (the otel extra), and
    says so: a comment naming "start-up" or "optional extra" on its line, on the line above, or above the run of
    imports it belongs to. No other reason is allowed: an import that dodges a cycle is a layering fault
    (import-linter sees function-level imports too, so such a cycle fails the contracts above), and one with no
    reason belongs at the top of the module."""
    unexplained = []
    for path in sorted((ROOT / "nexusctl").rglob("*.py")):
        lines = path.read_text().splitlines()
        imports = _function_level_imports(ast.parse("\n".join(lines)))
        ending_at = {node.end_lineno: node for node in imports}
        explained: set[int] = set()
        for node in imports:
            if _gives_a_reason(lines[node.lineno - 1].partition("#")[2]):
                explained.add(node.lineno)
                continue
            above = node.lineno - 1
            while above > 0 and not lines[above - 1].strip():
                above -= 1
            previous = lines[above - 1].strip() if above else ""
            if previous.startswith("#") and _gives_a_reason(previous):
                explained.add(node.lineno)
            elif above in ending_at and ending_at[above].lineno in explained:  # the run of imports it is in
                explained.add(node.lineno)
            else:
                unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert unexplained == [], "function-level imports without a start-up comment:\n" + "\n".join(unexplained)
