//! A participant's publisher connection: the client offers, we answer (again at every
//! renegotiation); each published track (announced by AddTrack with the client's track id,
//! `cid`, found again as the m-line's msid track id) goes into the hub stream of its source
//! through an [`HubSink`]. Data channels `_reliable` and `_lossy` carry `DataPacket`s, relayed
//! to the room.
//!
//! Simulcast: the track's hub stream carries one layer of each video track, the highest one
//! flowing: it moves up when a higher layer's packets appear (at that layer's keyframe, which
//! it requests) and down when its layer stops for [`LAYER_STALL`]. Each layer is also a hub
//! stream of its own (`{stream}~q`, `~h`, `~f`), which subscribers that asked for a smaller
//! size ([`super::subscriber`]) are moved to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use rooms::proto;
use str0m::change::SdpOffer;
use str0m::channel::ChannelId;
use str0m::media::{KeyframeRequestKind, MediaData, Mid, Rid};
use str0m::{Event, IceConnectionState, Output, Rtc, RtcConfig};
use tokio_util::sync::CancellationToken;

use crate::ingest::{HubSink, REORDER_AUDIO_PACKETS, REORDER_VIDEO_PACKETS};
use crate::whep::{self, Slot};
use crate::{Shared, WebRtc};

/// A layer that sent nothing for this long is given up for a lower one that flows.
pub const LAYER_STALL: Duration = Duration::from_millis(1500);
/// Fewest time between two keyframe requests to the publisher.
pub const KEYFRAME_MIN_GAP: Duration = Duration::from_millis(500);
/// Most tracks one participant may publish.
pub const MAX_TRACKS: usize = 16;

/// One published track.
#[derive(Debug)]
pub(crate) struct PubTrack {
    pub(crate) cid: String,
    pub(crate) info: proto::TrackInfo,
    pub(crate) stream: String,
    pub(crate) mid: Option<Mid>,
}

/// The simulcast layer a video m-line forwards.
#[derive(Debug, Default)]
struct Layer {
    chosen: Option<Rid>,
    last_seen: HashMap<Rid, Instant>,
    switched_at: Option<Instant>,
}

/// The publisher connection and what it feeds.
pub(crate) struct PubPc {
    pub(crate) rtc: Rtc,
    pub(crate) slot: Slot,
    pub(crate) next: Instant,
    pub(crate) connected: bool,
    /// ICE and DTLS must complete by then (`webrtc.ice_timeout_ms` after it was made).
    pub(crate) connect_by: Instant,
    pub(crate) failed: bool,
    pub(crate) tracks: Vec<PubTrack>,
    /// Hub sinks by stream key.
    pub(crate) sinks: HashMap<String, HubSink>,
    layers: HashMap<Mid, Layer>,
    channels: HashMap<ChannelId, String>,
    want_key: bool,
    last_request: Option<Instant>,
    /// The microphone's levels (active speakers).
    pub(crate) meter: super::speakers::Meter,
    /// Publishes into the hub (through admission).
    ctl: Arc<control::Control>,
    /// The participant's identity (the publish sessions' remote) and what ends its streams.
    owner: (String, CancellationToken),
}

/// A data packet the client sent, for the room.
pub(crate) struct DataOut {
    pub(crate) bytes: Vec<u8>,
    pub(crate) reliable: bool,
    pub(crate) to: Vec<String>,
}

/// The codecs a room connection negotiates: the video codecs the hub carries (VP8 first,
/// LiveKit's default) and Opus.
pub(crate) fn room_config() -> RtcConfig {
    RtcConfig::new()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
        .enable_vp9(true)
        .enable_av1(true)
}

