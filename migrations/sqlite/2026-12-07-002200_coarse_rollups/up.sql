-- Coarser report rollups (issue 25): the 15-minute rows (`rollup_orders`, `rollup_refunds`,
-- `rollup_money`) summed over longer UTC-aligned spans, so a year-long report reads a few
-- thousand rows instead of a million. `span` is the length in 15-minute buckets (1: the
-- bucket itself, 4: an hour, 24: six hours, 96: a UTC day, 672: seven UTC days counted
-- from the Unix epoch, a Thursday) and `bucket` the first 15-minute bucket of the span (a
-- multiple of `span`).
--
-- The worker keeps them in the fold's own transaction: after it recomputes a run of
-- 15-minute buckets from the rows, it recomputes the spans holding them, each from the
-- level below (an hour from its quarters, a day from its hours, seven days from their
-- days). Nothing in the order path writes here. In any snapshot a span's row equals the
-- sum of the 15-minute rows it covers; a report uses it only when none of those buckets
-- has a change row left.

-- Time only, for the time series and the by-reason report over all accounts: quarters,
-- hours, six hours, days, seven days (a local day in +05:30 is quarters, hours and six
-- hours: no UTC day fits in it).
CREATE TABLE rollup_time_orders (
    span BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    orders BIGINT NOT NULL,
    charged_micros BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    PRIMARY KEY (span, bucket)
) WITHOUT ROWID;
CREATE TABLE rollup_time_refunds (
    span BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    reason TEXT NOT NULL,
    refunds BIGINT NOT NULL,
    refunded_micros BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    PRIMARY KEY (span, bucket, reason)
) WITHOUT ROWID;

-- Per service (the by-service and by-provider reports), and per provider and service (the
-- provider money report): hours, days, seven days.
CREATE TABLE rollup_service_orders (
    span BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    service_id BIGINT NOT NULL,
    orders BIGINT NOT NULL,
    charged_micros BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    PRIMARY KEY (span, bucket, service_id)
) WITHOUT ROWID;
CREATE TABLE rollup_service_refunds (
    span BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    service_id BIGINT NOT NULL,
    reason TEXT NOT NULL,
    refunds BIGINT NOT NULL,
    refunded_micros BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    PRIMARY KEY (span, bucket, service_id, reason)
) WITHOUT ROWID;
CREATE TABLE rollup_service_money (
    span BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    provider_id BIGINT NOT NULL,
    service_id BIGINT NOT NULL,
    orders BIGINT NOT NULL,
    revenue_micros BIGINT NOT NULL,
    provider_cost_micros BIGINT NOT NULL,
    orders_without_cost BIGINT NOT NULL,
    refunds_paid_micros BIGINT NOT NULL,
    expected_credits_micros BIGINT NOT NULL,
    credits_recovered_micros BIGINT NOT NULL,
    unrecovered_micros BIGINT NOT NULL,
    awaiting_credit_micros BIGINT NOT NULL,
    recovery_cases BIGINT NOT NULL,
    unrecovered_cases BIGINT NOT NULL,
    credited_to_balance_micros BIGINT NOT NULL,
    PRIMARY KEY (span, bucket, provider_id, service_id)
) WITHOUT ROWID;

-- Per account and service, for one reseller's reports: days, seven days (their edges
-- read the 15-minute rows, which carry the account).
CREATE TABLE rollup_account_orders (
    span BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    service_id BIGINT NOT NULL,
    orders BIGINT NOT NULL,
    charged_micros BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    PRIMARY KEY (span, bucket, account_id, service_id)
) WITHOUT ROWID;
CREATE INDEX rollup_account_orders_account ON rollup_account_orders (account_id, span, bucket);
CREATE TABLE rollup_account_refunds (
    span BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    service_id BIGINT NOT NULL,
    reason TEXT NOT NULL,
    refunds BIGINT NOT NULL,
    refunded_micros BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    PRIMARY KEY (span, bucket, account_id, service_id, reason)
) WITHOUT ROWID;
CREATE INDEX rollup_account_refunds_account ON rollup_account_refunds (account_id, span, bucket);

-- Per account alone, for the by-account report over all accounts: days, seven days.
CREATE TABLE rollup_account_totals (
    span BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    orders BIGINT NOT NULL,
    charged_micros BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    PRIMARY KEY (span, bucket, account_id)
) WITHOUT ROWID;
CREATE TABLE rollup_account_reasons (
    span BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    reason TEXT NOT NULL,
    refunds BIGINT NOT NULL,
    refunded_micros BIGINT NOT NULL,
    refunded_orders BIGINT NOT NULL,
    PRIMARY KEY (span, bucket, account_id, reason)
) WITHOUT ROWID;

