//! `reseller-api verify`: recompute the books from the ledger and compare.

use std::collections::HashMap;

use diesel::QueryResult;

use super::{
    accounts, audit, ledger, orders, refunds, snapshot_tx, subscriptions, top_ups, DbConnection,
};
use crate::domain::audit::{AuditAction, AuditTarget};
use crate::domain::ids::{AccountId, OrderId, SubscriptionId};
use crate::domain::ledger::LedgerKind;
use crate::domain::refund::{RefundReason, RefundSource, RefundStatus};

const PAGE: i64 = 10_000;

#[derive(Debug, Default)]
pub struct Report {
    pub accounts: usize,
    pub entries: usize,
    pub orders: usize,
    pub top_ups: usize,
    pub refunds: usize,
    /// Money-moving operator actions checked against the audit log.
    pub audited: usize,
    /// Folded report-rollup buckets checked against the rows.
    pub rollup_buckets: usize,
    pub subscriptions: usize,
    /// Every inconsistency found, one sentence each. Empty means the books balance.
    pub problems: Vec<String>,
}

#[derive(Default)]
struct AccountBook {
    sum: i64,
    last_after: i64,
    chargebacks: usize,
    /// The held balance the entries that move it sum to.
    held: i64,
    /// Charges of subscription children that took the balance below zero: a child the
    /// provider delivered after the hold was spent is recorded whatever the balance.
    child_overdrafts: usize,
}

/// What the ledger says about one subscription's money.
#[derive(Default)]
struct SubscriptionLedger {
    held: i64,
    holds: usize,
    captured: i64,
    released: i64,
    /// Each capture's entry and the order it names.
    captures: Vec<(i64, Option<OrderId>)>,
    /// Each hold's and release's entry and the account it moves.
    moves: Vec<(i64, AccountId)>,
}

/// What the ledger says about one order: its charge entries and the refunds credited.
#[derive(Default)]
struct OrderLedger {
    charged: i64,
    charge_entries: usize,
    refunded: i64,
}

/// Walks the whole ledger once, in pages, and checks every invariant the design names.
pub fn run(conn: &mut DbConnection) -> QueryResult<Report> {
    run_paged(conn, PAGE, &mut |_| {})
}

/// [`run`] reading `page` rows at a time and calling `between_pages` with the table's name
/// after each page read, so a test can commit writes in the middle of a run.
///
/// Every page is read in one snapshot ([`snapshot_tx`]), so a live database is checked as
/// it was at one instant: an order committed after its ledger page was read is not seen
/// at all, rather than seen without its charge.
pub fn run_paged(
    conn: &mut DbConnection,
    page: i64,
    between_pages: &mut dyn FnMut(&str),
) -> QueryResult<Report> {
    snapshot_tx(conn, |conn| check(conn, page, between_pages))
}

