//! The lease discipline of the work queues (`provider_orders`, `refills`,
//! `cancel_requests`, `webhook_deliveries`), written once as macros over a table module:
//! diesel's per-table column types make a generic function over tables impractical, while a
//! macro that takes the table's module reads like the query it expands to.
//!
//! Each queue row carries `lease_owner`, `lease_until` and `lease_token`.
//!
//! - **Claim** ([`claim!`]): select the ids of due rows whose lease is free (none, or run
//!   out), then one conditional UPDATE that re-checks each row is still free and still
//!   work, and leases it to the worker until `now + lease` with `lease_token + 1`. Two
//!   workers racing for the same rows never both get one: the loser's UPDATE matches
//!   nothing, and it looks again (up to four times) rather than report no work while due
//!   rows remain. The rows leased to this owner until that time are then reloaded, each with
//!   the token this claim gave it.
//! - **Why the token.** An owner name alone cannot tell this attempt from a later one: a
//!   worker whose lease ran out while it was stalled may find the row claimed again by
//!   itself or by another worker. Every claim takes the next token, and so does every
//!   operator action that takes a row out of a worker's hands (withdraw, reconcile,
//!   adopt, disable, redeliver).
//! - **Why a lost claim writes nothing.** Every write of an attempt is one statement
//!   conditional on the row id, owner and token of its claim ([`fenced!`] over a
//!   [`fence!`] type). A worker that lost its claim therefore changes nothing: not the
//!   state, not the provider's id, not the failure count. It learns so from a `false` and
//!   only logs it; the attempt that holds the row now decides.
//! - **Why leases cover only work about to happen.** Callers claim right before the
//!   exchange (one order, one refill, one batch), and [`begin_send!`] renews the lease
//!   for longer than the exchange can take, so a lease never covers rows waiting behind a
//!   slow send, and nobody takes a row over while its request is in flight. A lease that
//!   runs out therefore means its worker really stopped, and the row is free again.
//! - **Release** ([`release_all!`]): after a pass that failed midway, or on shutdown, a
//!   worker gives back every lease it holds, so its rows are picked up at once instead of
//!   when the leases run out.

/// Declares the fence of one queue: one claim of one row, whose writes apply only while the
/// row is still leased to `owner` under `token`, i.e. nobody claimed, withdrew or
/// reconciled it since. Each queue has its own type, so a fence of one queue cannot be
/// passed to another's writes; its id field has the row's id type (`Fence { order_id:
/// OrderId }`). With `for Row`, `Row::fence(owner)` gives the fence of the claim that
/// returned the row (its `id` field and `lease_token`).
macro_rules! fence {
    ($(#[$meta:meta])* $name:ident { $id:ident: $ty:ty } $(for $row:ident . $row_id:ident)?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<'a> {
            pub $id: $ty,
            pub owner: &'a str,
            pub token: i64,
        }

        impl $name<'_> {
            /// The id of the row this fence is for.
            pub fn row_id(&self) -> $ty {
                self.$id
            }
        }

        $(
            impl $row {
                /// The fence of the claim that returned this row, for `owner`.
                pub fn fence<'a>(&self, owner: &'a str) -> $name<'a> {
                    $name {
                        $id: self.$row_id,
                        owner,
                        token: self.lease_token,
                    }
                }
            }
        )?
    };
}
pub(crate) use fence;

/// The rows `fence` may write in `table`: still leased to its owner under its token.
macro_rules! fenced {
    ($table:ident, $fence:expr) => {
        $table::table
            .find($fence.row_id())
            .filter($table::lease_owner.eq($fence.owner))
            .filter($table::lease_token.eq($fence.token))
    };
}
pub(crate) use fenced;

/// A row's lease is free at `at`: nobody holds it, or its holder's time ran out.
macro_rules! free {
    ($table:ident, $at:expr) => {
        $table::lease_until
            .is_null()
            .or($table::lease_until.lt($at))
    };
}
pub(crate) use free;

