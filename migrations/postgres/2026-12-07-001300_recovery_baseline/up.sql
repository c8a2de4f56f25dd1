-- The provider's charge as it stood before the first refund its status made us pay (NULL:
-- none was reported before it). A refund's recovery is measured from it, so a provider
-- whose price moved since the last sync is held to what it actually charged; without it,
-- from the expected cost at send time.
ALTER TABLE order_costs ADD COLUMN baseline_charge_provider_micros BIGINT;

-- How a provider gives back the money of a Partial or Canceled: `charge` (it lowers the
-- order's charge: the recovery watch reads it) or `balance` (it credits its balance and
-- leaves the charge: such refunds are recorded `to_balance`, never judged unrecovered).
ALTER TABLE providers ADD COLUMN credit_mode TEXT NOT NULL DEFAULT 'charge'
    CHECK (credit_mode IN ('charge', 'balance'));
ALTER TABLE order_costs DROP CONSTRAINT order_costs_recovery_check;
ALTER TABLE order_costs ADD CONSTRAINT order_costs_recovery_check
    CHECK (recovery IN ('watching', 'recovered', 'unrecovered', 'to_balance'));
