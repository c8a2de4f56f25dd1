//! Events, webhook endpoints and their deliveries, as the rest of the code sees them.

use std::net::IpAddr;

use chrono::NaiveDateTime;
use secrecy::{ExposeSecret, SecretString};

use super::string_enum;
use crate::domain::ids::{AccountId, EndpointId, EventId};

string_enum! {
    /// What happened. Reseller events belong to one account; `alert.*` events are the
    /// operators'. `ping` is sent by `POST /v1/webhook-endpoints/{id}/test` only.
    EventType {
        OrderCreated => "order.created",
        OrderStatusChanged => "order.status_changed",
        RefundSucceeded => "refund.succeeded",
        RefundPendingReview => "refund.pending_review",
        RefundApproved => "refund.approved",
        RefundRejected => "refund.rejected",
        TopUpSucceeded => "top_up.succeeded",
        TopUpRefundSucceeded => "top_up_refund.succeeded",
        TopUpRefundFailed => "top_up_refund.failed",
        ChargebackCreated => "chargeback.created",
        AccountSuspended => "account.suspended",
        AccountReactivated => "account.reactivated",
        RefillCreated => "refill.created",
        RefillStatusChanged => "refill.status_changed",
        AlertRaised => "alert.raised",
        AlertEscalated => "alert.escalated",
        AlertCleared => "alert.cleared",
        ProviderCurrencyMismatch => "provider.currency_mismatch",
        SubscriptionCreated => "subscription.created",
        SubscriptionStatusChanged => "subscription.status_changed",
        SubscriptionChildCreated => "subscription.child_created",
        Ping => "ping",
    }
}

impl EventType {
    /// Events about the panel as a whole, for operators only.
    pub fn is_operator_only(self) -> bool {
        matches!(
            self,
            EventType::AlertRaised
                | EventType::AlertEscalated
                | EventType::AlertCleared
                | EventType::ProviderCurrencyMismatch
        )
    }
}

/// One event of the log.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: EventId,
    pub event_type: EventType,
    /// Null for operator events.
    pub account_id: Option<AccountId>,
    pub data: serde_json::Value,
    pub created_at: NaiveDateTime,
}

string_enum! {
    /// `enabled` endpoints receive deliveries; `disabled` ones (by their owner, by a 410
    /// Gone, or after failing for days) receive none until enabled again.
    EndpointStatus {
        Enabled => "enabled",
        Disabled => "disabled",
    }
}

/// A webhook endpoint with its signing secrets.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: EndpointId,
    pub account_id: AccountId,
    pub url: String,
    /// Empty: every event the owner may see.
    pub event_types: Vec<EventType>,
    pub description: Option<String>,
    pub secret: SecretString,
    pub previous_secret: Option<SecretString>,
    pub previous_secret_until: Option<NaiveDateTime>,
    pub status: EndpointStatus,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Endpoint {
    /// Whether this endpoint subscribes to events of `event_type`.
    pub fn wants(&self, event_type: EventType) -> bool {
        event_type != EventType::Ping
            && (self.event_types.is_empty() || self.event_types.contains(&event_type))
    }

    /// The secrets that sign a delivery made at `now`: the current one, and the previous
    /// one during its grace period after a rotation.
    pub fn signing_secrets(&self, now: NaiveDateTime) -> Vec<&str> {
        let mut secrets = vec![self.secret.expose_secret()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_secret_until) {
            if now < until {
                secrets.push(previous.expose_secret());
            }
        }
        secrets
    }
}

/// Stored comma-separated; empty is "all".
pub fn join_event_types(types: &[EventType]) -> String {
    types
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

string_enum! {
    /// `pending` until a 2xx answer; `failed` after the last attempt of the schedule, a
    /// 410 Gone, or when its endpoint was disabled.
    DeliveryState {
        Pending => "pending",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

/// Addresses a webhook may never reach unless the operator allows private targets:
/// loopback, private (RFC 1918, unique-local, the deprecated site-local `fec0::/10`),
/// link-local (cloud metadata lives at 169.254.169.254), carrier-grade NAT, unspecified,
/// multicast, broadcast, documentation and discard ranges; and every IPv6 address that
/// carries an IPv4 address (IPv4-mapped and -compatible, IPv4-translated, NAT64, 6to4,
/// Teredo) is judged by the IPv4 address it carries, since a relay or the host's own
/// stack may deliver it there.
pub fn is_forbidden_target(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            let carried = carried_ipv4(v6);
            if !carried.is_empty() {
                return carried
                    .into_iter()
                    .any(|v4| is_forbidden_target(IpAddr::V4(v4)));
            }
            let [first, second, third, fourth, ..] = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique-local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated, still routed by some hosts)
                || (first == 0x2001 && second == 0x0db8) // documentation 2001:db8::/32
                || ((first & 0xfff0) == 0x3ff0 && (second & 0xf000) == 0) // documentation 3fff::/20
                || (first == 0x0100 && second == 0 && third == 0 && fourth == 0) // discard 100::/64
                || (first == 0x0064 && second == 0xff9b) // NAT64 64:ff9b::/32 outside the /96 judged above, 64:ff9b:1::/48 included
        }
    }
}

