//! The events and their JSON.

use std::time::SystemTime;

use serde::Serialize;

use crate::time::rfc3339;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A publisher started.
    Publish,
    /// A publisher ended.
    Unpublish,
    /// A viewer started.
    Play,
    /// A viewer ended.
    Stop,
    /// The recorder finished a segment file.
    RecordSegment,
    /// A room event in LiveKit's form (room_started, participant_joined, ...), sent to
    /// `rooms.webhook_urls`.
    Room,
}

impl EventKind {
    /// Every kind, in label order.
    pub const ALL: [EventKind; 6] = [
        Self::Publish,
        Self::Unpublish,
        Self::Play,
        Self::Stop,
        Self::RecordSegment,
        Self::Room,
    ];

    /// The name in the JSON, the `X-Sluice-Event` header and the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Unpublish => "unpublish",
            Self::Play => "play",
            Self::Stop => "stop",
            Self::RecordSegment => "record_segment",
            Self::Room => "room",
        }
    }

    /// Index into per-kind counter arrays.
    pub fn index(self) -> usize {
        match self {
            Self::Publish => 0,
            Self::Unpublish => 1,
            Self::Play => 2,
            Self::Stop => 3,
            Self::RecordSegment => 4,
            Self::Room => 5,
        }
    }
}

/// One event, serialised as the delivery's JSON body. Optional fields are omitted when `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookEvent {
    /// What happened.
    pub event: EventKind,
    /// Unique delivery id (the same on every retry and every URL); assigned by
    /// [`super::Webhooks::emit`] when empty.
    pub id: String,
    /// When it happened, RFC 3339 UTC.
    pub time: String,
    /// The session's id, as `GET /api/v1/sessions` lists it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The stream key, `app/name`.
    pub stream: String,
    /// The part of the key before the first `/`.
    pub app: String,
    /// The part of the key after the first `/`.
    pub name: String,
    /// `rtmp`, `http-flv`, `ws-flv`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The peer's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Session totals (unpublish, stop) or the segment's size (record_segment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// How long the session ran or the segment lasts, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Frames skipped by a lagging viewer (unpublish, stop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_frames: Option<u64>,
    /// The segment file (record_segment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl WebhookEvent {
    /// An event about `stream` happening now, with no optional field set and no id yet.
    pub fn new(event: EventKind, stream: &str) -> Self {
        let (app, name) = stream.split_once('/').unwrap_or((stream, ""));
        Self {
            event,
            id: String::new(),
            time: rfc3339(SystemTime::now()),
            session_id: None,
            stream: stream.to_owned(),
            app: app.to_owned(),
            name: name.to_owned(),
            protocol: None,
            remote: None,
            bytes: None,
            duration_ms: None,
            dropped_frames: None,
            path: None,
        }
    }

    /// `record_segment`: the recorder closed segment file `path` of `stream`.
    pub fn record_segment(stream: &str, path: &str, bytes: u64, duration_ms: u64) -> Self {
        Self {
            path: Some(path.to_owned()),
            bytes: Some(bytes),
            duration_ms: Some(duration_ms),
            ..Self::new(EventKind::RecordSegment, stream)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(mut e: WebhookEvent) -> WebhookEvent {
        e.id = "d-1".into();
        e.time = "2023-11-14T22:13:20Z".into();
        e
    }

    #[test]
    fn session_event_json() {
        let mut e = WebhookEvent::new(EventKind::Stop, "live/cam1");
        e.session_id = Some("7".into());
        e.protocol = Some("http-flv".into());
        e.remote = Some("192.0.2.1:5000".into());
        e.bytes = Some(1234);
        e.duration_ms = Some(4000);
        e.dropped_frames = Some(0);
        let json = serde_json::to_string(&fixed(e)).unwrap();
        assert_eq!(
            json,
            r#"{"event":"stop","id":"d-1","time":"2023-11-14T22:13:20Z","session_id":"7","stream":"live/cam1","app":"live","name":"cam1","protocol":"http-flv","remote":"192.0.2.1:5000","bytes":1234,"duration_ms":4000,"dropped_frames":0}"#
        );
    }

    #[test]
    fn record_segment_json() {
        let e = fixed(WebhookEvent::record_segment(
            "live/a/b",
            "/rec/live/a/b/0001.flv",
            5000,
            6000,
        ));
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"record_segment","id":"d-1","time":"2023-11-14T22:13:20Z","stream":"live/a/b","app":"live","name":"a/b","bytes":5000,"duration_ms":6000,"path":"/rec/live/a/b/0001.flv"}"#
        );
    }

    #[test]
    fn names_are_stable() {
        let names: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "publish",
                "unpublish",
                "play",
                "stop",
                "record_segment",
                "room"
            ]
        );
        for k in EventKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(EventKind::ALL[k.index()], k);
        }
        let e = WebhookEvent::new(EventKind::Play, "noslash");
        assert_eq!((e.app.as_str(), e.name.as_str()), ("noslash", ""));
        assert!(e.time.ends_with('Z'));
    }
}
