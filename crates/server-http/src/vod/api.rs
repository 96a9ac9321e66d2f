//! `/api/v1/vod`: list the VOD directory, upload a file (raw body or `multipart/form-data`),
//! delete one. Uploads stream to a hidden temporary file in the same directory, bounded by
//! `vod.max_upload_bytes`, are checked to be FLV, MP4 or MPEG-TS by their first bytes, and
//! only then appear under their name (a hard link: atomic, never overwrites).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Path as UrlPath, RawQuery, Request, State};
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::names::{SNIFF_LEN, sniff, validate_name};
use control::api::Pagination;
use control::http_error::{HttpError as Refusal, json};

use super::{may_modify, url_of};
use crate::Shared;

/// Most directory entries looked at by one listing (a bigger directory lists the first
/// ones the OS returns).
pub const MAX_LISTED_ENTRIES: usize = 100_000;
/// Most parts read from a multipart upload before the `file` part.
pub const MAX_MULTIPART_FIELDS: usize = 16;
/// Most bytes of multipart parts other than `file` read (and discarded).
pub const MAX_MULTIPART_OTHER_BYTES: u64 = 64 * 1024;

/// One file, as listed.
#[derive(Debug, Serialize)]
struct VodFile {
    name: String,
    bytes: u64,
    modified: String,
    url: String,
}

/// A page of files.
#[derive(Debug, Serialize)]
struct FilePage {
    items: Vec<VodFile>,
    total: usize,
    offset: usize,
    limit: usize,
}

/// The answer to an upload.
#[derive(Debug, Serialize)]
struct Uploaded {
    name: String,
    bytes: u64,
    url: String,
}

/// `GET /api/v1/vod?offset=&limit=`: regular files of the directory (not hidden, names an
/// upload could have), sorted by name.
pub(crate) async fn list(State(shared): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let page = match Pagination::parse(q.as_deref()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let mut files = match scan(&shared.vod_root).await {
        Ok(f) => f,
        Err(e) => {
            return Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("cannot read vod.dir: {e}"),
            )
            .into_response();
        }
    };
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let total = files.len();
    let range = page.range(total);
    let items = files
        .into_iter()
        .skip(range.start)
        .take(range.len())
        .collect();
    json(
        StatusCode::OK,
        &FilePage {
            items,
            total,
            offset: page.offset,
            limit: page.limit,
        },
    )
}

async fn scan(root: &Path) -> std::io::Result<Vec<VodFile>> {
    let mut dir = tokio::fs::read_dir(root).await?;
    let mut out = Vec::new();
    for _ in 0..MAX_LISTED_ENTRIES {
        let Some(entry) = dir.next_entry().await? else {
            break;
        };
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if validate_name(&name).is_err() {
            continue;
        }
        let Ok(meta) = entry.metadata().await else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        out.push(VodFile {
            bytes: meta.len(),
            modified: control::time::rfc3339(meta.modified().unwrap_or(std::time::UNIX_EPOCH)),
            url: url_of(&name),
            name,
        });
    }
    Ok(out)
}

fn remote(ext: &Extensions) -> Option<SocketAddr> {
    control::http_error::client_addr(ext)
}

fn forbidden() -> Refusal {
    Refusal::new(
        StatusCode::FORBIDDEN,
        "upload_forbidden",
        "uploads and deletes are not allowed from this address (vod.upload_from)".to_owned(),
    )
}

fn invalid_name(why: &str) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, "invalid_name", why.to_owned())
}

fn too_large(max: u64) -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        format!("the upload exceeds vod.max_upload_bytes ({max})"),
    )
}

fn exists(name: &str) -> Refusal {
    Refusal::new(
        StatusCode::CONFLICT,
        "exists",
        format!("{name} already exists"),
    )
}

/// Checks an upload's target name and that it is free.
fn check_target(root: &Path, name: &str) -> Result<(), Refusal> {
    validate_name(name).map_err(invalid_name)?;
    if std::fs::symlink_metadata(root.join(name)).is_ok() {
        return Err(exists(name));
    }
    Ok(())
}

