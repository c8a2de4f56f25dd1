-- Local days of the report zones (issue 25): a day series in a zone whose midnight is not
-- a UTC midnight (+05:30) read each local day as quarters, hours and six hours of the UTC
-- levels (~12 rows a day, and one per refund reason each); for the zones the panel lists
-- (`--report-zones`) the fold keeps whole local days, one row a day per key.
-- `phase`: where the zone's days start, in quarters past the UTC midnight (+05:30: 74).
-- A zone is filled from the history in week-long steps (`next_bucket` up to
-- `end_bucket`); reports read its days once `next_bucket >= end_bucket`, and every fold
-- keeps the days of every zone listed here, filled or not.
CREATE TABLE rollup_zones (
    phase BIGINT PRIMARY KEY NOT NULL CHECK (phase > 0 AND phase < 96),
    next_bucket BIGINT NOT NULL,
    end_bucket BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE rollup_zone_orders (
    phase BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    orders BIGINT NOT NULL,
    charged_micros BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    PRIMARY KEY (phase, bucket)
);
CREATE TABLE rollup_zone_refunds (
    phase BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    reason TEXT NOT NULL,
    refunds BIGINT NOT NULL,
    refunded_micros BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    PRIMARY KEY (phase, bucket, reason)
);
CREATE TABLE rollup_zone_account_orders (
    phase BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    orders BIGINT NOT NULL,
    charged_micros BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    PRIMARY KEY (phase, bucket, account_id)
);
CREATE TABLE rollup_zone_account_refunds (
    phase BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    reason TEXT NOT NULL,
    refunds BIGINT NOT NULL,
    refunded_micros BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    PRIMARY KEY (phase, bucket, account_id, reason)
);
-- As the UTC levels: the key leads with the day (a fill or a fold of every account reads
-- and rewrites a range of days), and one reseller's days are an index range of their own.
CREATE INDEX rollup_zone_account_orders_account ON rollup_zone_account_orders (account_id, phase, bucket);
CREATE INDEX rollup_zone_account_refunds_account ON rollup_zone_account_refunds (account_id, phase, bucket);

-- A process of the previous version still running would fold without the zones' days,
-- leaving them stale: its fold's job row `rollups 2026-12-08-000200` is refused from now
-- on. This version folds under `rollups 2026-12-08-000300`.
DELETE FROM job_leases WHERE name = 'rollups 2026-12-08-000200';
DROP TRIGGER rollups_fold_retired ON job_leases;
CREATE TRIGGER rollups_fold_retired BEFORE INSERT OR UPDATE ON job_leases
FOR EACH ROW WHEN (NEW.name IN ('rollups', 'rollups 2026-12-08', 'rollups 2026-12-08-000200')) EXECUTE FUNCTION rollups_fold_retired();
