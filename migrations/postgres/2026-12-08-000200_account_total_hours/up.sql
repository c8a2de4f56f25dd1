-- A reseller's time series (issue 25): per account alone, hours and six hours below the
-- days, so one reseller's day, week or month series reads rows without the service key
-- (a reseller's year of days in +05:30 read ~12 spans a day per service it ordered; now
-- ~12 a day). Day rows stay summed from the per-service days (the sums are the same).
-- An index by account first, so one reseller's runs are an index range each (the primary
-- key leads with the span and bucket: every account's rows in the range).
-- Existing rows are summed from the per-account-and-service hours and six hours that
-- 2026-12-08-000100 filled (those from 1970 on).
CREATE INDEX rollup_account_totals_account ON rollup_account_totals (account_id, span, bucket);
CREATE INDEX rollup_account_reasons_account ON rollup_account_reasons (account_id, span, bucket);
INSERT INTO rollup_account_totals (span, bucket, account_id, orders, charged_micros, refunded_orders)
    SELECT c.span, c.bucket, c.account_id, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.charged_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_account_orders c WHERE c.span IN (4, 24) AND c.bucket >= 0 GROUP BY c.span, c.bucket, c.account_id;
INSERT INTO rollup_account_reasons (span, bucket, account_id, reason, refunds, refunded_micros, refunded_orders)
    SELECT c.span, c.bucket, c.account_id, c.reason, CAST(SUM(c.refunds) AS BIGINT), CAST(SUM(c.refunded_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_account_refunds c WHERE c.span IN (4, 24) AND c.bucket >= 0 GROUP BY c.span, c.bucket, c.account_id, c.reason;

-- A process of the previous version still running would fold without these levels,
-- leaving them stale: its fold's job row `rollups 2026-12-08` is refused from now on (as
-- `rollups` is since 2026-12-08-000100). This version folds under `rollups 2026-12-08-000200`.
DELETE FROM job_leases WHERE name = 'rollups 2026-12-08';
DROP TRIGGER rollups_fold_retired ON job_leases;
CREATE TRIGGER rollups_fold_retired BEFORE INSERT OR UPDATE ON job_leases
FOR EACH ROW WHEN (NEW.name IN ('rollups', 'rollups 2026-12-08')) EXECUTE FUNCTION rollups_fold_retired();