/// Claims up to `limit` rows of `table` for `owner` until `lease` from now, oldest
/// `next_at` first; evaluates to `QueryResult<Vec<_>>` of what `load` makes of the rows
/// leased.
///
/// - `work = |at| …`: which rows are work at `at` (state, due time); the UPDATE re-checks
///   it with the lease, since another writer may change a row in between.
/// - `narrow = |query| …` (optional): narrows the boxed select of candidates (e.g. one
///   provider) by what does not change under a worker.
/// - `load = |rows| …`: loads the rows leased (`rows` is the filtered, ordered query).
macro_rules! claim {
    (
        $conn:expr, $table:ident, $id:ident,
        owner: $owner:expr, limit: $limit:expr, lease: $lease:expr,
        work: |$at:ident| $work:expr,
        load: |$rows:ident| $load:expr $(,)?
    ) => {
        $crate::db::lease::claim!(
            $conn, $table, $id,
            owner: $owner, limit: $limit, lease: $lease,
            work: |$at| $work,
            narrow: |query| query,
            load: |$rows| $load,
        )
    };
    (
        $conn:expr, $table:ident, $id:ident,
        owner: $owner:expr, limit: $limit:expr, lease: $lease:expr,
        work: |$at:ident| $work:expr,
        narrow: |$query:ident| $narrow:expr,
        load: |$rows:ident| $load:expr $(,)?
    ) => {
        'claim: {
            let owner: &str = $owner;
            for _ in 0..4 {
                let $at = $crate::db::now();
                let $query = $table::table
                    .filter($work)
                    .filter($crate::db::lease::free!($table, $at))
                    .select($table::$id)
                    .order($table::next_at)
                    .limit($limit)
                    .into_boxed();
                let ids: Vec<i64> = $narrow.load($conn)?;
                if ids.is_empty() {
                    break 'claim Ok(Vec::new());
                }
                let until = $at + $lease;
                let taken = diesel::update(
                    $table::table
                        .filter($table::$id.eq_any(&ids))
                        .filter($work)
                        .filter($crate::db::lease::free!($table, $at)),
                )
                .set((
                    $table::lease_owner.eq(owner),
                    $table::lease_until.eq(until),
                    $table::lease_token.eq($table::lease_token + 1),
                ))
                .execute($conn)?;
                if taken == 0 {
                    continue;
                }
                let $rows = $table::table
                    .filter($table::$id.eq_any(&ids))
                    .filter($table::lease_owner.eq(owner))
                    .filter($table::lease_until.eq(until))
                    .order($table::next_at);
                break 'claim $load;
            }
            Ok(Vec::new())
        }
    };
}
pub(crate) use claim;

/// Records under `fence` that a send is about to happen, before it happens (a crash
/// mid-send leaves the row `sending`, which the next attempt treats as "the other side may
/// have it"), counts the attempt and renews the lease for `lease` from now, which the
/// caller makes longer than the exchange can take. Only from `queued` or `sending`.
/// Evaluates to `QueryResult<bool>`: false when the claim was lost or the row left the
/// send queue meanwhile.
macro_rules! begin_send {
    ($conn:expr, $table:ident, $fence:expr, $lease:expr) => {{
        use $crate::domain::provider::ForwardingState;
        let at = $crate::db::now();
        diesel::update(
            $crate::db::lease::fenced!($table, $fence).filter($table::state.eq_any([
                ForwardingState::Queued.as_str(),
                ForwardingState::Sending.as_str(),
            ])),
        )
        .set((
            $table::state.eq(ForwardingState::Sending.as_str()),
            $table::attempts.eq($table::attempts + 1),
            $table::lease_until.eq(at + $lease),
            $table::updated_at.eq(at),
        ))
        .execute($conn)
        .map(|changed| changed == 1)
    }};
}
pub(crate) use begin_send;

/// Gives back every lease of `table` that `owner` holds; evaluates to
/// `QueryResult<usize>`, the rows released.
macro_rules! release_all {
    ($conn:expr, $table:ident, $owner:expr) => {
        diesel::update($table::table.filter($table::lease_owner.eq($owner)))
            .set($crate::db::lease::released!($table))
            .execute($conn)
    };
}
pub(crate) use release_all;

/// The assignments that end a lease: the row is nobody's, and free to claim at once.
macro_rules! released {
    ($table:ident) => {
        (
            $table::lease_owner.eq(None::<String>),
            $table::lease_until.eq(None::<chrono::NaiveDateTime>),
        )
    };
}
pub(crate) use released;

/// The assignments that take a row out of whoever's hands it is in (an operator's action,
/// a late acceptance adopted): its lease ends and its token moves on, so an attempt still
/// holding the row has lost its claim and none of its writes apply.
macro_rules! revoked {
    ($table:ident) => {
        (
            $table::lease_owner.eq(None::<String>),
            $table::lease_until.eq(None::<chrono::NaiveDateTime>),
            $table::lease_token.eq($table::lease_token + 1),
        )
    };
}
pub(crate) use revoked;