fn check(
    conn: &mut DbConnection,
    page: i64,
    between_pages: &mut dyn FnMut(&str),
) -> QueryResult<Report> {
    let mut report = Report::default();
    let mut books: HashMap<AccountId, AccountBook> = HashMap::new();
    let mut order_books: HashMap<OrderId, OrderLedger> = HashMap::new();
    let mut subscription_books: HashMap<SubscriptionId, SubscriptionLedger> = HashMap::new();
    let mut top_up_credits: HashMap<i64, i64> = HashMap::new();
    // refund id -> (sum of its entries, number of entries)
    let mut refund_entries: HashMap<i64, (i64, usize)> = HashMap::new();
    // Money-moving operator actions since the audit log began: each needs its entry.
    let log_began = audit::began_at(conn)?;
    let mut needs_entry: Vec<Audited> = Vec::new();
    // Order refunds since the log began, by refund id: operator actions or not, as the
    // refund record says.
    let mut order_refunds: HashMap<i64, i64> = HashMap::new();

    let child_orders: std::collections::HashSet<OrderId> = subscriptions::child_charges(conn)?
        .into_iter()
        .map(|(order, _, _)| order)
        .collect();

    let mut after = 0;
    loop {
        let entries = ledger::scan(conn, after, page)?;
        between_pages("ledger_entries");
        let Some(last) = entries.last() else { break };
        after = last.id;
        for entry in entries {
            report.entries += 1;
            let book = books.entry(entry.account_id).or_default();
            book.sum += entry.amount.micros();
            if book.sum != entry.balance_after.micros() {
                report.problems.push(format!(
                    "ledger entry {} of account {}: balance_after {} but the entries up to it sum to {}",
                    entry.id, entry.account_id, entry.balance_after.micros(), book.sum
                ));
                // Carry on from what the entry says, so one bad entry is reported once.
                book.sum = entry.balance_after.micros();
            }
            book.last_after = entry.balance_after.micros();
            if entry.held_amount.micros() != 0 {
                book.held += entry.held_amount.micros();
                if book.held != entry.held_after.micros() {
                    report.problems.push(format!(
                        "ledger entry {} of account {}: held_after {} but the held moves up to it sum to {}",
                        entry.id, entry.account_id, entry.held_after.micros(), book.held
                    ));
                    book.held = entry.held_after.micros();
                }
            }
            check_held_move(&entry, &mut subscription_books, &mut report.problems);
            if let Some(refund_id) = entry.refund_id {
                let seen = refund_entries.entry(refund_id.get()).or_default();
                seen.0 += entry.amount.micros();
                seen.1 += 1;
            }
            if entry.created_at >= log_began {
                let key = |action, target, id: i64| Audited {
                    action,
                    target,
                    id,
                    entry: entry.id,
                };
                match (entry.kind, entry.top_up_id, entry.refund_id) {
                    (LedgerKind::TopUp, Some(top_up), _) => needs_entry.push(key(
                        AuditAction::TopUpCreate,
                        AuditTarget::TopUp,
                        top_up.get(),
                    )),
                    (LedgerKind::Chargeback, Some(top_up), _) => needs_entry.push(key(
                        AuditAction::TopUpChargeback,
                        AuditTarget::TopUp,
                        top_up.get(),
                    )),
                    (LedgerKind::TopUpRefund, Some(top_up), _) if entry.amount.micros() < 0 => {
                        needs_entry.push(key(
                            AuditAction::TopUpRefund,
                            AuditTarget::TopUp,
                            top_up.get(),
                        ))
                    }
                    (LedgerKind::TopUpRefund, _, Some(refund)) => needs_entry.push(key(
                        AuditAction::TopUpRefundFail,
                        AuditTarget::Refund,
                        refund.get(),
                    )),
                    (LedgerKind::Refund, _, Some(refund)) => {
                        order_refunds.insert(refund.get(), entry.id);
                    }
                    _ => {}
                }
            }
            match entry.kind {
                LedgerKind::OrderCharge => {
                    if let Some(order_id) = entry.order_id {
                        let order = order_books.entry(order_id).or_default();
                        // Paid from the available balance, or (a subscription's child)
                        // from the held one.
                        order.charged -= entry.amount.micros() + entry.held_amount.micros();
                        order.charge_entries += 1;
                        if entry.balance_after.micros() < 0 && child_orders.contains(&order_id) {
                            book.child_overdrafts += 1;
                        }
                    } else {
                        report.problems.push(format!(
                            "ledger entry {}: order charge without an order",
                            entry.id
                        ));
                    }
                }
                LedgerKind::Refund => match (entry.order_id, entry.refund_id) {
                    (Some(order_id), Some(_)) => {
                        order_books.entry(order_id).or_default().refunded += entry.amount.micros();
                    }
                    _ => report.problems.push(format!(
                        "ledger entry {}: a refund credit without its order and refund",
                        entry.id
                    )),
                },
                LedgerKind::TopUp => match entry.top_up_id {
                    Some(top_up_id) => {
                        *top_up_credits.entry(top_up_id.get()).or_default() += entry.amount.micros()
                    }
                    None => report.problems.push(format!(
                        "ledger entry {}: top-up credit without a top-up",
                        entry.id
                    )),
                },
                LedgerKind::Chargeback => book.chargebacks += 1,
                LedgerKind::TopUpRefund
                | LedgerKind::Adjustment
                | LedgerKind::SubscriptionHold
                | LedgerKind::SubscriptionRelease => {}
            }
        }
    }

    let mut held_books: HashMap<AccountId, i64> =
        books.iter().map(|(id, book)| (*id, book.held)).collect();
    for (account_id, balance) in accounts::all_balances(conn)? {
        report.accounts += 1;
        let book = books.remove(&account_id).unwrap_or_default();
        if book.sum != balance {
            report.problems.push(format!(
                "account {account_id}: balance {balance} but its ledger sums to {}",
                book.sum
            ));
        }
        if balance < 0 && book.chargebacks == 0 && book.child_overdrafts == 0 {
            report.problems.push(format!(
                "account {account_id}: balance {balance} is negative without a chargeback or a subscription's child past its hold"
            ));
        }
    }
    for (account_id, held) in accounts::all_held(conn)? {
        let book = held_books.remove(&account_id).unwrap_or_default();
        if book != held {
            report.problems.push(format!(
                "account {account_id}: held {held} but its ledger's held moves sum to {book}"
            ));
        }
    }
    for account_id in books.keys() {
        report.problems.push(format!(
            "ledger entries name account {account_id}, which does not exist"
        ));
    }

    let mut after = 0;
    loop {
        let rows = orders::scan_amounts(conn, after, page)?;
        between_pages("orders");
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (order_id, _account_id, charge, refunded) in rows {
            report.orders += 1;
            let book = order_books.remove(&OrderId(order_id)).unwrap_or_default();
            if book.charge_entries != 1 || book.charged != charge {
                report.problems.push(format!(
                    "order {order_id}: charge {charge} but {} charge entries total {}",
                    book.charge_entries, book.charged
                ));
            }
            if refunded > charge {
                report.problems.push(format!(
                    "order {order_id}: refunded {refunded} exceeds its charge {charge}"
                ));
            }
            if book.refunded != refunded {
                report.problems.push(format!(
                    "order {order_id}: records {refunded} refunded but its refund entries total {}",
                    book.refunded
                ));
            }
        }
    }
    for order_id in order_books.keys() {
        report.problems.push(format!(
            "ledger entries name order {order_id}, which does not exist"
        ));
    }

    // What each top-up has returned: pending or succeeded payment refunds and chargebacks.
    let mut top_up_returned: HashMap<i64, i64> = HashMap::new();
    let mut after = 0;
    loop {
        let rows = refunds::scan(conn, after, page)?;
        between_pages("refunds");
        let Some(last) = rows.last() else { break };
        after = last.id.get();
        for refund in rows {
            report.refunds += 1;
            if let Some(entry) = order_refunds.remove(&refund.id.get()) {
                if let Some(needed) = operator_refund(&refund, entry) {
                    needs_entry.push(needed);
                }
            }
            let (sum, count) = refund_entries.remove(&refund.id.get()).unwrap_or_default();
            let expected: &[(i64, usize)] = match (refund.order_id, refund.status) {
                (Some(_), RefundStatus::Succeeded) => &[(refund.amount.micros(), 1)],
                (Some(_), _) => &[(0, 0)],
                (None, RefundStatus::Pending | RefundStatus::Succeeded) => {
                    &[(-refund.amount.micros(), 1)]
                }
                (None, RefundStatus::Failed) => &[(0, 2)],
                (None, _) => &[(0, 0)],
            };
            if !expected.contains(&(sum, count)) {
                report.problems.push(format!(
                    "refund {} ({}, {}): {count} ledger entries totalling {sum}, expected {:?}",
                    refund.id, refund.reason, refund.status, expected[0]
                ));
            }
            if let (Some(top_up_id), RefundStatus::Pending | RefundStatus::Succeeded) =
                (refund.top_up_id, refund.status)
            {
                *top_up_returned.entry(top_up_id.get()).or_default() += refund.amount.micros();
            }
            if refund.reason == RefundReason::Chargeback && refund.top_up_id.is_none() {
                report.problems.push(format!(
                    "refund {}: a chargeback without a top-up",
                    refund.id
                ));
            }
        }
    }
    for refund_id in refund_entries.keys() {
        report.problems.push(format!(
            "ledger entries name refund {refund_id}, which does not exist"
        ));
    }

    for (top_up_id, _account_id, amount, refunded) in top_ups::all_amounts(conn)? {
        let returned = top_up_returned.remove(&top_up_id).unwrap_or_default();
        if returned != refunded {
            report.problems.push(format!(
                "top-up {top_up_id}: records {refunded} returned but its refunds total {returned}"
            ));
        }
        report.top_ups += 1;
        let credited = top_up_credits.remove(&top_up_id).unwrap_or_default();
        if credited != amount {
            report.problems.push(format!(
                "top-up {top_up_id}: amount {amount} but credited {credited}"
            ));
        }
        if refunded > amount {
            report.problems.push(format!(
                "top-up {top_up_id}: refunded {refunded} exceeds its amount {amount}"
            ));
        }
    }
    for top_up_id in top_up_credits.keys() {
        report.problems.push(format!(
            "ledger entries name top-up {top_up_id}, which does not exist"
        ));
    }
    check_subscriptions(conn, page, &mut report, subscription_books)?;
    check_audited(conn, page, &mut report, needs_entry, log_began)?;
    let (checked, mismatches) = super::rollups::check(conn)?;
    report.rollup_buckets = checked;
    for m in mismatches {
        report.problems.push(format!(
            "report rollup bucket {} ({}): its {} sums differ from the rows",
            m.bucket,
            super::rollups::bucket_start(m.bucket),
            m.what
        ));
    }
    for m in super::rollups::check_levels_all(conn)? {
        let level = match m.phase {
            Some(phase) => format!("zone phase {phase}, span {}", m.span),
            None => format!("span {}", m.span),
        };
        report.problems.push(format!(
            "report rollup level {} ({level} from bucket {}, {}): {} rows differ from the level below",
            m.table,
            m.bucket,
            super::rollups::bucket_start(m.bucket),
            m.rows
        ));
    }
    report.problems.sort();
    Ok(report)
}