impl PubPc {
    /// The connection for the client's first offer; returns it with the answer.
    pub(crate) fn create(
        shared: &Shared,
        wr: &Arc<WebRtc>,
        key: &str,
        remote: Option<SocketAddr>,
        sdp: &str,
        owner: (String, CancellationToken),
    ) -> Result<(Self, String), String> {
        let creds = str0m::IceCreds::new();
        let slot = whep::reserve(&shared.ctl, wr, key, remote, sdp, &creds, "room peers")
            .map_err(|_| "too many WebRTC peers".to_owned())?;
        let config = room_config()
            .set_reordering_size_video(REORDER_VIDEO_PACKETS)
            .set_reordering_size_audio(REORDER_AUDIO_PACKETS);
        let rtc = whep::ice_lite_rtc(wr, config, creds);
        let mut pc = Self {
            rtc,
            slot,
            next: Instant::now(),
            connected: false,
            connect_by: Instant::now()
                + Duration::from_millis(shared.ctl.config.webrtc.ice_timeout_ms),
            failed: false,
            tracks: Vec::new(),
            sinks: HashMap::new(),
            layers: HashMap::new(),
            channels: HashMap::new(),
            want_key: true,
            last_request: None,
            meter: super::speakers::Meter::new(Instant::now()),
            ctl: Arc::clone(&shared.ctl),
            owner,
        };
        let answer = pc.accept(sdp)?;
        Ok((pc, answer))
    }

