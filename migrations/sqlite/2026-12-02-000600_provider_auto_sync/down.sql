DELETE FROM job_leases WHERE name = 'service_sync';
ALTER TABLE providers DROP COLUMN auto_sync;