/// An entry that moves the held balance is a hold (available → held), a child's charge
/// paid from held, or a release (held → available), each naming its subscription; no
/// other entry moves it.
fn check_held_move(
    entry: &crate::domain::ledger::LedgerEntry,
    books: &mut HashMap<SubscriptionId, SubscriptionLedger>,
    problems: &mut Vec<String>,
) {
    let (available, held) = (entry.amount.micros(), entry.held_amount.micros());
    let fine = match (entry.kind, entry.subscription_id) {
        // A free subscription (rate 0) holds 0 and its children capture 0.
        (LedgerKind::SubscriptionHold, Some(id)) if held >= 0 && available == -held => {
            let book = books.entry(id).or_default();
            book.held += held;
            book.holds += 1;
            book.moves.push((entry.id, entry.account_id));
            true
        }
        (LedgerKind::SubscriptionRelease, Some(id)) if held < 0 && available == -held => {
            let book = books.entry(id).or_default();
            book.released -= held;
            book.moves.push((entry.id, entry.account_id));
            true
        }
        (LedgerKind::OrderCharge, Some(id)) if held <= 0 && available == 0 => {
            let book = books.entry(id).or_default();
            book.captured -= held;
            book.captures.push((entry.id, entry.order_id));
            true
        }
        (LedgerKind::SubscriptionHold | LedgerKind::SubscriptionRelease, _) => false,
        (_, Some(_)) => false,
        (_, None) => held == 0,
    };
    if !fine {
        problems.push(format!(
            "ledger entry {} ({}): moves {available} available and {held} held, which is no hold, capture or release of a subscription",
            entry.id, entry.kind
        ));
    }
}

