DROP TABLE idempotency_keys;
DROP TABLE ledger_entries;
DROP TABLE top_ups;
DROP TABLE orders;
DROP TABLE services;
DROP TABLE jwt_keys;
DROP TABLE api_keys;
DROP TABLE accounts;
