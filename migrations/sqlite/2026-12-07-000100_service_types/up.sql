-- Service types: the panel dialect's sixteen order types (Subscriptions is reserved for its
-- own money model and accepted by the check only so that it needs no rebuild later).
-- Drip-feed stops being a type: 'drip_feed' services become 'default' with dripfeed = TRUE.
-- Package becomes flat-priced: the rate is the price of one package and the window is
-- exactly 1. An existing Package service keeps the price it charged for its `min`
-- quantity: rate × min / 1000, rounded half-up to the micro-unit as every charge is.
-- Past orders keep their stored charges; those placed per unit before this change (Package
-- orders included) keep the per-unit refund rule, so they are recorded as 'default'.
--
-- SQLite cannot change a CHECK in place: the table is rebuilt (foreign keys are not
-- enforced on the migration's connection and are checked after it; the AUTOINCREMENT
-- sequence is kept).
CREATE TABLE services_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('default', 'package', 'seo', 'custom_comments',
        'custom_comments_package', 'mentions', 'mentions_with_hashtags',
        'mentions_custom_list', 'mentions_hashtag', 'mentions_user_followers',
        'mentions_media_likers', 'comment_likes', 'comment_replies', 'poll',
        'invites_from_groups', 'web_traffic', 'subscriptions')),
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
    dripfeed BOOLEAN NOT NULL DEFAULT FALSE,
    description TEXT,
    CHECK (max_quantity >= min_quantity)
);

INSERT INTO services_new (id, name, category, kind, rate_micros, min_quantity, max_quantity,
    refill, cancel, status, created_at, updated_at, provider_id, provider_service_id,
    refill_days, dripfeed, description)
SELECT id, name, category,
    CASE kind WHEN 'drip_feed' THEN 'default' ELSE kind END,
    CASE kind WHEN 'package' THEN (rate_micros * min_quantity + 500) / 1000 ELSE rate_micros END,
    CASE kind WHEN 'package' THEN 1 ELSE min_quantity END,
    CASE kind WHEN 'package' THEN 1 ELSE max_quantity END,
    refill, cancel, status, created_at, updated_at, provider_id, provider_service_id,
    refill_days, kind = 'drip_feed', NULL
FROM services;

CREATE TABLE services_sequence_kept AS SELECT seq FROM sqlite_sequence WHERE name = 'services';
DROP TABLE services;
ALTER TABLE services_new RENAME TO services;
UPDATE sqlite_sequence SET seq = (SELECT MAX(seq) FROM services_sequence_kept)
WHERE name = 'services' AND seq < (SELECT MAX(seq) FROM services_sequence_kept);
DROP TABLE services_sequence_kept;

-- The type each order was placed under, and its type fields (JSON, the comments aside,
-- which keep their column, one per line).
ALTER TABLE orders ADD COLUMN service_type TEXT NOT NULL DEFAULT 'default';
ALTER TABLE orders ADD COLUMN order_fields TEXT;
UPDATE orders SET service_type = 'custom_comments'
WHERE service_id IN (SELECT id FROM services WHERE kind = 'custom_comments');
