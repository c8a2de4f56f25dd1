//! `reseller-api seed`: a large, consistent data set for report benchmarks and demos.
//!
//! Everything is generated in memory first and then written with multi-row INSERTs in
//! large transactions, with explicit ids, so a million orders take seconds, not hours.
//! The books stay exact: every order has its `order_charge` entry, every succeeded refund
//! its `refund` entry, running balances follow the ledger in id order, each order's
//! `refunded_micros` is its refunds' sum and its state agrees with the refund rule, so
//! `reseller-api verify` passes afterwards. Only numbers and the fixed names below go
//! into the SQL text; nothing comes from outside.

use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::db::schema::{
    accounts, ledger_entries, orders, refunds, services, subscriptions, top_ups,
};
use crate::db::{bulk, now, write_tx, DbConnection, WriteConn};
use crate::domain::cost::Recovery;
use crate::domain::money::{charge_for, ExchangeRate, Money, Percent};
use crate::domain::provider::CreditMode;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub orders: usize,
    pub refunds: usize,
    pub accounts: usize,
    /// Refund requests left awaiting review.
    pub pending: usize,
    /// Orders spread over this many days up to now.
    pub days: i64,
    /// Seed of the random generator: the same options give the same data.
    pub seed: u64,
}

/// What was written.
#[derive(Debug)]
pub struct Seeded {
    pub accounts: usize,
    pub services: usize,
    pub orders: usize,
    pub refunds: usize,
    pub pending: usize,
    pub ledger_entries: usize,
    /// Forwarded orders with their cost (`order_costs`), for the provider money report.
    pub costed_orders: usize,
    /// Report-rollup buckets folded after the rows were written.
    pub rollup_buckets: usize,
    pub elapsed: StdDuration,
}

/// The catalog: name, category, rate per 1000 in micro-units, and how often its orders
/// go wrong (relative), so reports have a recognisable shape.
const SERVICES: &[(&str, &str, i64, u32)] = &[
    ("Instagram Likes", "Instagram", 900_000, 3),
    ("Instagram Followers [HQ]", "Instagram", 2_780_000, 6),
    ("Instagram Reels Views", "Instagram", 120_000, 2),
    ("YouTube Views [Non-drop]", "YouTube", 1_450_000, 4),
    ("YouTube Subscribers", "YouTube", 18_500_000, 14),
    ("TikTok Likes", "TikTok", 650_000, 5),
    ("TikTok Followers", "TikTok", 3_100_000, 9),
    ("Telegram Channel Members", "Telegram", 1_900_000, 12),
    ("Telegram Post Views", "Telegram", 80_000, 2),
    ("X Followers", "X", 4_200_000, 18),
    ("Spotify Plays", "Spotify", 1_100_000, 3),
    ("Facebook Page Likes", "Facebook", 2_350_000, 7),
];

/// The seeded providers: name, currency, panel units per provider unit. Services are
/// routed in turn to each of them and to none (fulfilled by hand), and the providers'
/// rates are ours without a markup of [`MARKUP`].
const PROVIDERS: &[(&str, &str, &str)] = &[
    ("Seed Provider (USD)", "USD", "1"),
    ("Seed Provider (EUR)", "EUR", "1.08"),
];
/// The markup our rates carry over the providers' (converted) rates: 20 %.
const MARKUP: (i64, i64) = (6, 5);

const TS: &str = "%Y-%m-%d %H:%M:%S%.6f";
const ROWS_PER_TRANSACTION: usize = 100_000;

struct GenOrder {
    account: usize,
    service: usize,
    quantity: i64,
    charge: i64,
    refunded: i64,
    approved: i64,
    status: &'static str,
    remains: Option<i64>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    /// Refunded because the provider reported Partial or Canceled (what it owes back).
    provider_refunded: i64,
}

struct GenRefund {
    order: usize,
    amount: i64,
    reason: &'static str,
    status: &'static str,
    source: &'static str,
    created_at: NaiveDateTime,
}

#[derive(Clone, Copy)]
enum Event {
    Charge(usize),
    Refund(usize),
}

