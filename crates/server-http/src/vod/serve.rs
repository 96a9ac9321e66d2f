//! `GET` and `HEAD /vod/{path}`: a file of the VOD directory, streamed from disk with byte
//! ranges, validators and conditional requests (rules in [`super::range`]).

use std::io::SeekFrom;
use std::path::{Component, Path};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::names::{NameError, request_components};
use super::range::{Conditions, Decision, Validators, content_type, decide};
use access::{Action, StreamName};
use config::RecordAccess;
use control::http_error::{add_cors, bearer, client_ip, json_error};
use control::{Caller, Refusal};

use crate::Shared;

/// Size of the reads (and body chunks) when streaming a file.
pub const READ_CHUNK: usize = 64 * 1024;

fn not_found(what: &str) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such file: /vod/{what}"),
    )
}

/// Serves one file of `vod.dir`. Directories, hidden files and anything resolving outside
/// the directory (through `..`, encoded separators or a symlink) are 404 or 400; there is no
/// directory listing here (the API lists files).
pub(crate) async fn serve(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let raw = uri.path().strip_prefix("/vod/").unwrap_or_default();
    let parts = match request_components(raw) {
        Ok(p) => p,
        Err(NameError::BadPath(why)) => {
            tracing::debug!(path = raw, why, "vod path refused");
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                format!("invalid path: {why}"),
            );
        }
        Err(NameError::Hidden) => return not_found(raw),
    };
    let root = &shared.vod_root;
    let joined = parts.iter().fold(root.clone(), |p, c| p.join(c));
    // Symlinks are followed, then the real path must still be inside the directory and
    // name no hidden file.
    let Ok(real) = tokio::fs::canonicalize(&joined).await else {
        return not_found(raw);
    };
    if !inside(root, &real) {
        tracing::warn!(path = raw, "vod path resolves outside vod.dir");
        return not_found(raw);
    }
    // Access control decides on the file actually served (a symlink's target, not its
    // name), through the same admission as every play.
    if let Err(resp) = authorize(&shared, root, &real, &uri, &headers, &extensions).await {
        return resp;
    }
    let Ok(mut file) = tokio::fs::File::open(&real).await else {
        return not_found(raw);
    };
    let Ok(meta) = file.metadata().await else {
        return not_found(raw);
    };
    if !meta.is_file() {
        return not_found(raw);
    }
    let len = meta.len();
    let validators = Validators::new(len, meta.modified().unwrap_or(UNIX_EPOCH));
    let h = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let conditions = Conditions {
        if_none_match: h(header::IF_NONE_MATCH),
        if_modified_since: h(header::IF_MODIFIED_SINCE),
        range: h(header::RANGE),
        if_range: h(header::IF_RANGE),
    };
    let decision = decide(&conditions, &validators, len);
    let name = parts.last().map_or("", String::as_str);

    let (status, span) = match decision {
        Decision::NotModified => (StatusCode::NOT_MODIFIED, None),
        Decision::Unsatisfiable => {
            let mut resp = json_error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the file has {len} bytes"),
            );
            set(
                resp.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes */{len}"),
            );
            common_headers(&mut resp, &shared, &validators);
            return resp;
        }
        Decision::Full => (StatusCode::OK, Some((0, len))),
        Decision::Partial(r) => (StatusCode::PARTIAL_CONTENT, Some((r.first, r.len()))),
    };
    let mut resp = match span {
        Some((start, count)) if method != Method::HEAD && count > 0 => {
            if start > 0 && file.seek(SeekFrom::Start(start)).await.is_err() {
                return not_found(raw);
            }
            let counter = shared.ctl.clone();
            let stream = ReaderStream::with_capacity(file.take(count), READ_CHUNK).inspect_ok(
                move |chunk| {
                    counter
                        .stats
                        .vod_bytes_out
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                },
            );
            Body::from_stream(stream).into_response()
        }
        _ => Body::empty().into_response(),
    };
    *resp.status_mut() = status;
    common_headers(&mut resp, &shared, &validators);
    if let Some((start, count)) = span {
        let hm = resp.headers_mut();
        set(hm, header::CONTENT_TYPE, content_type(name));
        set(hm, header::CONTENT_LENGTH, &count.to_string());
        if status == StatusCode::PARTIAL_CONTENT {
            let r = super::range::ByteRange {
                first: start,
                last: start + count - 1,
            };
            set(hm, header::CONTENT_RANGE, &r.content_range(len));
        }
    }
    resp
}

/// Whether `real` (canonical) lies under `root` (canonical) with no hidden component.
/// Asks access control whether the client may play the file at `real` (under `root`), as
/// app `vod` and the file's path relative to the directory.
async fn authorize(
    shared: &Shared,
    root: &Path,
    real: &Path,
    uri: &Uri,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Result<(), Response> {
    let rel: Vec<String> = real
        .strip_prefix(root)
        .map(|r| {
            r.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let refused = |r: Refusal| {
        let mut resp = r.http();
        add_cors(
            resp.headers_mut(),
            &shared.ctl.config.http.cors_allow_origin,
        );
        resp
    };
    let name = match recording_of(shared, real) {
        // A recording: the recorded stream's play rule (`record.access = "stream"`).
        Some((app, stream)) => StreamName::new(&app, &stream),
        None => StreamName::file_path("vod", &rel),
    }
    .map_err(|e| refused(e.into()))?;
    let caller = Caller {
        query: uri.query(),
        bearer: bearer(headers),
        ..Caller::new("vod", client_ip(extensions))
    };
    shared
        .ctl
        .authorize(Action::Play, name, &caller)
        .await
        .map(|_| ())
        .map_err(refused)
}

/// The stream a file under the recordings directory recorded, when it is one and
/// `record.access` is "stream".
fn recording_of(shared: &Shared, real: &Path) -> Option<(String, String)> {
    if shared.ctl.config.record.access != RecordAccess::Stream {
        return None;
    }
    let rel: Vec<String> = real
        .strip_prefix(shared.record_root.as_deref()?)
        .ok()?
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    record::names::stream_of(&rel).map(|(a, n)| (a.to_owned(), n.to_owned()))
}

fn inside(root: &Path, real: &Path) -> bool {
    real.strip_prefix(root).is_ok_and(|rel| {
        rel.components().all(|c| match c {
            Component::Normal(s) => !s.to_string_lossy().starts_with('.'),
            _ => false,
        })
    })
}

fn set(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// Headers every file response carries: ranges accepted, validators, caching, CORS.
fn common_headers(resp: &mut Response, shared: &Shared, v: &Validators) {
    let h = resp.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    set(h, header::ETAG, &v.etag);
    set(h, header::LAST_MODIFIED, &v.last_modified());
    set(
        h,
        header::CACHE_CONTROL,
        &format!("public, max-age={}", shared.ctl.config.vod.cache_max_age_s),
    );
    add_cors(h, &shared.ctl.config.http.cors_allow_origin);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_the_root_only() {
        let root = Path::new("/srv/vod");
        assert!(inside(root, Path::new("/srv/vod/a.flv")));
        assert!(inside(root, Path::new("/srv/vod/show/a.flv")));
        assert!(!inside(root, Path::new("/srv/vodka/a.flv")));
        assert!(!inside(root, Path::new("/srv/a.flv")));
        assert!(!inside(root, Path::new("/srv/vod/.upload-1.part")));
        assert!(!inside(root, Path::new("/srv/vod/.git/config")));
    }
}
