-- The provider's charge as it stood before the first refund its status made us pay (NULL:
-- none was reported before it). A refund's recovery is measured from it, so a provider
-- whose price moved since the last sync is held to what it actually charged; without it,
-- from the expected cost at send time.
ALTER TABLE order_costs ADD COLUMN baseline_charge_provider_micros BIGINT;