    /// Accepts an offer (the first or a renegotiation); returns the answer.
    pub(crate) fn accept(&mut self, sdp: &str) -> Result<String, String> {
        let offer = std::panic::catch_unwind(|| SdpOffer::from_sdp_string(sdp))
            .map_err(|_| "malformed SDP offer".to_owned())?
            .map_err(|e| format!("malformed SDP offer: {e}"))?;
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.rtc.sdp_api().accept_offer(offer)
        }))
        .map_err(|_| "cannot use this offer".to_owned())?
        .map_err(|e| format!("cannot use this offer: {e}"))?;
        Ok(answer.to_sdp_string())
    }

    /// Opens hub stream `key` (a publish through the admission path: limits, hub, session,
    /// webhooks) unless open; false when refused.
    pub(crate) fn open_sink(&mut self, key: &str) -> bool {
        if self.sinks.contains_key(key) {
            return true;
        }
        let Some((app, part)) = key.split_once('/') else {
            return false;
        };
        let Ok(name) = access::StreamName::new(app, part) else {
            return false;
        };
        let auth = self.ctl.authorize_internal(name);
        match self
            .ctl
            .publish_pending(auth, "webrtc", self.owner.0.clone(), self.owner.1.clone())
        {
            Ok(admitted) => {
                let mut sink =
                    HubSink::new(key.to_owned(), admitted.map_session(control::Session::from));
                if self.connected {
                    sink.admitted.session.start();
                }
                self.sinks.insert(key.to_owned(), sink);
                true
            }
            Err(e) => {
                tracing::warn!(stream = %key, "room track not published to the hub: {e}");
                false
            }
        }
    }

    /// Tracks whose m-line the client stopped sending on (a renegotiation made it inactive
    /// or removed it: how LiveKit's clients unpublish), taken out of the published set; a
    /// hub stream left with no track ends.
    pub(crate) fn take_unpublished(&mut self, hub: &hub::Hub) -> Vec<proto::TrackInfo> {
        let mut gone = Vec::new();
        let mut i = 0;
        while i < self.tracks.len() {
            let stopped = self.tracks[i].mid.is_some_and(|mid| {
                self.rtc.media(mid).is_none_or(|m| {
                    matches!(
                        m.direction(),
                        str0m::media::Direction::Inactive | str0m::media::Direction::SendOnly
                    )
                })
            });
            if stopped {
                gone.push(self.tracks.remove(i));
            } else {
                i += 1;
            }
        }
        for t in &gone {
            if !self.tracks.iter().any(|o| o.stream == t.stream) {
                let layers: Vec<String> = self
                    .sinks
                    .keys()
                    .filter(|k| {
                        *k == &t.stream
                            || k.starts_with(&format!("{}{}", t.stream, rooms::names::SEP))
                    })
                    .cloned()
                    .collect();
                for k in layers {
                    self.sinks.remove(&k);
                    hub.end_stream(&k);
                }
            }
        }
        gone.into_iter().map(|t| t.info).collect()
    }

    /// Asks for a keyframe (throttled).
    pub(crate) fn want_keyframe(&mut self) {
        self.want_key = true;
    }

    /// Drains str0m: sends transmits, handles events; data packets for the room are
    /// returned.
    pub(crate) fn drain(&mut self, wr: &WebRtc, out: &mut Vec<DataOut>) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    wr.send(&t);
                }
                Ok(Output::Event(e)) => self.event(wr, e, out),
                Err(e) => {
                    tracing::debug!("room publisher error: {e}");
                    self.failed = true;
                    self.next = Instant::now() + Duration::from_secs(1);
                    break;
                }
            }
        }
        self.request_keyframes();
    }

    fn event(&mut self, wr: &WebRtc, e: Event, out: &mut Vec<DataOut>) {
        match e {
            Event::Connected => {
                self.connected = true;
                self.slot.cleanup.connected();
                for s in self.sinks.values_mut() {
                    s.admitted.session.start();
                }
                wr.stats
                    .connected
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.failed = true;
            }
            Event::MediaAdded(m) => self.bind_mid(m.mid),
            Event::MediaData(d) => self.media(&d),
            Event::ChannelOpen(id, label) => {
                self.channels.insert(id, label);
            }
            Event::ChannelClose(id) => {
                self.channels.remove(&id);
            }
            Event::ChannelData(d) => {
                let reliable = match self.channels.get(&d.id).map(String::as_str) {
                    Some("_reliable") => true,
                    Some("_lossy") => false,
                    _ => return,
                };
                if d.data.len() > super::MAX_DATA_PACKET {
                    tracing::debug!(len = d.data.len(), "room data packet too large: dropped");
                    return;
                }
                out.push(DataOut {
                    bytes: d.data,
                    reliable,
                    to: Vec::new(),
                });
            }
            _ => {}
        }
    }

    /// An m-line of the offer: the published track whose cid is its msid track id.
    fn bind_mid(&mut self, mid: Mid) {
        let Some(media) = self.rtc.media(mid) else {
            return;
        };
        let track_id = media.track_id().to_owned();
        let video = media.kind() == str0m::media::MediaKind::Video;
        let found = self
            .tracks
            .iter()
            .position(|t| t.mid.is_none() && t.cid == track_id)
            .or_else(|| {
                // Some clients munge the msid: the one unbound track of this kind.
                let kind = if video {
                    proto::TrackType::Video
                } else {
                    proto::TrackType::Audio
                } as i32;
                let mut c = self
                    .tracks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.mid.is_none() && t.info.r#type == kind);
                match (c.next(), c.next()) {
                    (Some((i, _)), None) => Some(i),
                    _ => None,
                }
            });
        if let Some(i) = found {
            self.tracks[i].mid = Some(mid);
            self.tracks[i].info.mid = mid.to_string();
        }
    }

    fn media(&mut self, d: &MediaData) {
        let Some(t) = self.tracks.iter().find(|t| t.mid == Some(d.mid)) else {
            return;
        };
        if t.info.muted {
            return;
        }
        if t.info.r#type == proto::TrackType::Audio as i32
            && t.info.source != proto::TrackSource::ScreenShareAudio as i32
            && let Some(level) = d.ext_vals.audio_level
        {
            self.meter.sample(level);
        }
        let stream = t.stream.clone();
        if let Some(rid) = d.rid {
            // Every LiveKit layer is also a stream of its own (`{stream}~q`, `~h`, `~f`),
            // which subscribers asking for a smaller size are moved to.
            if rank(&rid) < 3 {
                let key = layer_stream(&stream, &rid);
                if self.open_sink(&key)
                    && let Some(s) = self.sinks.get_mut(&key)
                    && s.media(d)
                {
                    self.want_key = true;
                }
            }
            let now = Instant::now();
            let layer = self.layers.entry(d.mid).or_default();
            layer.last_seen.insert(rid, now);
            match choose_layer(layer, rid, now) {
                LayerMove::Take => {}
                LayerMove::Ignore => return,
                LayerMove::Switch => {
                    if let Some(s) = self.sinks.get_mut(&stream) {
                        s.switch_layer();
                    }
                    self.want_key = true;
                }
            }
        }
        if let Some(s) = self.sinks.get_mut(&stream)
            && s.media(d)
        {
            self.want_key = true;
        }
    }

    /// Sends a PLI on every video layer being forwarded, when one is wanted and the last is
    /// old enough.
    fn request_keyframes(&mut self) {
        let now = Instant::now();
        if !self.want_key
            || !self.connected
            || self
                .last_request
                .is_some_and(|t| now - t < KEYFRAME_MIN_GAP)
        {
            return;
        }
        self.want_key = false;
        self.last_request = Some(now);
        // Every layer flowing (each is a hub stream of its own).
        let video: Vec<(Mid, Option<Rid>)> = self
            .tracks
            .iter()
            .filter(|t| t.info.r#type == proto::TrackType::Video as i32)
            .filter_map(|t| t.mid)
            .flat_map(|mid| match self.layers.get(&mid) {
                Some(l) if !l.last_seen.is_empty() => l
                    .last_seen
                    .keys()
                    .map(|r| (mid, Some(*r)))
                    .collect::<Vec<_>>(),
                _ => vec![(mid, None)],
            })
            .collect();
        let mut api = self.rtc.direct_api();
        for (mid, rid) in video {
            if let Some(rx) = api.stream_rx_by_mid(mid, rid) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
            }
        }
    }

    /// Whether any published stream went a whole `interval` without a keyframe (the hub's
    /// GOP cache and late joiners need them; browsers send them only when asked).
    pub(crate) fn keyframe_due(&self, interval: Duration) -> bool {
        self.sinks
            .values()
            .any(|s| s.last_keyframe.elapsed() >= interval)
    }
}

