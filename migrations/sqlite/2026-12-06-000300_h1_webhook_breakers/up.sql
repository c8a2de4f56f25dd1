-- Each endpoint's circuit breaker, shared by every worker process: the run of failed
-- attempts, and until when the endpoint is parked (open). No row, or no open_until, is
-- closed; an open_until in the past is half-open (the next attempt is the single probe).
-- Parked deliveries stay pending: the breaker only delays them.
CREATE TABLE webhook_breakers (
    endpoint_id BIGINT NOT NULL PRIMARY KEY REFERENCES webhook_endpoints (id),
    failures BIGINT NOT NULL DEFAULT 0,
    open_until TIMESTAMP,
    -- How many times in a row it opened: each reopening parks it longer (backoff).
    opened BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMP NOT NULL
);
-- The claim skips the endpoints that are open.
CREATE INDEX webhook_breakers_open ON webhook_breakers (open_until);
-- The claim looks which endpoints have a delivery in flight (leased).
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (lease_until);
