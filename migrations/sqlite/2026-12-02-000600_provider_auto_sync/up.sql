-- A provider whose catalog the worker syncs on its own, every --service-sync-interval-secs.
ALTER TABLE providers ADD COLUMN auto_sync BOOLEAN NOT NULL DEFAULT FALSE;
INSERT INTO job_leases (name) VALUES ('service_sync');
