-- The previous version folds under the job row `rollups` and reads and folds only the
-- account levels of days and seven days.
DROP TRIGGER rollups_fold_retired ON job_leases;
DROP FUNCTION rollups_fold_retired();
DELETE FROM job_leases WHERE name = 'rollups 2026-12-08';
DELETE FROM rollup_account_refunds WHERE span IN (4, 24);
DELETE FROM rollup_account_orders WHERE span IN (4, 24);
