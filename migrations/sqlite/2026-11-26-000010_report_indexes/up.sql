-- Refund reports scan the orders placed in a window and probe each one's succeeded
-- refunds. These indexes cover every column the report queries read, so a report costs
-- what its window holds, never a table scan (see src/db/reports.rs for the plans).
CREATE INDEX orders_report ON orders (created_at, account_id, service_id, charge_micros, refunded_micros);
CREATE INDEX orders_account_report ON orders (account_id, created_at, service_id, charge_micros, refunded_micros);
CREATE INDEX refunds_report ON refunds (order_id, reason, amount_micros) WHERE status = 'succeeded';
