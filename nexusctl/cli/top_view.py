"""How `nexusctl top` draws a snapshot (nexusctl.core.activity) and runs its live loop.

Plain keys in cbreak mode (no mouse, no escape sequences to parse) so it works over SSH and in tmux;
rich's Live on the alternate screen, which it leaves on exit. The terminal's modes are put back in a
``finally``: on q, on Ctrl-C (SIGINT stays on in cbreak mode) and on an error alike.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import select
import sys
import termios
import time
import tty
from typing import Callable, Iterator

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from nexusctl.cli.output import printable_tree

QUIT_KEYS = ("q", "Q")
WIDE = 160  # columns from which the sections sit side by side (each then needs ~80 for its ids)
IDS = ("WEBHOOK", "INTEGRATION")
ID_WIDTH = 36
GRID_GAP = 4  # columns between the two sides of a wide frame


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def print_frame(console: Console, snap: dict) -> None:
    if console.is_terminal:
        console.print(frame(snap, console.size.width))
        return
    with console.capture() as captured:  # for a pipe: plain lines without the tables' padding
        console.print(frame(snap, console.size.width))
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def run_live(console: Console, read: Callable[[], dict], interval: float) -> None:
    """Redraw every ``interval`` seconds until q. The database is read between key checks, never while a
    key waits: q answers within one read."""
    with (
        _cbreak(sys.stdin) as keys,
        Live(console=console, screen=True, auto_refresh=False, redirect_stdout=False, redirect_stderr=False) as live,
    ):
        while True:
            live.update(frame(read(), console.size.width), refresh=True)
            deadline = time.monotonic() + interval
            while (left := deadline - time.monotonic()) > 0:
                if keys(left) in QUIT_KEYS:
                    return


@contextlib.contextmanager
def _cbreak(stream) -> Iterator[Callable[[float], str | None]]:
    """Keys one at a time, unechoed; the saved modes come back whatever ends the block."""
    fd = stream.fileno()
    saved = termios.tcgetattr(fd)

    def key(timeout: float) -> str | None:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        data = os.read(fd, 32)
        if not data:  # the terminal went away (SSH dropped): stop as if q was pressed
            return QUIT_KEYS[0]
        return data.decode(errors="replace")[:1]

    try:
        tty.setcbreak(fd)
        yield key
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


# --- one frame -------------------------------------------------------------------


def frame(snap: dict, width: int) -> Group:
    snap = printable_tree(snap)  # names, hosts and job names are shown, never obeyed by the terminal
    now = _parse(snap["at"])
    title = Text.assemble(("nexusctl top", "bold"), f"  {now:%Y-%m-%d %H:%M:%S}Z  ", ("q quits", "dim"))
    left = [_deliveries(snap), _queue(snap), _failing(snap, now)]
    right = [_health(snap, now), _syncs(snap), _jobs(snap, now)]
    for table in left + right:
        _fit(table, (width - GRID_GAP) // 2 if width >= WIDE else width)
    if width >= WIDE:
        grid = Table.grid(expand=True, padding=(0, GRID_GAP // 2))
        grid.add_column(ratio=1)
        grid.add_column(ratio=1)
        grid.add_row(Group(*left), Group(*right))
        return Group(title, grid)
    return Group(title, *left, *right)


def _section(title: str, *columns: str) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        expand=True,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
    )
    for column in columns:
        # Ids whole (they are what `nexusctl webhooks show` takes), headers never cut: the free text gives way.
        table.add_column(
            column, overflow="ellipsis", no_wrap=True, min_width=ID_WIDTH if column in IDS else len(column)
        )
    return table


def _fit(table: Table, width: int) -> None:
    """Ids whole whenever the section's ``width`` allows: the free text gives way first, the widest column one cell
    at a time, never below its header (rich alone, short of room, cut every column evenly: an id lost its last
    characters at 80 columns beside a host of 20). Ids are cut only when the headers and the ids cannot fit."""
    columns = table.columns
    widths = [max([cell_len(column.header)] + [_cell_len(cell) for cell in column.cells]) for column in table.columns]
    # Each column's padding (one cell each side, not at the table's edges) and the one-cell rule between two.
    excess = sum(widths) + 3 * (len(columns) - 1) - width
    free = [i for i, column in enumerate(columns) if column.header not in IDS]
    while excess > 0:
        shrinkable = [i for i in free if widths[i] > cell_len(columns[i].header)]
        if not shrinkable:
            return  # the ids must give way too: rich cuts what is left evenly
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
        columns[widest].max_width = widths[widest]
        excess -= 1


def _cell_len(cell) -> int:
    if isinstance(cell, Text):
        return cell.cell_len
    return cell_len(str(cell))


def _deliveries(snap: dict) -> Table:
    rate = snap["deliveries"]
    table = _section(
        f"Deliveries: {rate['perSecond']:g}/s (last {rate['windowSeconds']:g} s)", "OUTCOME", "ATTEMPTS", "PER SECOND"
    )
    for outcome, count in rate["outcomes"].items():
        style = "green" if outcome == "ok" else ("red" if count else None)
        table.add_row(Text(outcome, style=style), str(count), f"{count / rate['windowSeconds']:g}")
    return table


def _queue(snap: dict) -> Table:
    table = _section("Queue", "STATUS", "WAITING", "OLDEST DUE")
    for row in snap["queue"]:
        depth = f"{row['depth']}+" if row["capped"] else str(row["depth"])
        age = row["oldestDueSeconds"]
        due = _span(age) if age else "-"  # None: nothing due
        table.add_row(row["status"], depth, Text(due, style="yellow" if age and age >= 60 else None))
    return table


def _failing(snap: dict, now: dt.datetime) -> Table:
    table = _section("Endpoints failing most (last 5 min)", "HOST", "FAILURES", "FOR", "WEBHOOK")
    for row in snap["failingEndpoints"]:
        since = _ago(row["failingSince"], now) if row["failingSince"] else "-"
        host = row["host"] + ("" if row["active"] else " (disabled)")
        table.add_row(Text(host, style="red"), str(row["failures"]), since, row["webhookId"])
    if not snap["failingEndpoints"]:
        table.add_row(Text("none", style="dim"), "", "", "")
    return table


def _health(snap: dict, now: dt.datetime) -> Table:
    health = snap["integrations"]
    cap = health["countCap"]

    def count(value: int) -> str:
        return f"{value}+" if value >= cap else str(value)

    styles = {"healthy": "green", "degraded": "yellow", "broken": "red", "unknown": "dim"}
    summary = "  ".join(f"{name} {count(value)}" for name, value in health["byStatus"].items())
    table = _section(f"Integrations: {summary}", "NAME", "PROVIDER", "TOKEN EXPIRES", "INTEGRATION")
    table.title = Text.assemble(
        ("Integrations: ", "bold"),
        *[
            part
            for name, value in health["byStatus"].items()
            for part in ((f"{name} {count(value)}", styles[name]), ("  ", None))
        ],
    )
    for row in health["expiringSoonest"]:
        table.add_row(row["name"], row["provider"], _ago(row["expiresAt"], now), row["integrationId"])
    table.caption = f"tokens expiring within 24 h: {count(health['expiringWithin24h'])} (the soonest above)"
    table.caption_justify = "left"
    return table


def _syncs(snap: dict) -> Table:
    syncs = snap["syncs"]
    table = _section(f"Syncs in progress: {syncs['count']}", "ACTION", "ITEMS", "RUNNING", "INTEGRATION")
    for row in syncs["oldest"]:
        table.add_row(row["action"], str(row["itemsProcessed"]), _span(row["runningSeconds"]), row["integrationId"])
    return table


def _jobs(snap: dict, now: dt.datetime) -> Table:
    table = _section("Jobs", "JOB", "STATE", "LAST RUN", "OUTCOME", "NEXT")
    for job in snap["jobs"]:
        last = _ago(job["lastFinishedAt"], now) if job["lastFinishedAt"] else "never"
        outcome = job["outcome"] or "-"
        upcoming = _ago(job["nextRunAt"], now) if job["daemon"] == "scheduled" else job["daemon"]
        table.add_row(
            job["name"], job["state"], last, Text(outcome, style="red" if outcome == "failed" else None), upcoming
        )
    return table


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _span(seconds: float) -> str:
    """12.3s, 3m05s, 2h05m, 3.2d."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{seconds / 86400:.1f}d"


def _ago(stamp: str, now: dt.datetime) -> str:
    """'3m05s ago' or 'in 40.0s'."""
    seconds = (_parse(stamp) - now).total_seconds()
    return f"in {_span(seconds)}" if seconds > 0 else f"{_span(seconds)} ago"
