DROP INDEX orders_account_created;
DROP INDEX refunds_account_created;
DROP TABLE dispute_refusals;
ALTER TABLE refunds DROP COLUMN policy_detail;
ALTER TABLE refunds DROP COLUMN policy_rule;
ALTER TABLE refunds DROP COLUMN policy_outcome;
ALTER TABLE accounts DROP COLUMN refund_allowlisted_until;
