-- A provider credited through its balance is watched again (its refunds go back to
-- `watching` and are judged from its charge, as before the column existed).
UPDATE order_costs SET recovery = 'watching' WHERE recovery = 'to_balance';
ALTER TABLE order_costs DROP CONSTRAINT order_costs_recovery_check;
ALTER TABLE order_costs ADD CONSTRAINT order_costs_recovery_check
    CHECK (recovery IN ('watching', 'recovered', 'unrecovered'));
ALTER TABLE providers DROP COLUMN credit_mode;
ALTER TABLE order_costs DROP COLUMN baseline_charge_provider_micros;
