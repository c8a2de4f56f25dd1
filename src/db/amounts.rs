//! How the amounts of `domain::money` are read: each from the `BIGINT` of micro-units it
//! is stored as, nullable or not. A negative value in a column that holds a [`Money`] (a
//! charge, a refund, a rate, a sum of them) or a [`Percent`] is a decoding error, never
//! clamped; a [`SignedMoney`] (a balance, a ledger delta) takes any value. (Written here
//! rather than derived on the types so the domain stays free of diesel.) Writes bind
//! `.micros()`: micro-units as integers live only in this folder.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, Queryable};
use diesel::sql_types::BigInt;

use crate::domain::money::{Money, Percent, SignedMoney};

impl<DB: Backend> FromSql<BigInt, DB> for Money
where
    i64: FromSql<BigInt, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Money> {
        Ok(Money::try_from_micros(i64::from_sql(bytes)?)?)
    }
}

impl<DB: Backend> FromSql<BigInt, DB> for Percent
where
    i64: FromSql<BigInt, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Percent> {
        Ok(Percent::try_from_micros(i64::from_sql(bytes)?)?)
    }
}

impl<DB: Backend> FromSql<BigInt, DB> for SignedMoney
where
    i64: FromSql<BigInt, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<SignedMoney> {
        i64::from_sql(bytes).map(SignedMoney::from_micros)
    }
}

impl<DB: Backend> Queryable<BigInt, DB> for Money
where
    i64: FromSql<BigInt, DB>,
{
    type Row = i64;

    fn build(micros: i64) -> deserialize::Result<Money> {
        Ok(Money::try_from_micros(micros)?)
    }
}

impl<DB: Backend> Queryable<BigInt, DB> for Percent
where
    i64: FromSql<BigInt, DB>,
{
    type Row = i64;

    fn build(micros: i64) -> deserialize::Result<Percent> {
        Ok(Percent::try_from_micros(micros)?)
    }
}

impl<DB: Backend> Queryable<BigInt, DB> for SignedMoney
where
    i64: FromSql<BigInt, DB>,
{
    type Row = i64;

    fn build(micros: i64) -> deserialize::Result<SignedMoney> {
        Ok(SignedMoney::from_micros(micros))
    }
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Nullable};

    use crate::domain::money::{Money, SignedMoney};

    #[derive(QueryableByName, Debug)]
    struct Amounts {
        #[diesel(sql_type = BigInt)]
        money: Money,
        #[diesel(sql_type = Nullable<BigInt>)]
        missing: Option<Money>,
        #[diesel(sql_type = BigInt)]
        signed: SignedMoney,
    }

    /// Through `DbConnection` (diesel's multi-backend), as every query of ours runs.
    #[test]
    fn amounts_read_checked_from_micro_units() {
        let mut conn = super::super::DbConnection::establish(":memory:").unwrap();
        let read = |conn: &mut super::super::DbConnection, money: i64| {
            diesel::sql_query(format!(
                "SELECT {money} AS money, NULL AS missing, -5 AS signed"
            ))
            .get_result::<Amounts>(conn)
        };
        let ok = read(&mut conn, 12_500_000).unwrap();
        assert_eq!(ok.money.to_string(), "12.5");
        assert_eq!(ok.missing, None);
        assert_eq!(ok.signed.to_string(), "-0.000005");
        let negative = read(&mut conn, -1).unwrap_err();
        assert!(
            matches!(negative, diesel::result::Error::DeserializationError(_)),
            "{negative:?}"
        );
        assert!(negative.to_string().contains("negative"), "{negative}");
        // A selected column, as the named rows read theirs.
        let column = |conn: &mut super::super::DbConnection, micros: &str| {
            diesel::select(diesel::dsl::sql::<BigInt>(micros)).get_result::<Money>(conn)
        };
        assert_eq!(column(&mut conn, "7").unwrap().to_string(), "0.000007");
        assert!(matches!(
            column(&mut conn, "-7"),
            Err(diesel::result::Error::DeserializationError(_))
        ));
    }
}
