"""Listing an organization's integrations, newest first, a keyset page at a time.

- integrations (organization_id, created_at, id): `GET /integrations/user/{id}
  ?organizationId=` and `integrations list --organization` filter by the
  organization and page by (created_at, id). With only the spec's
  (organization_id) index, PostgreSQL walked (created_at, id) backwards and
  filtered, reading every other organization's rows until a page was full;
  this index reads one page's rows.

Frozen definitions: never import db.models here.
"""


def up(migrator, db):
    migrator.migrate(migrator.add_index("integrations", ("organization_id", "created_at", "id")))


def down(migrator, db):
    migrator.migrate(migrator.drop_index("integrations", "integrations_organization_id_created_at_id"))
