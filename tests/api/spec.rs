use crate::helpers::spawn_app;

const SPEC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

#[test]
fn committed_openapi_spec_matches_the_code() {
    let generated = reseller_api::api::api_doc().to_pretty_json().unwrap() + "\n";
    let committed = std::fs::read_to_string(SPEC_PATH).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date; regenerate it with:\n    cargo run -q -- openapi > openapi/openapi.json"
    );
}

#[actix_rt::test]
async fn the_served_spec_is_the_committed_one_and_docs_work_offline() {
    let app = spawn_app().await;
    let served = app.get("/openapi.json", "").await;
    assert_eq!(served.status, 200);
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(SPEC_PATH).unwrap()).unwrap();
    assert_eq!(served.body, committed);
    let docs = app.get("/docs/", "").await;
    assert_eq!(docs.status, 200);
    assert!(
        !docs.text.contains("cdn"),
        "docs must load nothing from a CDN"
    );
    let script = app.get("/docs/swagger-ui-bundle.js", "").await;
    assert_eq!(script.status, 200);
}

/// Strings near every edge of the input rules: white space of each kind at either end,
/// control characters, lengths, signs, zeros, precision, magnitudes.
fn tricky_inputs() -> Vec<String> {
    let mut all: Vec<String> = [
        "",
        " ",
        "a",
        " a ",
        "\ta\n",
        "a b",
        "a\tb",
        "a\u{0}",
        "\u{85}a\u{a0}",
        "\u{3000}x",
        "a\u{7f}",
        "a\u{9f}",
        "a\u{a0}b",
        "\u{1c}a",
        "a\u{200b}",
        "http://",
        "https://",
        " https://x/y ",
        "http:/x",
        "ftp://x",
        "HTTP://x",
        "0",
        "-0",
        "-0.0",
        "00",
        "0.0",
        "1",
        "-1",
        "01",
        "1.",
        ".5",
        "0.5",
        "0.000001",
        "0.0000001",
        "0.0000010",
        "1.5000000",
        "1.1234567",
        "1.123456",
        "999999999.999999",
        "1000000000",
        "1000000000.0",
        "1000000000.000001",
        "1000000001",
        "12345678901",
        " 5 ",
        "5 5",
        "1e3",
        "+1",
        "1,2,3",
        " 1 , 2 ",
        ",1,",
        ",,",
        "1,,2",
        "-5,+7",
        "a,1",
        "1.5",
        "utc",
        "UTC",
        "Utc",
        "Z",
        "z",
        "+03:00",
        "-14:00",
        "+14:00",
        "+14:01",
        "-13:59",
        "+3:00",
        "03:00",
        "+03:60",
        " +05:30 ",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for n in [99, 100, 101, 199, 200, 201, 2000, 2001, 2047, 2048, 2049] {
        all.push("x".repeat(n));
        all.push(format!(" {} ", "x".repeat(n)));
        all.push(format!("https://{}", "x".repeat(n.saturating_sub(8))));
    }
    all.push(
        (1..=100)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    all.push(
        (1..=101)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    all
}

fn assert_pattern_is_the_rule(name: &str, pattern: &str, rule: impl Fn(&str) -> bool) {
    let regex = regex::Regex::new(pattern).unwrap();
    for input in tricky_inputs() {
        assert_eq!(
            regex.is_match(&input),
            rule(&input),
            "{name}: the spec and the server disagree on {input:?}"
        );
    }
}

#[test]
fn the_spec_patterns_accept_exactly_what_the_server_accepts() {
    use reseller_api::domain::money::Money;
    use reseller_api::domain::{order, parse_text, report};
    use reseller_api::http::input::*;
    for max in [100, 200, 500, 2000] {
        assert_pattern_is_the_rule(&format!("Text{max}"), &text_pattern(max), |s| {
            parse_text(s, max).is_ok()
        });
    }
    assert_pattern_is_the_rule("Link", &link_pattern(order::MAX_LINK_CHARS), |s| {
        parse_text(s, order::MAX_LINK_CHARS).is_ok_and(|l| !l.contains(char::is_whitespace))
    });
    assert_pattern_is_the_rule("HttpUrl", &url_pattern(2000), |s| {
        parse_text(s, 2000).is_ok_and(|u| u.starts_with("http://") || u.starts_with("https://"))
    });
    assert_pattern_is_the_rule("PositiveAmount", &positive_amount_pattern(), |s| {
        Money::parse(s).is_ok_and(|m| !m.is_zero())
    });
    assert_pattern_is_the_rule("NonNegativeAmount", &amount_pattern(), |s| {
        Money::parse(s).is_ok()
    });
    assert_pattern_is_the_rule(
        "OrderIdList",
        &id_list_pattern(reseller_api::api::orders::MAX_BATCH),
        |s| reseller_api::api::orders::parse_id_list(s, "ids").is_ok(),
    );
    assert_pattern_is_the_rule("TimeZone", &timezone_pattern(), |s| {
        report::parse_timezone(s).is_ok()
    });
}
