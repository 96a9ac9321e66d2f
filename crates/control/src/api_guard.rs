//! The REST API's guard: `auth.api_token` as a bearer token; without one, trust by address
//! (loopback-only when the HTTP listener is not loopback), and then only for requests a
//! browser page of another site cannot make: the `Host` must be a name this server answers
//! to (`http.allowed_hosts`, against DNS rebinding) and a state-changing request must not
//! come from another site (CSRF, by `Sec-Fetch-Site` or `Origin`). Also the token check of
//! `/metrics` (`auth.api_token` or `auth.metrics_token`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request as HttpRequest, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use access::Reason;
use access::origin;

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
    /// 403: no token is set and the request names a host outside `http.allowed_hosts`.
    HostNotAllowed,
    /// 403: no token is set and a state-changing request came from another site's page.
    CrossSite,
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

/// The authority a request was sent to: the URI's (HTTP/2's `:authority`, an absolute-form
/// request line), else the `Host` header. `Err` when `Host` is not text.
fn request_authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Result<Option<&'a str>, ()> {
    if let Some(a) = uri.authority() {
        return Ok(Some(a.as_str()));
    }
    match headers.get(header::HOST) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| ()),
    }
}

/// What a request trusted by its address (no API token) must also pass: a host this server
/// answers to, and for a state-changing method, no sign of another site's page.
pub fn browser_decision(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    allowed_hosts: &[String],
) -> ApiDecision {
    let Ok(authority) = request_authority(uri, headers) else {
        return ApiDecision::HostNotAllowed;
    };
    if !origin::host_allowed(authority, allowed_hosts) {
        return ApiDecision::HostNotAllowed;
    }
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    if origin::is_state_changing(method.as_str())
        && origin::is_cross_site(
            text("sec-fetch-site"),
            text(header::ORIGIN.as_str()),
            authority,
        )
    {
        return ApiDecision::CrossSite;
    }
    ApiDecision::Allow
}

/// Whether a `/metrics` request may be served: always when neither `auth.api_token` nor
/// `auth.metrics_token` is set, else with either as its bearer token.
pub fn metrics_allowed(api_token: &str, metrics_token: &str, bearer: Option<&str>) -> ApiDecision {
    if api_token.is_empty() && metrics_token.is_empty() {
        return ApiDecision::Allow;
    }
    let Some(t) = bearer else {
        return ApiDecision::MissingToken;
    };
    // Both compared, so the time taken says nothing about which one matched.
    let api = !api_token.is_empty() && ct_eq(t, api_token);
    let metrics = !metrics_token.is_empty() && ct_eq(t, metrics_token);
    if api | metrics {
        ApiDecision::Allow
    } else {
        ApiDecision::BadToken
    }
}

/// Middleware of `/api/v1/*`.
pub async fn guard(State(ctl): State<Arc<Control>>, req: HttpRequest, next: Next) -> Response {
    let ip = client_ip(req.extensions());
    let token = &ctl.config.auth.api_token;
    let mut decision = api_decision(ctl.addrs.http, token, ip, bearer(req.headers()));
    if decision == ApiDecision::Allow && token.is_empty() {
        decision = browser_decision(
            req.method(),
            req.uri(),
            req.headers(),
            &ctl.config.http.allowed_hosts,
        );
    }
    match refusal(decision) {
        None => next.run(req).await,
        Some(r) => {
            ctl.auth.count(API_PROTOCOL, API_PROTOCOL, r.0);
            tracing::info!(ip = ?ip, method = %req.method(), path = req.uri().path(),
                reason = r.0.as_str(), "api request refused");
            refusal_response(r)
        }
    }
}

/// The `/metrics` check: `None` to serve, else the 401 answer (counted like the API's).
pub fn metrics_guard(ctl: &Control, headers: &HeaderMap) -> Option<Response> {
    let auth = &ctl.config.auth;
    let decision = metrics_allowed(&auth.api_token, &auth.metrics_token, bearer(headers));
    let r = refusal(decision)?;
    ctl.auth.count("metrics", "metrics", r.0);
    Some(refusal_response(r))
}

type RefusalParts = (Reason, StatusCode, &'static str, &'static str);