/// `POST /api/v1/vod?name=<file>` with the file as the body, or `multipart/form-data` with
/// a `file` part (named by its filename when `name` is absent). 201 `{name, bytes, url}`.
pub(crate) async fn upload(
    State(shared): State<Arc<Shared>>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Response {
    if !may_modify(shared.ctl.config.vod.upload_from, remote(req.extensions())) {
        return forbidden().into_response();
    }
    let root = shared.vod_root.clone();
    let max = shared.ctl.config.vod.max_upload_bytes;
    let name = query_name(q.as_deref());
    if let Some(n) = &name
        && let Err(resp) = check_target(&root, n)
    {
        return resp.into_response();
    }
    if declared_length(req.headers()).is_some_and(|n| n > max) {
        return too_large(max).into_response();
    }
    let result = if is_multipart(req.headers()) {
        upload_multipart(&root, max, name, req).await
    } else {
        let Some(name) = name else {
            return invalid_name("the name query parameter is required for a raw upload")
                .into_response();
        };
        upload_raw(&root, max, name, req).await
    };
    match result {
        Ok(done) => {
            tracing::info!(name = %done.name, bytes = done.bytes, "vod upload stored");
            json(StatusCode::CREATED, &done)
        }
        Err(refusal) => refusal.into_response(),
    }
}

async fn upload_raw(
    root: &Path,
    max: u64,
    name: String,
    req: Request,
) -> Result<Uploaded, Refusal> {
    let mut temp = TempUpload::create(root, max).await?;
    let mut body = req.into_body().into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            if control::http_error::is_body_timeout(&e) {
                body_timed_out()
            } else {
                upload_failed(&e)
            }
        })?;
        temp.push(&chunk).await?;
    }
    temp.commit(&name).await
}

async fn upload_multipart(
    root: &Path,
    max: u64,
    name: Option<String>,
    req: Request,
) -> Result<Uploaded, Refusal> {
    let bad = |e: &(dyn std::error::Error + 'static)| {
        if control::http_error::is_body_timeout(e) {
            return body_timed_out();
        }
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid_multipart",
            format!("malformed multipart body: {e}"),
        )
    };
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| bad(&e))?;
    let mut other_bytes = 0u64;
    for _ in 0..MAX_MULTIPART_FIELDS {
        let Some(mut field) = form.next_field().await.map_err(|e| bad(&e))? else {
            break;
        };
        if field.name() != Some("file") {
            while let Some(chunk) = field.chunk().await.map_err(|e| bad(&e))? {
                other_bytes += chunk.len() as u64;
                if other_bytes > MAX_MULTIPART_OTHER_BYTES {
                    return Err(too_large(max));
                }
            }
            continue;
        }
        let name = match name {
            Some(n) => n,
            None => {
                let n = field.file_name().unwrap_or_default().to_owned();
                check_target(root, &n)?;
                n
            }
        };
        let mut temp = TempUpload::create(root, max).await?;
        while let Some(chunk) = field.chunk().await.map_err(|e| bad(&e))? {
            temp.push(&chunk).await?;
        }
        return temp.commit(&name).await;
    }
    Err(Refusal::new(
        StatusCode::BAD_REQUEST,
        "invalid_multipart",
        "no part named \"file\"".to_owned(),
    ))
}

fn upload_failed(e: &dyn std::fmt::Display) -> Refusal {
    Refusal::new(
        StatusCode::BAD_REQUEST,
        "upload_failed",
        format!("reading the upload failed: {e}"),
    )
}

/// 408: the upload stalled or crawled (`limits.http_body_timeout_ms`); its temporary file is
/// removed.
fn body_timed_out() -> Refusal {
    Refusal::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        control::http_error::BodyTimeout.to_string(),
    )
}

fn internal(e: &dyn std::fmt::Display) -> Refusal {
    Refusal::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("storing the upload failed: {e}"),
    )
}

/// The `name=` query parameter, percent-decoded.
fn query_name(q: Option<&str>) -> Option<String> {
    q?.split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == "name")
        .map(|(_, v)| access::form_decode(v))
}

