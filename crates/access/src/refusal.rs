//! Refusals: a fixed set of reasons (the `reason` label of `sluice_auth_refused_total`), the
//! HTTP status each maps to, and the JSON body clients see.

use http::StatusCode;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// A token or signed URL was needed and none was given.
    MissingToken,
    /// The token or signature does not verify (tampered, wrong key, malformed).
    BadToken,
    /// The token or signed URL is past its `exp`/`expires` (or before its `nbf`).
    Expired,
    /// The token's `stream` pattern does not cover this stream.
    WrongStream,
    /// The token's `action` is not this action.
    WrongAction,
    /// The token is bound to another client address (`ip` claim).
    WrongIp,
    /// The client address is in the rule's `deny_ips` or outside its `allow_ips`.
    IpDenied,
    /// The authorisation webhook answered with a non-2xx status.
    WebhookDenied,
    /// The authorisation webhook failed or timed out (and `webhook_fail_open` is off).
    WebhookError,
    /// The rule says `deny`.
    DenyRule,
    /// The REST API was asked under a host name it does not answer to
    /// (`http.allowed_hosts`; DNS rebinding).
    HostNotAllowed,
    /// A state-changing REST API request came from another site's page (CSRF).
    CrossSite,
}

impl Reason {
    /// Every reason, in label order.
    pub const ALL: [Reason; 12] = [
        Reason::MissingToken,
        Reason::BadToken,
        Reason::Expired,
        Reason::WrongStream,
        Reason::WrongAction,
        Reason::WrongIp,
        Reason::IpDenied,
        Reason::WebhookDenied,
        Reason::WebhookError,
        Reason::DenyRule,
        Reason::HostNotAllowed,
        Reason::CrossSite,
    ];

    /// The metric label and JSON `code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::BadToken => "bad_token",
            Self::Expired => "expired",
            Self::WrongStream => "wrong_stream",
            Self::WrongAction => "wrong_action",
            Self::WrongIp => "wrong_ip",
            Self::IpDenied => "ip_denied",
            Self::WebhookDenied => "webhook_denied",
            Self::WebhookError => "webhook_error",
            Self::DenyRule => "deny_rule",
            Self::HostNotAllowed => "host_not_allowed",
            Self::CrossSite => "cross_site",
        }
    }

    /// 401 when the client has no valid credentials (it may retry with some), 403 when
    /// its credentials are valid but do not allow this, or nothing could.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingToken | Self::BadToken | Self::Expired => StatusCode::UNAUTHORIZED,
            _ => StatusCode::FORBIDDEN,
        }
    }
}

/// A refused publish or play: the reason and a message for the client (never a secret or a
/// token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The fixed reason.
    pub reason: Reason,
    /// A human explanation sent to the client and logged.
    pub message: String,
}

impl Refusal {
    /// A refusal with `reason` and `message`.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.reason.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_statuses_split_401_403() {
        let mut labels: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Reason::ALL.len());
        assert_eq!(Reason::Expired.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(Reason::WrongStream.status(), StatusCode::FORBIDDEN);
        assert_eq!(Reason::IpDenied.status(), StatusCode::FORBIDDEN);
    }
}
