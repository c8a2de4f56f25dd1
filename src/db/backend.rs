//! The few places where SQLite and PostgreSQL need different SQL, behind one seam.
//! Everything else goes through `DbConnection`.

use diesel::dsl::Limit;
use diesel::prelude::*;
use diesel::query_dsl::methods::LimitDsl;
use diesel::query_dsl::LoadQuery;
use diesel::{PgConnection, SqliteConnection};

use super::DbConnection;

/// Reads the one row `query` selects and locks it until the transaction ends. `lock` adds
/// the PostgreSQL locking clause (`QueryDsl::for_update` or `QueryDsl::for_share`); it is
/// a parameter because `DbConnection` cannot build one itself. SQLite has no row locks and
/// needs none: [`super::write_tx`] already holds the database's write lock.
pub fn lock_row<Q, L, R>(
    conn: &mut DbConnection,
    query: Q,
    lock: impl FnOnce(Q) -> L,
) -> QueryResult<Option<R>>
where
    Q: LimitDsl + RunQueryDsl<SqliteConnection>,
    Limit<Q>: LoadQuery<'static, SqliteConnection, R>,
    L: LimitDsl + RunQueryDsl<PgConnection>,
    Limit<L>: LoadQuery<'static, PgConnection, R>,
{
    match conn {
        DbConnection::Pg(pg) => lock(query).first(pg),
        DbConnection::Sqlite(sqlite) => query.first(sqlite),
    }
    .optional()
}
