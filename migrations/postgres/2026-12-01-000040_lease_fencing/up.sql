-- A fencing token: every claim of a provider order takes the next number, and every write
-- of that attempt applies only while the row still carries it, so a worker whose lease
-- was taken over can never overwrite what the new holder (or an operator) decided.
ALTER TABLE provider_orders ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0;
