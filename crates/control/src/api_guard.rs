//! The REST API's guard: `auth.api_token` as a bearer token, or loopback-only when no token
//! is set and the HTTP listener is not loopback.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request as HttpRequest, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use access::Reason;

use crate::Control;
use crate::auth::API_PROTOCOL;
use crate::http_error::{HttpError, bearer, client_ip};

/// What the API guard decides for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiDecision {
    /// Serve it.
    Allow,
    /// 401: a token is set and the request has none.
    MissingToken,
    /// 401: a token is set and the request's does not match.
    BadToken,
    /// 403: no token is set, the listener is not loopback and the client is not either.
    LoopbackOnly,
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        v4 => v4.is_loopback(),
    }
}

/// Equal in constant time (the digests hide the lengths).
fn ct_eq(a: &str, b: &str) -> bool {
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// The decision for a client at `client` with `bearer`, on a listener bound to `listen`.
pub fn api_decision(
    listen: SocketAddr,
    api_token: &str,
    client: Option<IpAddr>,
    bearer: Option<&str>,
) -> ApiDecision {
    if !api_token.is_empty() {
        return match bearer {
            None => ApiDecision::MissingToken,
            Some(t) if ct_eq(t, api_token) => ApiDecision::Allow,
            Some(_) => ApiDecision::BadToken,
        };
    }
    // Without a socket (the router driven directly) there is no remote client.
    if is_loopback(listen.ip()) || client.is_none_or(is_loopback) {
        ApiDecision::Allow
    } else {
        ApiDecision::LoopbackOnly
    }
}

/// Middleware of `/api/v1/*`.
pub async fn guard(State(ctl): State<Arc<Control>>, req: HttpRequest, next: Next) -> Response {
    let ip = client_ip(req.extensions());
    let decision = api_decision(
        ctl.addrs.http,
        &ctl.config.auth.api_token,
        ip,
        bearer(req.headers()),
    );
    let (reason, status, code, message) = match decision {
        ApiDecision::Allow => return next.run(req).await,
        ApiDecision::MissingToken => (
            Reason::MissingToken,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this API needs Authorization: Bearer <auth.api_token>",
        ),
        ApiDecision::BadToken => (
            Reason::BadToken,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the API token is not valid",
        ),
        ApiDecision::LoopbackOnly => (
            Reason::IpDenied,
            StatusCode::FORBIDDEN,
            "api_token_required",
            "the API is served to loopback clients only: set auth.api_token \
             (SLUICE_AUTH_API_TOKEN) to use it from other hosts",
        ),
    };
    ctl.auth.count(API_PROTOCOL, API_PROTOCOL, reason);
    tracing::info!(ip = ?ip, path = req.uri().path(), reason = reason.as_str(), "api request refused");
    let mut resp =
        axum::response::IntoResponse::into_response(HttpError::new(status, code, message));
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn token_when_set() {
        let l = a("0.0.0.0:8080");
        assert_eq!(
            api_decision(l, "t0k", ip("127.0.0.1"), None),
            ApiDecision::MissingToken
        );
        assert_eq!(
            api_decision(l, "t0k", ip("127.0.0.1"), Some("t0K")),
            ApiDecision::BadToken
        );
        assert_eq!(
            api_decision(l, "t0k", ip("203.0.113.1"), Some("t0k")),
            ApiDecision::Allow
        );
    }

    #[test]
    fn loopback_only_without_token_on_a_public_listener() {
        let public = a("0.0.0.0:8080");
        assert_eq!(
            api_decision(public, "", ip("203.0.113.1"), None),
            ApiDecision::LoopbackOnly
        );
        assert_eq!(
            api_decision(public, "", ip("10.0.0.2"), Some("x")),
            ApiDecision::LoopbackOnly
        );
        assert_eq!(
            api_decision(public, "", ip("127.0.0.1"), None),
            ApiDecision::Allow
        );
        assert_eq!(
            api_decision(public, "", ip("::1"), None),
            ApiDecision::Allow
        );
        assert_eq!(
            api_decision(public, "", ip("::ffff:127.0.0.1"), None),
            ApiDecision::Allow
        );
        let private = a("127.0.0.1:8080");
        assert_eq!(
            api_decision(private, "", ip("203.0.113.1"), None),
            ApiDecision::Allow
        );
        assert_eq!(
            api_decision(a("[::]:8080"), "", ip("2001:db8::1"), None),
            ApiDecision::LoopbackOnly
        );
    }
}
