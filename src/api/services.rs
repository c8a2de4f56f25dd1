use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::application;
use crate::db::services::{self, ServiceFields};
use crate::domain::account::Scope;
use crate::domain::ids::{ProviderId, ServiceId};
use crate::domain::order_fields::{
    FieldShape, OrderField, MAX_LIST_CHARS, MAX_LIST_ITEMS, MAX_TEXT_CHARS,
};
use crate::domain::refill::MAX_REFILL_DAYS;
use crate::domain::service::{
    check_min_charge, check_quantity_window, check_type_shape, parse_description, QuantityRule,
    Service, ServiceStatus, ServiceType,
};
use crate::domain::subscription::SubscriptionTerms;
use crate::domain::{parse_text, FieldError};
use crate::error::ApiError;
use crate::http::auth::{Admin, Caller};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::state::AppState;
use crate::http::wire::{page_limit, page_response, parse_money, utc, Amount, Page};

/// A service's refill window when the operator names none.
const DEFAULT_REFILL_DAYS: i64 = 30;

#[derive(Serialize, ToSchema)]
pub struct ServiceResponse {
    #[schema(value_type = i64)]
    pub id: ServiceId,
    pub name: String,
    pub category: String,
    pub r#type: TypeName,
    /// Price per 1000 units; for a flat-price type (`pricing: flat`), the price of one order.
    pub rate: Amount,
    /// How `rate` prices an order.
    pub pricing: Pricing,
    /// The smallest quantity (1 for a flat-price type).
    pub min: i64,
    /// The largest quantity (1 for a flat-price type).
    pub max: i64,
    /// The list field whose lines are the order's quantity (the order's `quantity` may be
    /// left out, and must equal the count when sent); null where the quantity is sent, or
    /// fixed at 1 for a flat-price type.
    pub quantity_from: Option<OrderField>,
    /// The fields an order of this service takes besides `link`, `quantity` and (with
    /// `dripfeed`) `runs` and `interval`.
    pub fields: Vec<ServiceFieldInfo>,
    /// What the service delivers, in the operator's (or the provider's) words.
    pub description: Option<String>,
    pub refill: bool,
    /// Days after an order is placed during which a refill may be asked for.
    pub refill_days: i64,
    pub cancel: bool,
    /// Drip-feed offered: an order may take `runs` and `interval` (Default and Web Traffic
    /// services only).
    pub dripfeed: bool,
    /// What a `subscriptions` service offers a subscription (null on other types).
    pub subscription: Option<SubscriptionTermsResponse>,
    pub status: ServiceStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A service's type as REST words it: the type's name, or `drip_feed` for a Default
/// service with the drip-feed flag (the word REST clients knew before drip-feed became a
/// flag, kept so that they do not break).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeName {
    Type(ServiceType),
    DripFeed,
}

impl TypeName {
    const DRIP_FEED: &'static str = "drip_feed";

    pub fn of(kind: ServiceType, dripfeed: bool) -> TypeName {
        match kind {
            ServiceType::Default if dripfeed => TypeName::DripFeed,
            kind => TypeName::Type(kind),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TypeName::Type(kind) => kind.as_str(),
            TypeName::DripFeed => Self::DRIP_FEED,
        }
    }
}

impl Serialize for TypeName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TypeName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<TypeName, D::Error> {
        let word = String::deserialize(deserializer)?;
        if word == Self::DRIP_FEED {
            return Ok(TypeName::DripFeed);
        }
        ServiceType::parse(&word)
            .map(TypeName::Type)
            .ok_or_else(|| {
                let words: Vec<&str> = ServiceType::ALL.iter().map(|k| k.as_str()).collect();
                serde::de::Error::custom(format!(
                    "unknown type {word:?}: expected one of {}, or drip_feed",
                    words.join(", ")
                ))
            })
    }
}

