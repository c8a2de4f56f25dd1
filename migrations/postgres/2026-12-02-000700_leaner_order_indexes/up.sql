-- Fewer index entries per order (each one is a b-tree insert inside every order's
-- transaction): orders_account_created is a prefix of orders_account_report, which serves
-- every query it served; ledger entries of orders and top-ups have no refund, so the refund
-- index keeps only the entries that have one (`refund_id = ?` implies IS NOT NULL, and both
-- databases use a partial index on that proof).
DROP INDEX orders_account_created;
DROP INDEX ledger_entries_refund;
CREATE INDEX ledger_entries_refund ON ledger_entries (refund_id) WHERE refund_id IS NOT NULL;
