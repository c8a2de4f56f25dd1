ALTER TABLE providers DROP COLUMN balance_error;
ALTER TABLE providers DROP COLUMN balance_checked_at;
ALTER TABLE providers DROP COLUMN balance_currency;
ALTER TABLE providers DROP COLUMN balance_micros;
ALTER TABLE providers DROP COLUMN min_balance_micros;
