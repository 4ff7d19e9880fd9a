"""Options shared by many commands, defined once so a flag means one thing everywhere."""

import datetime as dt
import json
import logging
import sys
from typing import Annotated

import typer
from typer.core import TyperOption

from nexusctl import clock
from nexusctl.cli.context import out
from nexusctl.core.paging import DEFAULT_LIMIT, MAX_LIMIT
from nexusctl.core.storable import check_storable
from nexusctl.enums import DeliveryStatus, Provider, SyncStatus
from nexusctl.errors import UsageProblem
from nexusctl.logtext import TextFormatter

# A wait with a time limit ran out (`events tail --timeout`): 124, as timeout(1) exits, so that a script tells it
# from a bug (1, INTERNAL_ERROR).
EXIT_TIMED_OUT = 124

# Shell completion (typer's autocompletion=): each runs only when the shell asks, so what it needs beyond the
# enums loads then, never on an ordinary start.


def _starting(values, incomplete: str, *, upper: bool = False) -> list[str]:
    typed = incomplete.upper() if upper else incomplete
    return [v for v in values if v.startswith(typed)]


def _complete_provider(incomplete: str):
    return _starting([p.value for p in Provider], incomplete, upper=True)


def complete_provider(incomplete: str):
    """Provider names (any case typed, the enum's spelling offered)."""
    return _complete_provider(incomplete)


def _complete_sync_status(incomplete: str):
    return _starting([s.value for s in SyncStatus], incomplete, upper=True)


def complete_delivery_status(incomplete: str):
    return _starting([s.value for s in DeliveryStatus], incomplete, upper=True)


JOB_NAMES = ("token-refresh", "housekeeping", "integration-health")  # core.job_runs' names (tests keep them equal)


def complete_job(incomplete: str):
    return _starting(JOB_NAMES, incomplete)


def complete_health_statuses(incomplete: str):
    """A comma-separated list: the statuses not given yet, after what is typed so far."""
    done, _, last = incomplete.rpartition(",")
    given = set(done.split(",")) if done else set()
    prefix = f"{done}," if done else ""
    return [prefix + s for s in ("healthy", "degraded", "broken") if s.startswith(last) and s not in given]


def complete_http_method(incomplete: str):
    return _starting(("GET", "POST", "PUT", "PATCH", "DELETE"), incomplete, upper=True)


def _event_types(*, for_webhooks: bool) -> list[str]:
    # start-up: the event names load only when the shell asks for them (completion), never on a start
    from nexusctl.core import events, sync_state

    own = [events.CONNECTED, events.DISCONNECTED, events.ERROR, events.REFRESHED, sync_state.SYNCED]
    own += ["webhook.delivered", "webhook.failed"] if not for_webhooks else []
    resources = [f"{r}.{verb}" for r in events.SYNC_RESOURCES for verb in ("created", "updated", "deleted")]
    families = [f"{f}.*" for f in (*events.OWN_FAMILIES, *events.SYNC_RESOURCES)]
    if for_webhooks:  # webhook.* is never delivered to a webhook (core.webhooks refuses it)
        families.remove("webhook.*")
    names = [*own, "analytics.fetched", *resources, events.SLACK_COMMAND, *events.PLATFORM_EVENTS, *families]
    return ["*", *sorted(set(names))] if for_webhooks else sorted(set(names))


def complete_event_filter(incomplete: str):
    """What `events list --type` / `events tail --type` take: a type or a family (integration.*)."""
    return _starting(_event_types(for_webhooks=False), incomplete)


def complete_webhook_event(incomplete: str):
    """What a webhook subscribes to (-e): a type, a family or *; never webhook.*."""
    return _starting(_event_types(for_webhooks=True), incomplete)


def complete_platform_event(incomplete: str):
    return _starting(("content.published", "user.deleted"), incomplete)


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


def parse_since(text: str) -> dt.datetime:
    """`1h`, `30m`, `2d` (that long ago) or an ISO time (`2026-11-24T00:00:00Z`)."""
    # start-up: only this command needs it
    from nexusctl.config import MAX_DURATION_TEXT, parse_duration

    seconds = parse_duration(text)
    if seconds is not None:
        return clock.now() - dt.timedelta(seconds=seconds)
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageProblem(
            f"--since {text!r} is not a duration (1h, 30m, 2d) or an ISO time like 2026-11-24T00:00:00Z "
            f"(a duration is {MAX_DURATION_TEXT})",
            field="since",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
