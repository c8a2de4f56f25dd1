CREATE TABLE accounts (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('reseller', 'admin')),
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    currency TEXT NOT NULL,
    balance_micros BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE jwt_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    secret TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    retire_at TIMESTAMP
);

CREATE TABLE services (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('default', 'drip_feed', 'custom_comments', 'package')),
    rate_micros BIGINT NOT NULL CHECK (rate_micros >= 0),
    min_quantity BIGINT NOT NULL CHECK (min_quantity >= 1),
    max_quantity BIGINT NOT NULL,
    refill BOOLEAN NOT NULL,
    cancel BOOLEAN NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CHECK (max_quantity >= min_quantity)
);

CREATE TABLE orders (
    id BIGSERIAL PRIMARY KEY,
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
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX orders_account ON orders (account_id, id);
CREATE INDEX orders_account_status ON orders (account_id, status, id);
CREATE INDEX orders_service_status ON orders (service_id, status);

CREATE TABLE top_ups (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    amount_micros BIGINT NOT NULL CHECK (amount_micros > 0),
    refunded_micros BIGINT NOT NULL DEFAULT 0 CHECK (refunded_micros >= 0 AND refunded_micros <= amount_micros),
    gateway TEXT NOT NULL,
    gateway_ref TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX top_ups_account ON top_ups (account_id, id);

CREATE TABLE ledger_entries (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    kind TEXT NOT NULL CHECK (kind IN ('top_up', 'order_charge', 'refund', 'top_up_refund', 'chargeback', 'adjustment')),
    amount_micros BIGINT NOT NULL,
    balance_after_micros BIGINT NOT NULL,
    order_id BIGINT REFERENCES orders (id),
    refund_id BIGINT,
    top_up_id BIGINT REFERENCES top_ups (id),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, id);
CREATE INDEX ledger_entries_order ON ledger_entries (order_id);

CREATE TABLE idempotency_keys (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    scope TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('in_flight', 'done')),
    response_status INTEGER,
    response_body TEXT,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (account_id, scope, idem_key)
);
