-- The event log, written in the transaction of the change it describes (a transactional
-- outbox): an event exists if and only if its change committed.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type TEXT NOT NULL,
    -- The account the event belongs to; null for operator events (alerts).
    account_id BIGINT REFERENCES accounts (id),
    -- The resource as the API returned it when the change committed (JSON).
    data TEXT NOT NULL,
    -- False until the webhook worker has queued a delivery to every endpoint it matches.
    dispatched BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX events_account ON events (account_id, id);
CREATE INDEX events_type ON events (event_type, id);
CREATE INDEX events_created ON events (created_at);
CREATE INDEX events_undispatched ON events (id) WHERE dispatched = FALSE;

CREATE TABLE webhook_endpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    url TEXT NOT NULL,
    -- Comma-separated event types; empty means every event the owner may see.
    event_types TEXT NOT NULL,
    description TEXT,
    secret TEXT NOT NULL,
    -- After a rotation the previous secret signs too, until previous_secret_until.
    previous_secret TEXT,
    previous_secret_until TIMESTAMP,
    status TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
    disabled_reason TEXT,
    -- The first failed attempt since the last success; null while deliveries succeed.
    failing_since TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id, id);

-- One event to one endpoint: pending until a 2xx, or failed after the last attempt.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id BIGINT NOT NULL REFERENCES events (id),
    endpoint_id BIGINT NOT NULL REFERENCES webhook_endpoints (id),
    state TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at TIMESTAMP NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    lease_token BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_at);

-- Every attempt, for the delivery log.
CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id),
    event_id BIGINT NOT NULL REFERENCES events (id),
    endpoint_id BIGINT NOT NULL REFERENCES webhook_endpoints (id),
    attempt BIGINT NOT NULL,
    status_code INTEGER,
    duration_ms BIGINT NOT NULL,
    response_body TEXT,
    error TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);

-- Refund-rate alerts: one row per episode of one (subject, window, measure); active
-- until its rate falls below the clearing threshold.
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL CHECK (scope IN ('service', 'provider')),
    subject_id BIGINT NOT NULL,
    window_name TEXT NOT NULL CHECK (window_name IN ('1h', '24h', '7d')),
    measure TEXT NOT NULL CHECK (measure IN ('amount', 'count')),
    level TEXT NOT NULL CHECK (level IN ('warning', 'critical')),
    active BOOLEAN NOT NULL,
    -- The numbers of the last evaluation that changed the alert (rates in millionths).
    rate_ppm BIGINT NOT NULL,
    threshold_ppm BIGINT NOT NULL,
    orders BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    charged_micros BIGINT NOT NULL,
    refunded_micros BIGINT NOT NULL,
    -- Set on a critical alert when --alert-pause-orders is on: new orders are refused.
    pauses_orders BOOLEAN NOT NULL DEFAULT FALSE,
    raised_at TIMESTAMP NOT NULL,
    escalated_at TIMESTAMP,
    cleared_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX alerts_active ON alerts (scope, subject_id, window_name, measure) WHERE active;
CREATE INDEX alerts_recent ON alerts (id);

-- Thresholds of one service or provider, where they differ from the global flags.
CREATE TABLE alert_rules (
    scope TEXT NOT NULL CHECK (scope IN ('service', 'provider')),
    subject_id BIGINT NOT NULL,
    warning_rate_ppm BIGINT,
    critical_rate_ppm BIGINT,
    min_orders BIGINT,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (scope, subject_id)
);

-- Work one process does at a time for all of them (the alert evaluation), under a lease.
CREATE TABLE job_leases (
    name TEXT PRIMARY KEY NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    last_run_at TIMESTAMP
);
INSERT INTO job_leases (name) VALUES ('alerts');
