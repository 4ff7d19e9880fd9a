"""What a command invocation shares: output, settings, database, keyring.

Everything is loaded on first use, so `nexusctl version` or `keys generate`
never need a valid configuration or a database.
"""

from __future__ import annotations

from functools import cached_property

import peewee
import typer

from nexusctl.cli.output import Output


class State:
    def __init__(self, output: Output) -> None:
        self.output = output
        self._database: peewee.Database | None = None

    @cached_property
    def settings(self):
        # start-up: loaded on first use (`--help` and `version` never use it)
        from nexusctl import config

        return config.load()

    @cached_property
    def keyring(self):
        # start-up: loaded on first use (`--help` and `version` never use it)
        from nexusctl.crypto import keyring_from_settings

        return keyring_from_settings(self.settings)

    def database(self, *, require_current_schema: bool = True) -> peewee.Database:
        """Open and bind the database; refuse one whose schema is behind."""
        if self._database is None:
            # start-up: loaded on first use (`--help` and `version` never use it)
            from nexusctl.db import migrate
            from nexusctl.db.database import bind, check_connection, open_database

            settings = self.settings
            db = bind(open_database(settings.database_url.get(), settings.database_pool_size))
            check_connection(db, settings.redacted_database_url())
            self._database = db
            if require_current_schema:
                migrate.ensure_current(db)
        return self._database

    def close(self) -> None:
        if self._database is not None:
            self._database.close()
            if hasattr(self._database, "close_all"):
                self._database.close_all()
            self._database = None


def state(ctx: typer.Context) -> State:
    return ctx.find_root().obj


def out(ctx: typer.Context) -> Output:
    return state(ctx).output
