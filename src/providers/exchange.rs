//! The discipline every queue of provider work follows, written once: **claim** the next
//! due work under a lease (a write transaction), **send** it to the provider outside any
//! transaction and without holding a pooled connection, **record** the exchange (metrics
//! and the attempt log), **finish** each claimed item with what the reply said, fenced by
//! its claim's token so a worker that lost its claim changes nothing.
//!
//! A queue is a type implementing [`Exchange`]; [`run`] drives it for one provider through
//! [`crate::jobs::drain`] (the same loop the webhook deliveries run), up to
//! [`Exchange::per_pass`] exchanges, stopping early on shutdown. The queues: order sends
//! and order status polls (`worker`), cancels (`cancel_sync`), refill sends and refill
//! status polls (`refill_sync`), balance reads (`balance_sync`), subscriptions' sends,
//! cancels and polls (`subscription_sync`). A new queue (cost sync) is one more
//! implementation and one line in `jobs::JOBS`.

use chrono::NaiveDateTime;

use super::client::{call, Reply};
use super::dialect::{parse_add, parse_cancel_batch, AddReply, CancelReply};
use super::worker::{record_exchange, Pass, Worker};
use crate::db::DbConnection;
use crate::domain::ids::OrderId;
use crate::domain::provider::Provider;
pub(super) use crate::jobs::Claimed;
use crate::jobs::{drain, Queue};

/// What a claim of a batch found: its jobs, or nothing due.
pub(super) fn claimed<T>(jobs: Vec<T>) -> Claimed<Vec<T>> {
    if jobs.is_empty() {
        Claimed::Empty
    } else {
        Claimed::Due(jobs)
    }
}

/// A batch status reply (orders', subscriptions'), read by `parse`: its items, labelled
/// `read`, or `unreadable` (not answered, or not a status batch).
pub(super) fn read_statuses<T>(
    reply: &Reply,
    parse: impl FnOnce(&str) -> Option<T>,
) -> (Option<T>, &'static str) {
    let items = match reply {
        Reply::Answered { body, .. } => parse(body),
        Reply::NotSent(_) | Reply::Lost(_) => None,
    };
    let label = if items.is_some() {
        "read"
    } else {
        "unreadable"
    };
    (items, label)
}

/// An `add` reply (an order's, a subscription's) with its label; one not sent is a
/// rejection naming why.
pub(super) fn read_add(reply: &Reply) -> (AddReply, &'static str) {
    let read = match reply {
        Reply::Answered { body, .. } => parse_add(body),
        Reply::NotSent(e) => AddReply::Rejected(format!("not sent: {e}")),
        Reply::Lost(_) => AddReply::Unreadable,
    };
    let label = match &read {
        AddReply::Accepted(_) => "accepted",
        AddReply::Rejected(_) => "rejected",
        AddReply::Unreadable => "unreadable",
    };
    (read, label)
}

/// A `cancel` batch reply (orders', subscriptions') with its label.
pub(super) fn read_cancels(reply: &Reply) -> (Option<CancelReply>, &'static str) {
    let read = match reply {
        Reply::Answered { body, .. } => parse_cancel_batch(body),
        Reply::NotSent(_) | Reply::Lost(_) => None,
    };
    let label = match &read {
        Some(CancelReply::Items(_)) => "read",
        Some(CancelReply::RefusedAll(_)) => "rejected",
        Some(CancelReply::Failed(_)) => "failed",
        None => "unreadable",
    };
    (read, label)
}

/// One queue of work sent to providers.
pub(super) trait Exchange {
    /// The `action` sent: the label of the exchange in metrics and in the attempt log.
    const ACTION: &'static str;
    /// What one exchange carries: a claimed row or a batch of them, with their fences.
    type Work;
    /// The reply as this queue reads it.
    type Read;

    /// Exchanges one pass makes with `provider` at most, one claim each.
    fn per_pass(&self, provider: &Provider) -> usize;

    /// Claims the next work due by `due_by` (when the pass began: work made due again by
    /// this pass waits for the next one) and makes it ready to send, each write in a write
    /// transaction of its own.
    fn claim(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        due_by: NaiveDateTime,
    ) -> Result<Claimed<Self::Work>, diesel::result::Error>;

    /// The request's fields, `action` first.
    fn request(&self, work: &Self::Work) -> Vec<(&'static str, String)>;

    /// Reads the reply, with the outcome's label for metrics and the attempt log.
    fn read(&self, work: &Self::Work, reply: &Reply) -> (Self::Read, &'static str);

    /// What the attempt log keeps of the reply (and what an unreadable reply is told as).
    fn logged<'r>(&self, reply: &'r Reply) -> std::borrow::Cow<'r, str> {
        std::borrow::Cow::Borrowed(reply.text())
    }

    /// The order the exchange is about, for the attempt log (none for a batch).
    fn order_of(&self, _work: &Self::Work) -> Option<OrderId> {
        None
    }

    /// Ends the claimed work with what the reply said, each item fenced by its claim.
    fn finish(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        work: Self::Work,
        read: Self::Read,
        reply: &Reply,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error>;
}

/// Runs one pass of `queue` for `provider` ([`crate::jobs::drain`]: claim, send, record,
/// finish, until nothing is due, the pass's bound is reached or the worker stops). The
/// pooled connection goes back to the pool before each exchange, so a provider that hangs
/// for its whole timeout holds no connection the API or the other lanes need.
pub(super) fn run<E: Exchange>(
    queue: &E,
    worker: &Worker,
    provider: &Provider,
    pass: &mut Pass,
) -> Result<(), diesel::result::Error> {
    let mut with = WithProvider {
        queue,
        worker,
        provider,
        pass,
        due_by: crate::db::now(),
    };
    drain(&mut with, worker.stop_flag()).map(drop)
}

/// An [`Exchange`] with one provider, as a [`Queue`].
struct WithProvider<'a, E> {
    queue: &'a E,
    worker: &'a Worker,
    provider: &'a Provider,
    pass: &'a mut Pass,
    /// When the pass began: work made due again by this pass waits for the next one.
    due_by: chrono::NaiveDateTime,
}

impl<E: Exchange> Queue for WithProvider<'_, E> {
    type Work = E::Work;
    type Answer = (Reply, E::Read, &'static str);
    type Error = diesel::result::Error;

    fn per_pass(&self) -> usize {
        self.queue.per_pass(self.provider)
    }

    fn claim(&mut self) -> Result<Claimed<E::Work>, diesel::result::Error> {
        let mut conn = self.worker.connection()?;
        self.queue.claim(&mut conn, self.provider, self.due_by)
    }

    fn send(&mut self, work: &E::Work) -> Self::Answer {
        let fields = self.queue.request(work);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = call(self.provider, &fields);
        let (read, label) = self.queue.read(work, &reply);
        (reply, read, label)
    }

    fn finish(
        &mut self,
        work: E::Work,
        (reply, read, label): Self::Answer,
    ) -> Result<(), diesel::result::Error> {
        let mut conn = self.worker.connection()?;
        record_exchange(
            &mut conn,
            self.provider,
            self.queue.order_of(&work),
            E::ACTION,
            label,
            reply.http_status(),
            &self.queue.logged(&reply),
        )?;
        self.queue
            .finish(&mut conn, self.provider, work, read, &reply, self.pass)
    }
}