-- Existing 15-minute rows summed into every level, finest first (each from the one below).
INSERT INTO rollup_time_orders (span, bucket, orders, charged_micros, refunded_orders)
    SELECT 1, (c.bucket / 1) * 1, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.charged_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_orders c WHERE c.bucket >= 0 GROUP BY (c.bucket / 1) * 1;
INSERT INTO rollup_time_orders (span, bucket, orders, charged_micros, refunded_orders)
    SELECT 4, (c.bucket / 4) * 4, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.charged_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_time_orders c WHERE c.span = 1 AND c.bucket >= 0 GROUP BY (c.bucket / 4) * 4;
INSERT INTO rollup_time_orders (span, bucket, orders, charged_micros, refunded_orders)
    SELECT 24, (c.bucket / 24) * 24, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.charged_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_time_orders c WHERE c.span = 4 AND c.bucket >= 0 GROUP BY (c.bucket / 24) * 24;
INSERT INTO rollup_time_orders (span, bucket, orders, charged_micros, refunded_orders)
    SELECT 96, (c.bucket / 96) * 96, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.charged_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_time_orders c WHERE c.span = 24 AND c.bucket >= 0 GROUP BY (c.bucket / 96) * 96;
INSERT INTO rollup_time_orders (span, bucket, orders, charged_micros, refunded_orders)
    SELECT 672, (c.bucket / 672) * 672, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.charged_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_time_orders c WHERE c.span = 96 AND c.bucket >= 0 GROUP BY (c.bucket / 672) * 672;
