//! The spec is what client generators read: these checks keep it typed and honest.
//! (tests/sdk/run.sh then generates real clients from it and runs them against a server.)

use std::collections::BTreeSet;

use serde_json::Value;

use reseller_api::domain::account::{AccountStatus, Role, Scope};
use reseller_api::domain::ledger::{LedgerKind, TopUpStatus};
use reseller_api::domain::order::OrderStatus;
use reseller_api::domain::policy::PolicyOutcome;
use reseller_api::domain::refund::{DisputeReason, RefundReason, RefundSource, RefundStatus};
use reseller_api::domain::report::ReportGroup;
use reseller_api::domain::service::{ServiceStatus, ServiceType};

/// `GET`/`POST /api/v2` speak the panel dialect for existing reseller tooling, not for generated
/// clients: its key is in the body, its replies differ per `action` (objects or arrays) and
/// its errors are `{"error": "…"}`. The checks below that are about `/v1` skip it.
const PANEL_DIALECT: [&str; 2] = ["api_v2", "api_v2_get"];

fn spec() -> Value {
    serde_json::to_value(reseller_api::api::api_doc()).unwrap()
}

/// Every operation: (method, path, operation object).
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

fn schema<'a>(spec: &'a Value, name: &str) -> &'a Value {
    let schema = &spec["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

#[test]
fn every_enum_in_the_spec_lists_the_names_sent_on_the_wire() {
    let spec = spec();
    let enums: Vec<(&str, Vec<&str>)> = vec![
        (
            "OrderStatus",
            OrderStatus::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "RefundStatus",
            RefundStatus::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "RefundReason",
            RefundReason::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "RefundSource",
            RefundSource::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "DisputeReason",
            DisputeReason::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "LedgerKind",
            LedgerKind::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "TopUpStatus",
            TopUpStatus::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        ("Role", Role::ALL.iter().map(|v| v.as_str()).collect()),
        (
            "AccountStatus",
            AccountStatus::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        ("Scope", Scope::ALL.iter().map(|v| v.as_str()).collect()),
        (
            "ServiceType",
            ServiceType::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "ServiceStatus",
            ServiceStatus::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "PolicyOutcome",
            PolicyOutcome::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "ReportGroup",
            ReportGroup::ALL.iter().map(|v| v.as_str()).collect(),
        ),
    ];
    for (name, wire) in enums {
        let listed: Vec<&str> = schema(&spec, name)["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is not an enum"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(listed, wire, "{name}");
    }
    // Fields whose values form a closed set are enums, not free strings.
    assert_eq!(
        schema(&spec, "TopUpResponse")["properties"]["status"]["$ref"],
        "#/components/schemas/TopUpStatus"
    );
    assert_eq!(
        schema(&spec, "PolicyNote")["properties"]["outcome"]["$ref"],
        "#/components/schemas/PolicyOutcome"
    );
}

#[test]
fn every_operation_has_a_unique_snake_case_id_a_tag_and_explicit_security() {
    let spec = spec();
    let public = [
        "healthz",
        "readyz",
        "metrics",
        "create_token",
        PANEL_DIALECT[0],
        PANEL_DIALECT[1],
    ];
    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&spec) {
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{method} {path}: operationId {id:?} is not snake_case"
        );
        assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
        assert_eq!(
            op["tags"].as_array().map(Vec::len),
            Some(1),
            "{id}: one tag"
        );
        let expected = if public.contains(&id) {
            serde_json::json!([])
        } else {
            serde_json::json!([{ "bearer": [] }])
        };
        assert_eq!(op["security"], expected, "{id}: security");
    }
    for id in public {
        assert!(ids.contains(id), "{id} is missing");
    }
}

#[test]
fn every_success_is_typed_and_every_error_is_a_problem_document() {
    let spec = spec();
    for (_, _, op) in operations(&spec) {
        let id = op["operationId"].as_str().unwrap();
        if PANEL_DIALECT.contains(&id) {
            continue;
        }
        for (status, response) in op["responses"].as_object().unwrap() {
            let content = response["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{id} {status}: no body documented"));
            assert!(!content.is_empty(), "{id} {status}: no body documented");
            if status.starts_with('2') {
                for (media, body) in content {
                    let schema = &body["schema"];
                    let typed = schema["$ref"].is_string()
                        || (media.starts_with("text/") && schema["type"] == "string");
                    assert!(typed, "{id} {status} {media}: untyped body {schema}");
                }
            } else {
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    ["application/problem+json"],
                    "{id} {status}"
                );
                assert_eq!(
                    content["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{id} {status}"
                );
            }
        }
    }
}

#[test]
fn pages_quotas_and_replays_document_their_headers() {
    let spec = spec();
    let mut pages = 0;
    for (_, _, op) in operations(&spec) {
        let id = op["operationId"].as_str().unwrap();
        let protected = op["security"] != serde_json::json!([]);
        for (status, response) in op["responses"].as_object().unwrap() {
            let headers = &response["headers"];
            let body_ref = response["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap_or_default();
            if status.starts_with('2') && body_ref.starts_with("#/components/schemas/Page_") {
                pages += 1;
                assert!(headers["Link"].is_object(), "{id}: Link header");
            }
            if (status.starts_with('2') || status == "429")
                && (protected || id == "create_token" || PANEL_DIALECT.contains(&id))
            {
                assert!(headers["RateLimit"].is_object(), "{id} {status}: RateLimit");
                assert!(
                    headers["RateLimit-Policy"].is_object(),
                    "{id} {status}: RateLimit-Policy"
                );
            }
            if status == "429" {
                assert!(headers["Retry-After"].is_object(), "{id}: Retry-After");
            }
        }
    }
    assert!(pages >= 5, "the list calls answer with pages");
    for (path, status) in [("/v1/orders", "201"), ("/v1/orders/{id}/refunds", "202")] {
        assert!(
            spec["paths"][path]["post"]["responses"][status]["headers"]["Idempotent-Replayed"]
                .is_object(),
            "{path}: Idempotent-Replayed"
        );
    }
}

#[test]
fn a_page_refers_to_its_item_schema_instead_of_copying_it() {
    let spec = spec();
    for (name, schema) in spec["components"]["schemas"].as_object().unwrap() {
        if let Some(item) = name.strip_prefix("Page_") {
            assert_eq!(
                schema["properties"]["data"]["items"]["$ref"],
                format!("#/components/schemas/{item}"),
                "{name}"
            );
        }
    }
}

#[test]
fn money_is_a_decimal_string_with_a_pattern_in_requests_and_responses() {
    let spec = spec();
    let amount = schema(&spec, "Amount");
    assert_eq!(amount["type"], "string");
    assert!(amount["pattern"].is_string());
    let money_fields = [
        "amount",
        "balance",
        "balance_after",
        "charge",
        "rate",
        "refunded",
        "refundable",
        "charged_amount",
        "refunded_amount",
    ];
    let mut checked = 0;
    for (name, schema) in spec["components"]["schemas"].as_object().unwrap() {
        let Some(properties) = schema["properties"].as_object() else {
            continue;
        };
        for (field, property) in properties {
            if !money_fields.contains(&field.as_str()) {
                continue;
            }
            checked += 1;
            if property["$ref"] == "#/components/schemas/Amount" {
                continue;
            }
            // A request amount refers to the input rule it follows (`PositiveAmount`, …),
            // nullable as `oneOf` with null when optional.
            let referred = property["$ref"].as_str().or_else(|| {
                property["oneOf"]
                    .as_array()
                    .and_then(|branches| branches.iter().find_map(|branch| branch["$ref"].as_str()))
            });
            let property = match referred {
                Some(reference) => {
                    self::schema(&spec, reference.trim_start_matches("#/components/schemas/"))
                }
                None => property,
            };
            let types = match &property["type"] {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            assert!(
                types.contains(&"string") && types.iter().all(|t| ["string", "null"].contains(t)),
                "{name}.{field} must be a decimal string, is {property}"
            );
            let pattern = property["pattern"].as_str().unwrap_or_default();
            assert!(
                pattern.contains(r"[0-9]{1,6}"),
                "{name}.{field} needs the decimal pattern, has {property}"
            );
        }
    }
    assert!(checked >= 20, "only {checked} money fields found");
}
