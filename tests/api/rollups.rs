//! Report rollups: after a randomized history (orders across many buckets, services,
//! providers and accounts; partials, cancels and provider credits landing later in old
//! buckets), every report read through the rollups equals the raw computation to the
//! micro-unit, in JSON and CSV, before the fold (the raw tail) and after it; `verify`
//! checks the folded buckets.

use chrono::{Duration, NaiveDateTime};
use serde_json::{json, Value};

use crate::helpers::{micros, spawn_app_with, Reseller, StandIn, TestApp};
use reseller_api::db;
use reseller_api::db::reports::{self, ReportScope};
use reseller_api::db::rollups;
use reseller_api::domain::ids::{AccountId, ProviderId};
use reseller_api::domain::money::Money;
use reseller_api::domain::report::{parse_timezone, summarize, ReportGroup, Summary, Window};

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn catalog() -> Value {
    json!([
        {"service": 1, "name": "Followers", "type": "Default", "category": "Instagram",
         "rate": "0.9", "min": "10", "max": "10000"},
        {"service": 2, "name": "Likes", "type": "Default", "category": "Instagram",
         "rate": "1.2345675", "min": "10", "max": "10000"},
    ])
}

/// The worker's rollups pass, to the end: the report zones the app lists kept and filled,
/// then every change folded.
async fn fold(app: &TestApp) -> rollups::Folded {
    let pool = app.pool.clone();
    let zones = app.config.worker.report_phases();
    actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        assert!(reseller_api::application::rollups::fill_zones(&mut conn, "test", &zones).unwrap());
        reseller_api::application::rollups::fold(&mut conn, "test", 10_000, None).unwrap()
    })
    .await
    .unwrap()
}

