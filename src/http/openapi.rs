//! Spec assembly shared by every operation: the bearer scheme, the problem responses and
//! rate-limit headers each kind of call can give, paging headers.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::Modify;

/// Adds the bearer scheme and the problem responses every protected call can give, so
/// each handler documents only the errors particular to it.
pub struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from `POST /v1/auth/token`."))
                    .build(),
            ),
        );
        reference_page_items(components);
        for item in openapi.paths.paths.values_mut() {
            if let Some(op) = item.get.as_mut() {
                add_common_responses(op);
                optional_bodies_are_objects(op);
            }
            for op in [
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add_common_responses(op);
                add_write_queue_full(op);
                optional_bodies_are_objects(op);
            }
        }
    }
}

/// utoipa documents an optional body (`request_body = Option<T>`) as `T` or `null`, but
/// the server takes no body at all or an object, never a JSON `null`: keep only `T`, the
/// body staying optional (`required` is not set).
fn optional_bodies_are_objects(op: &mut Operation) {
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    use utoipa::openapi::{RefOr, Required};
    let Some(RefOr::T(body)) = op.request_body.as_mut() else {
        return;
    };
    if matches!(body.required, Some(Required::True)) {
        return;
    }
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else {
            continue;
        };
        let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
            continue;
        };
        let is_null = |item: &RefOr<Schema>| matches!(item, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
        let rest: Vec<_> = one_of
            .items
            .iter()
            .filter(|i| !is_null(i))
            .cloned()
            .collect();
        if let [only] = rest.as_slice() {
            content.schema = Some(only.clone());
        }
    }
}

fn problem_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

fn header(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::header::Header> {
    utoipa::openapi::RefOr::T(
        utoipa::openapi::header::HeaderBuilder::new()
            .schema(Some(
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String),
            ))
            .description(Some(description))
            .build(),
    )
}

/// The rate-limit headers on a limited call's responses.
fn rate_limit_headers() -> Vec<(
    &'static str,
    utoipa::openapi::RefOr<utoipa::openapi::header::Header>,
)> {
    vec![
        (
            "RateLimit-Policy",
            header("The quotas that apply, e.g. `\"account\";q=600;w=60`."),
        ),
        (
            "RateLimit",
            header("What is left of each quota, e.g. `\"account\";r=599;t=1`."),
        ),
    ]
}

/// utoipa inlines a generic's type argument, so `Page<OrderResponse>` would repeat the
/// order schema and generators would make a second order type; point `data` at the named
/// schema instead.
fn reference_page_items(components: &mut utoipa::openapi::Components) {
    use utoipa::openapi::schema::{ArrayItems, Schema};
    use utoipa::openapi::RefOr;
    let names: Vec<String> = components.schemas.keys().cloned().collect();
    for name in names {
        let Some(item) = name.strip_prefix("Page_") else {
            continue;
        };
        if !components.schemas.contains_key(item) {
            continue;
        }
        if let Some(RefOr::T(Schema::Object(page))) = components.schemas.get_mut(&name) {
            if let Some(RefOr::T(Schema::Array(data))) = page.properties.get_mut("data") {
                data.items = ArrayItems::RefOrSchema(Box::new(Ref::from_schema_name(item).into()));
            }
        }
    }
}

/// Whether a response's JSON body is a page of a list (which comes with a `Link` header).
fn is_page(response: &utoipa::openapi::Response) -> bool {
    use utoipa::openapi::RefOr;
    matches!(
        response.content.get("application/json"),
        Some(RefOr::T(content)) if matches!(&content.schema, Some(RefOr::Ref(r))
            if r.ref_location.starts_with("#/components/schemas/Page_"))
    )
}

/// Every operation that may write can find the database's write queue full (SQLite,
/// `--write-queue`): 503 with `Retry-After`, nothing done. API v2 answers it as
/// `{"error": …}` like every other refusal.
fn add_write_queue_full(op: &mut Operation) {
    if matches!(op.operation_id.as_deref(), Some("api_v2" | "api_v2_get")) {
        return;
    }
    let mut response = problem_response(
        "Too many writes are waiting for the database (`write_queue_full`); nothing was done. Retry after `Retry-After` seconds.",
    );
    response.headers.insert(
        "Retry-After".to_string(),
        header("Seconds until a retry can pass."),
    );
    op.responses
        .responses
        .entry("503".to_string())
        .or_insert_with(|| response.into());
}

fn add_common_responses(op: &mut Operation) {
    // Say "no credentials" explicitly, so generators and linters need not guess.
    op.security.get_or_insert_with(Vec::new);
    let protected = op.security.as_ref().is_some_and(|s| !s.is_empty());
    for (status, response) in op.responses.responses.iter_mut() {
        if let (true, utoipa::openapi::RefOr::T(response)) = (status.starts_with('2'), response) {
            if is_page(response) {
                response.headers.entry("Link".to_string()).or_insert_with(|| {
                    header("`<…?starting_after=ID>; rel=\"next\"` when more follow (RFC 8288); absent on the last page.")
                });
            }
        }
    }
    // The panel API v2 dialect answers errors as `{"error": "…"}`, never as problem
    // documents, and its calls count against the account quota like `/v1` calls.
    let panel_dialect = matches!(op.operation_id.as_deref(), Some("api_v2" | "api_v2_get"));
    let has_body = op.request_body.is_some() && !panel_dialect;
    let mut common = vec![(
        "500",
        "Unexpected server error; the body says nothing internal.",
    )];
    if protected {
        common.push((
            "401",
            "Missing, malformed, expired or otherwise invalid access token.",
        ));
        common.push(("403", "The token lacks the scope or role this call needs."));
    }
    if has_body {
        common.push(("400", "Malformed JSON."));
        common.push(("413", "Body larger than the configured limit."));
        common.push(("415", "Body is not `application/json`."));
    }
    if protected || has_body {
        common.push((
            "422",
            "Validation failed; `errors` lists every failing field.",
        ));
    }
    if panel_dialect {
        common.clear();
    }
    for (status, description) in common {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| problem_response(description).into());
    }
    let limited = protected || panel_dialect || op.operation_id.as_deref() == Some("create_token");
    if !limited {
        return;
    }
    op.responses
        .responses
        .entry("429".to_string())
        .or_insert_with(|| {
            problem_response(
                "A request quota or the refund-abuse policy refused the call; `policy` names it.",
            )
            .into()
        });
    for (status, response) in op.responses.responses.iter_mut() {
        let utoipa::openapi::RefOr::T(response) = response else {
            continue;
        };
        if status.starts_with('2') || status == "429" {
            for (name, value) in rate_limit_headers() {
                response.headers.entry(name.to_string()).or_insert(value);
            }
        }
        if status == "429" {
            response
                .headers
                .entry("Retry-After".to_string())
                .or_insert_with(|| header("Seconds until a retry can pass."));
        }
    }
}
