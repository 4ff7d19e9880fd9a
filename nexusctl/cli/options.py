"""Options shared by many commands, defined once so a flag means one thing everywhere."""

import json
import logging
import sys
from typing import Annotated

import typer
from typer.core import TyperOption

from nexusctl.cli.context import out
from nexusctl.core.paging import DEFAULT_LIMIT, MAX_LIMIT
from nexusctl.core.storable import check_storable
from nexusctl.enums import Provider, SyncStatus
from nexusctl.errors import UsageProblem
from nexusctl.logtext import TextFormatter


def _complete_provider(incomplete: str):
    return [p.value for p in Provider if p.value.startswith(incomplete.upper())]


def _complete_sync_status(incomplete: str):
    return [s.value for s in SyncStatus if s.value.startswith(incomplete.upper())]


Json = Annotated[bool, typer.Option("--json", help="Print JSON (the API's data shape) on stdout.")]
Limit = Annotated[
    int,
    typer.Option("--limit", "-n", min=1, max=MAX_LIMIT, help=f"Rows per page (1-{MAX_LIMIT})."),
]
Cursor = Annotated[str | None, typer.Option("--cursor", help="Continue after the page that printed this cursor.")]
Organization = Annotated[
    str | None,
    typer.Option(
        "--organization", help="The owner organization (UUID), the spec's organizationId.", show_default=False
    ),
]
ProviderFilter = Annotated[
    str | None,
    typer.Option("--provider", "-p", help="Only this provider (e.g. INSTAGRAM).", autocompletion=_complete_provider),
]
SyncStatusFilter = Annotated[
    str | None,
    typer.Option(
        "--status",
        "-s",
        help="Only this status (PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED).",
        autocompletion=_complete_sync_status,
    ),
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Say what would change, change nothing.")]

DEFAULT_PAGE = DEFAULT_LIMIT


def parse_json_object(text: str, field: str) -> dict:
    """A JSON object from a flag value; anything else is a usage error naming the flag."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageProblem(f"{field} is not valid JSON ({exc.msg} at position {exc.pos})", field=field) from None
    except RecursionError:
        raise UsageProblem(f"{field} is nested too deeply", field=field) from None
    if not isinstance(value, dict):
        raise UsageProblem(f"{field} must be a JSON object", field=field)
    check_storable(value, field)
    return value


# --- -v / -q / --no-color at every level ---------------------------------------
#
# The root callback reads them before the subcommand (`nexusctl -q integrations list`);
# GLOBAL_OPTION_NAMES are also attached to every group and command of the tree
# (attach_global_options), so `nexusctl integrations list -q` means the same. Their
# callbacks update the invocation's Output and logging in place.

VERBOSE_HELP = "More detail on stderr (-vv for debug)."
QUIET_HELP = "Only errors on stderr (no progress, no summary)."
NO_COLOR_HELP = "No colour (also NO_COLOR=1 or TERM=dumb)."
GLOBAL_OPTION_NAMES = ("verbose", "quiet", "no_color")
GLOBAL_PANEL = "Global options"


def configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_nexusctl", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._nexusctl = True  # type: ignore[attr-defined]
    handler.setFormatter(TextFormatter("%(levelname)s: %(message)s"))  # control characters escaped
    root.addHandler(handler)
    root.setLevel(level)
    # peewee logs every statement with its parameters at DEBUG; those include
    # ciphertexts and ids, so it stays quiet even at -vv.
    logging.getLogger("peewee").setLevel(max(level, logging.INFO))
    logging.addLevelName(logging.WARNING, "warning")
    logging.addLevelName(logging.ERROR, "error")
    logging.addLevelName(logging.INFO, "info")
    logging.addLevelName(logging.DEBUG, "debug")


def _apply(ctx: typer.Context, param: typer.CallbackParam, value) -> None:
    if not value or ctx.resilient_parsing:  # not given here: what the root said stands
        return
    output = getattr(ctx.find_root().obj, "output", None)
    if output is None:
        return
    quiet = output.quiet or param.name == "quiet"
    verbose = output.verbose + (value if param.name == "verbose" else 0)
    no_color = output.no_color or param.name == "no_color"
    output.configure(quiet=quiet, verbose=verbose, no_color=no_color)
    configure_logging(verbose, quiet)


def _global_options_template(
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            help=VERBOSE_HELP,
            callback=_apply,
            show_default=False,
            expose_value=False,
            rich_help_panel=GLOBAL_PANEL,
        ),
    ] = 0,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help=QUIET_HELP, callback=_apply, expose_value=False, rich_help_panel=GLOBAL_PANEL
        ),
    ] = False,
    no_color: Annotated[
        bool,
        typer.Option(
            "--no-color", help=NO_COLOR_HELP, callback=_apply, expose_value=False, rich_help_panel=GLOBAL_PANEL
        ),
    ] = False,
) -> None:
    """Only here so typer builds the three options once, the way it builds every other."""


_GLOBAL_OPTIONS: list = []


def show_flags_without_a_type() -> None:
    """Help lists a flag (--json, --yes, --help) or a count (-v, -vv) without a value placeholder.

    Typer's rich help prints every option's type, `--json <bool>` and `-v <int>`, which reads as if
    they took a value (`--json true`). There is no per-command hook for it (typer makes the --help
    option itself), so this is done once, on typer's option class, before any help is drawn.
    """
    original = TyperOption.display_type_rich
    if getattr(original, "_nexusctl", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag or self.count else original(self, ctx)

    display_type_rich._nexusctl = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich


def add_global_options(command) -> None:
    """Give ``command`` and everything under it -v/-q/--no-color (once)."""
    if not _GLOBAL_OPTIONS:
        holder = typer.Typer(add_completion=False)
        holder.command()(_global_options_template)
        _GLOBAL_OPTIONS.extend(typer.main.get_command(holder).params)
    if not any(p.name in GLOBAL_OPTION_NAMES for p in command.params):
        command.params.extend(_GLOBAL_OPTIONS)
    for sub in getattr(command, "commands", {}).values():
        add_global_options(sub)


def confirmed(ctx: typer.Context, question: str) -> bool:
    """Ask ``question`` on the terminal (stderr); without a terminal to ask on, refuse: a script must say --yes.
    False (after saying "Nothing deleted.") when the answer is no."""
    if not sys.stdin.isatty():
        raise UsageProblem("refusing to delete without confirmation: pass --yes (no terminal to ask on)")
    if typer.confirm(question, err=True):
        return True
    out(ctx).info("Nothing deleted.")
    return False