fn rfc(at: NaiveDateTime) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn enc(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

fn m(text: &str) -> i64 {
    Money::parse(text).unwrap().micros()
}

/// The refund report as the rows alone give it.
fn raw_summary(app: &TestApp, group: ReportGroup, window: &Window, scope: ReportScope) -> Summary {
    let mut conn = app.pool.get().unwrap();
    let (orders, refunds) = reports::raw_sums(&mut conn, group, window, scope).unwrap();
    summarize(group, orders, refunds)
}

fn assert_refund_metrics(got: &Value, want: &reseller_api::domain::report::Metrics, at: &str) {
    assert_eq!(got["orders_count"], want.orders, "{at}: {got}");
    assert_eq!(
        micros(&got["charged_amount"]),
        want.charged.micros(),
        "{at}"
    );
    assert_eq!(got["refunded_orders_count"], want.refunded_orders, "{at}");
    assert_eq!(got["refunds_count"], want.refunds, "{at}");
    assert_eq!(
        micros(&got["refunded_amount"]),
        want.refunded.micros(),
        "{at}"
    );
    let reasons = got["by_reason"].as_object().unwrap();
    assert_eq!(reasons.len(), want.by_reason.len(), "{at}: {got}");
    for (reason, sums) in &want.by_reason {
        assert_eq!(reasons[reason]["count"], sums.count, "{at}: {reason}");
        assert_eq!(
            micros(&reasons[reason]["amount"]),
            sums.amount.micros(),
            "{at}: {reason}"
        );
    }
}

/// Every refund report shape over `window` (JSON and CSV, admin and one reseller's) and the
/// provider money report against the raw computation; returns how many were compared.
async fn compare_all(
    app: &TestApp,
    reseller: &Reseller,
    providers: &[i64],
    windows: &[(Window, &str)],
) -> usize {
    let mut compared = 0;
    for (window, tz) in windows {
        let base = format!(
            "from={}&to={}&timezone={}",
            enc(&rfc(window.from)),
            enc(&rfc(window.to)),
            enc(tz)
        );
        for group in [
            ReportGroup::Day,
            ReportGroup::Week,
            ReportGroup::Month,
            ReportGroup::Service,
            ReportGroup::Provider,
            ReportGroup::Reason,
            ReportGroup::Account,
        ] {
            for scope in [
                ReportScope::All,
                ReportScope::Account(AccountId(reseller.id)),
            ] {
                if group == ReportGroup::Account && scope != ReportScope::All {
                    continue;
                }
                let want = raw_summary(app, group, window, scope);
                // Through the rollups, below HTTP: the very same summary.
                {
                    let mut conn = app.pool.get().unwrap();
                    let (o, r) = reports::sums(&mut conn, group, window, scope).unwrap();
                    assert_eq!(summarize(group, o, r), want, "{group} {scope:?} {base}");
                }
                let (path, token) = match scope {
                    ReportScope::All => (
                        format!("/v1/admin/reports/refunds?{base}&group_by={group}"),
                        app.admin_token.clone(),
                    ),
                    ReportScope::Account(_) => (
                        format!("/v1/reports/refunds?{base}&group_by={group}"),
                        reseller.token.clone(),
                    ),
                };
                let reply = app.get(&path, &token).await;
                assert_eq!(reply.status, 200, "{path}: {}", reply.text);
                let rows = reply.body["rows"].as_array().unwrap();
                assert_eq!(rows.len(), want.rows.len(), "{path}: {}", reply.text);
                for (got, row) in rows.iter().zip(&want.rows) {
                    assert_eq!(got["group"], row.key.as_str(), "{path}");
                    assert_refund_metrics(got, &row.metrics, &path);
                }
                assert_refund_metrics(&reply.body["totals"], &want.totals, &path);
                // CSV: the same figures, and the total row.
                let csv = app.get(&format!("{path}&format=csv"), &token).await;
                assert_eq!(csv.status, 200, "{}", csv.text);
                let mut reader = csv::Reader::from_reader(csv.text.as_bytes());
                let records: Vec<csv::StringRecord> =
                    reader.records().map(|r| r.unwrap()).collect();
                assert_eq!(records.len(), want.rows.len() + 1, "{path}");
                let expected = want
                    .rows
                    .iter()
                    .map(|r| (r.key.clone(), &r.metrics))
                    .chain(std::iter::once(("total".to_string(), &want.totals)));
                for (record, (key, metrics)) in records.iter().zip(expected) {
                    assert_eq!(&record[0], key.as_str(), "{path}");
                    assert_eq!(record[4].parse::<i64>().unwrap(), metrics.orders, "{path}");
                    assert_eq!(m(&record[5]), metrics.charged.micros(), "{path}");
                    assert_eq!(
                        record[6].parse::<i64>().unwrap(),
                        metrics.refunded_orders,
                        "{path}"
                    );
                    assert_eq!(record[7].parse::<i64>().unwrap(), metrics.refunds, "{path}");
                    assert_eq!(m(&record[8]), metrics.refunded.micros(), "{path}");
                }
                compared += 1;
            }
        }
        for group in [
            ReportGroup::Provider,
            ReportGroup::Service,
            ReportGroup::Day,
            ReportGroup::Week,
        ] {
            let (want_rows, want_totals) = {
                let mut conn = app.pool.get().unwrap();
                let raw = rollups::raw_money_sums(&mut conn, group, window, None).unwrap();
                let rolled = rollups::money_sums(&mut conn, group, window, None).unwrap();
                assert_eq!(rolled, raw, "money {group} {base}");
                raw
            };
            let path = format!("/v1/admin/reports/provider-money?{base}&group_by={group}");
            let reply = app.get(&path, &app.admin_token).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.text);
            let rows = reply.body["rows"].as_array().unwrap();
            assert_eq!(rows.len(), want_rows.len(), "{path}: {}", reply.text);
            let check = |got: &Value, want: &reseller_api::domain::cost::MoneyMetrics| {
                assert_eq!(got["orders_count"], want.orders, "{path}: {got}");
                for (field, amount) in [
                    ("revenue", want.revenue),
                    ("provider_cost", want.provider_cost),
                    ("refunds_paid", want.refunds_paid),
                    ("expected_credits", want.expected_credits),
                    ("credits_recovered", want.credits_recovered),
                    ("unrecovered", want.unrecovered),
                    ("awaiting_credit", want.awaiting_credit),
                ] {
                    assert_eq!(micros(&got[field]), amount.micros(), "{path}: {field}");
                }
                assert_eq!(
                    got["orders_without_cost"], want.orders_without_cost,
                    "{path}"
                );
            };
            for got in rows {
                let key = got["group"].as_str().unwrap();
                check(got, &want_rows[key]);
            }
            check(&reply.body["totals"], &want_totals);
            let csv = app
                .get(&format!("{path}&format=csv"), &app.admin_token)
                .await;
            assert_eq!(csv.status, 200, "{}", csv.text);
            let mut reader = csv::Reader::from_reader(csv.text.as_bytes());
            let total = reader.records().last().unwrap().unwrap();
            assert_eq!(&total[0], "total");
            assert_eq!(total[4].parse::<i64>().unwrap(), want_totals.orders);
            assert_eq!(m(&total[5]), want_totals.revenue.micros());
            assert_eq!(m(&total[6]), want_totals.provider_cost.micros());
            assert_eq!(m(&total[9]), want_totals.refunds_paid.micros());
            assert_eq!(m(&total[11]), want_totals.credits_recovered.micros());
            compared += 1;
        }
        // One provider's money alone.
        let mut conn = app.pool.get().unwrap();
        for provider in providers {
            let id = Some(ProviderId(*provider));
            assert_eq!(
                rollups::money_sums(&mut conn, ReportGroup::Service, window, id).unwrap(),
                rollups::raw_money_sums(&mut conn, ReportGroup::Service, window, id).unwrap()
            );
        }
    }
    compared
}

/// Moves an order's creation back in time (the history a long-running panel has).
fn backdate(app: &TestApp, order: i64, at: NaiveDateTime) {
    use diesel::prelude::*;
    use reseller_api::db::schema::orders;
    let mut conn = app.pool.get().unwrap();
    diesel::update(orders::table.find(order))
        .set(orders::created_at.eq(at))
        .execute(&mut *conn)
        .unwrap();
}

fn lag(app: &TestApp) -> rollups::Lag {
    let mut conn = app.pool.get().unwrap();
    rollups::lag(&mut conn).unwrap()
}

/// The by-service report over all accounts from `from` to an hour from now, through the
/// rollups, asserted equal to the rows' computation; its totals.
fn service_totals_equal_to_rows(
    app: &TestApp,
    from: NaiveDateTime,
) -> reseller_api::domain::report::Metrics {
    let mut conn = app.pool.get().unwrap();
    let window = Window::new(
        from,
        db::now() + Duration::hours(1),
        parse_timezone("UTC").unwrap(),
    )
    .unwrap();
    let (o, r) = reports::sums(&mut conn, ReportGroup::Service, &window, ReportScope::All).unwrap();
    let raw = raw_summary(app, ReportGroup::Service, &window, ReportScope::All);
    let summary = summarize(ReportGroup::Service, o, r);
    assert_eq!(summary, raw);
    summary.totals
}

#[actix_rt::test]
async fn every_report_through_the_rollups_equals_the_raw_computation() {
    randomized_history(0x5eed_2026_u64).await;
}

#[actix_rt::test]
async fn every_report_equals_the_raw_computation_second_seed() {
    randomized_history(0x0dd5_eed5_u64).await;
}

