//! A provider's catalog synced into ours: each provider service becomes one of ours (found
//! by `provider_id` + `provider_service_id`) at the provider's rate plus the provider's
//! `markup_percent`; a provider service gone from the catalog disables ours, with the
//! refunds and upstream cancels of `services::disable_service`. A rate change never
//! re-prices an order: every order keeps the charge it was placed at, and refunds come
//! from that stored charge.

use super::audit::{self, Target};
use super::services::disable_service;
use crate::db::costs::{self, ServiceCost};
use crate::db::services::{self as service_rows, ServiceFields};
use crate::db::{self, providers, DbConnection};
use crate::domain::audit::{Actor, AuditAction, AuditChange, AuditTarget};
use crate::domain::ids::{AccountId, ProviderId, ServiceId};
use crate::domain::money::{ExchangeRate, Money, Percent};
use crate::domain::service::{
    check_min_charge, check_quantity_window, check_type_shape, clean_description, marked_up,
    CatalogEntry, CatalogType, Service, ServiceStatus, ServiceType,
};
use crate::error::{ApiError, ErrorCode};

/// The refill window a service created by a sync starts with.
const SYNCED_REFILL_DAYS: i64 = 30;

/// One of our services a sync creates, changes or disables.
#[derive(Debug, Clone)]
pub struct SyncedService {
    /// Ours; `None` for one a dry run would create.
    pub service_id: Option<ServiceId>,
    pub provider_service_id: String,
    pub name: String,
    /// Our rate: the provider's, converted to the panel's currency, plus the markup.
    pub rate: Money,
    /// The provider's rate in its own currency, and converted (before the markup); `None`
    /// for a service the sync disables.
    pub provider_rate: Option<Money>,
    pub converted_rate: Option<Money>,
    /// Our rate is at or below the converted provider rate: every order loses money.
    pub at_loss: bool,
    /// The type the service has (or would have) after the sync.
    pub kind: ServiceType,
    /// The type it had, when the sync changes it.
    pub previous_kind: Option<ServiceType>,
    /// The fields that change (`name`, `category`, `type`, `dripfeed`, `description`,
    /// `rate`, `min`, `max`, `refill`, `cancel`).
    pub changes: Vec<&'static str>,
}

/// A provider service the sync leaves alone, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub provider_service_id: String,
    pub reason: String,
}

/// A flag of ours the provider's catalog says nothing about (its entry has no such key):
/// kept as the operator set it, where the sync would otherwise have turned it off.
#[derive(Debug, Clone)]
pub struct KeptFlag {
    pub service_id: ServiceId,
    pub provider_service_id: String,
    /// `refill` or `cancel`.
    pub flag: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    pub dry_run: bool,
    pub created: Vec<SyncedService>,
    pub updated: Vec<SyncedService>,
    pub disabled: Vec<SyncedService>,
    pub unchanged: i64,
    pub skipped: Vec<Skipped>,
    pub kept: Vec<KeptFlag>,
}

