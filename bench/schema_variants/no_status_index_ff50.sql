DROP INDEX IF EXISTS webhook_deliveries_status;
ALTER TABLE webhook_deliveries SET (fillfactor = 50)
