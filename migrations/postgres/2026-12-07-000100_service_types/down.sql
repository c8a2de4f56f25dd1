-- Back to four types: drip-feed as a type again; services of the new types, which the old
-- code cannot read, are disabled and recorded as 'default'. Package rates go back to per 1000
-- (× 1000: with min = max = 1 the old rule charges the same package price).
ALTER TABLE orders DROP COLUMN order_fields;
ALTER TABLE orders DROP COLUMN service_type;
ALTER TABLE services DROP CONSTRAINT services_kind_check;
UPDATE services SET rate_micros = rate_micros * 1000 WHERE kind = 'package';
UPDATE services SET kind = 'drip_feed' WHERE kind = 'default' AND dripfeed;
UPDATE services SET kind = 'default', status = 'disabled'
WHERE kind NOT IN ('default', 'drip_feed', 'custom_comments', 'package');
ALTER TABLE services DROP COLUMN description;
ALTER TABLE services DROP COLUMN dripfeed;
ALTER TABLE services ADD CONSTRAINT services_kind_check
    CHECK (kind IN ('default', 'drip_feed', 'custom_comments', 'package'));
