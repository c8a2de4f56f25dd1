//! The folders of `src/` are the layers: each may use only the folders below it, so the
//! import graph between folders has no cycle. `docs/ARCHITECTURE.md` has the same table.
//! And only `src/db/` speaks SQL that writes: everywhere else a write is a call of a `db`
//! helper, which takes the `WriteConn` only `db::write_tx` hands out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What each top-level module of the crate may use of the others.
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("metrics", &[]),
    ("log", &[]),
    ("jobs", &[]),
    ("net", &["domain"]),
    ("secrets", &[]),
    ("db", &["domain", "log", "metrics", "secrets"]),
    ("error", &["db", "domain"]),
    ("config", &["domain"]),
    ("resources", &["db", "domain"]),
    (
        "application",
        &[
            "config",
            "db",
            "domain",
            "error",
            "metrics",
            "net",
            "resources",
            "secrets",
        ],
    ),
    (
        "providers",
        &[
            "application",
            "config",
            "db",
            "domain",
            "error",
            "jobs",
            "metrics",
            "net",
        ],
    ),
    (
        "webhooks",
        &[
            "application",
            "config",
            "db",
            "domain",
            "error",
            "jobs",
            "metrics",
            "resources",
        ],
    ),
    (
        "http",
        &[
            "application",
            "config",
            "db",
            "domain",
            "error",
            "log",
            "metrics",
            "providers",
            "resources",
        ],
    ),
    (
        "api",
        &[
            "application",
            "config",
            "db",
            "domain",
            "error",
            "http",
            "metrics",
            "net",
            "providers",
            "resources",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level module → the other top-level modules its files name as `crate::…`.
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let entry = uses.entry(module.clone()).or_default();
        for (at, _) in text.match_indices("crate::") {
            let used: String = text[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !used.is_empty() && used != module {
                entry.insert(used);
            }
        }
    }
    uses
}

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let uses = uses();
    let mut wrong = Vec::new();
    for (module, allowed) in ALLOWED {
        for used in uses.get(*module).into_iter().flatten() {
            if !allowed.contains(&used.as_str()) {
                wrong.push(format!("{module} uses {used}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports across layers that the architecture does not allow: {wrong:?}"
    );
}

#[test]
fn the_import_graph_between_folders_has_no_cycle() {
    let uses = uses();
    fn visit(
        module: &str,
        uses: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_string());
            return Some(cycle);
        }
        if !done.insert(module.to_string()) {
            return None;
        }
        path.push(module.to_string());
        for next in uses.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, uses, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for module in uses.keys() {
        if let Some(cycle) = visit(module, &uses, &mut Vec::new(), &mut done) {
            panic!("import cycle between folders: {}", cycle.join(" -> "));
        }
    }
}

/// Diesel's write DSL and the ways to send raw SQL. Outside `src/db/` none may appear, so
/// no write can go around `db::WriteConn` (the type `db`'s write helpers demand).
const WRITE_SQL: &[&str] = &[
    "insert_into",
    "insert_or_ignore_into",
    "replace_into",
    "diesel::update",
    "diesel::delete",
    "sql_query",
    "batch_execute",
    ".execute(",
    "SimpleConnection",
];

/// `file:line: text` of every line of `src/` outside `src/db/` that writes SQL of its own:
/// one of [`WRITE_SQL`], or diesel's `update`/`delete` imported by name (`use diesel::{…}`).
fn writes_outside_db() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        if relative.starts_with("db") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let mut in_diesel_use = false;
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if code.starts_with("use diesel") || code.starts_with("pub use diesel") {
                in_diesel_use = true;
            }
            let imported = in_diesel_use
                && code
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .any(|word| word == "update" || word == "delete");
            if imported || WRITE_SQL.iter().any(|pattern| code.contains(pattern)) {
                found.push(format!("src/{}:{}: {code}", relative.display(), number + 1));
            }
            if in_diesel_use && code.contains(';') {
                in_diesel_use = false;
            }
        }
    }
    found
}

#[test]
fn only_db_writes_sql() {
    let found = writes_outside_db();
    assert!(
        found.is_empty(),
        "SQL that writes outside src/db/ (call a `db` helper that takes `&mut WriteConn` \
         inside `db::write_tx` instead):\n{}",
        found.join("\n")
    );
}

/// Where amounts must be `Money`, `SignedMoney` or `Percent`, never micro-unit integers.
const TYPED_AMOUNTS: &[&str] = &[
    "domain",
    "application",
    "api",
    "http",
    "resources.rs",
    "providers",
    "webhooks",
];

/// `file:line: text` of every production line in [`TYPED_AMOUNTS`] that handles
/// micro-units as an integer: a `*_micros` name or a `micros()` / `*_from_micros` call.
/// `domain::money` defines the types; a metrics counter takes micro-units at its call.
fn micro_units_outside_db() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        if !TYPED_AMOUNTS.iter().any(|dir| relative.starts_with(dir))
            || relative == Path::new("domain/money.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("#[cfg(test)]") {
                break;
            }
            if code.starts_with("//") || code.contains("metrics::") {
                continue;
            }
            let integer = code
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|word| {
                    word == "micros" || (word.ends_with("_micros") && word != "decimal_micros")
                });
            if integer {
                found.push(format!("src/{}:{}: {code}", relative.display(), number + 1));
            }
        }
    }
    found
}

#[test]
fn amounts_cross_layers_as_types() {
    let found = micro_units_outside_db();
    assert!(
        found.is_empty(),
        "micro-unit integers outside src/db/ (use `domain::money::Money`, `SignedMoney` or \
         `Percent`, and convert to micro-units only in `db`):\n{}",
        found.join("\n")
    );
}
