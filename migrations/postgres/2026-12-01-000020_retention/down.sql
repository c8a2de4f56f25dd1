DROP INDEX provider_attempts_created;
DROP INDEX idempotency_keys_created;
