-- Secrets at rest (provider API keys, webhook signing secrets, token-signing keys) are
-- sealed under a master key: this one row records that they are, under which key (its id)
-- and a check value sealed under it, so a process with a wrong or no key refuses to start.
CREATE TABLE secret_seal (
    id BIGINT PRIMARY KEY NOT NULL,
    key_id TEXT NOT NULL,
    key_check TEXT NOT NULL,
    sealed_at TIMESTAMP NOT NULL
);
