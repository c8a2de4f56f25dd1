-- The previous version folds under the job row `rollups 2026-12-08` and keeps the per-account
-- totals in days and seven days only.
DROP TRIGGER rollups_fold_retired ON job_leases;
CREATE TRIGGER rollups_fold_retired BEFORE INSERT OR UPDATE ON job_leases
FOR EACH ROW WHEN (NEW.name = 'rollups') EXECUTE FUNCTION rollups_fold_retired();
DELETE FROM job_leases WHERE name = 'rollups 2026-12-08-000200';
DELETE FROM rollup_account_reasons WHERE span IN (4, 24);
DELETE FROM rollup_account_totals WHERE span IN (4, 24);
DROP INDEX rollup_account_reasons_account;
DROP INDEX rollup_account_totals_account;
