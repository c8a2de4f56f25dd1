-- Back to four types: drip-feed as a type again; services of the new types, which the old
-- code cannot read, are disabled and recorded as 'default'. Package prices stay flat.
ALTER TABLE orders DROP COLUMN order_fields;
ALTER TABLE orders DROP COLUMN service_type;
ALTER TABLE services DROP CONSTRAINT services_kind_check;
UPDATE services SET kind = 'drip_feed' WHERE kind = 'default' AND dripfeed;
UPDATE services SET kind = 'default', status = 'disabled'
WHERE kind NOT IN ('default', 'drip_feed', 'custom_comments', 'package');
ALTER TABLE services DROP COLUMN description;
ALTER TABLE services DROP COLUMN dripfeed;
ALTER TABLE services ADD CONSTRAINT services_kind_check
    CHECK (kind IN ('default', 'drip_feed', 'custom_comments', 'package'));
