//! How the id types of `domain::ids` are stored: each binds and reads as the `BIGINT` it
//! wraps, on either backend, nullable or not, so a query compares an `orders::id` column
//! with an `OrderId` and a row field of type `OrderId` reads it. (The impls are written
//! here rather than derived on the types so the domain stays free of diesel.)

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, Queryable};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{BigInt, Nullable};

use crate::domain::ids::*;

macro_rules! stored_as_bigint {
    ($($id:ident),+ $(,)?) => {$(
        impl<DB: Backend> ToSql<BigInt, DB> for $id
        where
            i64: ToSql<BigInt, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.0.to_sql(out)
            }
        }

        impl<DB: Backend> ToSql<Nullable<BigInt>, DB> for $id
        where
            i64: ToSql<BigInt, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                ToSql::<BigInt, DB>::to_sql(&self.0, out)
            }
        }

        impl<DB: Backend> FromSql<BigInt, DB> for $id
        where
            i64: FromSql<BigInt, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<$id> {
                i64::from_sql(bytes).map($id)
            }
        }

        impl<DB: Backend> Queryable<BigInt, DB> for $id
        where
            i64: FromSql<BigInt, DB>,
        {
            type Row = i64;

            fn build(row: i64) -> deserialize::Result<$id> {
                Ok($id(row))
            }
        }

        impl AsExpression<BigInt> for $id {
            type Expression = <i64 as AsExpression<BigInt>>::Expression;

            fn as_expression(self) -> Self::Expression {
                AsExpression::<BigInt>::as_expression(self.0)
            }
        }

        impl AsExpression<BigInt> for &$id {
            type Expression = <i64 as AsExpression<BigInt>>::Expression;

            fn as_expression(self) -> Self::Expression {
                AsExpression::<BigInt>::as_expression(self.0)
            }
        }

        impl AsExpression<Nullable<BigInt>> for $id {
            type Expression = <i64 as AsExpression<Nullable<BigInt>>>::Expression;

            fn as_expression(self) -> Self::Expression {
                AsExpression::<Nullable<BigInt>>::as_expression(self.0)
            }
        }

        impl AsExpression<Nullable<BigInt>> for &$id {
            type Expression = <i64 as AsExpression<Nullable<BigInt>>>::Expression;

            fn as_expression(self) -> Self::Expression {
                AsExpression::<Nullable<BigInt>>::as_expression(self.0)
            }
        }
    )+};
}

for_each_id!(stored_as_bigint);

#[cfg(test)]
mod tests {
    use diesel::prelude::*;

    use super::super::schema::orders;
    use crate::domain::ids::{AccountId, OrderId};

    /// Through `DbConnection` (diesel's multi-backend), as every query of ours runs.
    #[test]
    fn ids_bind_and_read_as_their_integers() {
        let mut conn = super::super::DbConnection::establish(":memory:").unwrap();
        diesel::sql_query(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, account_id BIGINT NOT NULL)",
        )
        .execute(&mut conn)
        .unwrap();
        diesel::sql_query("INSERT INTO orders (id, account_id) VALUES (7, 3), (8, 4)")
            .execute(&mut conn)
            .unwrap();
        let wanted = [OrderId(7), OrderId(9)];
        let found: Vec<(OrderId, AccountId)> = orders::table
            .filter(orders::id.eq_any(&wanted))
            .filter(orders::account_id.eq(AccountId(3)))
            .select((orders::id, orders::account_id))
            .load(&mut conn)
            .unwrap();
        assert_eq!(found, vec![(OrderId(7), AccountId(3))]);
        let one: Option<OrderId> = orders::table
            .filter(orders::id.eq(OrderId(8)))
            .select(orders::id.nullable())
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(one, Some(OrderId(8)));
    }
}
