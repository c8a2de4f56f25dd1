-- The provider's balance as the worker last read it (`action=balance`), and the operator's
-- threshold below which no new order is sent to that provider (they wait queued).
ALTER TABLE providers ADD COLUMN min_balance_micros BIGINT;
ALTER TABLE providers ADD COLUMN balance_micros BIGINT;
ALTER TABLE providers ADD COLUMN balance_currency TEXT;
-- When a balance read was last claimed; one worker per interval asks.
ALTER TABLE providers ADD COLUMN balance_checked_at TIMESTAMP;
-- Why the last read gave no balance, if it did not.
ALTER TABLE providers ADD COLUMN balance_error TEXT;
