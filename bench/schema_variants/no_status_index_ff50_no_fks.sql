DROP INDEX IF EXISTS webhook_deliveries_status;
ALTER TABLE webhook_deliveries SET (fillfactor = 50);
ALTER TABLE webhook_attempts DROP CONSTRAINT IF EXISTS webhook_attempts_delivery_id_fkey;
ALTER TABLE webhook_deliveries DROP CONSTRAINT IF EXISTS webhook_deliveries_webhook_id_fkey
