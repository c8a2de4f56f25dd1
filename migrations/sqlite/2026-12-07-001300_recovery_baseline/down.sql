-- A provider credited through its balance is watched again (its refunds go back to
-- `watching` and are judged from its charge, as before).
CREATE TABLE order_costs_old (
    order_id BIGINT PRIMARY KEY NOT NULL REFERENCES orders (id),
    provider_id BIGINT NOT NULL REFERENCES providers (id),
    service_id BIGINT NOT NULL REFERENCES services (id),
    currency TEXT NOT NULL,
    exchange_rate_micros BIGINT NOT NULL,
    expected_cost_provider_micros BIGINT,
    expected_cost_micros BIGINT,
    first_charge_provider_micros BIGINT,
    first_charge_micros BIGINT,
    latest_charge_provider_micros BIGINT,
    latest_charge_micros BIGINT,
    charge_reported_at TIMESTAMP,
    provider_refunded_micros BIGINT NOT NULL DEFAULT 0,
    recovery TEXT CHECK (recovery IN ('watching', 'recovered', 'unrecovered')),
    watch_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO order_costs_old
SELECT order_id, provider_id, service_id, currency, exchange_rate_micros,
       expected_cost_provider_micros, expected_cost_micros, first_charge_provider_micros,
       first_charge_micros, latest_charge_provider_micros, latest_charge_micros,
       charge_reported_at, provider_refunded_micros,
       CASE WHEN recovery = 'to_balance' THEN 'watching' ELSE recovery END,
       watch_until, created_at, updated_at
FROM order_costs;
DROP TABLE order_costs;
ALTER TABLE order_costs_old RENAME TO order_costs;
CREATE INDEX order_costs_provider ON order_costs (provider_id, created_at);
CREATE INDEX order_costs_watch ON order_costs (recovery, watch_until);
ALTER TABLE providers DROP COLUMN credit_mode;
