//! A full disk, survived: SQLite on a small filesystem the test mounts (a tmpfs; mounting
//! needs root, as CI has), filled under an order load, then freed. Writes are refused 503
//! `storage_full` with `Retry-After` (never 500), `/readyz` reports not ready while they fail
//! and ready again by itself, the log is not flooded, and nothing acknowledged is lost.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::processes::{assert_books_balance, books, call, funded_service, Server};

/// A tmpfs of `size_mb` mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(size_mb: u32) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!(
            "reseller-api-full-{}",
            crate::helpers::random_suffix()
        ));
        std::fs::create_dir_all(&dir).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            std::fs::remove_dir(&dir).ok();
            return None;
        }
        Some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status()
            .ok();
        std::fs::remove_dir(&self.dir).ok();
    }
}

/// Writes 64 KiB blocks to `path` until the filesystem is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0x5a_u8; 64 << 10];
    while file.write_all(&block).is_ok() {}
    file.sync_all().ok();
}

/// One order over a new request: its status, `Retry-After`, and body.
async fn order(base: &str, token: &str, service: i64, n: usize) -> (u16, Option<String>, Value) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(20))
        .finish();
    let Ok(mut response) = client
        .post(format!("{base}/v1/orders"))
        .bearer_auth(token)
        .send_json(&json!({"service_id": service, "link": format!("https://example.com/p/{n}"), "quantity": 1000}))
        .await
    else {
        return (0, None, Value::Null);
    };
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (response.status().as_u16(), retry_after, body)
}

async fn ready(base: &str) -> u16 {
    call(base, "GET", "/readyz", "", None)
        .await
        .map_or(0, |(status, _)| status)
}

#[actix_rt::test]
async fn a_full_disk_is_answered_503_storage_full_and_survived_once_space_is_freed() {
    let Some(fs) = Tmpfs::mount(48) else {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    };
    let url = fs.dir.join("panel.db").to_string_lossy().to_string();
    let books = books(&url);
    let server = Server::start(&url, &["--no-worker"]).await;
    let base = server.base.clone();
    let (_admin, reseller, service) = funded_service(&base, &books).await;
    let filler = fs.dir.join("filler");
    fill(&filler);

    // Six clients place orders until the database has refused a good number for space.
    let started = Instant::now();
    let mut acknowledged = Vec::new();
    let mut full: u64 = 0;
    let mut seen_not_ready = false;
    let mut other = Vec::new();
    let mut n = 0;
    while full < 200 && started.elapsed() < Duration::from_secs(60) {
        let replies = join_all((0..6).map(|i| order(&base, &reseller, service, n + i))).await;
        n += 6;
        for (status, retry_after, body) in replies {
            match status {
                201 => acknowledged.push(body["id"].as_i64().unwrap()),
                503 if body["code"] == "storage_full" => {
                    assert_eq!(retry_after.as_deref(), Some("30"), "{body}");
                    full += 1;
                }
                _ => other.push(format!("{status}: {body}")),
            }
        }
        if full > 0 && !seen_not_ready {
            // As soon as writes fail for lack of space, the process is not ready.
            assert_eq!(ready(&base).await, 503);
            seen_not_ready = true;
        }
    }
    assert!(
        other.is_empty(),
        "answers other than 201 and 503 storage_full: {:?}",
        &other[..other.len().min(5)]
    );
    assert!(
        full >= 200,
        "the disk never filled: {} orders placed",
        acknowledged.len()
    );
    assert_eq!(ready(&base).await, 503, "not ready while writes fail");
    // API v2 says it in the dialect.
    let client = awc::Client::default();
    let mut v2 = client
        .post(format!("{base}/api/v2"))
        .send_form(&[
            ("key", books.reseller_key.as_str()),
            ("action", "add"),
            ("service", &service.to_string()),
            ("link", "https://example.com/p/v2"),
            ("quantity", "1000"),
        ])
        .await
        .unwrap();
    assert_eq!(v2.status(), 200);
    let v2: Value = v2.json().await.unwrap();
    assert!(
        v2["error"]
            .as_str()
            .is_some_and(|e| e.contains("storage space")),
        "{v2}"
    );
    // An operator sees it coming and happening.
    let mut scrape = client.get(format!("{base}/metrics")).send().await.unwrap();
    let metrics = String::from_utf8(scrape.body().await.unwrap().to_vec()).unwrap();
    let value = |name: &str| -> Option<u64> {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    assert!(
        value("db_storage_full_total").unwrap_or(0) >= full,
        "{metrics}"
    );
    let free = value("db_filesystem_free_bytes").expect("free space in /metrics");
    assert!(free < 1 << 20, "{free} bytes free on a full disk");

    // Space freed: ready again by itself, and orders are placed again.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready(&base).await != 200 {
        assert!(
            Instant::now() < deadline,
            "never ready again: {}",
            server.log_tail()
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _, body) = order(&base, &reseller, service, n).await;
    assert_eq!(status, 201, "{body}");
    acknowledged.push(body["id"].as_i64().unwrap());

    // The log has a line per interval, not one per refused request.
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    let lines = log
        .lines()
        .filter(|l| l.contains("out of storage space"))
        .count();
    let bound = 3 + started.elapsed().as_secs() as usize / 10;
    assert!(
        (1..=bound).contains(&lines),
        "{lines} log lines for {full} refusals (at most {bound}):\n{}",
        server.log_tail()
    );
    drop(server);

    // Nothing acknowledged was lost, and the books balance.
    let mut conn = books.pool.get().unwrap();
    for id in &acknowledged {
        let order =
            reseller_api::db::orders::find(&mut conn, reseller_api::domain::ids::OrderId(*id))
                .unwrap();
        assert!(order.is_some(), "acknowledged order {id} was lost");
    }
    drop(conn);
    assert_books_balance(&books.pool);
}
