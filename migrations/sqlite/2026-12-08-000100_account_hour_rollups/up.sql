-- One reseller's reports (issue 25): per account and service, hours and six hours below
-- the days, so a day series in a zone whose days are not UTC days (+05:30: a local day
-- runs 18:30 to 18:30 UTC) reads 2 quarters, 5 hours, 3 six-hour spans and 2 quarters
-- per day instead of 96 quarters. Day rows are now summed from six-hour rows (the sums
-- are the same). Existing 15-minute rows are summed into the new levels, each from the
-- one below, from the buckets 2026-12-07-002200 summed (those from 1970 on).
INSERT INTO rollup_account_orders (span, bucket, account_id, service_id, orders, charged_micros, refunded_orders)
    SELECT 4, (c.bucket - ((c.bucket % 4) + 4) % 4), c.account_id, c.service_id, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.charged_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_orders c WHERE c.bucket >= 0 GROUP BY (c.bucket - ((c.bucket % 4) + 4) % 4), c.account_id, c.service_id;
INSERT INTO rollup_account_orders (span, bucket, account_id, service_id, orders, charged_micros, refunded_orders)
    SELECT 24, (c.bucket - ((c.bucket % 24) + 24) % 24), c.account_id, c.service_id, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.charged_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_account_orders c WHERE c.span = 4 GROUP BY (c.bucket - ((c.bucket % 24) + 24) % 24), c.account_id, c.service_id;
INSERT INTO rollup_account_refunds (span, bucket, account_id, service_id, reason, refunds, refunded_micros, refunded_orders)
    SELECT 4, (c.bucket - ((c.bucket % 4) + 4) % 4), c.account_id, c.service_id, c.reason, CAST(SUM(c.refunds) AS BIGINT), CAST(SUM(c.refunded_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_refunds c WHERE c.bucket >= 0 GROUP BY (c.bucket - ((c.bucket % 4) + 4) % 4), c.account_id, c.service_id, c.reason;
INSERT INTO rollup_account_refunds (span, bucket, account_id, service_id, reason, refunds, refunded_micros, refunded_orders)
    SELECT 24, (c.bucket - ((c.bucket % 24) + 24) % 24), c.account_id, c.service_id, c.reason, CAST(SUM(c.refunds) AS BIGINT), CAST(SUM(c.refunded_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_account_refunds c WHERE c.span = 4 GROUP BY (c.bucket - ((c.bucket % 24) + 24) % 24), c.account_id, c.service_id, c.reason;

-- A process of an earlier version still running would fold without these levels (and,
-- before 2026-12-07-002200, without any coarser level), leaving them stale. Its fold
-- takes the job row `rollups` first, in the fold's transaction: refused from now on, so
-- that fold fails and changes nothing. This version folds under `rollups 2026-12-08`.
DELETE FROM job_leases WHERE name = 'rollups';
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