/// Every subscription's hold, captures and release as its ledger entries say, and never
/// more taken from the hold than it held; an ended one holds nothing.
fn check_subscriptions(
    conn: &mut DbConnection,
    page: i64,
    report: &mut Report,
    mut books: HashMap<SubscriptionId, SubscriptionLedger>,
) -> QueryResult<()> {
    // By subscription: its children's charges and how many there are.
    let mut children: HashMap<SubscriptionId, i64> = HashMap::new();
    let mut child_count: HashMap<SubscriptionId, i64> = HashMap::new();
    let mut parent_of: HashMap<OrderId, SubscriptionId> = HashMap::new();
    for (order, id, charge) in subscriptions::child_charges(conn)? {
        *children.entry(id).or_default() += charge;
        *child_count.entry(id).or_default() += 1;
        parent_of.insert(order, id);
    }
    let mut after = 0;
    loop {
        let rows = subscriptions::scan(conn, after, page)?;
        let Some(last) = rows.last() else { break };
        after = last.id.get();
        for sub in rows {
            report.subscriptions += 1;
            let id = sub.id;
            let book = books.remove(&id).unwrap_or_default();
            let (hold, captured, released) = (
                sub.hold.micros(),
                sub.captured.micros(),
                sub.released.micros(),
            );
            if book.holds != 1 || book.held != hold {
                report.problems.push(format!(
                    "subscription {id}: hold {hold} but {} hold entries total {}",
                    book.holds, book.held
                ));
            }
            if book.captured != captured {
                report.problems.push(format!(
                    "subscription {id}: records {captured} captured but its children's charges from the hold total {}",
                    book.captured
                ));
            }
            if book.released != released {
                report.problems.push(format!(
                    "subscription {id}: records {released} released but its release entries total {}",
                    book.released
                ));
            }
            if book.captured + book.released > book.held {
                report.problems.push(format!(
                    "subscription {id}: its children's charges from the hold ({}) and its release ({}) exceed its hold ({})",
                    book.captured, book.released, book.held
                ));
            }
            if book.captured > children.get(&id).copied().unwrap_or(0) {
                report.problems.push(format!(
                    "subscription {id}: captured {} from the hold, more than its children's charges total",
                    book.captured
                ));
            }
            for (entry, order) in &book.captures {
                if order.and_then(|order| parent_of.get(&order)) != Some(&id) {
                    report.problems.push(format!(
                        "ledger entry {entry}: captures from subscription {id}'s hold for {}, which is not its child",
                        order.map_or("no order".to_string(), |o| format!("order {o}"))
                    ));
                }
            }
            for (entry, account) in &book.moves {
                if *account != sub.account_id {
                    report.problems.push(format!(
                        "ledger entry {entry}: moves subscription {id}'s hold on account {account}, not its account {}",
                        sub.account_id
                    ));
                }
            }
            let served = child_count.get(&id).copied().unwrap_or(0);
            if sub.posts_served != served {
                report.problems.push(format!(
                    "subscription {id}: {} posts served but {served} child orders",
                    sub.posts_served
                ));
            }
            if sub.status.is_terminal() && captured + released != hold {
                report.problems.push(format!(
                    "subscription {id}: {} but still holds {}",
                    sub.status,
                    hold - captured - released
                ));
            }
        }
    }
    for id in books.keys() {
        report.problems.push(format!(
            "ledger entries name subscription {id}, which does not exist"
        ));
    }
    Ok(())
}

