CREATE TABLE providers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    api_key TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    timeout_ms BIGINT NOT NULL CHECK (timeout_ms BETWEEN 100 AND 120000),
    batch_size BIGINT NOT NULL CHECK (batch_size BETWEEN 1 AND 100),
    idempotent_add BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

ALTER TABLE services ADD COLUMN provider_id BIGINT REFERENCES providers (id);
ALTER TABLE services ADD COLUMN provider_service_id TEXT;

-- One row per provider-backed order: where it stands upstream.
CREATE TABLE provider_orders (
    order_id BIGINT PRIMARY KEY NOT NULL REFERENCES orders (id),
    provider_id BIGINT NOT NULL REFERENCES providers (id),
    provider_service_id TEXT NOT NULL,
    -- queued: to send; sending: an attempt is under way; sent: accepted upstream;
    -- ambiguous: the provider may or may not have it; failed: given up sending;
    -- done: terminal outcome recorded; given_up: stuck past the horizon.
    state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'ambiguous', 'failed', 'done', 'given_up')),
    provider_order_id TEXT,
    idempotency_key TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    next_at TIMESTAMP NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    last_error TEXT,
    quarantined_status TEXT,
    last_synced_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX provider_orders_due ON provider_orders (state, next_at);
CREATE INDEX provider_orders_provider ON provider_orders (provider_id, state, next_at);

-- Every exchange with a provider, with the raw reply (truncated), for the operator.
CREATE TABLE provider_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_id BIGINT NOT NULL REFERENCES providers (id),
    order_id BIGINT,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    body TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX provider_attempts_order ON provider_attempts (order_id);

CREATE TABLE refills (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id BIGINT NOT NULL REFERENCES orders (id),
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX refills_order ON refills (order_id);