impl utoipa::PartialSchema for TypeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let mut words: Vec<&str> = ServiceType::ALL.iter().map(|k| k.as_str()).collect();
        words.insert(1, Self::DRIP_FEED);
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "The service type (the panel dialect's, in snake case). `drip_feed` is \
                 `default` with `dripfeed` on: accepted, and shown for such services.",
            ))
            .enum_values(Some(words))
            .into()
    }
}

impl ToSchema for TypeName {}

/// How a service's rate prices an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pricing {
    /// The rate is per 1000 units of the quantity.
    PerThousand,
    /// The rate is the price of one order (a package); the quantity is 1.
    Flat,
}

/// A field an order of a service takes, for rendering an order form.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceFieldInfo {
    pub name: OrderField,
    /// Required on every order of the service (else only in the case `note` says).
    pub required: bool,
    pub shape: FieldShape,
    /// Integer fields: the smallest value.
    pub minimum: Option<i64>,
    /// Integer fields: the largest value.
    pub maximum: Option<i64>,
    /// Lists: the most lines; text and URLs: null.
    pub max_items: Option<i64>,
    /// Lists: the most characters, lines joined by `\n`; text and URLs: the most characters.
    pub max_length: Option<i64>,
    /// When an optional field is required or taken.
    pub note: Option<String>,
}

impl ServiceFieldInfo {
    fn of(kind: ServiceType) -> Vec<ServiceFieldInfo> {
        let required = kind.required_fields().iter().map(|f| (*f, true));
        let optional = kind.optional_fields().iter().map(|f| (*f, false));
        required
            .chain(optional)
            .map(|(name, required)| {
                let shape = name.shape();
                let range = name.range();
                ServiceFieldInfo {
                    name,
                    required,
                    shape,
                    minimum: range.map(|r| r.0),
                    maximum: range.map(|r| r.1),
                    max_items: (shape == FieldShape::List).then_some(MAX_LIST_ITEMS as i64),
                    max_length: match shape {
                        FieldShape::List => Some(MAX_LIST_CHARS as i64),
                        FieldShape::Text | FieldShape::Url => Some(MAX_TEXT_CHARS as i64),
                        FieldShape::Integer => None,
                    },
                    note: match name {
                        OrderField::GoogleKeyword => {
                            Some("required with type_of_traffic 1, refused otherwise".into())
                        }
                        OrderField::ReferringUrl => {
                            Some("required with type_of_traffic 2, refused otherwise".into())
                        }
                        _ => None,
                    },
                }
            })
            .collect()
    }
}

/// What a subscriptions service offers.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionTermsResponse {
    /// The most posts a subscription may ask for (`posts`, and `old_posts` each).
    pub posts_max: i64,
    /// The delays (minutes after a post) a subscription may choose from.
    pub delays: Vec<i64>,
    /// Whether a subscription may ask for `old_posts` (posts already made).
    pub old_posts: bool,
}

/// A service as operators see it: what resellers see, and where it is delivered from.
/// Resellers never see the upstream: with it they could buy from the provider directly.
#[derive(Serialize, ToSchema)]
pub struct AdminServiceResponse {
    #[serde(flatten)]
    pub service: ServiceResponse,
    /// The upstream provider delivering this service; null for services fulfilled by hand.
    #[schema(value_type = Option<i64>)]
    pub provider_id: Option<ProviderId>,
    /// The provider's own id for the service.
    pub provider_service_id: Option<String>,
}

impl From<Service> for AdminServiceResponse {
    fn from(mut service: Service) -> AdminServiceResponse {
        let provider = service.provider.take();
        AdminServiceResponse {
            service: service.into(),
            provider_id: provider.as_ref().map(|p| p.0),
            provider_service_id: provider.map(|p| p.1),
        }
    }
}

