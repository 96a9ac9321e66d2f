//! The recording endpoints of the REST API:
//! `GET /api/v1/recordings`, `POST` and `DELETE /api/v1/streams/{app}/{stream}/recording`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{RecordError, Recording};
use config::RecordFormat;
use control::http_error::{HttpError, json_body};

use crate::Recorder;

/// Largest request body accepted by `POST .../recording`.
const MAX_START_BODY: usize = 4096;

/// One recording in progress.
#[derive(Debug, Serialize)]
struct RecordingInfo {
    id: String,
    stream: String,
    format: RecordFormat,
    /// The file being written now.
    path: String,
    bytes: u64,
    files: u64,
    started_at: String,
}

impl RecordingInfo {
    fn of(r: &Recording) -> Self {
        Self {
            id: r.id.to_string(),
            stream: r.stream.clone(),
            format: r.format,
            path: r.current_path().to_string_lossy().into_owned(),
            bytes: r.bytes.load(Ordering::Relaxed),
            files: r.files.load(Ordering::Relaxed),
            started_at: control::time::rfc3339(
                UNIX_EPOCH + Duration::from_millis(r.started_unix_ms),
            ),
        }
    }
}

#[derive(Debug, Serialize)]
struct RecordingList {
    recordings: Vec<RecordingInfo>,
}

/// Optional body of `POST .../recording`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    format: Option<RecordFormat>,
}

/// `GET /api/v1/recordings`: recordings in progress.
async fn list(State(rec): State<Arc<Recorder>>) -> Response {
    let recordings = rec.list().iter().map(|r| RecordingInfo::of(r)).collect();
    json_body(&RecordingList { recordings })
}

/// Whether `headers` declare a JSON body (`application/json` or `application/*+json`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        })
}

/// `POST /api/v1/streams/{app}/{stream}/recording`: starts recording (body: optional JSON
/// `{"format": "mp4"|"flv"}`, default `record.format`). A body must be declared
/// `application/json`: a form or `text/plain` body, which any web page can send without the
/// browser asking first (CORS preflight), is refused with 415.
async fn start(
    State(rec): State<Arc<Recorder>>,
    Path((app, stream)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let key = format!("{app}/{stream}");
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "body over 4 KiB",
        )
        .into_response()
    };
    let body = match axum::body::to_bytes(body, MAX_START_BODY).await {
        Ok(b) => b,
        Err(e) => return control::http_error::body_error_or(&e, too_large),
    };
    let req: StartRequest = if body.iter().all(u8::is_ascii_whitespace) {
        StartRequest::default()
    } else if !is_json(&headers) {
        return HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON, sent with Content-Type: application/json",
        )
        .into_response();
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return HttpError::new(StatusCode::BAD_REQUEST, "invalid_body", e.to_string())
                    .into_response();
            }
        }
    };
    let format = req.format.unwrap_or(rec.ctl.config.record.format);
    match super::start(&rec, &key, format) {
        Ok(r) => (StatusCode::CREATED, json_body(&RecordingInfo::of(&r))).into_response(),
        Err(e @ RecordError::NoStream(_)) => {
            HttpError::new(StatusCode::NOT_FOUND, "stream_not_found", e.to_string()).into_response()
        }
        Err(e @ RecordError::AlreadyRecording(_)) => {
            HttpError::new(StatusCode::CONFLICT, "already_recording", e.to_string()).into_response()
        }
    }
}

/// `DELETE /api/v1/streams/{app}/{stream}/recording`: stops recording; the file is completed
/// in the background.
async fn stop(
    State(rec): State<Arc<Recorder>>,
    Path((app, stream)): Path<(String, String)>,
) -> Response {
    let key = format!("{app}/{stream}");
    match rec.get(&key) {
        Some(r) => {
            r.stop();
            StatusCode::NO_CONTENT.into_response()
        }
        None => HttpError::new(
            StatusCode::NOT_FOUND,
            "not_recording",
            format!("stream {key:?} is not being recorded"),
        )
        .into_response(),
    }
}

/// The recording routes, with the recorder as state.
pub(crate) fn routes(rec: Arc<Recorder>) -> axum::Router {
    let [.., recordings_path, recording_path, _, _, _, _, _] = control::api::API_ROUTES;
    axum::Router::new()
        .route(recordings_path, axum::routing::get(list))
        .route(recording_path, axum::routing::post(start).delete(stop))
        .with_state(rec)
}
