//! Reading a provider's catalog (`action=services`) for a catalog sync.

use super::client::{call, Reply};
use super::dialect::parse_services;
use crate::domain::provider::Provider;
use crate::domain::service::CatalogEntry;
use crate::metrics;

/// The provider's services, or why they could not be read. Blocking: call off the
/// async runtime.
pub fn fetch_services(provider: &Provider) -> Result<Vec<CatalogEntry>, String> {
    let reply = call(provider, &[("action", "services")]);
    let read = match &reply {
        Reply::Answered { status, body } => parse_services(body).ok_or_else(|| {
            let mut end = body.len().min(200);
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            format!(
                "the provider's services reply is unreadable (HTTP {status}): {}",
                &body[..end]
            )
        }),
        Reply::NotSent(e) | Reply::Lost(e) => Err(format!("the provider did not answer: {e}")),
    };
    let label = if read.is_ok() { "read" } else { "unreadable" };
    metrics::PROVIDER_REQUESTS.inc(&[&provider.id.to_string(), "services", label]);
    read
}

impl super::worker::Worker {
    /// The scheduled catalog sync: every `--service-sync-interval-secs`, the process that
    /// takes the `service_sync` turn syncs each enabled provider with `auto_sync`, as
    /// `POST /v1/admin/providers/{id}/sync-services` does (creates, updates, disables with
    /// their refunds and upstream cancels). A catalog that cannot be read changes nothing.
    pub(super) fn sync_catalogs(&self) -> Result<(), diesel::result::Error> {
        let mut conn = self.connection()?;
        let due: Vec<Provider> = crate::db::providers::all(&mut conn)?
            .into_iter()
            .filter(|p| p.enabled && p.auto_sync)
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let every = chrono::Duration::seconds(self.config.service_sync_interval_secs as i64);
        let turn = crate::db::write_tx(&mut conn, |conn| {
            crate::db::jobs::take_turn(conn, "service_sync", &self.owner, every)
        })?;
        if !turn {
            return Ok(());
        }
        for provider in due {
            let synced = fetch_services(&provider)
                .map_err(|e| e.to_string())
                .and_then(|catalog| {
                    crate::application::catalog::sync_services(
                        &mut conn,
                        None,
                        provider.id,
                        &catalog,
                        false,
                    )
                    .map_err(|e| e.to_string())
                });
            match synced {
                Ok(report) => tracing::info!(
                    provider = provider.id,
                    created = report.created.len(),
                    updated = report.updated.len(),
                    disabled = report.disabled.len(),
                    "scheduled catalog sync"
                ),
                Err(error) => {
                    tracing::warn!(provider = provider.id, %error, "scheduled catalog sync failed")
                }
            }
        }
        Ok(())
    }
}
