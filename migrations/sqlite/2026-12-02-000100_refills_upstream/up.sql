-- Refills reach the provider: a refill of a provider-backed order is queued here in the
-- transaction that records it and sent by the worker after commit (`action=refill`),
-- then polled (`action=refill_status`) under a lease per refill, every write of an
-- attempt fenced by `lease_token` as for `provider_orders`. `state` is null for a refill
-- an operator decides (no provider, or an order never sent upstream).
UPDATE refills SET status = 'pending' WHERE status = 'Pending';
ALTER TABLE refills ADD COLUMN provider_id BIGINT;
ALTER TABLE refills ADD COLUMN provider_order_id TEXT;
ALTER TABLE refills ADD COLUMN provider_refill_id TEXT;
ALTER TABLE refills ADD COLUMN state TEXT;
ALTER TABLE refills ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refills ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refills ADD COLUMN next_at TIMESTAMP;
ALTER TABLE refills ADD COLUMN lease_owner TEXT;
ALTER TABLE refills ADD COLUMN lease_until TIMESTAMP;
ALTER TABLE refills ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refills ADD COLUMN last_error TEXT;
ALTER TABLE refills ADD COLUMN quarantined_status TEXT;
ALTER TABLE refills ADD COLUMN last_synced_at TIMESTAMP;
-- Why a refill was rejected or ended in error: the provider's words or the operator's.
ALTER TABLE refills ADD COLUMN note TEXT;
ALTER TABLE refills ADD COLUMN decided_by BIGINT;
ALTER TABLE refills ADD COLUMN updated_at TIMESTAMP;
CREATE INDEX refills_due ON refills (state, next_at);

-- How many days after an order is placed a refill may be asked for.
ALTER TABLE services ADD COLUMN refill_days BIGINT NOT NULL DEFAULT 30;