/// The hub stream of simulcast layer `rid` of the track published as `stream`.
pub(crate) fn layer_stream(stream: &str, rid: &str) -> String {
    format!("{stream}{}{rid}", rooms::names::SEP)
}

/// The simulcast layer (its rid) a subscriber asking for `width`x`height` (or, without a
/// size, `quality`) gets: the smallest layer at least that large; `None` for the top layer
/// (the track's own stream, which also falls back when the top layer stops).
pub(crate) fn pick_layer(
    track: &proto::TrackInfo,
    width: u32,
    height: u32,
    quality: i32,
) -> Option<String> {
    #[allow(deprecated)]
    let layers = track
        .codecs
        .iter()
        .find(|c| !c.layers.is_empty())
        .map_or(track.layers.as_slice(), |c| c.layers.as_slice());
    if layers.len() < 2 {
        return None;
    }
    let rid_of = |l: &proto::VideoLayer| -> String {
        if !l.rid.is_empty() {
            return l.rid.clone();
        }
        match proto::VideoQuality::try_from(l.quality) {
            Ok(proto::VideoQuality::Low) => "q",
            Ok(proto::VideoQuality::Medium) => "h",
            _ => "f",
        }
        .to_owned()
    };
    let mut by_size: Vec<&proto::VideoLayer> = layers.iter().collect();
    by_size.sort_by_key(|l| (l.width, l.height));
    let top = by_size.last().copied()?;
    let chosen = if width > 0 || height > 0 {
        by_size
            .iter()
            .copied()
            .find(|l| l.width >= width && l.height >= height)
            .unwrap_or(top)
    } else {
        by_size
            .iter()
            .copied()
            .find(|l| l.quality >= quality)
            .unwrap_or(top)
    };
    (!std::ptr::eq(chosen, top)).then(|| rid_of(chosen))
}

#[derive(Debug, PartialEq, Eq)]
enum LayerMove {
    Take,
    Ignore,
    Switch,
}

/// The rank of a LiveKit simulcast rid (`q` < `h` < `f`; others rank by name).
fn rank(rid: &Rid) -> u8 {
    match &**rid {
        "q" => 0,
        "h" => 1,
        "f" => 2,
        _ => 3,
    }
}

/// Whether a packet of layer `rid` is forwarded: the chosen layer is; a higher layer that
/// appears takes over; a lower one takes over when the chosen one stalled.
fn choose_layer(l: &mut Layer, rid: Rid, now: Instant) -> LayerMove {
    let Some(chosen) = l.chosen else {
        l.chosen = Some(rid);
        l.switched_at = Some(now);
        return LayerMove::Switch;
    };
    if chosen == rid {
        return LayerMove::Take;
    }
    let stalled = l
        .last_seen
        .get(&chosen)
        .is_none_or(|t| now.duration_since(*t) >= LAYER_STALL);
    let settled = l
        .switched_at
        .is_none_or(|t| now.duration_since(t) >= LAYER_STALL);
    if (rank(&rid) > rank(&chosen) && settled) || stalled {
        l.chosen = Some(rid);
        l.switched_at = Some(now);
        return LayerMove::Switch;
    }
    LayerMove::Ignore
}

