-- The previous version folds under the job row `rollups 2026-12-08-000200` and keeps no
-- zones' days.
DROP TRIGGER rollups_fold_retired_update;
DROP TRIGGER rollups_fold_retired_insert;
CREATE TRIGGER rollups_fold_retired_insert BEFORE INSERT ON job_leases
WHEN NEW.name IN ('rollups', 'rollups 2026-12-08')
BEGIN
    SELECT RAISE(ABORT, 'the rollups fold of a version before 2026-12-08-000200 is retired: stop that process');
END;
CREATE TRIGGER rollups_fold_retired_update BEFORE UPDATE ON job_leases
WHEN NEW.name IN ('rollups', 'rollups 2026-12-08')
BEGIN
    SELECT RAISE(ABORT, 'the rollups fold of a version before 2026-12-08-000200 is retired: stop that process');
END;
DELETE FROM job_leases WHERE name = 'rollups 2026-12-08-000300';
DROP TABLE rollup_zone_account_refunds;
DROP TABLE rollup_zone_account_orders;
DROP TABLE rollup_zone_refunds;
DROP TABLE rollup_zone_orders;
DROP TABLE rollup_zones;
