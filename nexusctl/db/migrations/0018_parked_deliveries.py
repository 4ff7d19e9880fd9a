"""The queued deliveries of a switched-off webhook are parked: no ``next_attempt_at`` while it is off.

The worker's claim walks the due index (``next_attempt_at``, partial on the queued statuses) in order and skips a
switched-off webhook's rows one by one, so a paused webhook's backlog was read by every claim: the deliveries of
every other webhook cost more the longer one stayed off (50,000 parked: 13 ms a claim against 1.5). Switching a
webhook off now parks them (a NULL is past every ``<= now`` range) and switching it on makes them due
(nexusctl.core.deliveries ``park`` / ``unpark``). This parks the ones already waiting behind a webhook that is off,
those being sent too (their record keeps a parked row parked when it is to be retried).

Down: due again now (the claim before this skips them by their webhook).

Frozen definitions: never import db.models here.
"""

QUEUED = "('PENDING', 'RETRYING')"


def up(migrator, db):
    db.execute_sql(
        'UPDATE "webhook_deliveries" SET "next_attempt_at" = NULL '
        f'WHERE "status" IN {QUEUED} AND "next_attempt_at" IS NOT NULL '
        '  AND "webhook_id" IN (SELECT "id" FROM "webhooks" WHERE NOT "is_active")'
    )


def down(migrator, db):
    db.execute_sql(
        'UPDATE "webhook_deliveries" SET "next_attempt_at" = CURRENT_TIMESTAMP '
        f'WHERE "status" IN {QUEUED} AND "next_attempt_at" IS NULL'
    )
