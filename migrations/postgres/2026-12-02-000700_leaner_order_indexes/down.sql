DROP INDEX ledger_entries_refund;
CREATE INDEX ledger_entries_refund ON ledger_entries (refund_id);
CREATE INDEX orders_account_created ON orders (account_id, created_at);
