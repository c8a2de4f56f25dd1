//! Cancel requests: a cancel of an order the provider already has is a request to the
//! provider; the order ends (and is refunded) only by the provider's next status.

use super::string_enum;

string_enum! {
    /// The provider's answer to a cancel request: `pending` (not answered yet), `accepted`
    /// (the provider will cancel; the refund follows its next status), `refused` (the
    /// order continues; `reason` says why), `failed` (no answer after every retry).
    CancelStatus {
        Pending => "pending",
        Accepted => "accepted",
        Refused => "refused",
        Failed => "failed",
    }
}

string_enum! {
    /// Who asked for a cancel upstream.
    CancelSource { Reseller => "reseller", ServiceDisabled => "service_disabled" }
}