/// What `entry` makes of one of our services routed to `provider_id`; `existing` is ours
/// for it, whose refill and cancel flags stand where the entry has no such key (a new
/// service starts with them off).
fn fields_for(
    entry: &CatalogEntry,
    provider_id: ProviderId,
    markup_percent: Percent,
    exchange_rate: ExchangeRate,
    existing: Option<&Service>,
) -> Result<ServiceFields, String> {
    let refill_days = existing.map_or(SYNCED_REFILL_DAYS, |s| s.refill_days);
    let kind = match entry.kind {
        CatalogType::Offered(kind) => kind,
        // Its terms (posts bound, delays, old posts) are not in the dialect's catalog: a
        // new service starts with the defaults and a sync leaves what an operator set.
        CatalogType::Subscriptions => ServiceType::Subscriptions,
        CatalogType::Unknown => {
            return Err(format!(
                "type {:?} is none of the panel service types",
                entry.type_word
            ))
        }
    };
    // A flat-price type sells one package: whatever window the provider lists, ours is 1.
    let (min, max) = if kind.is_flat() {
        (1, 1)
    } else {
        (entry.min_quantity, entry.max_quantity)
    };
    check_quantity_window(min, max).map_err(|(field, message)| format!("{field} {message}"))?;
    let dripfeed = entry.dripfeed && kind.takes_dripfeed();
    check_type_shape(kind, dripfeed, min, max)
        .map_err(|(field, message)| format!("{field} {message}"))?;
    // Converted first (half-up to the micro-unit), then marked up.
    let rate = marked_up(exchange_rate.convert(entry.rate), markup_percent);
    if !kind.is_flat() {
        check_min_charge(rate, min).map_err(|(field, message)| format!("{field} {message}"))?;
    }
    let clip = |text: &str, fallback: &str| {
        let text = text.trim();
        let text = if text.is_empty() { fallback } else { text };
        text.chars().take(200).collect::<String>()
    };
    Ok(ServiceFields {
        name: clip(
            &entry.name,
            &format!("Service {}", entry.provider_service_id),
        ),
        category: clip(&entry.category, "Uncategorized"),
        kind,
        dripfeed,
        rate,
        min_quantity: min,
        max_quantity: max,
        refill: entry
            .refill
            .unwrap_or_else(|| existing.is_some_and(|s| s.refill)),
        refill_days,
        cancel: entry
            .cancel
            .unwrap_or_else(|| existing.is_some_and(|s| s.cancel)),
        provider: Some((provider_id, entry.provider_service_id.clone())),
        // The provider's words, when it has any; else what we had.
        description: entry
            .description
            .as_deref()
            .and_then(clean_description)
            .or_else(|| existing.and_then(|s| s.description.clone())),
        // A sync leaves what an operator set.
        subscription: existing.map(|s| s.subscription.clone()).unwrap_or_default(),
    })
}

