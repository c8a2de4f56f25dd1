-- The markup applied to a provider's rates when its catalog is synced into ours, in
-- millionths of a percent (25% is 25000000).
ALTER TABLE providers ADD COLUMN markup_percent_micros BIGINT NOT NULL DEFAULT 0;
