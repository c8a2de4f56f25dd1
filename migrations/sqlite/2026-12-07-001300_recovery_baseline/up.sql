-- How a provider gives back the money of a Partial or Canceled: `charge` (it lowers the
-- order's charge: the recovery watch reads it) or `balance` (it credits its balance and
-- leaves the charge: such refunds are recorded `to_balance`, never judged unrecovered).
ALTER TABLE providers ADD COLUMN credit_mode TEXT NOT NULL DEFAULT 'charge'
    CHECK (credit_mode IN ('charge', 'balance'));

-- SQLite cannot change a CHECK in place: order_costs is rebuilt with the same rows, the
-- new recovery state `to_balance`, and `baseline_charge_provider_micros`: the provider's
-- charge as it stood before the first refund its status made us pay (NULL: none was
-- reported before it). A refund's recovery is measured from it, so a provider whose price
-- moved since the last sync is held to what it actually charged; without it, from the
-- expected cost at send time.
CREATE TABLE order_costs_new (
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
    recovery TEXT CHECK (recovery IN ('watching', 'recovered', 'unrecovered', 'to_balance')),
    watch_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    baseline_charge_provider_micros BIGINT
);
INSERT INTO order_costs_new SELECT *, NULL FROM order_costs;
DROP TABLE order_costs;
ALTER TABLE order_costs_new RENAME TO order_costs;
CREATE INDEX order_costs_provider ON order_costs (provider_id, created_at);
CREATE INDEX order_costs_watch ON order_costs (recovery, watch_until);
