DROP INDEX refunds_status_account;
