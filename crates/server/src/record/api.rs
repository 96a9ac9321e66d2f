//! The recording endpoints of the REST API:
//! `GET /api/v1/recordings`, `POST` and `DELETE /api/v1/streams/{app}/{stream}/recording`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{RecordError, Recording};
use crate::Shared;
use crate::api::{ApiError, json_body};
use crate::config::RecordFormat;

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
            started_at: crate::sessions::rfc3339(
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
pub(crate) async fn list(State(shared): State<Arc<Shared>>) -> Response {
    let recordings = shared
        .recorder
        .list()
        .iter()
        .map(|r| RecordingInfo::of(r))
        .collect();
    json_body(&RecordingList { recordings })
}

/// `POST /api/v1/streams/{app}/{stream}/recording`: starts recording (body: optional JSON
/// `{"format": "mp4"|"flv"}`, default `record.format`).
pub(crate) async fn start(
    State(shared): State<Arc<Shared>>,
    Path((app, stream)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let key = format!("{app}/{stream}");
    if body.len() > MAX_START_BODY {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "body over 4 KiB",
        )
        .into_response();
    }
    let req: StartRequest = if body.iter().all(u8::is_ascii_whitespace) {
        StartRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.to_string())
                    .into_response();
            }
        }
    };
    let format = req.format.unwrap_or(shared.config.record.format);
    match super::start(&shared, &key, format) {
        Ok(r) => (StatusCode::CREATED, json_body(&RecordingInfo::of(&r))).into_response(),
        Err(e @ RecordError::NoStream(_)) => {
            ApiError::new(StatusCode::NOT_FOUND, "stream_not_found", e.to_string()).into_response()
        }
        Err(e @ RecordError::AlreadyRecording(_)) => {
            ApiError::new(StatusCode::CONFLICT, "already_recording", e.to_string()).into_response()
        }
    }
}

/// `DELETE /api/v1/streams/{app}/{stream}/recording`: stops recording; the file is completed
/// in the background.
pub(crate) async fn stop(
    State(shared): State<Arc<Shared>>,
    Path((app, stream)): Path<(String, String)>,
) -> Response {
    let key = format!("{app}/{stream}");
    match shared.recorder.get(&key) {
        Some(r) => {
            r.stop();
            StatusCode::NO_CONTENT.into_response()
        }
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_recording",
            format!("stream {key:?} is not being recorded"),
        )
        .into_response(),
    }
}
