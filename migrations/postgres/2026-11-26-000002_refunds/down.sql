DROP INDEX orders_service_open;
DROP INDEX ledger_entries_refund;
DROP TABLE refunds;
ALTER TABLE orders DROP COLUMN approved_dispute_micros;
