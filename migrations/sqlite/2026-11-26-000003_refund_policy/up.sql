ALTER TABLE accounts ADD COLUMN refund_allowlisted_until TIMESTAMP;
ALTER TABLE refunds ADD COLUMN policy_outcome TEXT;
ALTER TABLE refunds ADD COLUMN policy_rule TEXT;
ALTER TABLE refunds ADD COLUMN policy_detail TEXT;

CREATE TABLE dispute_refusals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    order_id BIGINT NOT NULL REFERENCES orders (id),
    rule TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX dispute_refusals_account ON dispute_refusals (account_id, created_at);
CREATE INDEX refunds_account_created ON refunds (account_id, created_at);
CREATE INDEX orders_account_created ON orders (account_id, created_at);
