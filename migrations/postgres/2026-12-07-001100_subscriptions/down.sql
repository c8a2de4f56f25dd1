-- Subscriptions removed: their children stay as ordinary orders, their holds and releases
-- leave the ledger, and what was still held returns to the available balance.
DELETE FROM ledger_entries WHERE kind IN ('subscription_hold', 'subscription_release');
UPDATE ledger_entries SET amount_micros = amount_micros + held_amount_micros;
DROP INDEX ledger_entries_subscription;
ALTER TABLE ledger_entries DROP COLUMN subscription_id;
ALTER TABLE ledger_entries DROP COLUMN held_after_micros;
ALTER TABLE ledger_entries DROP COLUMN held_amount_micros;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN ('top_up',
    'order_charge', 'refund', 'top_up_refund', 'chargeback', 'adjustment'));
DROP INDEX orders_subscription_post;
ALTER TABLE orders DROP COLUMN subscription_post_key;
ALTER TABLE orders DROP COLUMN subscription_id;
DROP TABLE subscriptions;
UPDATE accounts SET balance_micros = balance_micros + held_micros;
ALTER TABLE accounts DROP COLUMN held_micros;
ALTER TABLE services DROP COLUMN subscription_old_posts;
ALTER TABLE services DROP COLUMN subscription_delays;
ALTER TABLE services DROP COLUMN subscription_posts_max;
