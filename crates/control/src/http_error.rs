//! The one HTTP error type and the HTTP forms of refusals: every HTTP answer that is not a
//! success is `{"code","message"}` JSON with a stable `code` (the API, WHEP/WHIP, HTTP-FLV,
//! HLS, VOD), so clients handle one shape.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::admission::Refusal;
use crate::limits::LimitRefusal;

/// The JSON `code` of a 503 for a limit.
pub const LIMIT_CODE: &str = "limit";

/// An HTTP error: status, a stable `code` and a human `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The status.
    pub status: StatusCode,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// What a human reads.
    pub message: String,
}

impl HttpError {
    /// An error with `status`, a stable `code` and a human `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        json(
            self.status,
            &ErrorBody {
                code: self.code,
                message: &self.message,
            },
        )
    }
}

/// `{"code","message"}` with `status`.
pub fn json_error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    HttpError::new(status, code, message).into_response()
}

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: StatusCode, v: &T) -> Response {
    match serde_json::to_string(v) {
        Ok(s) => (status, [(header::CONTENT_TYPE, "application/json")], s).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "application/json")],
            format!(r#"{{"code":"internal","message":"cannot encode the response: {e}"}}"#),
        )
            .into_response(),
    }
}

/// A 200 JSON response.
pub fn json_body<T: Serialize>(v: &T) -> Response {
    json(StatusCode::OK, v)
}

/// An access-control refusal: 401/403 with `{"code": reason, "message"}`; a 401 also
/// carries `WWW-Authenticate: Bearer`.
pub fn access_refusal(r: access::Refusal) -> Response {
    let status = r.reason.status();
    let mut resp = json_error(status, r.reason.as_str(), r.message);
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

/// A limit: 503 with `{"code":"limit","message":...}` and `Retry-After: 5` (the limit is
/// temporary: someone leaving frees a slot).
pub fn limit_refusal(r: LimitRefusal) -> Response {
    let mut resp = json_error(StatusCode::SERVICE_UNAVAILABLE, LIMIT_CODE, r.message);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}

impl Refusal {
    /// The HTTP answer to a refused publish or play.
    pub fn http(self) -> Response {
        match self {
            Self::Access(r) => access_refusal(r),
            Self::Limit(r) => limit_refusal(r),
            Self::BadName(e) => json_error(StatusCode::BAD_REQUEST, "bad_stream", e.to_string()),
            Self::AlreadyPublishing(key) => json_error(
                StatusCode::CONFLICT,
                "already_publishing",
                format!("stream {key} already has a publisher"),
            ),
            Self::NotFound(key) => json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("stream {key} is not live"),
            ),
            Self::Unavailable(m) => json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m),
        }
    }
}

/// Adds `Access-Control-Allow-Origin: cors` when `cors` is set.
pub fn add_cors(h: &mut HeaderMap, cors: &str) {
    if let Ok(v) = HeaderValue::from_str(cors)
        && !cors.is_empty()
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The client address of a request served by the HTTP listener (`None` when the router is
/// driven without a socket).
pub fn client_addr(extensions: &Extensions) -> Option<SocketAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// The client IP of a request served by the HTTP listener.
pub fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    client_addr(extensions).map(|a| a.ip())
}

/// A request body that stalled for `limits.http_body_timeout_ms`, or came slower on average
/// than `limits.http_body_min_bytes_per_s`: the error a handler reading the body sees (the
/// HTTP listener wraps every request body in that check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the request body stalled (limits.http_body_timeout_ms) or came too slowly \
     (limits.http_body_min_bytes_per_s)"
)]
pub struct BodyTimeout;

/// Whether `e`, or an error in its source chain, is a [`BodyTimeout`].
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    // Bounded: error chains are short, but a cycle must not spin.
    for _ in 0..16 {
        let Some(e) = next else {
            return false;
        };
        if e.is::<BodyTimeout>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// The 408 answer to a body that timed out.
pub fn body_timeout() -> Response {
    json_error(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        BodyTimeout.to_string(),
    )
}

/// The answer to a failed body read: 408 when it timed out, else `other()`.
pub fn body_error_or(e: &axum::Error, other: impl FnOnce() -> Response) -> Response {
    if is_body_timeout(e) {
        body_timeout()
    } else {
        other()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def"),
        );
        assert_eq!(bearer(&h), Some("abc.def"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn refusal_statuses() {
        let r = Refusal::Access(access::Refusal::new(access::Reason::Expired, "x"));
        let resp = r.http();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
        let r = Refusal::Access(access::Refusal::new(access::Reason::DenyRule, "x"));
        assert_eq!(r.http().status(), StatusCode::FORBIDDEN);
        let l = Refusal::Limit(LimitRefusal {
            reason: crate::LimitReason::ViewersPerStream,
            message: "full".into(),
        });
        let resp = l.http();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "5");
    }
}
