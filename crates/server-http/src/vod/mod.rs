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

use config::UploadFrom;

use crate::HttpError;

/// Creates `dir` when missing and returns its canonical path (what served paths must stay
/// under).
pub(crate) fn prepare_dir(dir: &Path) -> Result<PathBuf, HttpError> {
    let err = |source| HttpError::VodDir {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    std::fs::canonicalize(dir).map_err(err)
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
