DROP TABLE rollup_account_refunds;
DROP TABLE rollup_account_orders;
DROP TABLE rollup_service_money;
DROP TABLE rollup_service_refunds;
DROP TABLE rollup_service_orders;