fn refusal_response((_, status, code, message): RefusalParts) -> Response {
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

fn refusal(decision: ApiDecision) -> Option<RefusalParts> {
    Some(match decision {
        ApiDecision::Allow => return None,
        ApiDecision::MissingToken => (
            Reason::MissingToken,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this needs Authorization: Bearer <auth.api_token>",
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
        ApiDecision::HostNotAllowed => (
            Reason::HostNotAllowed,
            StatusCode::FORBIDDEN,
            Reason::HostNotAllowed.as_str(),
            "without auth.api_token the API answers only to localhost, IP addresses and the \
             names in http.allowed_hosts: add this host name there, or set auth.api_token",
        ),
        ApiDecision::CrossSite => (
            Reason::CrossSite,
            StatusCode::FORBIDDEN,
            Reason::CrossSite.as_str(),
            "a state-changing API request from another site's page is refused (its Origin or \
             Sec-Fetch-Site says so); use the console on this server, or set auth.api_token",
        ),
    })
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

    fn browser(method: &str, uri: &str, headers: &[(&str, &str)], allowed: &[&str]) -> ApiDecision {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                axum::http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
        browser_decision(
            &method.parse().unwrap(),
            &uri.parse().unwrap(),
            &h,
            &allowed,
        )
    }

    #[test]
    fn foreign_host_names_are_refused_without_a_token() {
        let path = "/api/v1/server";
        assert_eq!(
            browser("GET", path, &[("host", "127.0.0.1:8080")], &[]),
            ApiDecision::Allow
        );
        assert_eq!(
            browser("GET", path, &[("host", "localhost:8080")], &[]),
            ApiDecision::Allow
        );
        assert_eq!(browser("GET", path, &[], &[]), ApiDecision::Allow);
        assert_eq!(
            browser("GET", path, &[("host", "evil.example:8080")], &[]),
            ApiDecision::HostNotAllowed
        );
        assert_eq!(
            browser(
                "GET",
                path,
                &[("host", "media.example")],
                &["media.example"]
            ),
            ApiDecision::Allow
        );
        // HTTP/2: the authority is in the URI.
        assert_eq!(
            browser("GET", "http://evil.example/api/v1/server", &[], &[]),
            ApiDecision::HostNotAllowed
        );
        assert_eq!(
            browser("GET", path, &[("host", "evil.example")], &["*"]),
            ApiDecision::Allow
        );
    }

    #[test]
    fn cross_site_state_changes_are_refused() {
        let path = "/api/v1/streams/live/a/recording";
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(
            browser(
                "POST",
                path,
                &[host, ("origin", "http://evil.example")],
                &[]
            ),
            ApiDecision::CrossSite
        );
        assert_eq!(
            browser(
                "DELETE",
                path,
                &[host, ("sec-fetch-site", "same-site")],
                &[]
            ),
            ApiDecision::CrossSite
        );
        assert_eq!(
            browser(
                "POST",
                path,
                &[host, ("origin", "http://127.0.0.1:8080")],
                &[]
            ),
            ApiDecision::Allow
        );
        assert_eq!(browser("POST", path, &[host], &[]), ApiDecision::Allow);
        // Reads are not state changes (and cross-origin reads are the browser's to stop).
        assert_eq!(
            browser("GET", path, &[host, ("origin", "http://evil.example")], &[]),
            ApiDecision::Allow
        );
    }

    #[test]
    fn metrics_take_either_token_once_one_is_set() {
        assert_eq!(metrics_allowed("", "", None), ApiDecision::Allow);
        assert_eq!(metrics_allowed("api", "", None), ApiDecision::MissingToken);
        assert_eq!(metrics_allowed("api", "", Some("api")), ApiDecision::Allow);
        assert_eq!(metrics_allowed("api", "", Some("x")), ApiDecision::BadToken);
        assert_eq!(metrics_allowed("api", "m", Some("m")), ApiDecision::Allow);
        assert_eq!(metrics_allowed("", "m", Some("m")), ApiDecision::Allow);
        assert_eq!(metrics_allowed("", "m", Some("")), ApiDecision::BadToken);
        assert_eq!(metrics_allowed("", "m", None), ApiDecision::MissingToken);
    }
}