INSERT INTO rollup_time_refunds (span, bucket, reason, refunds, refunded_micros, refunded_orders)
    SELECT 1, (c.bucket / 1) * 1, c.reason, CAST(SUM(c.refunds) AS BIGINT), CAST(SUM(c.refunded_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_refunds c WHERE c.bucket >= 0 GROUP BY (c.bucket / 1) * 1, c.reason;
INSERT INTO rollup_time_refunds (span, bucket, reason, refunds, refunded_micros, refunded_orders)
    SELECT 4, (c.bucket / 4) * 4, c.reason, CAST(SUM(c.refunds) AS BIGINT), CAST(SUM(c.refunded_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_time_refunds c WHERE c.span = 1 AND c.bucket >= 0 GROUP BY (c.bucket / 4) * 4, c.reason;
INSERT INTO rollup_time_refunds (span, bucket, reason, refunds, refunded_micros, refunded_orders)
    SELECT 24, (c.bucket / 24) * 24, c.reason, CAST(SUM(c.refunds) AS BIGINT), CAST(SUM(c.refunded_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_time_refunds c WHERE c.span = 4 AND c.bucket >= 0 GROUP BY (c.bucket / 24) * 24, c.reason;
INSERT INTO rollup_time_refunds (span, bucket, reason, refunds, refunded_micros, refunded_orders)
    SELECT 96, (c.bucket / 96) * 96, c.reason, CAST(SUM(c.refunds) AS BIGINT), CAST(SUM(c.refunded_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_time_refunds c WHERE c.span = 24 AND c.bucket >= 0 GROUP BY (c.bucket / 96) * 96, c.reason;
INSERT INTO rollup_time_refunds (span, bucket, reason, refunds, refunded_micros, refunded_orders)
    SELECT 672, (c.bucket / 672) * 672, c.reason, CAST(SUM(c.refunds) AS BIGINT), CAST(SUM(c.refunded_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_time_refunds c WHERE c.span = 96 AND c.bucket >= 0 GROUP BY (c.bucket / 672) * 672, c.reason;
INSERT INTO rollup_service_orders (span, bucket, service_id, orders, charged_micros, refunded_orders)
    SELECT 4, (c.bucket / 4) * 4, c.service_id, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.charged_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_orders c WHERE c.bucket >= 0 GROUP BY (c.bucket / 4) * 4, c.service_id;
INSERT INTO rollup_service_orders (span, bucket, service_id, orders, charged_micros, refunded_orders)
    SELECT 96, (c.bucket / 96) * 96, c.service_id, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.charged_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_service_orders c WHERE c.span = 4 AND c.bucket >= 0 GROUP BY (c.bucket / 96) * 96, c.service_id;
INSERT INTO rollup_service_orders (span, bucket, service_id, orders, charged_micros, refunded_orders)
    SELECT 672, (c.bucket / 672) * 672, c.service_id, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.charged_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_service_orders c WHERE c.span = 96 AND c.bucket >= 0 GROUP BY (c.bucket / 672) * 672, c.service_id;
INSERT INTO rollup_service_refunds (span, bucket, service_id, reason, refunds, refunded_micros, refunded_orders)
    SELECT 4, (c.bucket / 4) * 4, c.service_id, c.reason, CAST(SUM(c.refunds) AS BIGINT), CAST(SUM(c.refunded_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_refunds c WHERE c.bucket >= 0 GROUP BY (c.bucket / 4) * 4, c.service_id, c.reason;
INSERT INTO rollup_service_refunds (span, bucket, service_id, reason, refunds, refunded_micros, refunded_orders)
    SELECT 96, (c.bucket / 96) * 96, c.service_id, c.reason, CAST(SUM(c.refunds) AS BIGINT), CAST(SUM(c.refunded_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_service_refunds c WHERE c.span = 4 AND c.bucket >= 0 GROUP BY (c.bucket / 96) * 96, c.service_id, c.reason;
INSERT INTO rollup_service_refunds (span, bucket, service_id, reason, refunds, refunded_micros, refunded_orders)
    SELECT 672, (c.bucket / 672) * 672, c.service_id, c.reason, CAST(SUM(c.refunds) AS BIGINT), CAST(SUM(c.refunded_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_service_refunds c WHERE c.span = 96 AND c.bucket >= 0 GROUP BY (c.bucket / 672) * 672, c.service_id, c.reason;
INSERT INTO rollup_service_money (span, bucket, provider_id, service_id, orders, revenue_micros, provider_cost_micros, orders_without_cost, refunds_paid_micros, expected_credits_micros, credits_recovered_micros, unrecovered_micros, awaiting_credit_micros, recovery_cases, unrecovered_cases, credited_to_balance_micros)
    SELECT 4, (c.bucket / 4) * 4, c.provider_id, c.service_id, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.revenue_micros) AS BIGINT), CAST(SUM(c.provider_cost_micros) AS BIGINT), CAST(SUM(c.orders_without_cost) AS BIGINT), CAST(SUM(c.refunds_paid_micros) AS BIGINT), CAST(SUM(c.expected_credits_micros) AS BIGINT), CAST(SUM(c.credits_recovered_micros) AS BIGINT), CAST(SUM(c.unrecovered_micros) AS BIGINT), CAST(SUM(c.awaiting_credit_micros) AS BIGINT), CAST(SUM(c.recovery_cases) AS BIGINT), CAST(SUM(c.unrecovered_cases) AS BIGINT), CAST(SUM(c.credited_to_balance_micros) AS BIGINT)
    FROM rollup_money c WHERE c.bucket >= 0 GROUP BY (c.bucket / 4) * 4, c.provider_id, c.service_id;
INSERT INTO rollup_service_money (span, bucket, provider_id, service_id, orders, revenue_micros, provider_cost_micros, orders_without_cost, refunds_paid_micros, expected_credits_micros, credits_recovered_micros, unrecovered_micros, awaiting_credit_micros, recovery_cases, unrecovered_cases, credited_to_balance_micros)
    SELECT 96, (c.bucket / 96) * 96, c.provider_id, c.service_id, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.revenue_micros) AS BIGINT), CAST(SUM(c.provider_cost_micros) AS BIGINT), CAST(SUM(c.orders_without_cost) AS BIGINT), CAST(SUM(c.refunds_paid_micros) AS BIGINT), CAST(SUM(c.expected_credits_micros) AS BIGINT), CAST(SUM(c.credits_recovered_micros) AS BIGINT), CAST(SUM(c.unrecovered_micros) AS BIGINT), CAST(SUM(c.awaiting_credit_micros) AS BIGINT), CAST(SUM(c.recovery_cases) AS BIGINT), CAST(SUM(c.unrecovered_cases) AS BIGINT), CAST(SUM(c.credited_to_balance_micros) AS BIGINT)
    FROM rollup_service_money c WHERE c.span = 4 AND c.bucket >= 0 GROUP BY (c.bucket / 96) * 96, c.provider_id, c.service_id;
INSERT INTO rollup_service_money (span, bucket, provider_id, service_id, orders, revenue_micros, provider_cost_micros, orders_without_cost, refunds_paid_micros, expected_credits_micros, credits_recovered_micros, unrecovered_micros, awaiting_credit_micros, recovery_cases, unrecovered_cases, credited_to_balance_micros)
    SELECT 672, (c.bucket / 672) * 672, c.provider_id, c.service_id, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.revenue_micros) AS BIGINT), CAST(SUM(c.provider_cost_micros) AS BIGINT), CAST(SUM(c.orders_without_cost) AS BIGINT), CAST(SUM(c.refunds_paid_micros) AS BIGINT), CAST(SUM(c.expected_credits_micros) AS BIGINT), CAST(SUM(c.credits_recovered_micros) AS BIGINT), CAST(SUM(c.unrecovered_micros) AS BIGINT), CAST(SUM(c.awaiting_credit_micros) AS BIGINT), CAST(SUM(c.recovery_cases) AS BIGINT), CAST(SUM(c.unrecovered_cases) AS BIGINT), CAST(SUM(c.credited_to_balance_micros) AS BIGINT)
    FROM rollup_service_money c WHERE c.span = 96 AND c.bucket >= 0 GROUP BY (c.bucket / 672) * 672, c.provider_id, c.service_id;
INSERT INTO rollup_account_orders (span, bucket, account_id, service_id, orders, charged_micros, refunded_orders)
    SELECT 96, (c.bucket / 96) * 96, c.account_id, c.service_id, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.charged_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_orders c WHERE c.bucket >= 0 GROUP BY (c.bucket / 96) * 96, c.account_id, c.service_id;
INSERT INTO rollup_account_orders (span, bucket, account_id, service_id, orders, charged_micros, refunded_orders)
    SELECT 672, (c.bucket / 672) * 672, c.account_id, c.service_id, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.charged_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_account_orders c WHERE c.span = 96 AND c.bucket >= 0 GROUP BY (c.bucket / 672) * 672, c.account_id, c.service_id;
INSERT INTO rollup_account_refunds (span, bucket, account_id, service_id, reason, refunds, refunded_micros, refunded_orders)
    SELECT 96, (c.bucket / 96) * 96, c.account_id, c.service_id, c.reason, CAST(SUM(c.refunds) AS BIGINT), CAST(SUM(c.refunded_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_refunds c WHERE c.bucket >= 0 GROUP BY (c.bucket / 96) * 96, c.account_id, c.service_id, c.reason;
INSERT INTO rollup_account_refunds (span, bucket, account_id, service_id, reason, refunds, refunded_micros, refunded_orders)
    SELECT 672, (c.bucket / 672) * 672, c.account_id, c.service_id, c.reason, CAST(SUM(c.refunds) AS BIGINT), CAST(SUM(c.refunded_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_account_refunds c WHERE c.span = 96 AND c.bucket >= 0 GROUP BY (c.bucket / 672) * 672, c.account_id, c.service_id, c.reason;
INSERT INTO rollup_account_totals (span, bucket, account_id, orders, charged_micros, refunded_orders)
    SELECT 96, (c.bucket / 96) * 96, c.account_id, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.charged_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_account_orders c WHERE c.span = 96 AND c.bucket >= 0 GROUP BY (c.bucket / 96) * 96, c.account_id;
INSERT INTO rollup_account_totals (span, bucket, account_id, orders, charged_micros, refunded_orders)
    SELECT 672, (c.bucket / 672) * 672, c.account_id, CAST(SUM(c.orders) AS BIGINT), CAST(SUM(c.charged_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_account_totals c WHERE c.span = 96 AND c.bucket >= 0 GROUP BY (c.bucket / 672) * 672, c.account_id;
INSERT INTO rollup_account_reasons (span, bucket, account_id, reason, refunds, refunded_micros, refunded_orders)
    SELECT 96, (c.bucket / 96) * 96, c.account_id, c.reason, CAST(SUM(c.refunds) AS BIGINT), CAST(SUM(c.refunded_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_account_refunds c WHERE c.span = 96 AND c.bucket >= 0 GROUP BY (c.bucket / 96) * 96, c.account_id, c.reason;
INSERT INTO rollup_account_reasons (span, bucket, account_id, reason, refunds, refunded_micros, refunded_orders)
    SELECT 672, (c.bucket / 672) * 672, c.account_id, c.reason, CAST(SUM(c.refunds) AS BIGINT), CAST(SUM(c.refunded_micros) AS BIGINT), CAST(SUM(c.refunded_orders) AS BIGINT)
    FROM rollup_account_reasons c WHERE c.span = 96 AND c.bucket >= 0 GROUP BY (c.bucket / 672) * 672, c.account_id, c.reason;
