-- Report rollups (issue 25): exact sums per 15-minute bucket (UTC-aligned: every bucket
-- edge of every zone in use, +05:30 and +05:45 included, falls on one), kept by a worker
-- that folds the change log below. `bucket` is the Unix time of the bucket's start / 900.
--
-- The change log: one appended row per change that moves a report's sums (an order placed
-- or changed, a refund made or settled, an order's cost or recovery), written by triggers
-- in the change's own transaction. No shared row is updated in the order path: each change
-- appends its own row. The worker recomputes each bucket named here from the rows and
-- deletes exactly the change rows it read, in one transaction; a bucket with a change row
-- left is read from the rows themselves by the reports.
CREATE TABLE rollup_changes (
    id INTEGER PRIMARY KEY,
    bucket BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX rollup_changes_bucket ON rollup_changes (bucket);

-- Orders per bucket, service and account: count, charges, orders with anything refunded.
CREATE TABLE rollup_orders (
    bucket BIGINT NOT NULL,
    service_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    orders BIGINT NOT NULL,
    charged_micros BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    PRIMARY KEY (bucket, service_id, account_id)
);
CREATE INDEX rollup_orders_account ON rollup_orders (account_id, bucket);

-- Succeeded refunds of those orders (by the order's bucket) per reason: count, amount,
-- distinct orders (exact across buckets: an order lives in one bucket only).
CREATE TABLE rollup_refunds (
    bucket BIGINT NOT NULL,
    service_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    reason TEXT NOT NULL,
    refunds BIGINT NOT NULL,
    refunded_micros BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    PRIMARY KEY (bucket, service_id, account_id, reason)
);
CREATE INDEX rollup_refunds_account ON rollup_refunds (account_id, bucket);

-- The provider money report's sums per bucket, provider and service (as `order_costs`
-- holds them), each order's figures computed as the report computes them.
CREATE TABLE rollup_money (
    bucket BIGINT NOT NULL,
    provider_id BIGINT NOT NULL,
    service_id BIGINT NOT NULL,
    orders BIGINT NOT NULL,
    revenue_micros BIGINT NOT NULL,
    provider_cost_micros BIGINT NOT NULL,
    orders_without_cost BIGINT NOT NULL,
    refunds_paid_micros BIGINT NOT NULL,
    expected_credits_micros BIGINT NOT NULL,
    credits_recovered_micros BIGINT NOT NULL,
    unrecovered_micros BIGINT NOT NULL,
    awaiting_credit_micros BIGINT NOT NULL,
    recovery_cases BIGINT NOT NULL,
    unrecovered_cases BIGINT NOT NULL,
    credited_to_balance_micros BIGINT NOT NULL,
    PRIMARY KEY (bucket, provider_id, service_id)
);

CREATE TRIGGER rollup_order_insert AFTER INSERT ON orders
BEGIN
    INSERT INTO rollup_changes (bucket, created_at) VALUES ((CAST(strftime('%s', NEW.created_at) AS INTEGER) / 900), strftime('%Y-%m-%d %H:%M:%f', 'now'));
END;
CREATE TRIGGER rollup_order_update AFTER UPDATE ON orders
WHEN OLD.created_at IS NOT NEW.created_at OR OLD.service_id IS NOT NEW.service_id OR OLD.account_id IS NOT NEW.account_id OR OLD.charge_micros IS NOT NEW.charge_micros OR OLD.refunded_micros IS NOT NEW.refunded_micros
BEGIN
    INSERT INTO rollup_changes (bucket, created_at) VALUES ((CAST(strftime('%s', OLD.created_at) AS INTEGER) / 900), strftime('%Y-%m-%d %H:%M:%f', 'now'));
    INSERT INTO rollup_changes (bucket, created_at) SELECT (CAST(strftime('%s', NEW.created_at) AS INTEGER) / 900), strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE OLD.created_at IS NOT NEW.created_at;
END;
CREATE TRIGGER rollup_order_delete AFTER DELETE ON orders
BEGIN
    INSERT INTO rollup_changes (bucket, created_at) VALUES ((CAST(strftime('%s', OLD.created_at) AS INTEGER) / 900), strftime('%Y-%m-%d %H:%M:%f', 'now'));
END;
CREATE TRIGGER rollup_refund_insert AFTER INSERT ON refunds
WHEN NEW.order_id IS NOT NULL
BEGIN
    INSERT INTO rollup_changes (bucket, created_at) SELECT (CAST(strftime('%s', o.created_at) AS INTEGER) / 900), strftime('%Y-%m-%d %H:%M:%f', 'now') FROM orders o WHERE o.id = NEW.order_id;
END;
CREATE TRIGGER rollup_refund_update AFTER UPDATE ON refunds
WHEN (OLD.order_id IS NOT NULL OR NEW.order_id IS NOT NULL) AND (OLD.order_id IS NOT NEW.order_id OR OLD.status IS NOT NEW.status OR OLD.amount_micros IS NOT NEW.amount_micros OR OLD.reason IS NOT NEW.reason)
BEGIN
    INSERT INTO rollup_changes (bucket, created_at) SELECT (CAST(strftime('%s', o.created_at) AS INTEGER) / 900), strftime('%Y-%m-%d %H:%M:%f', 'now') FROM orders o WHERE o.id IN (OLD.order_id, NEW.order_id);
END;
CREATE TRIGGER rollup_refund_delete AFTER DELETE ON refunds
WHEN OLD.order_id IS NOT NULL
BEGIN
    INSERT INTO rollup_changes (bucket, created_at) SELECT (CAST(strftime('%s', o.created_at) AS INTEGER) / 900), strftime('%Y-%m-%d %H:%M:%f', 'now') FROM orders o WHERE o.id = OLD.order_id;
END;
CREATE TRIGGER rollup_cost_insert AFTER INSERT ON order_costs
BEGIN
    INSERT INTO rollup_changes (bucket, created_at) SELECT (CAST(strftime('%s', o.created_at) AS INTEGER) / 900), strftime('%Y-%m-%d %H:%M:%f', 'now') FROM orders o WHERE o.id = NEW.order_id;
END;
CREATE TRIGGER rollup_cost_update AFTER UPDATE ON order_costs
WHEN OLD.provider_id IS NOT NEW.provider_id OR OLD.service_id IS NOT NEW.service_id OR OLD.exchange_rate_micros IS NOT NEW.exchange_rate_micros OR OLD.expected_cost_provider_micros IS NOT NEW.expected_cost_provider_micros OR OLD.expected_cost_micros IS NOT NEW.expected_cost_micros OR OLD.first_charge_provider_micros IS NOT NEW.first_charge_provider_micros OR OLD.latest_charge_provider_micros IS NOT NEW.latest_charge_provider_micros OR OLD.latest_charge_micros IS NOT NEW.latest_charge_micros OR OLD.baseline_charge_provider_micros IS NOT NEW.baseline_charge_provider_micros OR OLD.provider_refunded_micros IS NOT NEW.provider_refunded_micros OR OLD.recovery IS NOT NEW.recovery OR OLD.order_id IS NOT NEW.order_id
BEGIN
    INSERT INTO rollup_changes (bucket, created_at) SELECT (CAST(strftime('%s', o.created_at) AS INTEGER) / 900), strftime('%Y-%m-%d %H:%M:%f', 'now') FROM orders o WHERE o.id IN (OLD.order_id, NEW.order_id);
END;
CREATE TRIGGER rollup_cost_delete AFTER DELETE ON order_costs
BEGIN
    INSERT INTO rollup_changes (bucket, created_at) SELECT (CAST(strftime('%s', o.created_at) AS INTEGER) / 900), strftime('%Y-%m-%d %H:%M:%f', 'now') FROM orders o WHERE o.id = OLD.order_id;
END;

-- Existing orders: every bucket that holds one is logged once, so the worker folds the
-- history from zero after the upgrade (reports read those buckets' rows until then).
INSERT INTO rollup_changes (bucket, created_at) SELECT DISTINCT (CAST(strftime('%s', created_at) AS INTEGER) / 900), strftime('%Y-%m-%d %H:%M:%f', 'now') FROM orders ORDER BY 1;
