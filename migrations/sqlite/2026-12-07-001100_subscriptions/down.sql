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
WHERE event_types <> '' AND TRIM(REPLACE(REPLACE(REPLACE(
        ',' || event_types || ',',
        ',subscription.created,', ','),
        ',subscription.status_changed,', ','),
        ',subscription.child_created,', ','), ',') = '';
UPDATE webhook_endpoints SET event_types = TRIM(REPLACE(REPLACE(REPLACE(
        ',' || event_types || ',',
        ',subscription.created,', ','),
        ',subscription.status_changed,', ','),
        ',subscription.child_created,', ','), ',')
WHERE event_types LIKE '%subscription.%';
DELETE FROM audit_entries WHERE action LIKE 'subscription.%' OR target_type = 'subscription';

CREATE TABLE ledger_entries_old (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    kind TEXT NOT NULL CHECK (kind IN ('top_up', 'order_charge', 'refund', 'top_up_refund', 'chargeback', 'adjustment')),
    amount_micros BIGINT NOT NULL,
    balance_after_micros BIGINT NOT NULL,
    order_id BIGINT REFERENCES orders (id),
    refund_id BIGINT,
    top_up_id BIGINT REFERENCES top_ups (id),
    created_at TIMESTAMP NOT NULL
);
INSERT INTO ledger_entries_old (id, account_id, kind, amount_micros, balance_after_micros,
    order_id, refund_id, top_up_id, created_at)
SELECT id, account_id, kind, amount_micros + held_amount_micros, balance_after_micros,
    order_id, refund_id, top_up_id, created_at
FROM ledger_entries WHERE kind NOT IN ('subscription_hold', 'subscription_release');
CREATE TABLE ledger_sequence_kept AS SELECT seq FROM sqlite_sequence WHERE name = 'ledger_entries';
DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_old RENAME TO ledger_entries;
UPDATE sqlite_sequence SET seq = (SELECT MAX(seq) FROM ledger_sequence_kept)
WHERE name = 'ledger_entries' AND seq < (SELECT MAX(seq) FROM ledger_sequence_kept);
DROP TABLE ledger_sequence_kept;
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, id);
CREATE INDEX ledger_entries_order ON ledger_entries (order_id);
CREATE INDEX ledger_entries_refund ON ledger_entries (refund_id) WHERE refund_id IS NOT NULL;

-- The holds and releases are gone and the children's charges now move the available
-- balance: every entry's balance after is what the account's entries up to it sum to.
UPDATE ledger_entries SET balance_after_micros = running.sum_micros
FROM (SELECT id, SUM(amount_micros) OVER (PARTITION BY account_id ORDER BY id) AS sum_micros
      FROM ledger_entries) AS running
WHERE running.id = ledger_entries.id AND ledger_entries.balance_after_micros <> running.sum_micros;

DROP INDEX orders_subscription_post;
CREATE TABLE orders_old (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    service_id BIGINT NOT NULL REFERENCES services (id),
    link TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity >= 1),
    runs BIGINT,
    run_interval BIGINT,
    comments TEXT,
    charge_micros BIGINT NOT NULL CHECK (charge_micros >= 0),
    refunded_micros BIGINT NOT NULL DEFAULT 0 CHECK (refunded_micros >= 0 AND refunded_micros <= charge_micros),
    status TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'in_progress', 'completed', 'partial', 'canceled')),
    start_count BIGINT,
    remains BIGINT,
    external_ref TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    approved_dispute_micros BIGINT NOT NULL DEFAULT 0 CHECK (approved_dispute_micros >= 0),
    service_type TEXT NOT NULL DEFAULT 'default',
    order_fields TEXT
);
INSERT INTO orders_old SELECT id, account_id, service_id, link, quantity, runs, run_interval,
    comments, charge_micros, refunded_micros, status, start_count, remains, external_ref,
    created_at, updated_at, approved_dispute_micros, service_type, order_fields FROM orders;
CREATE TABLE orders_sequence_kept AS SELECT seq FROM sqlite_sequence WHERE name = 'orders';
DROP TABLE orders;
ALTER TABLE orders_old RENAME TO orders;
UPDATE sqlite_sequence SET seq = (SELECT MAX(seq) FROM orders_sequence_kept)
WHERE name = 'orders' AND seq < (SELECT MAX(seq) FROM orders_sequence_kept);
DROP TABLE orders_sequence_kept;
CREATE INDEX orders_account ON orders (account_id, id);
CREATE INDEX orders_account_status ON orders (account_id, status, id);
CREATE INDEX orders_service_status ON orders (service_id, status);
CREATE INDEX orders_service_open ON orders (service_id, id) WHERE status IN ('pending', 'processing', 'in_progress');
CREATE INDEX orders_report ON orders (created_at, account_id, service_id, charge_micros, refunded_micros);
CREATE INDEX orders_account_report ON orders (account_id, created_at, service_id, charge_micros, refunded_micros);

DROP TABLE subscriptions;
UPDATE accounts SET balance_micros = balance_micros + held_micros;
ALTER TABLE accounts DROP COLUMN held_micros;
ALTER TABLE services DROP COLUMN subscription_old_posts;
ALTER TABLE services DROP COLUMN subscription_delays;
ALTER TABLE services DROP COLUMN subscription_posts_max;