/// The IPv4 addresses an IPv6 address carries, in the forms that embed one: IPv4-mapped
/// (`::ffff:0:0/96`) and IPv4-compatible (`::/96`, which also holds `::` and `::1`),
/// IPv4-translated (`::ffff:0:0:0/96`), NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`, the
/// address after the prefix) and Teredo (`2001::/32`: its server, and its client stored
/// inverted in the last 32 bits).
fn carried_ipv4(v6: std::net::Ipv6Addr) -> Vec<std::net::Ipv4Addr> {
    let s = v6.segments();
    let v4 =
        |high: u16, low: u16| std::net::Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match s {
        [0, 0, 0, 0, 0, 0xffff, h, l] | [0, 0, 0, 0, 0, 0, h, l] => vec![v4(h, l)],
        [0, 0, 0, 0, 0xffff, 0, h, l] => vec![v4(h, l)],
        [0x0064, 0xff9b, 0, 0, 0, 0, h, l] => vec![v4(h, l)],
        [0x2002, h, l, ..] => vec![v4(h, l)],
        [0x2001, 0, sh, sl, _, _, ch, cl] => vec![v4(sh, sl), v4(!ch, !cl)],
        _ => Vec::new(),
    }
}

/// The Standard Webhooks retry schedule: the wait before each attempt, the first
/// immediate (0 s, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h).
pub const STANDARD_SCHEDULE: &[u64] = &[0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400];

/// Parses `--webhook-retry-schedule`: comma-separated seconds, at least one, at most 50.
pub fn parse_schedule(raw: &str) -> Result<Vec<u64>, String> {
    let waits = raw
        .split(',')
        .map(|part| {
            part.trim()
                .parse::<u64>()
                .map_err(|_| format!("`{part}` is not a whole number of seconds"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if waits.is_empty() || waits.len() > 50 {
        return Err("give 1 to 50 waits in seconds, e.g. 0,5,300".into());
    }
    if waits.iter().any(|&w| w > 7 * 86_400) {
        return Err("a wait may be at most 7 days".into());
    }
    Ok(waits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_debugged_shows_neither_signing_secret() {
        let at = chrono::DateTime::UNIX_EPOCH.naive_utc();
        let endpoint = Endpoint {
            id: EndpointId(1),
            account_id: AccountId(2),
            url: "https://hooks.example/in".into(),
            event_types: vec![],
            description: None,
            secret: "whsec_currentcurrentcurrent".to_string().into(),
            previous_secret: Some("whsec_previouspreviousprevious".to_string().into()),
            previous_secret_until: Some(at + chrono::Duration::hours(1)),
            status: EndpointStatus::Enabled,
            disabled_reason: None,
            failing_since: None,
            created_at: at,
            updated_at: at,
        };
        let shown = format!("{endpoint:?}");
        assert!(!shown.contains("currentcurrent"), "{shown}");
        assert!(!shown.contains("previousprevious"), "{shown}");
        // Signing is where they are used.
        assert_eq!(
            endpoint.signing_secrets(at),
            [
                "whsec_currentcurrentcurrent",
                "whsec_previouspreviousprevious"
            ]
        );
    }

    #[test]
    fn private_and_metadata_targets_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            // Every IPv6 form that carries an internal IPv4 address.
            "::127.0.0.1",
            "::10.0.0.1",
            "::ffff:0:127.0.0.1",
            "::ffff:0:169.254.169.254",
            "64:ff9b::10.1.2.3",
            "64:ff9b:1::1",
            "64:ff9b::1:7f00:1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            // Teredo: server 127.0.0.1; then a public server whose client (inverted) is 10.0.0.1.
            "2001:0:7f00:1::1",
            "2001:0:5db8:d822:0:0:f5ff:fffe",
            "fec0::1",
            "fed0::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
        ] {
            assert!(is_forbidden_target(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
            // Teredo with public server 93.184.216.34 and public client 8.8.8.8 (inverted).
            "2001:0:5db8:d822:0:0:f7f7:f7f7",
        ] {
            assert!(!is_forbidden_target(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn schedules_parse_strictly() {
        assert_eq!(parse_schedule("0,1,2").unwrap(), vec![0, 1, 2]);
        assert!(parse_schedule("").is_err());
        assert!(parse_schedule("1,x").is_err());
        assert!(parse_schedule("-1").is_err());
        assert_eq!(STANDARD_SCHEDULE.len(), 10);
    }

    #[test]
    fn event_types_keep_their_wire_names() {
        for t in EventType::ALL {
            assert_eq!(EventType::try_from(t.as_str().to_string()), Ok(*t));
        }
        assert!(EventType::try_from("order.deleted".to_string()).is_err());
    }
}
