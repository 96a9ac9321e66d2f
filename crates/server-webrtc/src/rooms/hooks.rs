//! LiveKit-form webhooks for `rooms.webhook_urls`: each event is protobuf-JSON
//! (`rooms::webhook`), sent as `application/webhook+json` with an `Authorization` JWT whose
//! `sha256` claim is the body's hash, so LiveKit's `WebhookReceiver` accepts it. Delivery
//! (queue, timeout, retries) is the server's webhook delivery with `[webhooks]` settings.

use std::sync::atomic::{AtomicU64, Ordering};

use rooms::proto;
use rooms::webhook;

/// The sender of room events.
#[derive(Debug)]
pub(crate) struct Hooks {
    out: control::Webhooks,
    api_key: String,
    secret: String,
    seq: AtomicU64,
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Hooks {
    /// Starts delivery when `rooms.webhook_urls` is set (config validation guarantees a key).
    pub(crate) fn start(
        cfg: &config::Config,
        stats: std::sync::Arc<control::WebhookStats>,
    ) -> Option<Self> {
        let rooms = &cfg.rooms;
        if rooms.webhook_urls.is_empty() {
            return None;
        }
        let (api_key, secret) = if rooms.webhook_api_key.is_empty() {
            rooms.keys.iter().next()?
        } else {
            rooms.keys.get_key_value(&rooms.webhook_api_key)?
        };
        let wcfg = config::WebhooksConfig {
            urls: rooms.webhook_urls.clone(),
            ..cfg.webhooks.clone()
        };
        let out = control::Webhooks::start(&wcfg, stats)?;
        Some(Self {
            out,
            api_key: api_key.clone(),
            secret: secret.clone(),
            seq: AtomicU64::new(0),
        })
    }

    fn send(&self, mut event: proto::WebhookEvent) {
        let n = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        event.id = format!("EV_{}{n}", &rooms::ids::new_id("")[..6]);
        event.created_at = i64::try_from(now_s()).unwrap_or(i64::MAX);
        let body = webhook::event_body(&event);
        match webhook::authorization(&body, &self.api_key, &self.secret, now_s()) {
            Ok(auth) => self.out.emit_foreign(
                control::EventKind::Room,
                event.id.clone(),
                body,
                webhook::CONTENT_TYPE,
                auth,
            ),
            Err(e) => tracing::warn!("room webhook not signed: {e}"),
        }
    }

    pub(crate) fn room_started(&self, room: &proto::Room) {
        self.send(webhook::room_started("", 0, room));
    }
    pub(crate) fn room_finished(&self, room: &proto::Room) {
        self.send(webhook::room_finished("", 0, room));
    }
    pub(crate) fn participant_joined(&self, room: &proto::Room, p: &proto::ParticipantInfo) {
        self.send(webhook::participant_joined("", 0, room, p));
    }
    pub(crate) fn participant_left(&self, room: &proto::Room, p: &proto::ParticipantInfo) {
        self.send(webhook::participant_left("", 0, room, p));
    }
    pub(crate) fn track_published(
        &self,
        room: &proto::Room,
        p: &proto::ParticipantInfo,
        t: &proto::TrackInfo,
    ) {
        self.send(webhook::track_published("", 0, room, p, t));
    }
    pub(crate) fn track_unpublished(
        &self,
        room: &proto::Room,
        p: &proto::ParticipantInfo,
        t: &proto::TrackInfo,
    ) {
        self.send(webhook::track_unpublished("", 0, room, p, t));
    }
}