fn next_id(conn: &mut DbConnection, table: &str) -> QueryResult<i64> {
    let max = match table {
        "accounts" => accounts::table
            .select(diesel::dsl::max(accounts::id))
            .first::<Option<i64>>(conn)?,
        "services" => services::table
            .select(diesel::dsl::max(services::id))
            .first::<Option<i64>>(conn)?,
        // Subscriptions take their ids from the orders' sequence (one id space).
        "orders" => orders::table
            .select(diesel::dsl::max(orders::id))
            .first::<Option<i64>>(conn)?
            .max(
                subscriptions::table
                    .select(diesel::dsl::max(subscriptions::id))
                    .first::<Option<i64>>(conn)?,
            ),
        "refunds" => refunds::table
            .select(diesel::dsl::max(refunds::id))
            .first::<Option<i64>>(conn)?,
        "top_ups" => top_ups::table
            .select(diesel::dsl::max(top_ups::id))
            .first::<Option<i64>>(conn)?,
        _ => ledger_entries::table
            .select(diesel::dsl::max(ledger_entries::id))
            .first::<Option<i64>>(conn)?,
    };
    Ok(max.unwrap_or(0) + 1)
}

/// Writes `rows` (each a parenthesised VALUES tuple) into `table` in multi-row INSERTs
/// (`db::bulk`), one write transaction per [`ROWS_PER_TRANSACTION`] rows.
fn insert_rows(
    conn: &mut DbConnection,
    table: &str,
    columns: &str,
    rows: impl Iterator<Item = String>,
) -> QueryResult<usize> {
    let mut count = 0;
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        let chunk: Vec<String> = rows.by_ref().take(ROWS_PER_TRANSACTION).collect();
        count += write_tx(conn, |conn: &mut WriteConn| {
            bulk::insert_rows(conn, table, columns, &chunk)
        })?;
    }
    Ok(count)
}

fn ts(at: NaiveDateTime) -> String {
    format!("'{}'", at.format(TS))
}

fn opt(value: Option<i64>) -> String {
    value.map_or_else(|| "NULL".into(), |v| v.to_string())
}

/// Picks an index with probability proportional to its weight.
fn weighted(rng: &mut StdRng, cumulative: &[u64]) -> usize {
    let total = *cumulative.last().unwrap_or(&1);
    let pick = rng.random_range(0..total.max(1));
    cumulative.partition_point(|&c| c <= pick)
}

fn cumulative(weights: impl Iterator<Item = u64>) -> Vec<u64> {
    weights
        .scan(0u64, |sum, w| {
            *sum += w;
            Some(*sum)
        })
        .collect()
}