/// A money-moving operator action found in the ledger, and the audit entry it needs.
struct Audited {
    action: AuditAction,
    target: AuditTarget,
    id: i64,
    /// The ledger entry that moved the money.
    entry: i64,
}

/// The audit entry an order refund needs: an operator's outcome or approval. Refunds the
/// worker makes from a provider's answer, a reseller's own cancel and a disabled
/// service's refunds are not money an operator moved on this order.
fn operator_refund(refund: &crate::domain::refund::Refund, entry: i64) -> Option<Audited> {
    let order_id = refund.order_id?;
    refund.decided_by?;
    if matches!(
        refund.reason,
        RefundReason::ServiceDisabled | RefundReason::CanceledByReseller
    ) {
        return None;
    }
    Some(match refund.source {
        RefundSource::Admin => Audited {
            action: AuditAction::OrderOutcome,
            target: AuditTarget::Order,
            id: order_id.get(),
            entry,
        },
        _ => Audited {
            action: AuditAction::RefundApprove,
            target: AuditTarget::Refund,
            id: refund.id.get(),
            entry,
        },
    })
}

/// Every money-moving operator action since the log began has its audit entry: as many
/// entries of its action on its target as the ledger has such movements.
fn check_audited(
    conn: &mut DbConnection,
    page: i64,
    report: &mut Report,
    needs_entry: Vec<Audited>,
    log_began: chrono::NaiveDateTime,
) -> QueryResult<()> {
    let actions = [
        AuditAction::TopUpCreate,
        AuditAction::TopUpChargeback,
        AuditAction::TopUpRefund,
        AuditAction::TopUpRefundFail,
        AuditAction::OrderOutcome,
        AuditAction::RefundApprove,
    ];
    let mut logged: HashMap<(String, String, i64), usize> = HashMap::new();
    let mut after = 0;
    loop {
        let rows = audit::money_keys(conn, &actions, after, page)?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (_, action, target, id) in rows {
            if let Some(id) = id {
                *logged.entry((action, target, id)).or_default() += 1;
            }
        }
    }
    for needed in needs_entry {
        report.audited += 1;
        let key = (
            needed.action.as_str().to_string(),
            needed.target.as_str().to_string(),
            needed.id,
        );
        match logged.get_mut(&key) {
            Some(count) if *count > 0 => *count -= 1,
            _ => report.problems.push(format!(
                "ledger entry {}: {} {} {} moved money after the audit log began ({}) but has no audit entry",
                needed.entry, needed.action, needed.target, needed.id, log_began
            )),
        }
    }
    Ok(())
}
