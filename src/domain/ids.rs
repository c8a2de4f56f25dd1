//! The ids of our rows, one type each, so that an account's id passed where an order's is
//! expected does not compile. On the wire and in the spec they are plain integers
//! (`#[serde(transparent)]`, and `#[schema(value_type = i64)]` on the fields that carry
//! them); in storage they are the `BIGINT` keys they always were (`db::ids` binds and
//! reads them). Construct one only from a value that is that kind of id: a path segment,
//! a row, a field of a request that names it.
//!
//! The point: an account's id where an order's is expected is refused by the compiler.
//!
//! ```compile_fail,E0308
//! use reseller_api::db::{self, DbConnection};
//! use reseller_api::domain::ids::AccountId;
//!
//! fn order_of(conn: &mut DbConnection, account: AccountId) {
//!     let _ = db::orders::find(conn, account); // expected `OrderId`, found `AccountId`
//! }
//! ```
//!
//! while the same call with an order's id compiles:
//!
//! ```no_run
//! use reseller_api::db::{self, DbConnection};
//! use reseller_api::domain::ids::OrderId;
//!
//! fn order_of(conn: &mut DbConnection, order: OrderId) {
//!     let _ = db::orders::find(conn, order);
//! }
//! ```

use std::fmt;
use std::str::FromStr;

macro_rules! id_types {
    ($($(#[doc = $doc:literal])* $name:ident;)+) => {$(
        $(#[doc = $doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The id as the integer it is stored and sent as.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(text: &str) -> Result<$name, Self::Err> {
                text.parse().map($name)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }
    )+};
}

/// Every id type, for `db::ids` to give each the same storage.
macro_rules! for_each_id {
    ($apply:ident) => {
        $apply!(
            AccountId,
            OrderId,
            ServiceId,
            ProviderId,
            RefundId,
            RefillId,
            EndpointId,
            ApiKeyId,
            TopUpId,
            CancelRequestId,
            EventId,
            DeliveryId,
            AlertId,
            AuditEntryId,
            SubscriptionId,
        );
    };
}
pub(crate) use for_each_id;

id_types! {
    /// A reseller's or an operator's account.
    AccountId;
    /// An order, whichever API placed it.
    OrderId;
    /// A service of the catalog.
    ServiceId;
    /// An upstream provider.
    ProviderId;
    /// A refund: automatic, or a reseller's dispute.
    RefundId;
    /// A refill request.
    RefillId;
    /// A webhook endpoint.
    EndpointId;
    /// An API key.
    ApiKeyId;
    /// A top-up.
    TopUpId;
    /// A cancel request sent to a provider.
    CancelRequestId;
    /// An event of the event log.
    EventId;
    /// One event's delivery to one webhook endpoint.
    DeliveryId;
    /// A refund-rate alert.
    AlertId;
    /// A subscription (its id comes from the orders' sequence: one id space with orders).
    SubscriptionId;
    /// An entry of the audit log.
    AuditEntryId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_a_plain_integer_on_the_wire() {
        let id = OrderId(42);
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
        assert_eq!(serde_json::from_str::<OrderId>("42").unwrap(), id);
        assert_eq!(id.to_string(), "42");
        assert_eq!("42".parse::<OrderId>().unwrap(), id);
        assert!("4x".parse::<OrderId>().is_err());
    }
}
