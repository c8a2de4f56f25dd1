-- The previous version folds under the job row `rollups 2026-12-08-000200` and keeps no
-- zones' days.
DROP TRIGGER rollups_fold_retired ON job_leases;
CREATE TRIGGER rollups_fold_retired BEFORE INSERT OR UPDATE ON job_leases
FOR EACH ROW WHEN (NEW.name IN ('rollups', 'rollups 2026-12-08')) EXECUTE FUNCTION rollups_fold_retired();
DELETE FROM job_leases WHERE name = 'rollups 2026-12-08-000300';
DROP TABLE rollup_zone_account_refunds;
DROP TABLE rollup_zone_account_orders;
DROP TABLE rollup_zone_refunds;
DROP TABLE rollup_zone_orders;
DROP TABLE rollup_zones;