/// Generates and writes the data set.
pub fn run(conn: &mut DbConnection, options: &SeedOptions) -> Result<Seeded, String> {
    if options.refunds > options.orders {
        return Err("ask for at most as many refunds as orders".into());
    }
    if options.pending > options.orders.saturating_sub(options.refunds) {
        return Err("not enough unrefunded orders for that many pending requests".into());
    }
    if options.accounts == 0 || options.days <= 0 {
        return Err("--accounts and --days must be positive".into());
    }
    let started = Instant::now();
    let db = |e: diesel::result::Error| e.to_string();
    let mut rng = StdRng::seed_from_u64(options.seed);
    let end = now();
    let start = end - Duration::days(options.days);
    let span_micros = (end - start).num_microseconds().unwrap_or(1).max(1);

    // Orders, oldest first; a few accounts and services carry most of the volume.
    let account_weights = cumulative((0..options.accounts).map(|i| 1000 / (i as u64 + 2) + 5));
    let service_weights = cumulative((0..SERVICES.len()).map(|i| 40 - 2 * i as u64));
    let mut times: Vec<i64> = (0..options.orders)
        .map(|_| rng.random_range(0..span_micros))
        .collect();
    times.sort_unstable();
    let mut orders_gen: Vec<GenOrder> = times
        .into_iter()
        .map(|offset| {
            let service = weighted(&mut rng, &service_weights);
            let quantity = rng.random_range(1..=100) * 100;
            let charge = Money::try_from_micros(SERVICES[service].2)
                .ok()
                .and_then(|rate| charge_for(rate, quantity))
                .map_or(1, |m| m.micros())
                .max(1);
            let created_at = start + Duration::microseconds(offset);
            GenOrder {
                account: weighted(&mut rng, &account_weights),
                service,
                quantity,
                charge,
                refunded: 0,
                approved: 0,
                status: "completed",
                remains: Some(0),
                created_at,
                updated_at: created_at,
                provider_refunded: 0,
            }
        })
        .collect();
    // The newest orders are still in flight.
    for order in orders_gen.iter_mut().rev() {
        if end - order.created_at > Duration::hours(6) {
            break;
        }
        order.status = "in_progress";
        order.remains = None;
    }

    // Refunds: orders of troublesome services are picked more often.
    let max_trouble = SERVICES.iter().map(|s| s.3).max().unwrap_or(1);
    let mut refunds_gen: Vec<GenRefund> = Vec::with_capacity(options.refunds);
    let mut touched = vec![false; options.orders];
    while refunds_gen.len() < options.refunds {
        let index = rng.random_range(0..options.orders);
        let trouble = SERVICES[orders_gen[index].service].3;
        if touched[index] || rng.random_range(0..max_trouble) >= trouble {
            continue;
        }
        touched[index] = true;
        let order = &mut orders_gen[index];
        let latest = (end - order.created_at).num_minutes().max(1);
        let first_at = order.created_at + Duration::minutes(rng.random_range(1..=latest.min(4320)));
        let left = options.refunds - refunds_gen.len();
        let roll = rng.random_range(0..100);
        let mut push = |order: &mut GenOrder, amount: i64, reason, source, at: NaiveDateTime| {
            order.refunded += amount;
            if source == "automatic" {
                order.provider_refunded += amount;
            }
            order.updated_at = order.updated_at.max(at);
            refunds_gen.push(GenRefund {
                order: index,
                amount,
                reason,
                status: "succeeded",
                source,
                created_at: at,
            });
        };
        let partial_remains = rng.random_range(1..order.quantity);
        let partial_amount = i64::try_from(
            i128::from(order.charge) * i128::from(partial_remains) / i128::from(order.quantity),
        )
        .unwrap_or(0);
        if roll < 40 && partial_amount > 0 {
            order.status = "partial";
            order.remains = Some(partial_remains);
            push(
                order,
                partial_amount,
                "partial_delivery",
                "automatic",
                first_at,
            );
            if left >= 2 && rng.random_range(0..8) == 0 {
                // Partial first, then canceled by the provider: the rest comes back.
                let later = first_at + Duration::minutes(rng.random_range(1..600));
                let later = later.min(end);
                order.status = "canceled";
                let rest = order.charge - order.refunded;
                push(order, rest, "provider_canceled", "automatic", later);
            }
        } else if roll < 80 {
            order.status = "canceled";
            order.remains = Some(order.quantity);
            let (reason, source) = match rng.random_range(0..10) {
                0 => ("canceled_by_reseller", "reseller"),
                1 => ("service_disabled", "admin"),
                _ => ("provider_canceled", "automatic"),
            };
            let amount = order.charge;
            push(order, amount, reason, source, first_at);
        } else {
            // A dispute an operator approved for part or all of the charge.
            order.status = "completed";
            order.remains = Some(0);
            let amount = rng.random_range(1..=order.charge);
            order.approved = amount;
            let reason = ["not_delivered", "dropped", "other", "partially_delivered"]
                [rng.random_range(0..4)];
            push(order, amount, reason, "reseller", first_at);
        }
    }
    // Requests awaiting review, on completed orders nobody refunded.
    let available = orders_gen
        .iter()
        .zip(&touched)
        .filter(|(o, t)| !**t && o.status == "completed")
        .count();
    if options.pending > available {
        return Err(format!(
            "only {available} completed orders are left for pending requests"
        ));
    }
    let mut pending = 0;
    while pending < options.pending {
        let index = rng.random_range(0..options.orders);
        let order = &orders_gen[index];
        if touched[index] || order.status != "completed" {
            continue;
        }
        touched[index] = true;
        let at = (order.created_at + Duration::hours(rng.random_range(1..48))).min(end);
        refunds_gen.push(GenRefund {
            order: index,
            amount: order.charge,
            reason: "dropped",
            status: "pending_review",
            source: "reseller",
            created_at: at,
        });
        pending += 1;
    }

    // The ledger in time order: a top-up per account first, then charges and refunds.
    let order_base = next_id(conn, "orders").map_err(db)?;
    let refund_base = next_id(conn, "refunds").map_err(db)?;
    let account_base = next_id(conn, "accounts").map_err(db)?;
    let service_base = next_id(conn, "services").map_err(db)?;
    let top_up_base = next_id(conn, "top_ups").map_err(db)?;
    let ledger_base = next_id(conn, "ledger_entries").map_err(db)?;
    let mut spend = vec![0i64; options.accounts];
    for order in &orders_gen {
        spend[order.account] += order.charge;
    }
    let top_ups: Vec<i64> = spend
        .iter()
        .map(|s| (s / 1_000_000 + 1_000) * 1_000_000)
        .collect();
    let mut events: Vec<(NaiveDateTime, Event)> = orders_gen
        .iter()
        .enumerate()
        .map(|(i, o)| (o.created_at, Event::Charge(i)))
        .chain(
            refunds_gen
                .iter()
                .enumerate()
                .filter(|(_, r)| r.status == "succeeded")
                .map(|(i, r)| (r.created_at, Event::Refund(i))),
        )
        .collect();
    // Stable: an order's charge comes before a refund at the same instant.
    events.sort_by_key(|(at, _)| *at);
    let mut balances = top_ups.clone();
    let mut ledger: Vec<String> = Vec::with_capacity(events.len() + options.accounts);
    let top_up_at = start - Duration::days(1);
    for (i, amount) in top_ups.iter().enumerate() {
        ledger.push(format!(
            "({},{},'top_up',{amount},{amount},NULL,NULL,{},{})",
            ledger_base + ledger.len() as i64,
            account_base + i as i64,
            top_up_base + i as i64,
            ts(top_up_at)
        ));
    }
    for (at, event) in &events {
        let (account, amount, order_id, refund_id, kind) = match *event {
            Event::Charge(i) => (
                orders_gen[i].account,
                -orders_gen[i].charge,
                order_base + i as i64,
                None,
                "order_charge",
            ),
            Event::Refund(i) => {
                let refund = &refunds_gen[i];
                (
                    orders_gen[refund.order].account,
                    refund.amount,
                    order_base + refund.order as i64,
                    Some(refund_base + i as i64),
                    "refund",
                )
            }
        };
        balances[account] += amount;
        ledger.push(format!(
            "({},{},'{kind}',{amount},{},{order_id},{},NULL,{})",
            ledger_base + ledger.len() as i64,
            account_base + account as i64,
            balances[account],
            opt(refund_id),
            ts(*at)
        ));
    }

    let accounts_written = insert_rows(
        conn,
        "accounts",
        "id, name, role, status, currency, balance_micros, created_at, updated_at",
        balances.iter().enumerate().map(|(i, balance)| {
            format!(
                "({},'Reseller {:03}','reseller','active','USD',{balance},{},{})",
                account_base + i as i64,
                account_base + i as i64,
                ts(top_up_at),
                ts(end)
            )
        }),
    )
    .map_err(db)?;
    let providers = seed_providers(conn, options.seed).map_err(db)?;
    // Service i goes to provider i mod (providers + 1); the last turn is "by hand".
    let provider_of = |service: usize| providers.get(service % (providers.len() + 1));
    let services_written = insert_rows(
        conn,
        "services",
        "id, name, category, kind, rate_micros, min_quantity, max_quantity, refill, cancel, status, created_at, updated_at, provider_id, provider_service_id",
        SERVICES.iter().enumerate().map(|(i, (name, category, rate, _))| {
            let (provider, remote) = match provider_of(i) {
                Some((id, _)) => (id.to_string(), format!("'{}'", i + 1)),
                None => ("NULL".to_string(), "NULL".to_string()),
            };
            format!(
                "({},'{name}','{category}','default',{rate},100,100000,false,true,'active',{},{},{provider},{remote})",
                service_base + i as i64,
                ts(top_up_at),
                ts(top_up_at)
            )
        }),
    )
    .map_err(db)?;
    insert_rows(
        conn,
        "top_ups",
        "id, account_id, amount_micros, refunded_micros, gateway, gateway_ref, status, created_at",
        top_ups.iter().enumerate().map(|(i, amount)| {
            format!(
                "({},{},{amount},0,'seed','seed-{}-{}','succeeded',{})",
                top_up_base + i as i64,
                account_base + i as i64,
                options.seed,
                top_up_base + i as i64,
                ts(top_up_at)
            )
        }),
    )
    .map_err(db)?;
    let orders_written = insert_rows(
        conn,
        "orders",
        "id, account_id, service_id, link, quantity, charge_micros, refunded_micros, status, remains, created_at, updated_at, approved_dispute_micros",
        orders_gen.iter().enumerate().map(|(i, o)| {
            format!(
                "({},{},{},'https://example.com/p/{}',{},{},{},'{}',{},{},{},{})",
                order_base + i as i64,
                account_base + o.account as i64,
                service_base + o.service as i64,
                i,
                o.quantity,
                o.charge,
                o.refunded,
                o.status,
                opt(o.remains),
                ts(o.created_at),
                ts(o.updated_at),
                o.approved
            )
        }),
    )
    .map_err(db)?;
    insert_rows(
        conn,
        "refunds",
        "id, account_id, order_id, amount_micros, reason, status, source, decided_at, created_at, updated_at",
        refunds_gen.iter().enumerate().map(|(i, r)| {
            let decided = if r.status == "succeeded" {
                ts(r.created_at)
            } else {
                "NULL".into()
            };
            format!(
                "({},{},{},{},'{}','{}','{}',{decided},{},{})",
                refund_base + i as i64,
                account_base + orders_gen[r.order].account as i64,
                order_base + r.order as i64,
                r.amount,
                r.reason,
                r.status,
                r.source,
                ts(r.created_at),
                ts(r.created_at)
            )
        }),
    )
    .map_err(db)?;
    // The cost of every order a provider took: the provider's rate × quantity (ours
    // without the markup, in its currency), its charge reported as that once it finished,
    // lowered by the refunded share where it credited a Partial or Canceled back.
    let refund_done: Vec<Option<NaiveDateTime>> = {
        let mut last = vec![None; orders_gen.len()];
        for r in refunds_gen.iter().filter(|r| r.status == "succeeded") {
            last[r.order] = Some(r.created_at);
        }
        last
    };
    let costed = orders_gen
        .iter()
        .enumerate()
        .filter_map(|(i, o)| provider_of(o.service).map(|p| (i, o, p)))
        .map(|(i, o, (provider_id, rate))| {
            let expected =
                Money::try_from_micros(o.charge * MARKUP.1 / MARKUP.0).unwrap_or(Money::ZERO);
            // In the provider's currency: what converts back to `expected` at its rate.
            let expected_provider = Money::try_from_micros(
                i64::try_from(
                    i128::from(expected.micros()) * 1_000_000 / i128::from(rate.micros().max(1)),
                )
                .unwrap_or(0),
            )
            .unwrap_or(Money::ZERO);
            let charge = Money::try_from_micros(o.charge).unwrap_or(Money::ZERO);
            let finished = o.status != "in_progress";
            let refunded = Money::try_from_micros(o.provider_refunded).unwrap_or(Money::ZERO);
            let (latest, recovery, watch_until) = if !finished {
                (None, None, None)
            } else if refunded.is_zero() {
                (Some(expected_provider), None, None)
            } else {
                let credit = expected_provider.share_of_money(refunded, charge);
                let until = refund_done[i].map(|at| at + Duration::days(3));
                let (latest, recovery, until) = match i % 5 {
                    0..=2 => (
                        Some(expected_provider.saturating_sub(credit)),
                        Recovery::Recovered,
                        until,
                    ),
                    _ if until.is_some_and(|u| u > end) => {
                        (Some(expected_provider), Recovery::Watching, until)
                    }
                    _ => (Some(expected_provider), Recovery::Unrecovered, until),
                };
                (latest, Some(recovery), until)
            };
            let converted = latest.map(|l| rate.convert(l));
            format!(
                "({},{},{},'{}',{},{},{},{},{},{},{},{},{},{},{},{},{},{})",
                order_base + i as i64,
                provider_id,
                service_base + o.service as i64,
                if rate.micros() == 1_000_000 {
                    "USD"
                } else {
                    "EUR"
                },
                rate.micros(),
                expected_provider.micros(),
                rate.convert(expected_provider).micros(),
                opt(latest.map(|_| expected_provider.micros())),
                opt(latest.map(|_| rate.convert(expected_provider).micros())),
                opt(latest.map(Money::micros)),
                opt(converted.map(Money::micros)),
                latest.map_or_else(|| "NULL".into(), |_| ts(o.updated_at)),
                o.provider_refunded,
                recovery.map_or_else(|| "NULL".into(), |r: Recovery| format!("'{}'", r.as_str())),
                watch_until.map_or_else(|| "NULL".into(), ts),
                ts(o.created_at),
                ts(o.updated_at),
                if refunded.is_zero() {
                    "NULL".into()
                } else {
                    expected_provider.micros().to_string()
                },
            )
        });
    let costed_orders = insert_rows(
        conn,
        "order_costs",
        "order_id, provider_id, service_id, currency, exchange_rate_micros, \
         expected_cost_provider_micros, expected_cost_micros, first_charge_provider_micros, \
         first_charge_micros, latest_charge_provider_micros, latest_charge_micros, \
         charge_reported_at, provider_refunded_micros, recovery, watch_until, created_at, \
         updated_at, baseline_charge_provider_micros",
        costed,
    )
    .map_err(db)?;
    let ledger_written = insert_rows(
        conn,
        "ledger_entries",
        "id, account_id, kind, amount_micros, balance_after_micros, order_id, refund_id, top_up_id, created_at",
        ledger.into_iter(),
    )
    .map_err(db)?;

    write_tx(conn, |conn: &mut WriteConn| {
        bulk::reset_sequences(
            conn,
            &[
                "accounts",
                "services",
                "top_ups",
                "orders",
                "refunds",
                "ledger_entries",
            ],
        )
    })
    .map_err(db)?;
    bulk::analyze(conn).map_err(db)?;
    // The report rollups: the triggers logged every bucket; recomputed a week at a time.
    let folded = crate::application::rollups::rebuild(conn, "seed").map_err(db)?;
    bulk::analyze(conn).map_err(db)?;
    Ok(Seeded {
        rollup_buckets: folded.buckets,
        accounts: accounts_written,
        services: services_written,
        orders: orders_written,
        refunds: refunds_gen.len() - pending,
        pending,
        ledger_entries: ledger_written,
        costed_orders,
        elapsed: started.elapsed(),
    })
}

