-- The previous version folds under the job row `rollups 2026-12-08` and keeps the per-account
-- totals in days and seven days only.
DROP TRIGGER rollups_fold_retired_update;
DROP TRIGGER rollups_fold_retired_insert;
CREATE TRIGGER rollups_fold_retired_insert BEFORE INSERT ON job_leases
WHEN NEW.name = 'rollups'
BEGIN
    SELECT RAISE(ABORT, 'the rollups fold of a version before 2026-12-08 is retired: stop that process');
END;
CREATE TRIGGER rollups_fold_retired_update BEFORE UPDATE ON job_leases
WHEN NEW.name = 'rollups'
BEGIN
    SELECT RAISE(ABORT, 'the rollups fold of a version before 2026-12-08 is retired: stop that process');
END;
DELETE FROM job_leases WHERE name = 'rollups 2026-12-08-000200';
DELETE FROM rollup_account_reasons WHERE span IN (4, 24);
DELETE FROM rollup_account_totals WHERE span IN (4, 24);
DROP INDEX rollup_account_reasons_account;
DROP INDEX rollup_account_totals_account;
