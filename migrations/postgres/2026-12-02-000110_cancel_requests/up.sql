-- A cancel of an order the provider already has: recorded here before it is sent, sent by
-- the worker (`action=cancel&orders=`, batched per provider) under a lease per request,
-- every write of an attempt fenced by `lease_token` as for `provider_orders`. The
-- provider's answer is the request's `status`; the refund, if any, comes later from the
-- order's own status sync.
CREATE TABLE cancel_requests (
    id BIGSERIAL PRIMARY KEY,
    order_id BIGINT NOT NULL REFERENCES orders (id),
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    provider_id BIGINT NOT NULL REFERENCES providers (id),
    provider_order_id TEXT NOT NULL,
    -- Who asked: `reseller`, or `service_disabled` when an operator disabled the service.
    source TEXT NOT NULL CHECK (source IN ('reseller', 'service_disabled')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'refused', 'failed')),
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    next_at TIMESTAMP NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    lease_token BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    -- Why the provider refused, in its words; shown to the reseller.
    reason TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX cancel_requests_order ON cancel_requests (order_id);
CREATE INDEX cancel_requests_due ON cancel_requests (state, next_at);