#[actix_rt::test]
async fn every_report_equals_the_raw_computation_third_seed() {
    randomized_history(0x7777_1234_abcd_u64).await;
}

/// A randomized history of `seed` (orders over 40 days, refunds landing in their old
/// buckets later), every report compared with the raw computation before and after the
/// fold, in UTC and in +05:30, +05:45, -03:30, -03:00 and +03:20; +05:30 and -03:30 are
/// report zones (their local days kept from the first fold on), the others are not.
async fn randomized_history(seed: u64) {
    let mut rng = Rng(seed);
    let (eur_upstream, eur) = StandIn::panel().await;
    {
        let mut state = eur.lock().unwrap();
        state.services = catalog();
        state.currency = "EUR".into();
        state.add_charge = "0.9".into();
    }
    let (usd_upstream, usd) = StandIn::panel().await;
    usd.lock().unwrap().add_charge = "0.5".into();
    let app = spawn_app_with(|c| {
        c.worker.sync_interval_secs = 0;
        c.worker.max_backoff_secs = 0;
        c.worker.recovery_poll_secs = 0;
        c.worker.recovery_window_secs = 0;
        c.worker.report_zones = vec![
            parse_timezone("+05:30").unwrap(),
            parse_timezone("-03:30").unwrap(),
        ];
    })
    .await;
    let provider = app
        .post(
            "/v1/admin/providers",
            &app.admin_token,
            json!({"allow_private_network": true, "name": "Euro", "url": eur_upstream.url, "key": "k",
                   "markup_percent": "10", "currency": "EUR", "exchange_rate": "1.1"}),
        )
        .await;
    assert_eq!(provider.status, 201, "{}", provider.text);
    let eur_id = provider.body["id"].as_i64().unwrap();
    let synced = app
        .post(
            &format!("/v1/admin/providers/{eur_id}/sync-services"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(synced.status, 200, "{}", synced.text);
    let followers = synced.body["created"][0]["service_id"].as_i64().unwrap();
    let likes = synced.body["created"][1]["service_id"].as_i64().unwrap();
    let (usd_id, usd_service) = app.provider_service(&usd_upstream.url, true, 5000).await;
    let by_hand = app.service("2.5").await;
    let services = [followers, likes, usd_service, by_hand];
    let mut resellers = Vec::new();
    for name in ["Acme", "Bolt", "Cora"] {
        resellers.push(app.funded_reseller(name, "1000").await);
    }

    // Orders, then their creation spread over 40 days at odd seconds, so buckets, days and
    // weeks of every zone hold several (and a fold happens before the refunds arrive).
    // "Now" is a fixed time of the seed's (within 60 days from 2026-03-01), not the wall
    // clock: a failing seed replays the same buckets, days and weeks.
    let now = chrono::DateTime::from_timestamp(1_772_323_200 + (seed % 5_184_000) as i64, 0)
        .unwrap()
        .naive_utc();
    let mut orders = Vec::new();
    for _ in 0..48 {
        let service = services[rng.below(4) as usize];
        let reseller = &resellers[rng.below(3) as usize];
        let quantity = 100 + 10 * rng.below(150) as i64;
        let id = app.order_id(&reseller.token, service, quantity).await;
        orders.push((id, service, quantity));
    }
    app.worker_pass().await;
    for (id, _, _) in &orders {
        let back = Duration::seconds(rng.below(40 * 86_400) as i64 + 1);
        backdate(&app, *id, now - back);
    }
    // Two orders a second apart across a bucket edge, and one exactly on an edge.
    let edge =
        chrono::DateTime::from_timestamp(rollups::bucket_of(now - Duration::days(3)) * 900, 0)
            .unwrap()
            .naive_utc();
    backdate(&app, orders[0].0, edge - Duration::seconds(1));
    backdate(&app, orders[1].0, edge);
    // Two orders beside a local midnight of +03:20, in one bucket: a day series there must
    // not take them from the rollups.
    let midnight =
        now.date().and_hms_opt(0, 0, 0).unwrap() - Duration::days(10) - Duration::minutes(200);
    backdate(&app, orders[2].0, midnight - Duration::minutes(5));
    backdate(&app, orders[3].0, midnight + Duration::minutes(2));
    let folded = fold(&app).await;
    assert!(folded.buckets > 10, "{folded:?}");
    assert_eq!(lag(&app).rows, 0);

    // Later: providers report partials, cancels and credits; operators record outcomes of
    // the orders fulfilled by hand. Their refunds land in the old buckets of the orders.
    for (id, service, quantity) in &orders {
        let pick = rng.below(5);
        if *service == by_hand {
            let body = match pick {
                0 => json!({"status": "canceled"}),
                1 | 2 => {
                    json!({"status": "partial", "remains": rng.below(*quantity as u64) as i64 + 1})
                }
                _ => continue,
            };
            let reply = app.outcome(*id, body).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            continue;
        }
        let remote = app.provider_order(*id).provider_order_id.unwrap();
        let (panel, charge) = if *service == usd_service {
            (&usd, "0.5")
        } else {
            (&eur, "0.9")
        };
        let mut state = panel.lock().unwrap();
        match pick {
            0 => state.report(&remote, "Canceled", *quantity, "0"),
            1 => {
                // Partial, credited in full.
                let remains = rng.below(*quantity as u64) as i64 + 1;
                let full = Money::parse(charge).unwrap().micros();
                let left = full - full * remains / quantity;
                let left = Money::try_from_micros(left).unwrap().to_string();
                state.report(&remote, "Partial", remains, &left)
            }
            2 => {
                // Partial, not credited.
                let remains = rng.below(*quantity as u64) as i64 + 1;
                state.report(&remote, "Partial", remains, charge)
            }
            3 => state.report(&remote, "Completed", 0, charge),
            _ => {}
        }
    }
    app.make_due();
    app.worker_pass().await;
    app.worker_pass().await;

    let zone = |raw: &str| parse_timezone(raw).unwrap();
    let day = |d: i64| now.date().and_hms_opt(0, 0, 0).unwrap() - Duration::days(d);
    let windows = [
        // Unaligned edges, the whole history.
        (
            Window::new(
                now - Duration::days(41) - Duration::seconds(437),
                now + Duration::hours(1),
                zone("UTC"),
            )
            .unwrap(),
            "UTC",
        ),
        // Whole local days of +05:30 (edges on the half hour), a day series.
        (
            Window::new(
                day(30) - Duration::minutes(330),
                day(2) - Duration::minutes(330),
                zone("+05:30"),
            )
            .unwrap(),
            "+05:30",
        ),
        // +05:45 and an end mid-bucket.
        (
            Window::new(
                day(20) - Duration::minutes(345),
                now - Duration::days(4) - Duration::seconds(61),
                zone("+05:45"),
            )
            .unwrap(),
            "+05:45",
        ),
        // +03:20: day edges inside buckets (such a time series is read from the rows).
        (
            Window::new(
                day(25) - Duration::minutes(200),
                day(1) - Duration::minutes(200),
                zone("+03:20"),
            )
            .unwrap(),
            "+03:20",
        ),
        // The whole history in +05:30 (day, week and month series: a local day is quarters
        // and hours, a local week holds whole UTC days (never a seven-day span: those start
        // on Thursdays), a local month whole UTC days and seven-day spans).
        (
            Window::new(
                now - Duration::days(41) - Duration::seconds(437),
                now + Duration::hours(1),
                zone("+05:30"),
            )
            .unwrap(),
            "+05:30",
        ),
        // Whole local days of -03:30.
        (
            Window::new(
                day(38) + Duration::minutes(210),
                day(3) + Duration::minutes(210),
                zone("-03:30"),
            )
            .unwrap(),
            "-03:30",
        ),
        // -03:00 around the edge of two orders a second apart.
        (
            Window::new(
                edge - Duration::seconds(1),
                edge + Duration::seconds(1),
                zone("-03:00"),
            )
            .unwrap(),
            "-03:00",
        ),
    ];
    // Before the fold: the changed buckets are read from the rows (the raw tail).
    assert!(lag(&app).rows > 0, "the refunds logged their buckets");
    let compared = compare_all(&app, &resellers[0], &[eur_id, usd_id], &windows).await;
    assert!(compared > 50);

    // Folded: the same figures, now from the rollups for every whole bucket.
    fold(&app).await;
    assert_eq!(lag(&app).rows, 0);
    {
        let mut conn = app.pool.get().unwrap();
        let plan = rollups::plan(&mut conn, windows[0].0.from, windows[0].0.to).unwrap();
        assert_eq!(plan.clean.len(), 1, "{plan:?}");
        assert_eq!(plan.raw.len(), 2, "only the two unaligned edges: {plan:?}");
        // Read with every level: seven days, days, hours and quarters at the edges.
        let window = &windows[0].0;
        let service_spans = rollups::report_spans(ReportGroup::Service, ReportScope::All);
        let blocks = rollups::blocks(
            &plan.clean,
            ReportGroup::Service,
            window,
            service_spans,
            None,
        );
        let spans: std::collections::BTreeSet<i64> = blocks.iter().map(|b| b.span).collect();
        // (Hours and quarters appear at the edges unless the clock puts them on a day.)
        assert!(spans.is_superset(&[96, 672].into()), "{blocks:?}");
        assert!(blocks
            .iter()
            .all(|b| b.lo % b.span == 0 && (b.hi - b.lo) % b.span == 0));
        let covered: i64 = blocks.iter().map(|b| b.hi - b.lo).sum();
        assert_eq!(covered, plan.clean[0].1 - plan.clean[0].0);
        // A day series in +05:30: no UTC day fits in a local day, so quarters and hours.
        let local = &windows[1].0;
        let plan = rollups::plan(&mut conn, local.from, local.to).unwrap();
        let day_spans = rollups::report_spans(ReportGroup::Day, ReportScope::All);
        let blocks = rollups::blocks(&plan.clean, ReportGroup::Day, local, day_spans, None);
        let spans: std::collections::BTreeSet<i64> = blocks.iter().map(|b| b.span).collect();
        assert_eq!(spans, [1, 4, 24].into(), "{blocks:?}");
        assert!(blocks.iter().all(|b| b.key.len() == 10), "{blocks:?}");
        // Its week series uses whole UTC days inside each local week.
        let blocks = rollups::blocks(&plan.clean, ReportGroup::Week, local, day_spans, None);
        assert!(blocks.iter().any(|b| b.span == 96), "{blocks:?}");
        // One reseller's day series there reads that reseller's hours and six hours too,
        // not 96 quarters a day.
        let account_spans =
            rollups::report_spans(ReportGroup::Day, ReportScope::Account(AccountId(1)));
        let blocks = rollups::blocks(&plan.clean, ReportGroup::Day, local, account_spans, None);
        let spans: std::collections::BTreeSet<i64> = blocks.iter().map(|b| b.span).collect();
        assert_eq!(spans, [1, 4, 24].into(), "{blocks:?}");
        // +05:30 is a report zone, filled: its local days are one block of its days.
        let day = ReportGroup::Day;
        let zone = rollups::zone_to_read(&mut conn, day, local).unwrap();
        assert_eq!(zone, Some(74));
        let blocks = rollups::blocks(&plan.clean, day, local, day_spans, zone);
        assert!(blocks.iter().all(|b| b.zoned && b.span == 96), "{blocks:?}");
        assert_eq!(blocks.len(), 28, "{blocks:?}");
        // +05:45 is not: it reads the UTC levels.
        let other = &windows[2].0;
        assert_eq!(rollups::zone_to_read(&mut conn, day, other).unwrap(), None);
    }
    compare_all(&app, &resellers[0], &[eur_id, usd_id], &windows).await;

    // verify checks the folded buckets against the rows, and the books balance.
    let report = {
        let mut conn = app.pool.get().unwrap();
        db::verify::run(&mut conn).unwrap()
    };
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.rollup_buckets > 10, "{}", report.rollup_buckets);
    app.assert_books_balance();

    // A rollup that disagrees with its rows is reported.
    {
        use diesel::prelude::*;
        use reseller_api::db::schema::rollup_orders;
        let mut conn = app.pool.get().unwrap();
        diesel::update(
            rollup_orders::table.filter(rollup_orders::bucket.eq(rollups::bucket_of(edge))),
        )
        .set(rollup_orders::charged_micros.eq(rollup_orders::charged_micros + 1))
        .execute(&mut *conn)
        .unwrap();
        let report = db::verify::run(&mut conn).unwrap();
        // The 15-minute row against its orders, and the levels summed from it (the time
        // level's quarter, the service's hour, the account's day, and the account's local
        // day of each of the two report zones) against that row.
        assert_eq!(report.problems.len(), 6, "{:?}", report.problems);
        assert_eq!(
            report
                .problems
                .iter()
                .filter(|p| p.contains("rollup_zone_account_orders"))
                .count(),
            2,
            "{:?}",
            report.problems
        );
        assert!(
            report.problems.iter().all(|p| p.contains("report rollup")),
            "{:?}",
            report.problems
        );
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("rollup_service_orders (span 4")),
            "{:?}",
            report.problems
        );
        // A coarse row alone: its level against the one below, and the one above it.
        diesel::update(
            rollup_orders::table.filter(rollup_orders::bucket.eq(rollups::bucket_of(edge))),
        )
        .set(rollup_orders::charged_micros.eq(rollup_orders::charged_micros - 1))
        .execute(&mut *conn)
        .unwrap();
        assert!(db::verify::run(&mut conn).unwrap().problems.is_empty());
        let day = rollups::bucket_of(edge).div_euclid(96) * 96;
        diesel::sql_query(format!(
            "UPDATE rollup_service_orders SET orders = orders + 1 WHERE span = 96 AND bucket = {day}"
        ))
        .execute(&mut *conn)
        .unwrap();
        let report = db::verify::run(&mut conn).unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("rollup_service_orders (span 96")),
            "{:?}",
            report.problems
        );
    }
}

