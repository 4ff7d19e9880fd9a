"""Where the CLI writes: data on stdout, everything else on stderr.

- ``--json`` prints the same dicts the API returns, one JSON document.
- On a terminal, lists are rich tables; piped, they are tab-separated lines
  with a header, so `grep`, `cut` and `awk` work.
- Colour follows each stream's TTY, ``NO_COLOR``, ``TERM=dumb`` and
  ``--no-color``. Data is never parsed as rich markup.
- rich is imported only when a terminal shows something (a table, a coloured
  line, a bar): `--json` and piped output start without it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
from typing import Callable, Iterable, Iterator, Sequence

from nexusctl.logtext import CONTROLS_BEYOND_C0

Column = tuple[str, str]  # (dict key, header)
_CONTROL_WHITESPACE = str.maketrans({"\t": " ", "\n": " ", "\r": " ", "\v": " ", "\f": " "})
# What a terminal acts on instead of showing (ESC sequences retitle it, clear it, move the cursor; CR and BS
# overwrite what came before; U+202E reverses what follows): C0 controls but tab and newline, and every
# control beyond them that the names refuse (logtext.CONTROLS_BEYOND_C0: DEL, C1, the Unicode line
# separators, the bidi controls).
_CONTROL = re.compile(f"[\x00-\x08\x0b-\x1f{CONTROLS_BEYOND_C0}]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character but tab and newline written as a ``\\xNN`` (``\\uNNNN``) escape.

    Values come from callers (names, metadata) and from providers (account names, errors): whatever they
    hold is shown, never obeyed by the terminal. --json needs none of this (JSON escapes them itself).
    """
    return _CONTROL.sub(_escape, text)


def printable_tree(value):
    """``value`` (dicts, lists, strings: an API answer) with ``printable`` applied to every string in it."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(str(k)): printable_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable_tree(v) for v in value]
    return value


def _one_line(text: str) -> str:
    """Piped output keeps one record per line: tabs and newlines become spaces."""
    return text.translate(_CONTROL_WHITESPACE)


def _cell(value) -> str:
    """How every table cell and record value is shown: the one place the CLI turns data into text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return printable(",".join(str(v) for v in value)) or "-"
    if isinstance(value, dict):
        # ensure_ascii=False keeps accents readable; it escapes C0 controls but not C1 ones or U+2028
        return printable(json.dumps(value, ensure_ascii=False, sort_keys=True)) if value else "-"
    return printable(str(value))


def colour_off(no_color_flag: bool = False) -> bool:
    """--no-color, NO_COLOR (any non-empty value) or TERM=dumb; a stream that is no terminal is plain anyway."""
    return no_color_flag or bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"


class Output:
    def __init__(self, *, quiet: bool = False, verbose: int = 0, no_color: bool = False) -> None:
        self.configure(quiet=quiet, verbose=verbose, no_color=no_color)

    def configure(self, *, quiet: bool, verbose: int, no_color: bool) -> None:
        """(Re)bind to this invocation's streams; -q/-v/--no-color after a subcommand call this again."""
        self.quiet = quiet
        self.verbose = verbose
        self.no_color = no_color
        # Bound to the streams of this invocation (CliRunner swaps them per call).
        self.stdout = sys.stdout
        self.stderr = sys.stderr
        self.__dict__.pop("out", None)
        self.__dict__.pop("err", None)

    def _console(self, stream, **options):
        # start-up: rich loads only for terminal output
        from rich.console import Console

        # color_system=None drops every escape code (bold too), not just colours. Rich
        # also leaves them out by itself on a stream that is not a terminal.
        colours = {"color_system": None} if colour_off(self.no_color) else {}
        return Console(file=stream, highlight=False, **options, **colours)

    @functools.cached_property
    def out(self):
        return self._console(self.stdout, markup=False)

    @functools.cached_property
    def err(self):
        return self._console(self.stderr, soft_wrap=True)

    @property
    def stdout_is_terminal(self) -> bool:
        return self.stdout.isatty()

    @property
    def stderr_is_terminal(self) -> bool:
        return self.stderr.isatty()

    @property
    def shows_progress(self) -> bool:
        """Someone is watching stderr and did not ask for quiet."""
        return not self.quiet and self.stderr_is_terminal

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None = None) -> Iterator[Callable[..., None]]:
        """A progress bar on stderr while the block runs, only for a person watching.

        Yields ``update(advance=0, completed=None, total=None, description=None)``.
        Piped stderr or -q: no bar, ``update`` does nothing, so scripts see only
        the summary line the command prints afterwards.
        """
        if not self.shows_progress:
            yield lambda **_: None
            return
        # start-up: rich loads only for terminal output
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=self.err, transient=True) as bar:
            task = bar.add_task(description, total=total)

            def update(
                advance: int = 0, completed: int | None = None, total: int | None = None, description: str | None = None
            ) -> None:
                changes = {
                    k: v
                    for k, v in (("completed", completed), ("total", total), ("description", description))
                    if v is not None
                }
                bar.update(task, advance=advance or None, **changes)

            yield update

    # data -> stdout

    def json(self, data) -> None:
        self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        self.stdout.flush()

    def table(self, rows: Iterable[dict], columns: Sequence[Column]) -> None:
        rows = list(rows)
        if not self.stdout_is_terminal:
            self.stdout.write("\t".join(h for _, h in columns) + "\n")
            for row in rows:
                self.stdout.write("\t".join(_one_line(_cell(row.get(k))) for k, _ in columns) + "\n")
            self.stdout.flush()
            return
        # start-up: rich loads only for terminal output
        from rich.table import Table
        from rich.text import Text

        table = Table(show_edge=False, header_style="bold")
        for _, header in columns:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*(Text(_cell(row.get(k))) for k, _ in columns))
        self.out.print(table)

    def record(self, data: dict) -> None:
        """One object as `key  value` lines."""
        width = max((len(k) for k in data), default=0)
        for key, value in data.items():
            line = f"{key.ljust(width)}  {_one_line(_cell(value))}"
            if self.stdout_is_terminal:
                # start-up: rich loads only for terminal output
                from rich.text import Text

                self.out.print(Text(line))
            else:
                self.stdout.write(line + "\n")
        self.stdout.flush()

    def value(self, text: str) -> None:
        """One bare value (a key, a version) for `$(nexusctl ...)`."""
        self.stdout.write(text + "\n")
        self.stdout.flush()

    # messages -> stderr

    def _say(self, message: str, style: str | None = None) -> None:
        message = printable(message)  # errors and notices quote names and provider answers
        if not self.stderr_is_terminal:  # what rich would write there anyway: the bare line
            self.stderr.write(message + "\n")
            self.stderr.flush()
            return
        # start-up: rich loads only for terminal output
        from rich.text import Text

        self.err.print(Text(message, style=style or ""))

    def info(self, message: str) -> None:
        if not self.quiet:
            self._say(message)

    def success(self, message: str) -> None:
        if not self.quiet:
            self._say(message, "green")

    def warn(self, message: str) -> None:
        self._say(f"warning: {message}", "yellow")

    def error(self, message: str) -> None:
        self._say(f"error: {message}", "bold red")
