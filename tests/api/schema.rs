//! The schema three hand-kept sources describe must be one: `migrations/sqlite`,
//! `migrations/postgres` and `src/db/schema.rs`. Each migrated database is read back from
//! its catalog and flattened into lines in a small common vocabulary (bigint, integer,
//! text, timestamp, bool), so a difference shows as the lines only one side has.
//!
//! PostgreSQL parts run when `TEST_DATABASE_URL` names a PostgreSQL server.

use std::collections::BTreeSet;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Nullable, Text};
use diesel::{PgConnection, SqliteConnection};

use reseller_api::db;

use crate::helpers::{random_suffix, TestDb};

/// One schema as comparable lines, e.g. `orders.status: text not null`.
type Flat = BTreeSet<String>;

const SCHEMA_RS: &str = include_str!("../../src/db/schema.rs");

/// Tables the migration tool or the engine keeps for itself.
fn is_internal(table: &str) -> bool {
    table.starts_with("sqlite_") || table == "__diesel_schema_migrations"
}

fn column_line(table: &str, column: &str, ty: &str, nullable: bool) -> String {
    let null = if nullable { "null" } else { "not null" };
    format!("{table}.{column}: {ty} {null}")
}

/// The `diesel::table!` blocks of schema.rs: tables, primary keys, column types.
fn schema_rs() -> Flat {
    let mut flat = Flat::new();
    let mut table: Option<String> = None;
    for line in SCHEMA_RS.lines().map(str::trim) {
        if let Some(head) = line.strip_suffix('{').map(str::trim) {
            if let Some((name, key)) = head.split_once(' ') {
                let key = key.trim_matches(|c| c == '(' || c == ')').replace(' ', "");
                flat.insert(format!("{name} primary key ({key})"));
                table = Some(name.to_string());
            }
        } else if line == "}" {
            table = None;
        } else if let (Some(table), Some((column, ty))) = (&table, line.split_once("->")) {
            let ty = ty.trim().trim_end_matches(',');
            let (ty, nullable) = match ty.strip_prefix("Nullable<") {
                Some(inner) => (inner.trim_end_matches('>'), true),
                None => (ty, false),
            };
            let ty = match ty {
                "BigInt" => "bigint",
                "Integer" => "integer",
                "Text" => "text",
                "Timestamp" => "timestamp",
                "Bool" => "bool",
                other => panic!("schema.rs uses {other}, which has no common name here yet"),
            };
            flat.insert(column_line(table, column.trim(), ty, nullable));
        }
    }
    assert!(
        flat.len() > 20,
        "schema.rs parsed to almost nothing: {flat:?}"
    );
    flat
}

/// Only the lines schema.rs can speak about: tables, keys and columns.
fn tables_and_columns(flat: &Flat) -> Flat {
    flat.iter()
        .filter(|line| line.contains(": ") || line.contains(" primary key "))
        .cloned()
        .collect()
}

/// Fails with every line one side has and the other lacks.
fn assert_same(left_name: &str, left: &Flat, right_name: &str, right: &Flat) {
    let only_left: Vec<_> = left.difference(right).collect();
    let only_right: Vec<_> = right.difference(left).collect();
    assert!(
        only_left.is_empty() && only_right.is_empty(),
        "schemas differ\nonly in {left_name}:\n  {}\nonly in {right_name}:\n  {}",
        only_left
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        only_right
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
    );
}

// ---- SQL expressions (CHECK constraints, partial-index predicates) ----

/// Lowercased tokens of SQL text; string literals kept whole, comments and quotes on
/// identifiers dropped.
fn tokens(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '\'' {
            let start = i;
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' && chars.get(i + 1) == Some(&'\'') {
                    i += 2;
                } else if chars[i] == '\'' {
                    break;
                } else {
                    i += 1;
                }
            }
            i += 1;
            out.push(chars[start..i.min(chars.len())].iter().collect());
        } else if c.is_alphanumeric() || c == '_' || c == '"' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_\"".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(word.replace('"', "").to_lowercase());
        } else if "<>=!:".contains(c) {
            let start = i;
            while i < chars.len() && "<>=!:".contains(chars[i]) {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

/// One spelling for what the two backends write differently: PostgreSQL adds casts and
/// parentheses and turns `IN (…)` into `= ANY (ARRAY[…])` and `BETWEEN` into two
/// comparisons. Parentheses are dropped, which is safe for telling the same source text
/// apart from a changed one, not for proving two different texts equivalent.
fn normalize(tokens: &[String]) -> String {
    let mut flat: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].as_str() {
            "(" | ")" | "[" | "]" => {}
            "::" => i += 1, // and the type name after it
            _ => flat.push(tokens[i].clone()),
        }
        i += 1;
    }
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < flat.len() {
        if flat[i..].starts_with(&["=".to_string(), "any".into(), "array".into()]) {
            out.push("in".into());
            i += 3;
        } else if flat[i] == "between"
            && !out.is_empty()
            && flat.get(i + 2).is_some_and(|t| t == "and")
            && i + 3 < flat.len()
        {
            let subject = out.last().cloned().unwrap();
            out.extend([">=".into(), flat[i + 1].clone(), "and".into(), subject]);
            out.extend(["<=".into(), flat[i + 3].clone()]);
            i += 4;
        } else {
            out.push(flat[i].clone());
            i += 1;
        }
    }
    out.join(" ")
}