impl From<Service> for ServiceResponse {
    fn from(service: Service) -> ServiceResponse {
        let kind = service.kind;
        ServiceResponse {
            id: service.id,
            dripfeed: service.dripfeed,
            name: service.name,
            category: service.category,
            r#type: TypeName::of(kind, service.dripfeed),
            rate: Amount::of(service.rate),
            pricing: if kind.is_flat() {
                Pricing::Flat
            } else {
                Pricing::PerThousand
            },
            min: service.min_quantity,
            max: service.max_quantity,
            quantity_from: match kind.quantity_rule() {
                QuantityRule::CountOf(field) => Some(field),
                QuantityRule::PerThousand | QuantityRule::Flat => None,
            },
            fields: ServiceFieldInfo::of(kind),
            description: service.description,
            refill: service.refill,
            refill_days: service.refill_days,
            cancel: service.cancel,
            subscription: (kind == ServiceType::Subscriptions).then(|| SubscriptionTermsResponse {
                posts_max: service.subscription.posts_max,
                delays: service.subscription.delays.clone(),
                old_posts: service.subscription.old_posts,
            }),
            status: service.status,
            created_at: utc(service.created_at),
            updated_at: utc(service.updated_at),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListServicesQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Return services after this service id.
    pub starting_after: Option<i64>,
}

/// The catalog, in id order.
#[utoipa::path(
    tag = "services",
    security(("bearer" = [])),
    params(ListServicesQuery),
    responses((status = 200, description = "A page of services", body = Page<ServiceResponse>))
)]
#[get("/v1/services")]
pub async fn list_services(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListServicesQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersRead)?;
    list_page(req, state, query.0, ServiceResponse::from).await
}

/// The catalog with each service's upstream (provider and the provider's service id), in
/// id order.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(ListServicesQuery),
    responses((status = 200, description = "A page of services", body = Page<AdminServiceResponse>))
)]
#[get("/v1/admin/services")]
pub async fn list_admin_services(
    req: HttpRequest,
    state: web::Data<AppState>,
    _admin: Admin,
    query: ApiQuery<ListServicesQuery>,
) -> Result<HttpResponse, ApiError> {
    list_page(req, state, query.0, AdminServiceResponse::from).await
}

async fn list_page<R: Serialize + ToSchema>(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: ListServicesQuery,
    render: impl Fn(Service) -> R,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let rows = state
        .db(move |conn| Ok(services::page(conn, query.starting_after, limit + 1)?))
        .await?;
    Ok(page_response(&req, rows, limit, |s| s.id.get(), render))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceRequest {
    #[schema(value_type = crate::http::input::Text200)]
    pub name: String,
    #[schema(value_type = crate::http::input::Text200)]
    pub category: String,
    /// The service type; `drip_feed` is `default` with `dripfeed` on.
    pub r#type: TypeName,
    /// Drip-feed offered (`default` and `web_traffic` only; default false, true with the
    /// type word `drip_feed`).
    pub dripfeed: Option<bool>,
    /// Price per 1000 units, a decimal string; for a flat-price type (`package`,
    /// `custom_comments_package`), the price of one order.
    #[schema(value_type = crate::http::input::NonNegativeAmount)]
    pub rate: String,
    /// 1 for a flat-price type.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub min: i64,
    /// 1 for a flat-price type.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub max: i64,
    /// What the service delivers, shown to resellers.
    #[schema(value_type = Option<String>, min_length = 1, max_length = 2000)]
    pub description: Option<String>,
    #[serde(default)]
    pub refill: bool,
    /// Days after an order is placed during which a refill may be asked for (default 30).
    #[schema(minimum = 0, maximum = 3650)]
    pub refill_days: Option<i64>,
    #[serde(default)]
    pub cancel: bool,
    /// Forward orders to this provider (with `provider_service_id`).
    #[schema(value_type = Option<i64>)]
    pub provider_id: Option<ProviderId>,
    #[schema(value_type = Option<crate::http::input::Text100>)]
    pub provider_service_id: Option<String>,
    /// `subscriptions` only: the most posts a subscription may ask for (default 100).
    #[schema(minimum = 1, maximum = 10_000)]
    pub posts_max: Option<i64>,
    /// `subscriptions` only: the delays (minutes after a post, 0 to 10080, 1 to 50 of them)
    /// a subscription may choose from (default 0, 5, 10, 15, 30, 60, 90).
    pub delays: Option<Vec<i64>>,
    /// `subscriptions` only: whether a subscription may ask for `old_posts` (default false).
    pub old_posts: Option<bool>,
}

#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct UpdateServiceRequest {
    #[schema(value_type = Option<crate::http::input::Text200>)]
    pub name: Option<String>,
    #[schema(value_type = Option<crate::http::input::Text200>)]
    pub category: Option<String>,
    /// The service type; `drip_feed` is `default` with `dripfeed` on.
    pub r#type: Option<TypeName>,
    /// Drip-feed offered (`default` and `web_traffic` only).
    pub dripfeed: Option<bool>,
    /// What the service delivers; null removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 2000)]
    pub description: Option<Option<String>>,
    #[schema(value_type = Option<crate::http::input::NonNegativeAmount>)]
    pub rate: Option<String>,
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub min: Option<i64>,
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub max: Option<i64>,
    pub refill: Option<bool>,
    #[schema(minimum = 0, maximum = 3650)]
    pub refill_days: Option<i64>,
    pub cancel: Option<bool>,
    /// Set both to route the service to a provider; null both to stop forwarding.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub provider_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<crate::http::input::Text100>)]
    pub provider_service_id: Option<Option<String>>,
    /// `subscriptions` only: the most posts a subscription may ask for.
    #[schema(minimum = 1, maximum = 10_000)]
    pub posts_max: Option<i64>,
    /// `subscriptions` only: the delays (minutes after a post) a subscription may choose.
    pub delays: Option<Vec<i64>>,
    /// `subscriptions` only: whether a subscription may ask for `old_posts`.
    pub old_posts: Option<bool>,
}

