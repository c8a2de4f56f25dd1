DROP INDEX webhook_attempts_delivery;
DROP INDEX webhook_deliveries_endpoint;