/// The `CHECK (…)` clauses of a SQLite `CREATE TABLE` text, column and table level.
fn sqlite_checks(create_table: &str) -> Vec<String> {
    let tokens = tokens(create_table);
    let mut checks = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if token != "check" || tokens.get(i + 1).map(String::as_str) != Some("(") {
            continue;
        }
        let mut depth = 0;
        for (j, t) in tokens.iter().enumerate().skip(i + 1) {
            match t.as_str() {
                "(" => depth += 1,
                ")" => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                checks.push(normalize(&tokens[i + 1..=j]));
                break;
            }
        }
    }
    checks
}

fn sqlite_type(declared: &str, rowid: bool) -> String {
    match declared.to_uppercase().as_str() {
        // The rowid alias: a 64-bit integer whatever its declared name.
        "INTEGER" if rowid => "bigint".into(),
        "INTEGER" => "integer".into(),
        "BIGINT" => "bigint".into(),
        "TEXT" => "text".into(),
        "TIMESTAMP" => "timestamp".into(),
        "BOOLEAN" => "bool".into(),
        other => format!("unmapped sqlite type {other}"),
    }
}

fn postgres_type(data_type: &str) -> String {
    match data_type {
        "bigint" => "bigint".into(),
        "integer" => "integer".into(),
        "text" => "text".into(),
        "timestamp without time zone" => "timestamp".into(),
        "boolean" => "bool".into(),
        other => format!("unmapped postgres type {other}"),
    }
}

fn index_line(
    table: &str,
    name: Option<&str>,
    unique: bool,
    columns: &str,
    predicate: Option<&str>,
) -> String {
    let kind = if unique { "unique" } else { "index" };
    // Constraint-made indexes are named by each engine its own way: compare their columns.
    let name = name.unwrap_or("(constraint)");
    let mut line = format!("{table} {kind} {name} ({columns})");
    if let Some(predicate) = predicate {
        line.push_str(&format!(" where {}", normalize(&tokens(predicate))));
    }
    line
}

// ---- SQLite ----

#[derive(QueryableByName)]
struct SqliteTable {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    sql: String,
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    #[diesel(column_name = "type")]
    declared: String,
    #[diesel(sql_type = Integer)]
    notnull: i32,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct SqliteIndex {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Integer)]
    unique: i32,
    #[diesel(sql_type = Text)]
    origin: String,
    #[diesel(sql_type = Text)]
    columns: String,
    #[diesel(sql_type = Nullable<Text>)]
    sql: Option<String>,
}

#[derive(QueryableByName)]
struct ForeignKey {
    #[diesel(sql_type = Text)]
    columns: String,
    #[diesel(sql_type = Text)]
    target: String,
    #[diesel(sql_type = Text)]
    target_columns: String,
}