/// A data packet from participant `me` as the room relays it: the sender's identity set
/// (receivers find the participant by it), its destinations read. `None` for what does not
/// decode.
pub(crate) fn stamp_data(
    bytes: &[u8],
    me: &proto::ParticipantInfo,
) -> Option<(Vec<u8>, Vec<String>)> {
    let mut p = proto::DataPacket::decode(bytes).ok()?;
    p.participant_identity = me.identity.clone();
    #[allow(deprecated)]
    {
        p.participant_sid = me.sid.clone();
    }
    let mut to = p.destination_identities.clone();
    if let Some(proto::data_packet::Value::User(u)) = &mut p.value {
        #[allow(deprecated)]
        {
            u.participant_sid = me.sid.clone();
            u.participant_identity = me.identity.clone();
        }
        if to.is_empty() {
            #[allow(deprecated)]
            {
                to = u.destination_identities.clone();
            }
        }
    }
    Some((p.encode_to_vec(), to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_move_up_at_once_and_down_on_stall() {
        let t0 = Instant::now();
        let mut l = Layer::default();
        let q: Rid = "q".into();
        let f: Rid = "f".into();
        assert_eq!(choose_layer(&mut l, q, t0), LayerMove::Switch);
        assert_eq!(choose_layer(&mut l, q, t0), LayerMove::Take);
        // A higher layer right after a switch waits until the choice settled.
        l.last_seen.insert(q, t0);
        assert_eq!(choose_layer(&mut l, f, t0), LayerMove::Ignore);
        let t1 = t0 + LAYER_STALL;
        l.last_seen.insert(q, t1);
        assert_eq!(choose_layer(&mut l, f, t1), LayerMove::Switch);
        assert_eq!(l.chosen, Some(f));
        // q keeps flowing but f is chosen: q is ignored until f stalls.
        l.last_seen.insert(f, t1);
        assert_eq!(choose_layer(&mut l, q, t1), LayerMove::Ignore);
        let t2 = t1 + LAYER_STALL;
        assert_eq!(choose_layer(&mut l, q, t2), LayerMove::Switch);
        assert_eq!(l.chosen, Some(q));
    }

    #[test]
    #[allow(deprecated)]
    fn subscribers_get_the_smallest_layer_that_fits() {
        let layer = |q: proto::VideoQuality, w, h| proto::VideoLayer {
            quality: q as i32,
            width: w,
            height: h,
            ..Default::default()
        };
        let track = proto::TrackInfo {
            layers: vec![
                layer(proto::VideoQuality::Low, 320, 180),
                layer(proto::VideoQuality::Medium, 640, 360),
                layer(proto::VideoQuality::High, 1280, 720),
            ],
            ..Default::default()
        };
        assert_eq!(pick_layer(&track, 160, 90, 0).as_deref(), Some("q"));
        assert_eq!(pick_layer(&track, 400, 200, 0).as_deref(), Some("h"));
        assert_eq!(pick_layer(&track, 1280, 720, 0), None);
        assert_eq!(pick_layer(&track, 4000, 3000, 0), None);
        let medium = proto::VideoQuality::Medium as i32;
        assert_eq!(pick_layer(&track, 0, 0, medium).as_deref(), Some("h"));
        let single = proto::TrackInfo {
            layers: vec![layer(proto::VideoQuality::High, 640, 360)],
            ..Default::default()
        };
        assert_eq!(pick_layer(&single, 160, 90, 0), None);
    }

    #[test]
    fn data_packets_get_the_sender_identity() {
        let me = proto::ParticipantInfo {
            sid: "PA_x".into(),
            identity: "alice".into(),
            ..Default::default()
        };
        let p = proto::DataPacket {
            value: Some(proto::data_packet::Value::User(proto::UserPacket {
                payload: b"hi".to_vec(),
                ..Default::default()
            })),
            destination_identities: vec!["bob".into()],
            ..Default::default()
        };
        let (bytes, to) = stamp_data(&p.encode_to_vec(), &me).unwrap();
        assert_eq!(to, vec!["bob".to_owned()]);
        let back = proto::DataPacket::decode(bytes.as_slice()).unwrap();
        assert_eq!(back.participant_identity, "alice");
        assert!(stamp_data(&[0xff, 0xff, 0xff], &me).is_none());
    }
}
