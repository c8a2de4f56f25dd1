DROP INDEX refunds_report;
DROP INDEX orders_account_report;
DROP INDEX orders_report;
