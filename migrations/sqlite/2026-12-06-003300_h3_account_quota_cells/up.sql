-- The account quota's GCRA cell per account (PostgreSQL: every process serving the
-- account leases requests from it, so N processes enforce one quota; SQLite keeps its
-- single process's quota in memory and has the table only for one schema).
-- `tat_us`: the theoretical arrival time, microseconds since the epoch on the database's
-- clock; `granted`: what the last lease got (read back by the statement that leases).
CREATE TABLE account_quota_cells (
    account_id BIGINT PRIMARY KEY NOT NULL REFERENCES accounts (id),
    tat_us BIGINT NOT NULL,
    granted BIGINT NOT NULL
);
