DROP INDEX IF EXISTS webhook_deliveries_status;
ALTER TABLE webhook_deliveries SET (fillfactor = 50);
ALTER TABLE webhook_attempts DROP CONSTRAINT IF EXISTS webhook_attempts_delivery_id_fkey;
ALTER TABLE webhook_deliveries DROP CONSTRAINT IF EXISTS webhook_deliveries_webhook_id_fkey;
DROP INDEX IF EXISTS webhook_deliveries_created_at;
DROP INDEX IF EXISTS webhook_attempts_started_at;
DROP INDEX IF EXISTS outbox_events_type_created_at_id
