//! The audit log: who did what to which object, when, from where, and what it changed.
//! Written by `application::audit` in the transaction of the change; never edited.

use chrono::NaiveDateTime;

use super::account::Role;
use super::ids::{AccountId, ApiKeyId, AuditEntryId};
use super::string_enum;

string_enum! {
    /// What an operator (or the CLI) did: the closed set of audited actions. Its first
    /// word names the target's kind.
    AuditAction {
        AccountCreate => "account.create",
        AccountSuspend => "account.suspend",
        AccountReactivate => "account.reactivate",
        RefundAllowlistSet => "account.refund_allowlist_set",
        RefundAllowlistEnd => "account.refund_allowlist_end",
        ApiKeyCreate => "api_key.create",
        ApiKeyRevoke => "api_key.revoke",
        TopUpCreate => "top_up.create",
        TopUpRefund => "top_up.refund",
        TopUpChargeback => "top_up.chargeback",
        TopUpRefundSucceed => "refund.gateway_succeed",
        TopUpRefundFail => "refund.gateway_fail",
        RefundApprove => "refund.approve",
        RefundReject => "refund.reject",
        ServiceCreate => "service.create",
        ServiceUpdate => "service.update",
        ServiceDisable => "service.disable",
        ProviderCreate => "provider.create",
        ProviderUpdate => "provider.update",
        ProviderCatalogSync => "provider.catalog_sync",
        OrderOutcome => "order.outcome",
        ForwardingAttach => "order.forwarding_attach",
        ForwardingResend => "order.forwarding_resend",
        RefillComplete => "refill.complete",
        RefillReject => "refill.reject",
        AlertRuleSet => "alert_rule.set",
        WebhookEndpointCreate => "webhook_endpoint.create",
        WebhookEndpointUpdate => "webhook_endpoint.update",
        WebhookEndpointDelete => "webhook_endpoint.delete",
        WebhookEndpointRotateSecret => "webhook_endpoint.rotate_secret",
        SigningKeyRotate => "signing_key.rotate",
        MasterKeyRotate => "master_key.rotate",
        PanelSettingsUpdate => "panel_settings.update",
        SubscriptionRecordPost => "subscription.record_post",
        SubscriptionEnd => "subscription.end",
    }
}

string_enum! {
    /// The kind of object an audit entry is about.
    AuditTarget {
        Account => "account",
        ApiKey => "api_key",
        TopUp => "top_up",
        Refund => "refund",
        Service => "service",
        Provider => "provider",
        Order => "order",
        Refill => "refill",
        WebhookEndpoint => "webhook_endpoint",
        SigningKey => "signing_key",
        MasterKey => "master_key",
        PanelSettings => "panel_settings",
        Subscription => "subscription",
    }
}

string_enum! {
    /// Who acted: an operator through the API (with the account, API key and role of its
    /// token), or the command line on the server (`cli`).
    ActorKind { Operator => "operator", Cli => "cli" }
}

/// Who made a change and from where, as the adapter that received it knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub account_id: Option<AccountId>,
    pub api_key_id: Option<ApiKeyId>,
    pub role: Option<Role>,
    /// The client's address (after the trusted proxy header, when one is configured).
    pub client_addr: Option<String>,
    /// The request's `X-Request-Id`.
    pub request_id: Option<String>,
}

impl Actor {
    /// The command line on the server.
    pub fn cli() -> Actor {
        Actor {
            kind: ActorKind::Cli,
            account_id: None,
            api_key_id: None,
            role: None,
            client_addr: None,
            request_id: None,
        }
    }

    /// An authenticated caller of the API.
    pub fn operator(
        account_id: AccountId,
        api_key_id: ApiKeyId,
        role: Role,
        client_addr: String,
        request_id: Option<String>,
    ) -> Actor {
        Actor {
            kind: ActorKind::Operator,
            account_id: Some(account_id),
            api_key_id: Some(api_key_id),
            role: Some(role),
            client_addr: Some(client_addr),
            request_id: request_id.filter(|id| !id.is_empty()),
        }
    }
}

/// What a change did to its target: the fields before and after (JSON objects; `None`
/// where there was nothing before, or nothing after), and the names of secrets it set or
/// replaced, whose values are never recorded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditChange {
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub secrets: Vec<&'static str>,
}

impl AuditChange {
    pub fn new(before: Option<serde_json::Value>, after: Option<serde_json::Value>) -> AuditChange {
        AuditChange {
            before,
            after,
            secrets: Vec::new(),
        }
    }

    /// Names a secret the change set or replaced (its value is never recorded).
    pub fn with_secret(mut self, name: &'static str) -> AuditChange {
        self.secrets.push(name);
        self
    }
}

/// One entry of the audit log, as stored.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: AuditEntryId,
    pub created_at: NaiveDateTime,
    pub actor: Actor,
    pub action: AuditAction,
    pub target_type: AuditTarget,
    pub target_id: Option<i64>,
    /// The account the change concerns (its owner), when there is one.
    pub account_id: Option<AccountId>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub secrets: Vec<String>,
}

/// The smallest `--audit-retention-days`: an audit log is kept at least a year.
pub const MIN_RETENTION_DAYS: i64 = 365;
