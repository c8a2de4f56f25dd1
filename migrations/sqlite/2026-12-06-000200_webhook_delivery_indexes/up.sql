-- An endpoint's deliveries, newest first (GET /v1/webhook-endpoints/{id}/event-deliveries),
-- without scanning every endpoint's; and a delivery's attempts, for when it was last tried.
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, created_at);
