DROP TABLE order_costs;
DROP TABLE service_costs;
DROP TABLE provider_exchange_rates;
ALTER TABLE providers DROP COLUMN currency_mismatch_at;
ALTER TABLE providers DROP COLUMN currency_mismatch;
ALTER TABLE providers DROP COLUMN exchange_rate_set_at;
ALTER TABLE providers DROP COLUMN exchange_rate_micros;
ALTER TABLE providers DROP COLUMN currency;
DROP TABLE panel_settings;
