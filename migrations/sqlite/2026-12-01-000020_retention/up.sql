-- Retention deletes expired idempotency keys and clears old provider reply bodies in
-- small batches, oldest first: these indexes keep each batch from scanning the table.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE INDEX provider_attempts_created ON provider_attempts (created_at);
