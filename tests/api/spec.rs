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
