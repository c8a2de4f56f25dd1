-- Provider money (issue 25, first part): the panel's currency, each provider's currency and
-- exchange rate (with its history), a service's provider rate as the last sync read it,
-- and each forwarded order's cost and refund recovery.

-- One row: the currency services are priced in. Accounts in another currency cannot order.
CREATE TABLE panel_settings (
    id BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    currency TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- The currency most existing accounts hold (a panel's accounts have shared one until now),
-- else USD: a panel in EUR keeps taking its resellers' orders after the upgrade.
INSERT INTO panel_settings (id, currency, updated_at)
VALUES (1, COALESCE((SELECT currency FROM accounts GROUP BY currency
                     ORDER BY COUNT(*) DESC, currency LIMIT 1), 'USD'), CURRENT_TIMESTAMP);

-- The provider's billing currency (existing providers: the panel's, USD until now) and,
-- when it differs from the panel's, panel-currency units per one provider unit in
-- micro-units (1.10 = 1100000), with when it was set.
ALTER TABLE providers ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD';
ALTER TABLE providers ADD COLUMN exchange_rate_micros BIGINT;
ALTER TABLE providers ADD COLUMN exchange_rate_set_at TIMESTAMP;
-- The last status reply in another currency than the configured one (its charge unused).
ALTER TABLE providers ADD COLUMN currency_mismatch TEXT;
ALTER TABLE providers ADD COLUMN currency_mismatch_at TIMESTAMP;
-- Existing providers bill in the panel's currency, as they were read until now.
UPDATE providers SET currency = (SELECT currency FROM panel_settings WHERE id = 1);

-- Every exchange rate an operator set, oldest first.
CREATE TABLE provider_exchange_rates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_id BIGINT NOT NULL REFERENCES providers (id),
    currency TEXT NOT NULL,
    rate_micros BIGINT,
    set_by BIGINT,
    set_at TIMESTAMP NOT NULL
);
CREATE INDEX provider_exchange_rates_provider ON provider_exchange_rates (provider_id, id);

-- A synced service's provider rate per 1000 in the provider's currency, the exchange rate
-- it was converted with and the converted rate (before the markup); `at_loss` when our rate
-- is at or below the converted provider rate.
CREATE TABLE service_costs (
    service_id BIGINT PRIMARY KEY NOT NULL REFERENCES services (id),
    provider_id BIGINT NOT NULL REFERENCES providers (id),
    currency TEXT NOT NULL,
    provider_rate_micros BIGINT NOT NULL,
    exchange_rate_micros BIGINT NOT NULL,
    converted_rate_micros BIGINT NOT NULL,
    at_loss BOOLEAN NOT NULL,
    synced_at TIMESTAMP NOT NULL
);

-- A forwarded order's cost: the expected cost at send time (provider currency and
-- converted, with the exchange rate used), the provider's `charge` as first and last
-- reported (both currencies), and its refund recovery: what we refunded because the
-- provider reported Partial or Canceled, and until when the provider's correction is
-- watched for.
CREATE TABLE order_costs (
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
CREATE INDEX order_costs_provider ON order_costs (provider_id, created_at);
CREATE INDEX order_costs_watch ON order_costs (recovery, watch_until);

-- A provider's unrecovered refunds are a third alert measure (`unrecovered`): SQLite
-- cannot change a CHECK in place, so the table is rebuilt with the same rows and indexes.
CREATE TABLE alerts_with_recovery (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL CHECK (scope IN ('service', 'provider')),
    subject_id BIGINT NOT NULL,
    window_name TEXT NOT NULL CHECK (window_name IN ('1h', '24h', '7d')),
    measure TEXT NOT NULL CHECK (measure IN ('amount', 'count', 'unrecovered')),
    level TEXT NOT NULL CHECK (level IN ('warning', 'critical')),
    active BOOLEAN NOT NULL,
    rate_ppm BIGINT NOT NULL,
    threshold_ppm BIGINT NOT NULL,
    orders BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    charged_micros BIGINT NOT NULL,
    refunded_micros BIGINT NOT NULL,
    -- Set on a critical alert when --alert-pause-orders is on: new orders are refused;
    -- on an `unrecovered` one when --alert-pause-forwarding is on: nothing is sent.
    pauses_orders BOOLEAN NOT NULL DEFAULT FALSE,
    raised_at TIMESTAMP NOT NULL,
    escalated_at TIMESTAMP,
    cleared_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO alerts_with_recovery SELECT * FROM alerts;
DROP TABLE alerts;
ALTER TABLE alerts_with_recovery RENAME TO alerts;
CREATE UNIQUE INDEX alerts_active ON alerts (scope, subject_id, window_name, measure) WHERE active;
CREATE INDEX alerts_recent ON alerts (id);