/// The seeded providers (disabled: they name no reachable panel), with their exchange
/// rates, written through `db::providers::insert` so their keys are sealed as any other.
fn seed_providers(
    conn: &mut DbConnection,
    seed: u64,
) -> QueryResult<Vec<(crate::domain::ids::ProviderId, ExchangeRate)>> {
    let mut out = Vec::new();
    for (i, (name, currency, rate)) in PROVIDERS.iter().enumerate() {
        let rate = ExchangeRate::parse(rate).unwrap_or(ExchangeRate::ONE);
        let fields = crate::db::providers::ProviderFields {
            name: format!("{name} #{seed}"),
            url: format!("https://provider-{}.example/api/v2", i + 1),
            api_key: secrecy::SecretString::from(format!("seed-key-{seed}-{i}")),
            enabled: false,
            timeout_ms: 10_000,
            batch_size: 100,
            idempotent_add: false,
            min_balance: None,
            markup_percent: Percent::parse("20").unwrap_or(Percent::ZERO),
            auto_sync: false,
            allow_private_network: Some(false),
            currency: Some((*currency).to_string()),
            exchange_rate: (*currency != "USD").then_some(rate),
            credit_mode: CreditMode::Charge,
        };
        let provider = write_tx(conn, |conn: &mut WriteConn| {
            crate::db::providers::insert(conn, &fields)
        })?;
        out.push((provider.id, rate));
    }
    Ok(out)
}