fn sqlite_schema(conn: &mut SqliteConnection) -> Flat {
    let mut flat = Flat::new();
    let tables: Vec<SqliteTable> =
        diesel::sql_query("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
            .load(conn)
            .unwrap();
    for table in tables.iter().filter(|t| !is_internal(&t.name)) {
        let name = &table.name;
        let columns: Vec<SqliteColumn> = diesel::sql_query(format!(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info('{name}') ORDER BY pk, cid"
        ))
        .load(conn)
        .unwrap();
        let key: Vec<&str> = columns
            .iter()
            .filter(|c| c.pk > 0)
            .map(|c| c.name.as_str())
            .collect();
        flat.insert(format!("{name} primary key ({})", key.join(",")));
        for column in &columns {
            let rowid = key.len() == 1 && column.pk == 1 && column.declared == "INTEGER";
            let ty = sqlite_type(&column.declared, rowid);
            flat.insert(column_line(
                name,
                &column.name,
                &ty,
                column.notnull == 0 && !rowid,
            ));
        }
        for check in sqlite_checks(&table.sql) {
            flat.insert(format!("{name} check {check}"));
        }
        let indexes: Vec<SqliteIndex> = diesel::sql_query(format!(
            "SELECT il.name, il.\"unique\", il.origin, \
                 (SELECT group_concat(name, ',') FROM \
                     (SELECT name FROM pragma_index_info(il.name) ORDER BY seqno)) AS columns, \
                 m.sql \
             FROM pragma_index_list('{name}') il \
             LEFT JOIN sqlite_master m ON m.type = 'index' AND m.name = il.name"
        ))
        .load(conn)
        .unwrap();
        for index in indexes.iter().filter(|i| i.origin != "pk") {
            let predicate = index
                .sql
                .as_deref()
                .and_then(|sql| sql.split_once(" WHERE "))
                .map(|(_, p)| p);
            let named = (index.origin == "c").then_some(index.name.as_str());
            flat.insert(index_line(
                name,
                named,
                index.unique == 1,
                &index.columns,
                predicate,
            ));
        }
        let keys: Vec<ForeignKey> = diesel::sql_query(format!(
            "SELECT group_concat(\"from\", ',') AS columns, \"table\" AS target, \
                 group_concat(\"to\", ',') AS target_columns \
             FROM (SELECT * FROM pragma_foreign_key_list('{name}') ORDER BY id, seq) \
             GROUP BY id, \"table\""
        ))
        .load(conn)
        .unwrap();
        for key in keys {
            flat.insert(format!(
                "{name} foreign key ({}) references {} ({})",
                key.columns, key.target, key.target_columns
            ));
        }
    }
    flat
}

fn migrated_sqlite() -> (SqliteConnection, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema.db");
    db::migrate(&format!("sqlite://{}", path.display())).unwrap();
    let conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    (conn, dir)
}

// ---- PostgreSQL ----

#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
}

#[derive(QueryableByName)]
struct PgIndex {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    unique: bool,
    #[diesel(sql_type = Bool)]
    primary: bool,
    #[diesel(sql_type = Bool)]
    constraint: bool,
    #[diesel(sql_type = Text)]
    columns: String,
    #[diesel(sql_type = Nullable<Text>)]
    predicate: Option<String>,
}

#[derive(QueryableByName)]
struct PgConstraint {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    definition: String,
}

#[derive(QueryableByName)]
struct PgForeignKey {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    columns: String,
    #[diesel(sql_type = Text)]
    target: String,
    #[diesel(sql_type = Text)]
    target_columns: String,
}

/// `string_agg` of the names of `attnums` (an int2 array) of relation `rel`, in order.
fn pg_column_names(rel: &str, attnums: &str) -> String {
    format!(
        "(SELECT string_agg(a.attname, ',' ORDER BY k.ord) \
          FROM unnest({attnums}) WITH ORDINALITY AS k(num, ord) \
          JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.num)"
    )
}

fn postgres_schema(conn: &mut PgConnection) -> Flat {
    let mut flat = Flat::new();
    let columns: Vec<PgColumn> = diesel::sql_query(
        "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name, \
             c.data_type::text AS data_type, c.is_nullable = 'YES' AS nullable \
         FROM information_schema.columns c \
         JOIN information_schema.tables t \
             ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'",
    )
    .load(conn)
    .unwrap();
    for c in columns.iter().filter(|c| !is_internal(&c.table_name)) {
        let ty = postgres_type(&c.data_type);
        flat.insert(column_line(&c.table_name, &c.column_name, &ty, c.nullable));
    }
    let indexes: Vec<PgIndex> = diesel::sql_query(format!(
        "SELECT t.relname::text AS table_name, i.relname::text AS name, \
             x.indisunique AS unique, x.indisprimary AS primary, \
             EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid) AS constraint, \
             {} AS columns, \
             pg_get_expr(x.indpred, x.indrelid) AS predicate \
         FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid \
         WHERE t.relnamespace = 'public'::regnamespace",
        pg_column_names("x.indrelid", "x.indkey::int2[]")
    ))
    .load(conn)
    .unwrap();
    for index in indexes.iter().filter(|i| !is_internal(&i.table_name)) {
        if index.primary {
            flat.insert(format!(
                "{} primary key ({})",
                index.table_name, index.columns
            ));
            continue;
        }
        let named = (!index.constraint).then_some(index.name.as_str());
        flat.insert(index_line(
            &index.table_name,
            named,
            index.unique,
            &index.columns,
            index.predicate.as_deref(),
        ));
    }
    let checks: Vec<PgConstraint> = diesel::sql_query(
        "SELECT conrelid::regclass::text AS table_name, pg_get_constraintdef(oid) AS definition \
         FROM pg_constraint WHERE contype = 'c' AND connamespace = 'public'::regnamespace",
    )
    .load(conn)
    .unwrap();
    for check in checks {
        let tokens = tokens(&check.definition);
        assert_eq!(tokens[0], "check", "{}", check.definition);
        flat.insert(format!(
            "{} check {}",
            check.table_name,
            normalize(&tokens[1..])
        ));
    }
    let keys: Vec<PgForeignKey> = diesel::sql_query(format!(
        "SELECT conrelid::regclass::text AS table_name, {} AS columns, \
             confrelid::regclass::text AS target, {} AS target_columns \
         FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace",
        pg_column_names("conrelid", "conkey"),
        pg_column_names("confrelid", "confkey"),
    ))
    .load(conn)
    .unwrap();
    for key in keys {
        flat.insert(format!(
            "{} foreign key ({}) references {} ({})",
            key.table_name, key.columns, key.target, key.target_columns
        ));
    }
    flat
}

