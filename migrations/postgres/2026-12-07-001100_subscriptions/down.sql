-- Subscriptions removed: their children stay as ordinary orders, their holds and releases
-- leave the ledger, the children's charges move the available balance, and what was still
-- held returns to the available balance.
-- Rows the previous release cannot read leave or are mapped to what it knows: the
-- subscriptions services become disabled default services, their child orders default
-- orders; the subscription events go with their deliveries and attempts, webhook endpoints
-- stop naming those event types (one left with none is disabled), and the subscription audit rows go.
UPDATE services SET kind = 'default', status = 'disabled' WHERE kind = 'subscriptions';
UPDATE orders SET service_type = 'default' WHERE service_type = 'subscriptions';
DELETE FROM webhook_attempts WHERE event_id IN
    (SELECT id FROM events WHERE event_type LIKE 'subscription.%');
DELETE FROM webhook_deliveries WHERE event_id IN
    (SELECT id FROM events WHERE event_type LIKE 'subscription.%');
DELETE FROM events WHERE event_type LIKE 'subscription.%';
-- An endpoint that named only those types would get every event with none: disabled.
UPDATE webhook_endpoints SET status = 'disabled',
    disabled_reason = 'its event types (subscriptions) were removed by a downgrade'
WHERE event_types <> '' AND TRIM(BOTH ',' FROM REPLACE(REPLACE(REPLACE(
        ',' || event_types || ',',
        ',subscription.created,', ','),
        ',subscription.status_changed,', ','),
        ',subscription.child_created,', ',')) = '';
UPDATE webhook_endpoints SET event_types = TRIM(BOTH ',' FROM REPLACE(REPLACE(REPLACE(
        ',' || event_types || ',',
        ',subscription.created,', ','),
        ',subscription.status_changed,', ','),
        ',subscription.child_created,', ','))
WHERE event_types LIKE '%subscription.%';
DELETE FROM audit_entries WHERE action LIKE 'subscription.%' OR target_type = 'subscription';

DELETE FROM ledger_entries WHERE kind IN ('subscription_hold', 'subscription_release');
UPDATE ledger_entries SET amount_micros = amount_micros + held_amount_micros;
-- The holds and releases are gone and the children's charges now move the available
-- balance: every entry's balance after is what the account's entries up to it sum to.
UPDATE ledger_entries SET balance_after_micros = running.sum_micros
FROM (SELECT id,
             (SUM(amount_micros) OVER (PARTITION BY account_id ORDER BY id))::BIGINT AS sum_micros
      FROM ledger_entries) AS running
WHERE running.id = ledger_entries.id AND ledger_entries.balance_after_micros <> running.sum_micros;
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