fn declared_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn is_multipart(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// An upload in progress: a hidden `.upload-<random>.part` file in the VOD directory,
/// removed when this is dropped (error, refusal, client gone, or after it was linked under
/// its final name).
struct TempUpload {
    path: PathBuf,
    root: PathBuf,
    file: tokio::fs::File,
    bytes: u64,
    max: u64,
    head: Vec<u8>,
}

impl TempUpload {
    async fn create(root: &Path, max: u64) -> Result<Self, Refusal> {
        let path = root.join(format!(".upload-{:016x}.part", rand::random::<u64>()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| internal(&e))?;
        Ok(Self {
            path,
            root: root.to_owned(),
            file,
            bytes: 0,
            max,
            head: Vec::with_capacity(SNIFF_LEN),
        })
    }

    async fn push(&mut self, chunk: &[u8]) -> Result<(), Refusal> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.max {
            return Err(too_large(self.max));
        }
        let want = SNIFF_LEN.saturating_sub(self.head.len()).min(chunk.len());
        self.head
            .extend_from_slice(chunk.get(..want).unwrap_or_default());
        self.file.write_all(chunk).await.map_err(|e| internal(&e))
    }

    async fn commit(mut self, name: &str) -> Result<Uploaded, Refusal> {
        if sniff(&self.head).is_none() {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media",
                "not an FLV, MP4 or MPEG-TS file".to_owned(),
            ));
        }
        self.file.flush().await.map_err(|e| internal(&e))?;
        self.file.sync_all().await.map_err(|e| internal(&e))?;
        let target = self.root.join(name);
        // A hard link never replaces an existing file, so two uploads of one name cannot
        // overwrite each other; the temporary name is removed on drop.
        match tokio::fs::hard_link(&self.path, &target).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists(name)),
            Err(_) => {
                // A filesystem without hard links: check, then rename.
                if tokio::fs::symlink_metadata(&target).await.is_ok() {
                    return Err(exists(name));
                }
                tokio::fs::rename(&self.path, &target)
                    .await
                    .map_err(|e| internal(&e))?;
            }
        }
        Ok(Uploaded {
            name: name.to_owned(),
            bytes: self.bytes,
            url: url_of(name),
        })
    }
}

impl Drop for TempUpload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `DELETE /api/v1/vod/{name}`: 204, or 404 when no such file (names an upload could not
/// have are never found).
pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    UrlPath(name): UrlPath<String>,
    ext: Extensions,
) -> Response {
    if !may_modify(shared.ctl.config.vod.upload_from, remote(&ext)) {
        return forbidden().into_response();
    }
    let not_found = || {
        Refusal::new(
            StatusCode::NOT_FOUND,
            "file_not_found",
            format!("no file {name:?}"),
        )
        .into_response()
    };
    if validate_name(&name).is_err() {
        return not_found();
    }
    let path = shared.vod_root.join(&name);
    match tokio::fs::symlink_metadata(&path).await {
        Ok(m) if !m.is_dir() => match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                tracing::info!(%name, "vod file deleted");
                StatusCode::NO_CONTENT.into_response()
            }
            Err(_) => not_found(),
        },
        _ => not_found(),
    }
}

/// The VOD API routes (`/api/v1/vod`, `/api/v1/vod/{name}`); uploads are bounded by
/// `vod.max_upload_bytes`, counted while streaming.
pub(crate) fn routes(shared: Arc<Shared>) -> axum::Router {
    let [.., vod_path, vod_file_path, _, _, _] = control::api::API_ROUTES;
    axum::Router::new()
        .route(
            vod_path,
            axum::routing::get(list)
                .post(upload)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(vod_file_path, axum::routing::delete(delete))
        .with_state(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_from_the_query() {
        assert_eq!(query_name(None), None);
        assert_eq!(query_name(Some("x=1")), None);
        assert_eq!(
            query_name(Some("x=1&name=a%2Eflv")).as_deref(),
            Some("a.flv")
        );
        assert_eq!(query_name(Some("name=a%2Fb")).as_deref(), Some("a/b"));
    }

    #[test]
    fn multipart_detection() {
        let mut h = HeaderMap::new();
        assert!(!is_multipart(&h));
        h.insert(
            header::CONTENT_TYPE,
            "Multipart/Form-Data; boundary=x".parse().unwrap(),
        );
        assert!(is_multipart(&h));
        h.insert(header::CONTENT_TYPE, "video/x-flv".parse().unwrap());
        assert!(!is_multipart(&h));
        h.insert(header::CONTENT_LENGTH, "12".parse().unwrap());
        assert_eq!(declared_length(&h), Some(12));
    }
}
