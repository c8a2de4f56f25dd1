-- The audit log: one row per operator (or CLI) write, in the transaction of the change,
-- so an entry exists if and only if its change committed. Nothing edits or deletes a row
-- but the retention sweep, past --audit-retention-days.
CREATE TABLE audit_entries (
    id BIGSERIAL PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    actor_kind TEXT NOT NULL CHECK (actor_kind IN ('operator', 'cli')),
    actor_account_id BIGINT,
    actor_api_key_id BIGINT,
    actor_role TEXT,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id BIGINT,
    -- The account the change concerns (the owner of the target), when there is one.
    account_id BIGINT,
    client_addr TEXT,
    request_id TEXT,
    -- The fields before and after (JSON objects), null where there was nothing.
    before_data TEXT,
    after_data TEXT,
    -- Comma-separated names of secrets the change set or replaced; never their values.
    secret_fields TEXT NOT NULL
);
CREATE INDEX audit_entries_created ON audit_entries (created_at);
CREATE INDEX audit_entries_target ON audit_entries (target_type, target_id, id);
CREATE INDEX audit_entries_account ON audit_entries (account_id, id);
CREATE INDEX audit_entries_actor ON audit_entries (actor_account_id, id);
CREATE INDEX audit_entries_action ON audit_entries (action, id);

-- When the log began: money moved by operators before it (rows from before this upgrade)
-- has no entry and `verify` does not ask for one. The retention sweep moves it forward
-- to the oldest time it still keeps.
CREATE TABLE audit_log_start (
    id BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    began_at TIMESTAMP NOT NULL
);
INSERT INTO audit_log_start (id, began_at) VALUES (1, now() AT TIME ZONE 'UTC');
