"""`nexusctl db ...`: schema migrations."""

from typing import Annotated

import typer

from nexusctl.cli.context import out, state
from nexusctl.cli.options import Json
from nexusctl.errors import SchemaBehind

app = typer.Typer(
    help="The database schema: apply and inspect migrations.\n\n"
    "Example:  nexusctl db status --check || nexusctl db migrate",
    no_args_is_help=True,
)


@app.command("migrate")
def migrate_cmd(ctx: typer.Context, as_json: Json = False) -> None:
    """Apply every pending migration (safe to run again; serialised across hosts on PostgreSQL).

    Example:  nexusctl db migrate
    """
    # start-up: only this command needs it
    from nexusctl.db import migrate

    st = state(ctx)
    db = st.database(require_current_schema=False)
    applied = migrate.migrate(db)
    if as_json:
        out(ctx).json({"applied": applied, "database": st.settings.redacted_database_url()})
    elif applied:
        out(ctx).success(
            f"Applied {len(applied)} migration(s) to {st.settings.redacted_database_url()}: {', '.join(applied)}"
        )
    else:
        out(ctx).info(f"Nothing to apply: {st.settings.redacted_database_url()} is up to date")


@app.command("status")
def status_cmd(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 5 (SCHEMA_OUTDATED) if any migration is pending.")
    ] = False,
    as_json: Json = False,
) -> None:
    """Show which migrations are applied and which are pending.

    Example:  nexusctl db status --check || nexusctl db migrate
    """
    # start-up: only this command needs it
    from nexusctl.db import migrate

    st = state(ctx)
    rows = [m.to_dict() for m in migrate.status(st.database(require_current_schema=False))]
    pending = [r["name"] for r in rows if r["known"] and not r["applied"]]
    if as_json:
        out(ctx).json({"database": st.settings.redacted_database_url(), "migrations": rows, "pending": pending})
    else:
        out(ctx).table(
            [{**r, "state": "applied" if r["applied"] else "pending"} for r in rows],
            [("name", "MIGRATION"), ("state", "STATE"), ("appliedAt", "APPLIED AT")],
        )
        out(ctx).info(f"{len(pending)} pending" if pending else "up to date")
    if check and pending:
        raise SchemaBehind(f"{len(pending)} pending migration(s): run `nexusctl db migrate`")
