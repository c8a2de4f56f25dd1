ALTER TABLE orders ADD COLUMN approved_dispute_micros BIGINT NOT NULL DEFAULT 0 CHECK (approved_dispute_micros >= 0);

CREATE TABLE refunds (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    order_id BIGINT REFERENCES orders (id),
    top_up_id BIGINT REFERENCES top_ups (id),
    amount_micros BIGINT NOT NULL CHECK (amount_micros >= 0),
    reason TEXT NOT NULL CHECK (reason IN (
        'provider_canceled', 'partial_delivery', 'service_disabled', 'canceled_by_reseller',
        'duplicate_top_up', 'chargeback', 'manual',
        'not_delivered', 'partially_delivered', 'dropped', 'duplicate_order', 'other')),
    status TEXT NOT NULL CHECK (status IN ('pending_review', 'pending', 'succeeded', 'rejected', 'failed', 'canceled')),
    source TEXT NOT NULL CHECK (source IN ('automatic', 'reseller', 'admin')),
    note TEXT,
    decision_reason TEXT,
    decided_by BIGINT REFERENCES accounts (id),
    decided_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CHECK ((order_id IS NULL) <> (top_up_id IS NULL))
);
CREATE INDEX refunds_account ON refunds (account_id, id);
CREATE INDEX refunds_order ON refunds (order_id);
CREATE INDEX refunds_top_up ON refunds (top_up_id);
CREATE INDEX refunds_status ON refunds (status, id);
CREATE INDEX ledger_entries_refund ON ledger_entries (refund_id);
CREATE INDEX orders_service_open ON orders (service_id, id) WHERE status IN ('pending', 'processing', 'in_progress');