/// Tells a field left out (`None`) from one set to null (`Some(None)`).
fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Whether a patch keeps a service's stored subscription terms: only a subscriptions
/// service (after the patch) has them to keep.
fn keeps_terms(patch: &UpdateServiceRequest, current: &Service) -> bool {
    match patch.r#type {
        Some(TypeName::Type(kind)) => kind == ServiceType::Subscriptions,
        Some(TypeName::DripFeed) => false,
        None => current.kind == ServiceType::Subscriptions,
    }
}

/// Validates every field of a service at once.
fn service_fields(request: CreateServiceRequest) -> Result<ServiceFields, ApiError> {
    let mut errors = Vec::new();
    let name = parse_text(&request.name, 200)
        .map_err(|m| errors.push(FieldError::new("name", m)))
        .ok();
    let category = parse_text(&request.category, 200)
        .map_err(|m| errors.push(FieldError::new("category", m)))
        .ok();
    let rate = parse_money("rate", &request.rate, &mut errors);
    let (kind, dripfeed) = match (request.r#type, request.dripfeed) {
        (TypeName::DripFeed, Some(false)) => {
            errors.push(FieldError::new(
                "dripfeed",
                "the type drip_feed is default with dripfeed on: send type default to turn it off",
            ));
            (ServiceType::Default, false)
        }
        (TypeName::DripFeed, _) => (ServiceType::Default, true),
        (TypeName::Type(kind), dripfeed) => (kind, dripfeed.unwrap_or(false)),
    };
    let defaults = SubscriptionTerms::default();
    let sent_terms =
        request.posts_max.is_some() || request.delays.is_some() || request.old_posts.is_some();
    let subscription = if kind != ServiceType::Subscriptions && sent_terms {
        let field = if request.posts_max.is_some() {
            "posts_max"
        } else if request.delays.is_some() {
            "delays"
        } else {
            "old_posts"
        };
        errors.push(FieldError::new(
            field,
            "is taken only by a subscriptions service",
        ));
        defaults
    } else {
        SubscriptionTerms::check(
            request.posts_max.unwrap_or(defaults.posts_max),
            request.delays.as_deref().unwrap_or(&defaults.delays),
            request.old_posts.unwrap_or(defaults.old_posts),
        )
        .unwrap_or_else(|(field, message)| {
            errors.push(FieldError::new(field, message));
            defaults
        })
    };
    if let Err((field, message)) = check_quantity_window(request.min, request.max)
        .and_then(|()| check_type_shape(kind, dripfeed, request.min, request.max))
    {
        errors.push(FieldError::new(field, message));
    } else if let (Some(rate), false) = (rate, kind.is_flat()) {
        if let Err((field, message)) = check_min_charge(rate, request.min) {
            errors.push(FieldError::new(field, message));
        }
    }
    let description = match request.description.as_deref().map(parse_description) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(message)) => {
            errors.push(FieldError::new("description", message));
            None
        }
    };
    let refill_days = request.refill_days.unwrap_or(DEFAULT_REFILL_DAYS);
    if !(0..=MAX_REFILL_DAYS).contains(&refill_days) {
        errors.push(FieldError::new(
            "refill_days",
            format!("must be between 0 and {MAX_REFILL_DAYS}"),
        ));
    }
    let provider = match (request.provider_id, request.provider_service_id.as_deref()) {
        (None, None) => None,
        (Some(id), Some(remote)) => match parse_text(remote, 100) {
            Ok(remote) => Some((id, remote)),
            Err(message) => {
                errors.push(FieldError::new("provider_service_id", message));
                None
            }
        },
        (Some(_), None) => {
            errors.push(FieldError::new(
                "provider_service_id",
                "is required with provider_id",
            ));
            None
        }
        (None, Some(_)) => {
            errors.push(FieldError::new(
                "provider_id",
                "is required with provider_service_id",
            ));
            None
        }
    };
    match (name, category, rate) {
        (Some(name), Some(category), Some(rate)) if errors.is_empty() => Ok(ServiceFields {
            name,
            category,
            kind,
            dripfeed,
            rate,
            min_quantity: request.min,
            max_quantity: request.max,
            refill: request.refill,
            refill_days,
            cancel: request.cancel,
            provider,
            description,
            subscription,
        }),
        _ => Err(errors.into()),
    }
}

