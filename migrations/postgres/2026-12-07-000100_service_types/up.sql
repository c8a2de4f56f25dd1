-- Service types: the panel dialect's sixteen order types (Subscriptions is reserved for its
-- own money model and accepted by the check only so that it needs no change later).
-- Drip-feed stops being a type: 'drip_feed' services become 'default' with dripfeed = TRUE.
-- Package becomes flat-priced: the rate is the price of one package and the window is
-- exactly 1. An existing Package service keeps the price it charged for its `min`
-- quantity: rate × min / 1000, rounded half-up to the micro-unit as every charge is.
-- Past orders keep their stored charges; those placed per unit before this change (Package
-- orders included) keep the per-unit refund rule, so they are recorded as 'default'.
ALTER TABLE services DROP CONSTRAINT services_kind_check;
ALTER TABLE services ADD COLUMN dripfeed BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE services ADD COLUMN description TEXT;
UPDATE services SET kind = 'default', dripfeed = TRUE WHERE kind = 'drip_feed';
UPDATE services SET rate_micros = (rate_micros * min_quantity + 500) / 1000,
    min_quantity = 1, max_quantity = 1
WHERE kind = 'package';
ALTER TABLE services ADD CONSTRAINT services_kind_check CHECK (kind IN ('default', 'package',
    'seo', 'custom_comments', 'custom_comments_package', 'mentions', 'mentions_with_hashtags',
    'mentions_custom_list', 'mentions_hashtag', 'mentions_user_followers',
    'mentions_media_likers', 'comment_likes', 'comment_replies', 'poll',
    'invites_from_groups', 'web_traffic', 'subscriptions'));

-- The type each order was placed under, and its type fields (JSON, the comments aside,
-- which keep their column, one per line).
ALTER TABLE orders ADD COLUMN service_type TEXT NOT NULL DEFAULT 'default';
ALTER TABLE orders ADD COLUMN order_fields TEXT;
UPDATE orders SET service_type = 'custom_comments'
WHERE service_id IN (SELECT id FROM services WHERE kind = 'custom_comments');