/// Syncs `catalog` (the provider's `services`, just read) into ours; with `dry_run`,
/// only says what would change. Creates and updates commit in one transaction; each
/// disabled service then goes through `disable_service` (its refunds in batches).
pub fn sync_services(
    conn: &mut DbConnection,
    by: Option<&Actor>,
    decided_by: Option<AccountId>,
    provider_id: ProviderId,
    catalog: &[CatalogEntry],
    dry_run: bool,
) -> Result<SyncReport, ApiError> {
    let report = db::write_tx(conn, |conn| {
        let provider =
            providers::find(conn, provider_id)?.ok_or_else(|| ApiError::not_found("provider"))?;
        let ours = service_rows::for_provider(conn, provider_id)?;
        let panel = costs::panel_currency(conn)?;
        let exchange_rate = provider
            .exchange_rate_to(&panel)
            .ok_or_else(|| ApiError::Refused {
                code: ErrorCode::CurrencyMismatch,
                detail: format!(
                    "the provider bills in {} and has no exchange rate to the panel's {panel}; \
                 set its `exchange_rate` first",
                    provider.currency
                ),
            })?;
        let synced_at = db::now();
        let mut report = SyncReport {
            dry_run,
            ..SyncReport::default()
        };
        for entry in catalog {
            let existing = ours.iter().find(|s| {
                s.provider
                    .as_ref()
                    .is_some_and(|p| p.1 == entry.provider_service_id)
            });
            let fields = match fields_for(
                entry,
                provider_id,
                provider.markup_percent,
                exchange_rate,
                existing,
            ) {
                Ok(fields) => fields,
                Err(reason) => {
                    report.skipped.push(Skipped {
                        provider_service_id: entry.provider_service_id.clone(),
                        reason,
                    });
                    continue;
                }
            };
            let converted_rate = exchange_rate.convert(entry.rate);
            let at_loss = fields.rate <= converted_rate;
            let synced = |service_id, changes| SyncedService {
                service_id,
                provider_service_id: entry.provider_service_id.clone(),
                name: fields.name.clone(),
                rate: fields.rate,
                provider_rate: Some(entry.rate),
                converted_rate: Some(converted_rate),
                at_loss,
                kind: fields.kind,
                previous_kind: existing.map(|s| s.kind).filter(|k| *k != fields.kind),
                changes,
            };
            let cost_of = |service_id| ServiceCost {
                service_id,
                provider_id,
                currency: provider.currency.clone(),
                provider_rate: entry.rate,
                exchange_rate,
                converted_rate,
                at_loss,
                synced_at,
            };
            match existing {
                None => {
                    let id = if dry_run {
                        None
                    } else {
                        let id = service_rows::insert(conn, &fields)?.id;
                        costs::upsert_service_cost(conn, &cost_of(id))?;
                        Some(id)
                    };
                    report.created.push(synced(id, Vec::new()));
                }
                Some(current) => {
                    for (flag, said, ours) in [
                        ("refill", entry.refill, current.refill),
                        ("cancel", entry.cancel, current.cancel),
                    ] {
                        if said.is_none() && ours {
                            report.kept.push(KeptFlag {
                                service_id: current.id,
                                provider_service_id: entry.provider_service_id.clone(),
                                flag,
                                reason: format!(
                                    "the provider's catalog has no {flag} key for this service, \
                                     so ours stays on; only an explicit false turns it off"
                                ),
                            });
                        }
                    }
                    let mut changes = Vec::new();
                    let checks: [(&'static str, bool); 10] = [
                        ("name", current.name != fields.name),
                        ("category", current.category != fields.category),
                        ("type", current.kind != fields.kind),
                        ("dripfeed", current.dripfeed != fields.dripfeed),
                        ("description", current.description != fields.description),
                        ("rate", current.rate != fields.rate),
                        ("min", current.min_quantity != fields.min_quantity),
                        ("max", current.max_quantity != fields.max_quantity),
                        ("refill", current.refill != fields.refill),
                        ("cancel", current.cancel != fields.cancel),
                    ];
                    changes.extend(
                        checks
                            .iter()
                            .filter(|(_, differs)| *differs)
                            .map(|(f, _)| *f),
                    );
                    if !dry_run {
                        costs::upsert_service_cost(conn, &cost_of(current.id))?;
                    }
                    if changes.is_empty() {
                        report.unchanged += 1;
                        continue;
                    }
                    if !dry_run {
                        service_rows::update(conn, current.id, &fields)?;
                    }
                    report.updated.push(synced(Some(current.id), changes));
                }
            }
        }
        for gone in ours.iter().filter(|s| {
            s.status == ServiceStatus::Active
                && !catalog.iter().any(|e| {
                    s.provider
                        .as_ref()
                        .is_some_and(|p| p.1 == e.provider_service_id)
                })
        }) {
            report.disabled.push(SyncedService {
                service_id: Some(gone.id),
                provider_service_id: gone
                    .provider
                    .as_ref()
                    .map(|p| p.1.clone())
                    .unwrap_or_default(),
                name: gone.name.clone(),
                rate: gone.rate,
                provider_rate: None,
                converted_rate: None,
                at_loss: false,
                kind: gone.kind,
                previous_kind: None,
                changes: vec!["status"],
            });
        }
        if !dry_run {
            let ids = |list: &[SyncedService]| -> Vec<Option<i64>> {
                list.iter()
                    .map(|s| s.service_id.map(|id| id.get()))
                    .collect()
            };
            let change = AuditChange::new(
                None,
                Some(serde_json::json!({
                    "created": ids(&report.created),
                    "updated": ids(&report.updated),
                    "disabled": ids(&report.disabled),
                    "unchanged": report.unchanged,
                    "skipped": report.skipped.len(),
                })),
            );
            let target = Target::new(AuditTarget::Provider, provider_id.get(), None);
            audit::record_if(conn, by, AuditAction::ProviderCatalogSync, target, &change)?;
        }
        Ok::<_, ApiError>(report)
    })?;
    if !dry_run {
        for gone in &report.disabled {
            if let Some(id) = gone.service_id {
                disable_service(conn, by, decided_by, id)?;
            }
        }
    }
    Ok(report)
}
