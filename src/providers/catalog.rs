//! Reading a provider's catalog (`action=services`) for a catalog sync.

use super::client::{call, unreadable_reply, Reply};
use super::dialect::parse_services;
use crate::db::{self, provider_orders, DbConnection};
use crate::domain::ids::ProviderId;
use crate::domain::provider::Provider;
use crate::domain::service::CatalogEntry;
use crate::metrics;

/// One `action=services` exchange: what it read, and what the attempt log keeps of it.
pub struct ServicesReply {
    /// The provider's services, or why they could not be read (an HTML page is named,
    /// never quoted).
    pub catalog: Result<Vec<CatalogEntry>, String>,
    http_status: Option<u16>,
    body: String,
}

impl ServicesReply {
    /// Keeps the exchange in the provider's attempt log, with the reply's first bytes.
    pub fn record(
        &self,
        conn: &mut DbConnection,
        provider_id: ProviderId,
    ) -> diesel::QueryResult<()> {
        let label = if self.catalog.is_ok() {
            "read"
        } else {
            "unreadable"
        };
        db::write_tx(conn, |conn| {
            provider_orders::record_attempt(
                conn,
                provider_id,
                None,
                "services",
                label,
                self.http_status,
                &self.body,
            )
        })
    }
}

/// Asks the provider for its services. Blocking: call off the async runtime.
pub fn fetch_services(provider: &Provider) -> ServicesReply {
    let reply = call(provider, &[("action", "services")]);
    let (catalog, http_status, body) = match reply {
        Reply::Answered { status, body } => (
            parse_services(&body).ok_or_else(|| unreadable_reply("services", Some(status), &body)),
            Some(status),
            body,
        ),
        Reply::NotSent(e) | Reply::Lost(e) => {
            (Err(format!("the provider did not answer: {e}")), None, e)
        }
    };
    let label = if catalog.is_ok() {
        "read"
    } else {
        "unreadable"
    };
    metrics::PROVIDER_REQUESTS.inc(&[&provider.id.to_string(), "services", label]);
    ServicesReply {
        catalog,
        http_status,
        body,
    }
}

impl super::worker::Worker {
    /// The scheduled catalog sync: every `--service-sync-interval-secs`, the process that
    /// takes the provider's `service_sync:{id}` turn syncs it when it is enabled with
    /// `auto_sync`, as `POST /v1/admin/providers/{id}/sync-services` does (creates, updates,
    /// disables with their refunds and upstream cancels). A catalog that cannot be read
    /// changes nothing.
    pub(super) fn sync_catalog(&self, provider: &Provider) -> Result<(), diesel::result::Error> {
        if !provider.enabled || !provider.auto_sync {
            return Ok(());
        }
        let every = chrono::Duration::seconds(self.config.service_sync_interval_secs as i64);
        let job = format!("service_sync:{}", provider.id);
        let turn = crate::db::write_tx(&mut *self.connection()?, |conn| {
            crate::db::jobs::take_turn(conn, &job, &self.owner, every)
        })?;
        if !turn {
            return Ok(());
        }
        // No pooled connection is held while the provider answers (or hangs).
        let fetched = fetch_services(provider);
        let mut conn = self.connection()?;
        fetched.record(&mut conn, provider.id)?;
        let synced = fetched.catalog.and_then(|catalog| {
            crate::application::catalog::sync_services(
                &mut conn,
                None,
                None,
                provider.id,
                &catalog,
                false,
            )
            .map_err(|e| e.to_string())
        });
        match synced {
            Ok(report) => tracing::info!(
                provider = provider.id.get(),
                created = report.created.len(),
                updated = report.updated.len(),
                disabled = report.disabled.len(),
                "scheduled catalog sync"
            ),
            Err(error) => {
                tracing::warn!(provider = provider.id.get(), %error, "scheduled catalog sync failed")
            }
        }
        Ok(())
    }
}