/// A new PostgreSQL database migrated from nothing, when `TEST_DATABASE_URL` names a server.
fn migrated_postgres() -> Option<(PgConnection, TestDb)> {
    let admin_url = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| url.starts_with("postgres"))?;
    let name = format!("reseller_schema_{}", random_suffix());
    let mut admin = PgConnection::establish(&admin_url).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let guard = TestDb::Postgres {
        admin_url: admin_url.clone(),
        name: name.clone(),
    };
    let (prefix, _) = admin_url.rsplit_once('/').unwrap();
    let url = format!("{prefix}/{name}");
    db::migrate(&url).unwrap();
    Some((PgConnection::establish(&url).unwrap(), guard))
}

// ---- the checks ----

#[test]
fn schema_rs_matches_the_migrated_sqlite_database() {
    let (mut conn, _dir) = migrated_sqlite();
    let sqlite = tables_and_columns(&sqlite_schema(&mut conn));
    assert_same("schema.rs", &schema_rs(), "migrations/sqlite", &sqlite);
}

#[test]
fn schema_rs_matches_the_migrated_postgres_database() {
    let Some((mut conn, _db)) = migrated_postgres() else {
        return;
    };
    let postgres = tables_and_columns(&postgres_schema(&mut conn));
    assert_same("schema.rs", &schema_rs(), "migrations/postgres", &postgres);
}

#[test]
fn sqlite_and_postgres_migrations_define_the_same_schema() {
    let Some((mut pg, _db)) = migrated_postgres() else {
        return;
    };
    let (mut sqlite, _dir) = migrated_sqlite();
    let sqlite = sqlite_schema(&mut sqlite);
    let postgres = postgres_schema(&mut pg);
    // The flattening must have seen every kind of thing it compares.
    for kind in [" check ", " unique ", " index ", " foreign key ", " where "] {
        assert!(
            sqlite.iter().any(|line| line.contains(kind)),
            "nothing like {kind:?} read back: {sqlite:#?}"
        );
    }
    assert_same(
        "migrations/sqlite",
        &sqlite,
        "migrations/postgres",
        &postgres,
    );
}

#[test]
fn both_spellings_of_a_check_normalize_alike() {
    let pairs = [
        (
            "CHECK (role IN ('reseller', 'admin'))",
            "CHECK ((role = ANY (ARRAY['reseller'::text, 'admin'::text])))",
        ),
        (
            "CHECK (timeout_ms BETWEEN 100 AND 120000)",
            "CHECK (((timeout_ms >= 100) AND (timeout_ms <= 120000)))",
        ),
        (
            "CHECK ((order_id IS NULL) <> (top_up_id IS NULL))",
            "CHECK (((order_id IS NULL) <> (top_up_id IS NULL)))",
        ),
    ];
    for (sqlite, postgres) in pairs {
        assert_eq!(
            sqlite_checks(sqlite),
            vec![normalize(&tokens(postgres)[1..])],
            "{sqlite} / {postgres}"
        );
    }
    assert_ne!(
        normalize(&tokens("a >= 1")),
        normalize(&tokens("a > 1")),
        "a changed operator is a difference"
    );
}
