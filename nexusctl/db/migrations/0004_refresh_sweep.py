"""The refresh sweep's index: active integrations by token expiry.

Partial (active rows only), so the sweep's "expires within the window" query
is an index range scan however many integrations there are.

Frozen definitions: never import db.models here.
"""

from peewee import SQL


def up(migrator, db):
    migrator.migrate(migrator.add_index("integrations", ("expires_at",), where=SQL("is_active")))


def down(migrator, db):
    migrator.migrate(migrator.drop_index("integrations", "integrations_expires_at"))
