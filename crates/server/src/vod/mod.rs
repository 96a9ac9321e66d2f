//! Video on demand: files of `vod.dir` served on `GET|HEAD /vod/{path}` with byte ranges and
//! validators ([`serve`]), and listed, uploaded and deleted under `/api/v1/vod` ([`api`]).
//!
//! The HTTP rules (ranges, conditionals, content types) are pure functions in [`range`]; the
//! naming rules (no traversal, upload names, format sniffing) in [`names`].

pub(crate) mod api;
pub(crate) mod names;
pub(crate) mod range;
pub(crate) mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::ServerError;
use crate::config::UploadFrom;

/// Creates `dir` when missing and returns its canonical path (what served paths must stay
/// under).
pub(crate) fn prepare_dir(dir: &Path) -> Result<PathBuf, ServerError> {
    let err = |source| ServerError::VodDir {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    std::fs::canonicalize(dir).map_err(err)
}

/// A JSON error `{"code","message"}`, as the API answers.
pub(crate) fn json_error(status: StatusCode, code: &'static str, message: String) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        code: &'a str,
        message: &'a str,
    }
    json(
        status,
        &Body {
            code,
            message: &message,
        },
    )
}

/// A refused request: status and JSON error, small enough to travel in a `Result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl Refusal {
    /// A refusal with `status`, a stable `code` and a human `message`.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: String) -> Self {
        Self {
            status,
            code,
            message,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        json_error(self.status, self.code, self.message)
    }
}

/// A JSON response.
pub(crate) fn json<T: Serialize>(status: StatusCode, v: &T) -> Response {
    match serde_json::to_string(v) {
        Ok(s) => (status, [(header::CONTENT_TYPE, "application/json")], s).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the response: {e}"),
        )
            .into_response(),
    }
}

/// Adds `Access-Control-Allow-Origin` when configured (as the FLV route does).
pub(crate) fn add_cors(h: &mut HeaderMap, cors: &str) {
    if let Ok(v) = HeaderValue::from_str(cors)
        && !cors.is_empty()
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
}

/// Whether a client at `remote` may upload or delete under `policy` (`None`: the address is
/// unknown, as when the router runs without a socket, which only `any` allows).
pub(crate) fn may_modify(policy: UploadFrom, remote: Option<SocketAddr>) -> bool {
    match policy {
        UploadFrom::Any => true,
        UploadFrom::Off => false,
        UploadFrom::Loopback => remote.is_some_and(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => v4.is_loopback(),
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        }),
    }
}

/// The URL path a file of the VOD directory is served at.
pub(crate) fn url_of(name: &str) -> String {
    format!("/vod/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_policy() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let local6: SocketAddr = "[::1]:5000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        for a in [local, local6, mapped] {
            assert!(may_modify(UploadFrom::Loopback, Some(a)), "{a}");
            assert!(!may_modify(UploadFrom::Off, Some(a)), "{a}");
        }
        assert!(!may_modify(UploadFrom::Loopback, Some(remote)));
        assert!(!may_modify(UploadFrom::Loopback, None));
        assert!(may_modify(UploadFrom::Any, Some(remote)));
        assert!(may_modify(UploadFrom::Any, None));
    }
}
