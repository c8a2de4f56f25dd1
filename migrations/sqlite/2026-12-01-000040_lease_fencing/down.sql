ALTER TABLE provider_orders DROP COLUMN lease_token;