/// Add a service to the catalog.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = CreateServiceRequest,
    responses((status = 201, description = "The new service", body = AdminServiceResponse, links(
            ("UpdateService" = (operation_id = "update_service", parameters(("id" = "$response.body#/id")), description = "Change the service")),
            ("DisableService" = (operation_id = "disable_service", parameters(("id" = "$response.body#/id")), description = "Disable the service")),
    )))
)]
#[post("/v1/admin/services")]
pub async fn create_service(
    state: web::Data<AppState>,
    admin: Admin,
    body: ApiJson<CreateServiceRequest>,
) -> Result<HttpResponse, ApiError> {
    let (fields, by) = (service_fields(body.value)?, admin.actor());
    let service = state
        .db(move |conn| application::services::create_service(conn, &by, fields))
        .await?;
    Ok(HttpResponse::Created().json(AdminServiceResponse::from(service)))
}

/// Change a service; fields left out keep their value. Existing orders keep their price.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Service id")),
    request_body = Option<UpdateServiceRequest>,
    responses(
        (status = 200, description = "The updated service", body = AdminServiceResponse),
        (status = 404, description = "No such service", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/v1/admin/services/{id}")]
pub async fn update_service(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<UpdateServiceRequest>,
) -> Result<HttpResponse, ApiError> {
    let (id, by) = (ServiceId(id.into_inner()), admin.actor());
    let patch = body.value;
    // Called once per attempt of the transaction, which may run again on a conflict.
    let merge = move |current: Service| {
        let patch = patch.clone();
        let keep = keeps_terms(&patch, &current);
        service_fields(CreateServiceRequest {
            name: patch.name.unwrap_or(current.name),
            category: patch.category.unwrap_or(current.category),
            // A type sent alone sets drip-feed by its word (`drip_feed` on, others off);
            // `dripfeed` sent alone keeps the type.
            r#type: patch.r#type.unwrap_or(TypeName::Type(current.kind)),
            dripfeed: patch.dripfeed.or(match patch.r#type {
                Some(_) => None,
                None => Some(current.dripfeed),
            }),
            description: patch.description.clone().unwrap_or(current.description),
            rate: patch.rate.unwrap_or_else(|| current.rate.to_string()),
            min: patch.min.unwrap_or(current.min_quantity),
            max: patch.max.unwrap_or(current.max_quantity),
            refill: patch.refill.unwrap_or(current.refill),
            refill_days: Some(patch.refill_days.unwrap_or(current.refill_days)),
            cancel: patch.cancel.unwrap_or(current.cancel),
            provider_id: patch
                .provider_id
                .map(|id| id.map(ProviderId))
                .unwrap_or(current.provider.as_ref().map(|p| p.0)),
            provider_service_id: patch
                .provider_service_id
                .unwrap_or(current.provider.map(|p| p.1)),
            // Kept on a service of another type only if the patch names the terms.
            posts_max: patch
                .posts_max
                .or(keep.then_some(current.subscription.posts_max)),
            old_posts: patch
                .old_posts
                .or(keep.then_some(current.subscription.old_posts)),
            delays: patch.delays.or(keep.then_some(current.subscription.delays)),
        })
    };
    let service = state
        .db(move |conn| application::services::update_service(conn, &by, id, merge))
        .await?;
    Ok(HttpResponse::Ok().json(AdminServiceResponse::from(service)))
}

#[derive(Serialize, ToSchema)]
pub struct DisableServiceResponse {
    /// On a dry run, the service as it still is.
    pub service: AdminServiceResponse,
    /// True when nothing was changed: the figures are what disabling would do now.
    pub dry_run: bool,
    /// Orders still in flight that disabling ends (0 when called again).
    pub orders_in_flight: i64,
    /// Orders refunded by this call (0 when called again).
    pub orders_refunded: i64,
    /// Money credited back by this call (on a dry run: what would be).
    pub amount_refunded: Amount,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DisableServiceQuery {
    /// Change nothing and answer what disabling would do now: the same outcome per order
    /// and the same refund rule as the real call.
    pub dry_run: Option<bool>,
}

/// Disable a service: it takes no new orders, and every order still in flight is
/// refunded by the refund rule (no delivery known: in full; progress known: the
/// undelivered share). Its open subscriptions end as `canceled`, what each still holds
/// released to its account (the dry run does not count them). Safe to call again; a
/// second call refunds nothing more.
/// With `dry_run=true` nothing changes and the reply previews the refunds.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Service id"), DisableServiceQuery),
    responses(
        (status = 200, description = "The disabled service and what was refunded (or, on a dry run, would be)", body = DisableServiceResponse),
        (status = 404, description = "No such service", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/services/{id}/disable")]
pub async fn disable_service(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    query: ApiQuery<DisableServiceQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = ServiceId(id.into_inner());
    let (admin_id, by) = (admin.0.account_id, admin.actor());
    let response = if query.0.dry_run == Some(true) {
        let preview = state
            .db(move |conn| application::services::preview_disable(conn, id))
            .await?;
        DisableServiceResponse {
            service: preview.service.into(),
            dry_run: true,
            orders_in_flight: preview.orders_in_flight,
            orders_refunded: preview.orders_refunded,
            amount_refunded: Amount::of(preview.amount_refunded),
        }
    } else {
        let disabled = state
            .db(move |conn| {
                application::services::disable_service(conn, Some(&by), Some(admin_id), id)
            })
            .await?;
        DisableServiceResponse {
            service: disabled.service.into(),
            dry_run: false,
            orders_in_flight: disabled.orders_in_flight,
            orders_refunded: disabled.orders_refunded,
            amount_refunded: Amount::of(disabled.amount_refunded),
        }
    };
    Ok(HttpResponse::Ok().json(response))
}
