-- Back to four types: drip-feed as a type again; services of the new types, which the old
-- code cannot read, are disabled and recorded as 'default'. Package prices stay flat.
ALTER TABLE orders DROP COLUMN order_fields;
ALTER TABLE orders DROP COLUMN service_type;
CREATE TABLE services_old (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('default', 'drip_feed', 'custom_comments', 'package')),
    rate_micros BIGINT NOT NULL CHECK (rate_micros >= 0),
    min_quantity BIGINT NOT NULL CHECK (min_quantity >= 1),
    max_quantity BIGINT NOT NULL,
    refill BOOLEAN NOT NULL,
    cancel BOOLEAN NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    provider_id BIGINT REFERENCES providers (id),
    provider_service_id TEXT,
    refill_days BIGINT NOT NULL DEFAULT 30,
    CHECK (max_quantity >= min_quantity)
);
INSERT INTO services_old
SELECT id, name, category,
    CASE WHEN kind = 'default' AND dripfeed THEN 'drip_feed'
         WHEN kind IN ('default', 'custom_comments', 'package') THEN kind ELSE 'default' END,
    rate_micros, min_quantity, max_quantity, refill, cancel,
    CASE WHEN kind IN ('default', 'custom_comments', 'package') THEN status ELSE 'disabled' END,
    created_at, updated_at, provider_id, provider_service_id, refill_days
FROM services;
CREATE TABLE services_sequence_kept AS SELECT seq FROM sqlite_sequence WHERE name = 'services';
DROP TABLE services;
ALTER TABLE services_old RENAME TO services;
UPDATE sqlite_sequence SET seq = (SELECT MAX(seq) FROM services_sequence_kept)
WHERE name = 'services' AND seq < (SELECT MAX(seq) FROM services_sequence_kept);
DROP TABLE services_sequence_kept;
