DROP TABLE refills;
DROP TABLE provider_attempts;
DROP TABLE provider_orders;
ALTER TABLE services DROP COLUMN provider_service_id;
ALTER TABLE services DROP COLUMN provider_id;
DROP TABLE providers;
