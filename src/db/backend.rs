//! The few places where SQLite and PostgreSQL need different SQL, behind one seam: row
//! locks and the placeholders of raw SQL. Everything else goes through `DbConnection`,
//! except the order transaction's own statements, which [`get_result_native`] runs on the
//! backend's connection so they stay prepared.

use diesel::prelude::*;
use diesel::query_dsl::LoadQuery;
use diesel::{PgConnection, SqliteConnection};

use super::DbConnection;

/// Reads the one row `query` selects by its key (no `LIMIT`: see "one row by its key" in
/// [`super`]) and locks it until the transaction ends. `lock` adds
/// the PostgreSQL locking clause (`QueryDsl::for_update` or `QueryDsl::for_share`); it is
/// a parameter because `DbConnection` cannot build one itself. SQLite has no row locks and
/// needs none: [`super::write_tx`] already holds the database's write lock.
pub fn lock_row<Q, L, R>(
    conn: &mut DbConnection,
    query: Q,
    lock: impl FnOnce(Q) -> L,
) -> QueryResult<Option<R>>
where
    Q: RunQueryDsl<SqliteConnection> + LoadQuery<'static, SqliteConnection, R>,
    L: RunQueryDsl<PgConnection> + LoadQuery<'static, PgConnection, R>,
{
    match conn {
        DbConnection::Pg(pg) => lock(query).get_result(pg),
        DbConnection::Sqlite(sqlite) => query.get_result(sqlite),
    }
    .optional()
}

/// Runs `query` on the backend's own connection instead of through `DbConnection`'s
/// multi-backend wrapper. Through the wrapper diesel keys its statement cache by the SQL
/// text, so it writes the SQL out again on every call to find the prepared statement; on
/// the backend's connection a query with a static type is found by its type, with no SQL
/// written. For the statements every order runs (`orders::insert`, the debit, the ledger
/// entry, the event), that was a tenth of the SQLite writer's time.
pub fn get_result_native<'query, Q, R>(conn: &mut DbConnection, query: Q) -> QueryResult<R>
where
    Q: RunQueryDsl<SqliteConnection>
        + LoadQuery<'query, SqliteConnection, R>
        + RunQueryDsl<PgConnection>
        + LoadQuery<'query, PgConnection, R>,
{
    match conn {
        DbConnection::Pg(pg) => query.get_result(pg),
        DbConnection::Sqlite(sqlite) => query.get_result(sqlite),
    }
}

/// The SQL dialect behind a connection, for queries written as raw SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn of(conn: &DbConnection) -> Dialect {
        match conn {
            DbConnection::Pg(_) => Dialect::Postgres,
            DbConnection::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Raw SQL written with `?` placeholders, as this dialect takes them: unchanged for
    /// SQLite, numbered `$1, $2, …` for PostgreSQL. A `?` inside a quoted literal or
    /// identifier is text, not a placeholder, and stays.
    pub fn placeholders(self, sql: &str) -> String {
        if self == Dialect::Sqlite {
            return sql.to_string();
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut quote = None;
        let mut n = 0;
        for c in sql.chars() {
            match (quote, c) {
                (None, '\'' | '"') => quote = Some(c),
                (Some(open), _) if c == open => quote = None,
                (None, '?') => {
                    n += 1;
                    out.push_str(&format!("${n}"));
                    continue;
                }
                _ => {}
            }
            out.push(c);
        }
        out
    }
}

// SQL functions both dialects have, for updates that keep a stored value when no new one
// is given.
diesel::define_sql_function! {
    /// `COALESCE` over text: keeps the stored value when no new one is given.
    #[sql_name = "COALESCE"]
    fn coalesce_text(
        new: diesel::sql_types::Nullable<diesel::sql_types::Text>,
        old: diesel::sql_types::Nullable<diesel::sql_types::Text>,
    ) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

diesel::define_sql_function! {
    /// `COALESCE` over timestamps: keeps the stored value when no new one is given.
    #[sql_name = "COALESCE"]
    fn coalesce_timestamp(
        new: diesel::sql_types::Nullable<diesel::sql_types::Timestamp>,
        old: diesel::sql_types::Nullable<diesel::sql_types::Timestamp>,
    ) -> diesel::sql_types::Nullable<diesel::sql_types::Timestamp>;
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn postgres_placeholders_are_numbered_outside_quotes() {
        let sql = "SELECT '?' AS q, \"a?\" FROM t WHERE a = ? AND b = ? AND c = 'it''s?'";
        assert_eq!(
            Dialect::Postgres.placeholders(sql),
            "SELECT '?' AS q, \"a?\" FROM t WHERE a = $1 AND b = $2 AND c = 'it''s?'"
        );
        assert_eq!(Dialect::Sqlite.placeholders(sql), sql);
    }
}