#[actix_rt::test]
async fn a_report_right_after_a_change_is_exact_before_the_fold() {
    let app = spawn_app_with(|_| {}).await;
    let service = app.service("2").await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let first = app.order_id(&reseller.token, service, 1000).await;
    let from = db::now() - Duration::hours(2);
    fold(&app).await;
    let total = |app: &TestApp| service_totals_equal_to_rows(app, from);
    assert_eq!(total(&app).charged.micros(), 2_000_000);
    // A second order and a refund of the first, not folded: already in the report.
    app.order_id(&reseller.token, service, 500).await;
    let reply = app
        .outcome(first, json!({"status": "partial", "remains": 250}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(lag(&app).rows >= 2);
    let totals = total(&app);
    assert_eq!(totals.orders, 2);
    assert_eq!(totals.charged.micros(), 3_000_000);
    assert_eq!(totals.refunded.micros(), 500_000);
    // Also when the bucket was folded before the change and the order is older.
    backdate(&app, first, from + Duration::minutes(7));
    fold(&app).await;
    let reply = app.outcome(first, json!({"status": "canceled"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let totals = total(&app);
    assert_eq!(totals.refunded.micros(), 2_000_000);
    fold(&app).await;
    assert_eq!(total(&app).refunded.micros(), 2_000_000);
    assert_eq!(lag(&app).rows, 0);
    let mut conn = app.pool.get().unwrap();
    let report = db::verify::run(&mut conn).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// The worker leaves the open quarter (every new order lands there) for most passes and
/// folds the closed buckets below it: the changes of the open quarter stay logged, the
/// report reads that quarter from its rows and is exact meanwhile, and a full fold takes
/// them later.
#[actix_rt::test]
async fn a_fold_below_the_open_quarter_leaves_it_logged_and_reports_stay_exact() {
    let app = spawn_app_with(|_| {}).await;
    let service = app.service("2").await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let old = app.order_id(&reseller.token, service, 1000).await;
    let open = app.order_id(&reseller.token, service, 500).await;
    // The open quarter: the lower of the two orders' buckets (named from the orders
    // themselves, so a quarter turning over during the test changes nothing).
    let open_bucket = {
        use diesel::prelude::*;
        use reseller_api::db::schema::orders;
        let mut conn = app.pool.get().unwrap();
        let first: NaiveDateTime = orders::table
            .filter(orders::id.eq_any([old, open]))
            .select(diesel::dsl::min(orders::created_at))
            .first::<Option<NaiveDateTime>>(&mut *conn)
            .unwrap()
            .unwrap();
        rollups::bucket_of(first)
    };
    let from = db::now() - Duration::days(2);
    backdate(&app, old, from + Duration::minutes(7));
    let before = lag(&app).rows;
    let folded = {
        let pool = app.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get().unwrap();
            reseller_api::application::rollups::fold(&mut conn, "test", 10, Some(open_bucket))
                .unwrap()
        })
        .await
        .unwrap()
    };
    // Only the backdated order's new bucket was below: its one change row.
    assert_eq!(folded.changes, 1, "{folded:?}");
    assert_eq!(lag(&app).rows, before - 1);
    let total = |app: &TestApp| service_totals_equal_to_rows(app, from);
    let totals = total(&app);
    assert_eq!(totals.orders, 2);
    assert_eq!(totals.charged.micros(), 3_000_000);
    fold(&app).await;
    assert_eq!(lag(&app).rows, 0);
    assert_eq!(total(&app), totals);
    let mut conn = app.pool.get().unwrap();
    let report = db::verify::run(&mut conn).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// A process of an earlier version, still running after the upgrade, folds under the job
/// row `rollups` (or `rollups 2026-12-08`, the version before this one): the database
/// refuses it (its fold would leave the newer levels stale),
/// its transaction changes nothing, and this version's fold goes on.
#[actix_rt::test]
async fn an_earlier_versions_fold_is_refused_and_changes_nothing() {
    let app = spawn_app_with(|_| {}).await;
    let service = app.service("2").await;
    let reseller = app.funded_reseller("Acme", "100").await;
    app.order_id(&reseller.token, service, 1000).await;
    let before = lag(&app).rows;
    assert!(before >= 1);
    for (name, refused) in [
        ("rollups", true),
        ("rollups 2026-12-08", true),
        ("rollups 2026-12-08-000200", true),
        (reseller_api::application::rollups::FOLD_JOB, false),
    ] {
        let pool = app.pool.clone();
        let taken = actix_web::web::block(move || {
            let mut conn = pool.get().unwrap();
            db::write_tx(&mut conn, |conn| {
                db::jobs::take_turn(conn, name, "old", Duration::zero())
            })
        })
        .await
        .unwrap();
        match taken {
            Err(error) => {
                assert!(refused, "{name}: {error}");
                assert!(error.to_string().contains("retired"), "{error}");
            }
            Ok(taken) => assert!(!refused && taken, "{name}"),
        }
    }
    assert_eq!(lag(&app).rows, before);
    fold(&app).await;
    assert_eq!(lag(&app).rows, 0);
    let mut conn = app.pool.get().unwrap();
    let report = db::verify::run(&mut conn).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// A fold rewrites the coarse rows of the keys its changed buckets hold, no other: a
/// reseller's new order refolds that reseller's day and seven-day rows, not those of every
/// reseller. Shown by a deliberately wrong row of another reseller that the fold leaves as
/// it is (and `verify` still reports), while the ordering reseller's rows stay exact.
#[actix_rt::test]
async fn a_fold_rewrites_only_the_changed_keys_parent_rows() {
    use diesel::prelude::*;
    let app = spawn_app_with(|_| {}).await;
    let service = app.service("2").await;
    let acme = app.funded_reseller("Acme", "100").await;
    let bolt = app.funded_reseller("Bolt", "100").await;
    app.order_id(&acme.token, service, 1000).await;
    app.order_id(&bolt.token, service, 1000).await;
    fold(&app).await;
    let problems = |app: &TestApp| {
        let mut conn = app.pool.get().unwrap();
        db::verify::run(&mut conn).unwrap().problems
    };
    assert!(problems(&app).is_empty(), "{:?}", problems(&app));
    let nudge = |app: &TestApp, by: i64| {
        let mut conn = app.pool.get().unwrap();
        let changed = diesel::sql_query(format!(
            "UPDATE rollup_account_orders SET charged_micros = charged_micros + {by} \
             WHERE account_id = {}",
            bolt.id
        ))
        .execute(&mut *conn)
        .unwrap();
        // Bolt's hour, six-hour, day and seven-day rows.
        assert_eq!(changed, 4);
    };
    nudge(&app, 1);
    let wrong = problems(&app);
    assert!(
        wrong
            .iter()
            .any(|p| p.contains("rollup_account_orders (span 4")),
        "{wrong:?}"
    );

    // Acme orders again, in the same quarter, day and week as Bolt's order: the fold
    // leaves Bolt's rows alone (still wrong by one micro-unit)...
    app.order_id(&acme.token, service, 500).await;
    let folded = fold(&app).await;
    assert!(folded.buckets >= 1, "{folded:?}");
    assert_eq!(problems(&app), wrong);
    // ...and Acme's are exact: with Bolt's put back, every level equals the rows.
    nudge(&app, -1);
    assert!(problems(&app).is_empty(), "{:?}", problems(&app));
    let mut conn = app.pool.get().unwrap();
    let charged: i64 = diesel::sql_query(format!(
        "SELECT charged_micros FROM rollup_account_orders WHERE span = 96 AND account_id = {}",
        acme.id
    ))
    .load::<Charged>(&mut *conn)
    .unwrap()
    .iter()
    .map(|c| c.charged_micros)
    .sum();
    assert_eq!(charged, 3_000_000);
}

#[derive(diesel::QueryableByName)]
struct Charged {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    charged_micros: i64,
}

/// `seed` writes providers, their services and the cost of every forwarded order, and
/// rebuilds the rollups a week at a time: every report through them equals the rows, and
/// `verify` passes.
#[actix_rt::test]
async fn seeded_history_reports_equal_the_rows_and_verify_passes() {
    let app = spawn_app_with(|_| {}).await;
    let options = reseller_api::tooling::seed::SeedOptions {
        orders: 4_000,
        refunds: 600,
        accounts: 4,
        pending: 3,
        days: 50,
        seed: 11,
    };
    let pool = app.pool.clone();
    let seeded = actix_web::web::block(move || {
        reseller_api::tooling::seed::run(&mut pool.get().unwrap(), &options).unwrap()
    })
    .await
    .unwrap();
    assert!(seeded.costed_orders > 1_000, "{seeded:?}");
    assert!(seeded.costed_orders < seeded.orders, "{seeded:?}");
    assert_eq!(lag(&app).rows, 0);
    let now = db::now();
    let mut conn = app.pool.get().unwrap();
    for (from, tz) in [
        (now - Duration::days(51) - Duration::seconds(7), "UTC"),
        (now - Duration::days(40) + Duration::seconds(11), "+05:30"),
        (now - Duration::days(20), "-03:30"),
    ] {
        let window =
            Window::new(from, now + Duration::hours(1), parse_timezone(tz).unwrap()).unwrap();
        for group in [
            ReportGroup::Provider,
            ReportGroup::Service,
            ReportGroup::Day,
            ReportGroup::Week,
        ] {
            let rolled = rollups::money_sums(&mut conn, group, &window, None).unwrap();
            let raw = rollups::raw_money_sums(&mut conn, group, &window, None).unwrap();
            assert_eq!(rolled, raw, "money {group} {tz}");
            assert!(raw.1.orders > 0 && raw.1.refunds_paid.micros() > 0);
            assert!(raw.1.credits_recovered.micros() > 0 && raw.1.unrecovered.micros() > 0);
        }
        for group in [
            ReportGroup::Day,
            ReportGroup::Month,
            ReportGroup::Service,
            ReportGroup::Provider,
            ReportGroup::Account,
            ReportGroup::Reason,
        ] {
            let (o, r) = reports::sums(&mut conn, group, &window, ReportScope::All).unwrap();
            let (raw_o, raw_r) =
                reports::raw_sums(&mut conn, group, &window, ReportScope::All).unwrap();
            assert_eq!(
                summarize(group, o, r),
                summarize(group, raw_o, raw_r),
                "{group} {tz}"
            );
        }
    }
    // Every forwarded order is costed: the money report's orders are the seeded costs.
    let whole = Window::new(
        now - Duration::days(51),
        now + Duration::hours(1),
        parse_timezone("UTC").unwrap(),
    )
    .unwrap();
    let (_, totals) = rollups::money_sums(&mut conn, ReportGroup::Provider, &whole, None).unwrap();
    assert_eq!(totals.orders, seeded.costed_orders as i64);
    drop(conn);
    app.assert_books_balance();
}

/// Every time-series report of `window` in `scopes` against the raw computation.
fn time_series_equal_to_rows(conn: &mut db::DbConnection, window: &Window, scopes: &[ReportScope]) {
    for &scope in scopes {
        for group in [ReportGroup::Day, ReportGroup::Week, ReportGroup::Month] {
            let (o, r) = reports::sums(conn, group, window, scope).unwrap();
            let (raw_o, raw_r) = reports::raw_sums(conn, group, window, scope).unwrap();
            assert!(!raw_o.is_empty() && !raw_r.is_empty());
            assert_eq!(
                summarize(group, o, r),
                summarize(group, raw_o, raw_r),
                "{group} {scope:?} {}",
                window.offset
            );
        }
    }
}

/// A report zone listed after the history exists: filled a week per step (reports read
/// the UTC levels until it is whole, and stay exact throughout), then its local days are
/// read; `verify` checks them, filled or not; a zone left out is dropped.
#[actix_rt::test]
async fn a_report_zone_listed_later_is_filled_from_the_history_then_read() {
    use diesel::RunQueryDsl;
    use reseller_api::application::rollups::{fill_zones, keep_zones};
    let app = spawn_app_with(|_| {}).await;
    let options = reseller_api::tooling::seed::SeedOptions {
        orders: 3_000,
        refunds: 500,
        accounts: 3,
        pending: 2,
        days: 30,
        seed: 5,
    };
    let pool = app.pool.clone();
    actix_web::web::block(move || {
        reseller_api::tooling::seed::run(&mut pool.get().unwrap(), &options).unwrap()
    })
    .await
    .unwrap();
    let now = db::now();
    let mut conn = app.pool.get().unwrap();
    let india = Window::new(
        now - Duration::days(31) - Duration::seconds(5),
        now + Duration::hours(1),
        parse_timezone("+05:30").unwrap(),
    )
    .unwrap();
    let newfoundland = Window {
        offset: parse_timezone("-03:30").unwrap(),
        ..india
    };
    let busiest = reports::busiest_account(&mut conn, &india).unwrap();
    let scopes = [ReportScope::All, ReportScope::Account(busiest)];
    let phases = [74, 14];
    assert_eq!(rollups::phase_of(india.offset), Some(74));
    assert_eq!(rollups::phase_of(newfoundland.offset), Some(14));
    assert_eq!(rollups::phase_of(parse_timezone("UTC").unwrap()), None);

    // Listed: one week of one zone's history summed per step; not read until whole.
    assert_eq!(
        keep_zones(&mut conn, "test", &phases, true).unwrap(),
        Some(false)
    );
    let zones = rollups::zones(&mut conn).unwrap();
    assert_eq!(zones.len(), 2, "{zones:?}");
    assert!(zones.iter().all(|z| !z.filled()), "{zones:?}");
    let rows = |conn: &mut db::DbConnection, phase: i64| -> i64 {
        diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM rollup_zone_orders WHERE phase = {phase}"
        ))
        .get_result::<Count>(conn)
        .unwrap()
        .n
    };
    // The first listed (+05:30) has its first week, the other nothing yet.
    assert_eq!(rows(&mut conn, 74), 7);
    assert_eq!(rows(&mut conn, 14), 0);
    assert_eq!(
        rollups::zone_to_read(&mut conn, ReportGroup::Day, &india).unwrap(),
        None
    );
    time_series_equal_to_rows(&mut conn, &india, &scopes);
    let report = db::verify::run(&mut conn).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // Filled: read, and equal to the rows in both zones and both scopes.
    assert!(fill_zones(&mut conn, "test", &phases).unwrap());
    for window in [&india, &newfoundland] {
        let zone = rollups::zone_to_read(&mut conn, ReportGroup::Week, window).unwrap();
        assert_eq!(zone, rollups::phase_of(window.offset));
        time_series_equal_to_rows(&mut conn, window, &scopes);
    }
    let days: i64 =
        diesel::sql_query("SELECT COUNT(*) AS n FROM rollup_zone_account_orders WHERE phase = 74")
            .get_result::<Count>(&mut *conn)
            .unwrap()
            .n;
    assert!((3 * 29..=3 * 32).contains(&days), "{days}");
    let report = db::verify::run(&mut conn).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // A zone's day that disagrees with its quarters is reported.
    diesel::sql_query(
        "UPDATE rollup_zone_refunds SET refunded_micros = refunded_micros + 1 \
         WHERE phase = 14 AND bucket = (SELECT MAX(bucket) FROM rollup_zone_refunds WHERE phase = 14)",
    )
    .execute(&mut *conn)
    .unwrap();
    let report = db::verify::run(&mut conn).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("rollup_zone_refunds"),
        "{:?}",
        report.problems
    );

    // Listed elsewhere: a fill for another list drops nothing.
    assert!(fill_zones(&mut conn, "test", &[74]).unwrap());
    assert_eq!(rollups::zones(&mut conn).unwrap().len(), 2);
    // Left out (by the worker, on its first pass): dropped, its days gone; reports read the
    // UTC levels again.
    assert_eq!(
        keep_zones(&mut conn, "test", &[74], true).unwrap(),
        Some(true)
    );
    assert_eq!(rollups::zones(&mut conn).unwrap().len(), 1);
    let left: i64 =
        diesel::sql_query("SELECT COUNT(*) AS n FROM rollup_zone_refunds WHERE phase = 14")
            .get_result::<Count>(&mut *conn)
            .unwrap()
            .n;
    assert_eq!(left, 0);
    assert_eq!(
        rollups::zone_to_read(&mut conn, ReportGroup::Day, &newfoundland).unwrap(),
        None
    );
    time_series_equal_to_rows(&mut conn, &newfoundland, &scopes);
    assert!(db::verify::run(&mut conn).unwrap().problems.is_empty());
}

/// The worker keeps the zones its configuration lists: on its first passes it lists and
/// fills them and folds the orders into their days; the zone's day series over HTTP then
/// reads them and equals the rows.
#[actix_rt::test]
async fn the_worker_keeps_and_fills_the_listed_report_zones() {
    use diesel::RunQueryDsl;
    let app = spawn_app_with(|c| {
        c.worker.report_zones = vec![parse_timezone("+05:30").unwrap()];
    })
    .await;
    let service = app.service("2").await;
    let reseller = app.funded_reseller("Acme", "100").await;
    for quantity in [1000, 1500, 2000] {
        app.order_id(&reseller.token, service, quantity).await;
    }
    let worker = reseller_api::providers::worker::spawn(
        app.pool.clone(),
        app.config.worker.clone(),
        app.config.retention.clone(),
        Default::default(),
    );
    // A correctness bound, not a speed target: the first pass lists, fills and folds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (zones, days) = {
            let mut conn = app.pool.get().unwrap();
            let days = diesel::sql_query(
                "SELECT CAST(COALESCE(SUM(orders), 0) AS BIGINT) AS n FROM rollup_zone_account_orders WHERE phase = 74",
            )
            .get_result::<Count>(&mut *conn)
            .unwrap()
            .n;
            (rollups::zones(&mut conn).unwrap(), days)
        };
        if zones.len() == 1 && zones[0].filled() && days == 3 {
            assert_eq!(zones[0].phase, 74);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not keep the zone: {zones:?}, {days} orders in its days"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    actix_web::web::block(move || worker.shutdown())
        .await
        .unwrap();
    let now = db::now();
    let window = Window::new(
        now - Duration::days(2),
        now + Duration::days(1),
        parse_timezone("+05:30").unwrap(),
    )
    .unwrap();
    let mut conn = app.pool.get().unwrap();
    assert_eq!(
        rollups::zone_to_read(&mut conn, ReportGroup::Day, &window).unwrap(),
        Some(74)
    );
    drop(conn);
    let scope = ReportScope::Account(AccountId(reseller.id));
    let want = raw_summary(&app, ReportGroup::Day, &window, scope);
    assert_eq!(want.totals.orders, 3);
    let path = format!(
        "/v1/reports/refunds?group_by=day&timezone=%2B05:30&from={}&to={}",
        enc(&rfc(window.from)),
        enc(&rfc(window.to))
    );
    let read = app.get(&path, &reseller.token).await;
    assert_eq!(read.status, 200, "{}", read.text);
    let rows = read.body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), want.rows.len(), "{}", read.text);
    for (got, row) in rows.iter().zip(&want.rows) {
        assert_eq!(got["group"], row.key.as_str());
        assert_refund_metrics(got, &row.metrics, &path);
    }
    assert_refund_metrics(&read.body["totals"], &want.totals, &path);
    assert_eq!(
        micros(&read.body["totals"]["charged_amount"]),
        9_000_000,
        "{}",
        read.text
    );
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}
