//! A participant's subscriber connection: we offer (data channels `_reliable` and `_lossy`
//! from the start, then one send-only m-line per subscribed track, msid `PA_x|TR_y TR_y`),
//! the client answers. One offer is outstanding at a time; changes made meanwhile go in the
//! next one.
//!
//! Media: each subscribed participant stream is one hub subscription (Opus audio, video as
//! published) read by a small forwarding task into the participant's bounded frame queue;
//! a slow participant lags in the hub, which drops it to the next keyframe, and the
//! publisher never waits. Frames are written in str0m's frame mode (str0m packetizes per
//! subscriber).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hub::Want;
use media::{Codec, Frame, MediaKind};
use rooms::proto;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::format::Codec as RtcCodec;
use str0m::media::{Direction, Frequency, MediaTime, Mid};
use str0m::{Event, IceConnectionState, Output, Rtc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::whep::{self, Slot};
use crate::{Shared, WebRtc};
use rtp::audio::AudioOut;
use rtp::video_out::VideoOut;

/// Hub frames queued for one participant (all its subscriptions).
pub const FRAME_QUEUE: usize = 512;
/// Most tracks one participant may subscribe to.
pub const MAX_SUBSCRIBED: usize = 256;
/// Time from the last frame of one simulcast layer to the first of the next (ms): a frame
/// at 30 fps.
pub const LAYER_SWITCH_STEP_MS: u64 = 33;

/// One subscribed track.
#[derive(Debug)]
struct SubTrack {
    publisher_sid: String,
    kind: MediaKind,
    /// The track's own hub stream: its timeline (times written are on it).
    main: String,
    /// The stream its frames come from now: `main`, or a simulcast layer's stream.
    stream: String,
    /// The stream it moves to at that stream's next keyframe.
    next: Option<String>,
    /// Added to the times of `stream` to put them on `main`'s timeline (ms).
    offset_ms: i64,
    /// The last time written (on `main`'s timeline) and whether the next frame starts
    /// another layer (its offset is then set so that time goes on).
    last_ms: Option<u64>,
    switched: bool,
    /// UpdateTrackSettings `disabled`: nothing is written.
    paused: bool,
    /// Its m-line, once offered.
    mid: Option<Mid>,
    /// Negotiated: the client answered an offer with its m-line.
    active: bool,
}

/// One hub subscription (a remote participant's stream, or one of its layers).
struct Feed {
    cancel: CancellationToken,
    video: VideoOut,
}

/// The subscriber connection.
pub(crate) struct SubPc {
    pub(crate) rtc: Rtc,
    pub(crate) slot: Slot,
    pub(crate) next: Instant,
    pub(crate) connected: bool,
    /// ICE and DTLS must complete by then (`webrtc.ice_timeout_ms` after it was made).
    pub(crate) connect_by: Instant,
    pub(crate) failed: bool,
    pending: Option<SdpPendingOffer>,
    /// Changes wait for the outstanding offer's answer.
    dirty: bool,
    tracks: HashMap<String, SubTrack>,
    /// m-lines to end (inactive) in the next offer.
    pending_direction: Vec<Mid>,
    feeds: HashMap<String, Feed>,
    /// Per track timeline (`main`): the wallclock of one of its times (ms), which ties
    /// audio and video of one participant together in the Sender Reports.
    epochs: HashMap<String, (Instant, u64)>,
    reliable: Option<ChannelId>,
    lossy: Option<ChannelId>,
    opus: AudioOut,
    pub(crate) frames_tx: mpsc::Sender<(Arc<str>, Arc<Frame>)>,
    pub(crate) frames: mpsc::Receiver<(Arc<str>, Arc<Frame>)>,
    /// Publishers whose keyframe a subscriber asked for (PLI), for the room.
    pub(crate) keyframes: Vec<String>,
}

impl SubPc {
    /// The connection with its data channels; returns it and its first offer.
    pub(crate) fn create(
        shared: &Shared,
        wr: &Arc<WebRtc>,
        key: &str,
        remote: Option<SocketAddr>,
    ) -> Result<(Self, String), String> {
        let creds = str0m::IceCreds::new();
        let slot = whep::reserve(&shared.ctl, wr, key, remote, "", &creds, "room peers")
            .map_err(|_| "too many WebRTC peers".to_owned())?;
        let rtc = whep::ice_lite_rtc(wr, super::publisher::room_config(), creds);
        let (frames_tx, frames) = mpsc::channel(FRAME_QUEUE);
        let mut pc = Self {
            rtc,
            slot,
            next: Instant::now(),
            connected: false,
            connect_by: Instant::now()
                + Duration::from_millis(shared.ctl.config.webrtc.ice_timeout_ms),
            failed: false,
            pending: None,
            dirty: false,
            tracks: HashMap::new(),
            pending_direction: Vec::new(),
            feeds: HashMap::new(),
            epochs: HashMap::new(),
            reliable: None,
            lossy: None,
            opus: AudioOut::default(),
            frames_tx,
            frames,
            keyframes: Vec::new(),
        };
        let mut api = pc.rtc.sdp_api();
        pc.reliable = Some(api.add_channel("_reliable".to_owned()));
        pc.lossy = Some(api.add_channel_with_config(ChannelConfig {
            label: "_lossy".to_owned(),
            ordered: false,
            reliability: Reliability::MaxRetransmits { retransmits: 0 },
            ..Default::default()
        }));
        let (offer, pending) = api.apply().ok_or_else(|| "no offer to make".to_owned())?;
        pc.pending = Some(pending);
        Ok((pc, offer.to_sdp_string()))
    }

    /// Subscribes to `track` of participant `publisher_sid`, fed from hub stream `stream`.
    /// Returns false when already subscribed or at the limit.
    pub(crate) fn subscribe(
        &mut self,
        publisher_sid: &str,
        track: &proto::TrackInfo,
        stream: &str,
    ) -> bool {
        if self.tracks.contains_key(&track.sid) || self.tracks.len() >= MAX_SUBSCRIBED {
            return false;
        }
        let kind = if track.r#type == proto::TrackType::Video as i32 {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        // The stream may not be in the hub yet (its publisher announced the track but has not
        // connected): the m-line is offered now and the hub subscription opens when it is.
        self.tracks.insert(
            track.sid.clone(),
            SubTrack {
                publisher_sid: publisher_sid.to_owned(),
                kind,
                main: stream.to_owned(),
                stream: stream.to_owned(),
                next: None,
                offset_ms: 0,
                last_ms: None,
                switched: false,
                paused: false,
                mid: None,
                active: false,
            },
        );
        self.dirty = true;
        true
    }

    /// Opens the hub subscriptions of tracks that can take media now (the connection is up
    /// and the client answered their m-lines), so each starts on the stream's GOP cache
    /// (its sequence header and keyframe first) rather than losing it to a connection not
    /// yet up.
    pub(crate) fn start_feeds(&mut self, shared: &Shared) {
        if !self.connected {
            return;
        }
        let want: Vec<String> = self
            .tracks
            .values()
            .filter(|t| t.active && !self.feeds.contains_key(&t.stream))
            .map(|t| t.stream.clone())
            .collect();
        for stream in want {
            let _ = self.open_feed(shared, &stream);
        }
    }

    /// A hub subscription to `stream` (Opus audio, video as published), read by a small task
    /// into the frame queue; false when the stream is not in the hub.
    fn open_feed(&mut self, shared: &Shared, stream: &str) -> bool {
        if self.feeds.contains_key(stream) {
            return true;
        }
        let Ok(mut sub) = shared
            .ctl
            .hub
            .subscribe_with(stream, Want::audio(Codec::Opus))
        else {
            return false;
        };
        let cancel = CancellationToken::new();
        let tx = self.frames_tx.clone();
        let key: Arc<str> = Arc::from(stream);
        let stop = cancel.clone();
        shared.ctl.tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    f = sub.recv() => match f {
                        Some(f) => {
                            if tx.send((Arc::clone(&key), f)).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                }
            }
        });
        self.feeds.insert(
            stream.to_owned(),
            Feed {
                cancel,
                video: VideoOut::default(),
            },
        );
        true
    }

    /// Ends the hub subscription to `stream` when no track reads or waits for it.
    fn release(&mut self, stream: &str) {
        let used = self
            .tracks
            .values()
            .any(|t| t.stream == stream || t.next.as_deref() == Some(stream));
        if !used && let Some(f) = self.feeds.remove(stream) {
            f.cancel.cancel();
        }
    }

    /// Moves video track `track_sid` to `stream` (its main stream, or a layer's) at that
    /// stream's next keyframe, and pauses or resumes it; false when that stream is not in
    /// the hub.
    pub(crate) fn settings(
        &mut self,
        shared: &Shared,
        track_sid: &str,
        stream: &str,
        paused: bool,
    ) -> bool {
        let Some(t) = self.tracks.get_mut(track_sid) else {
            return false;
        };
        t.paused = paused;
        if t.kind != MediaKind::Video {
            return true;
        }
        let (current, waiting) = (t.stream.clone(), t.next.clone());
        if waiting.as_deref() == Some(stream) {
            return true;
        }
        if current == stream {
            if let Some(w) = waiting
                && let Some(t) = self.tracks.get_mut(track_sid)
            {
                t.next = None;
                self.release(&w);
            }
            return true;
        }
        if !self.open_feed(shared, stream) {
            return false;
        }
        if let Some(t) = self.tracks.get_mut(track_sid) {
            t.next = Some(stream.to_owned());
        }
        if let Some(w) = waiting {
            self.release(&w);
        }
        true
    }

    /// Unsubscribes `track_sid` (its m-line goes inactive); a hub subscription ends with
    /// the last track reading it.
    pub(crate) fn unsubscribe(&mut self, track_sid: &str) {
        let Some(t) = self.tracks.remove(track_sid) else {
            return;
        };
        self.release(&t.stream);
        if let Some(n) = &t.next {
            self.release(n);
        }
        if let Some(mid) = t.mid {
            self.pending_direction.push(mid);
            self.dirty = true;
        }
    }

    /// Track sids subscribed now.
    pub(crate) fn subscribed(&self) -> impl Iterator<Item = &String> {
        self.tracks.keys()
    }

    /// A new offer when changes wait and none is outstanding.
    pub(crate) fn offer(&mut self) -> Option<String> {
        if !self.dirty || self.pending.is_some() {
            return None;
        }
        self.dirty = false;
        let mut api = self.rtc.sdp_api();
        for mid in self.pending_direction.drain(..) {
            api.set_direction(mid, Direction::Inactive);
        }
        // The m-lines of tracks subscribed since the last offer (str0m's changes exist
        // only within one change set, so they are all made here).
        for (sid, t) in self.tracks.iter_mut().filter(|(_, t)| t.mid.is_none()) {
            let kind = match t.kind {
                MediaKind::Video => str0m::media::MediaKind::Video,
                _ => str0m::media::MediaKind::Audio,
            };
            t.mid = Some(api.add_media(
                kind,
                Direction::SendOnly,
                Some(rooms::ids::stream_id(&t.publisher_sid, sid)),
                Some(sid.clone()),
                None,
            ));
        }
        let (offer, pending) = api.apply()?;
        self.pending = Some(pending);
        Some(offer.to_sdp_string())
    }

    /// The client's answer to our outstanding offer.
    pub(crate) fn answer(&mut self, sdp: &str) -> Result<(), String> {
        let Some(pending) = self.pending.take() else {
            return Err("an answer without an offer".to_owned());
        };
        let answer = std::panic::catch_unwind(|| SdpAnswer::from_sdp_string(sdp))
            .map_err(|_| "malformed SDP answer".to_owned())?
            .map_err(|e| format!("malformed SDP answer: {e}"))?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.rtc.sdp_api().accept_answer(pending, answer)
        }))
        .map_err(|_| "cannot use this answer".to_owned())?
        .map_err(|e| format!("cannot use this answer: {e}"))?;
        for t in self.tracks.values_mut() {
            t.active = t.mid.is_some();
        }
        Ok(())
    }

    /// Sends a data packet to the client.
    pub(crate) fn data(&mut self, bytes: &[u8], reliable: bool) {
        let id = if reliable { self.reliable } else { self.lossy };
        if let Some(mut ch) = id.and_then(|id| self.rtc.channel(id)) {
            let _ = ch.write(true, bytes);
        }
    }

    /// Writes one hub frame of `stream` to the track reading it (or, at a keyframe, to the
    /// track waiting to move to it).
    pub(crate) fn write(&mut self, stream: &str, f: &Frame) {
        if !self.connected {
            return;
        }
        let Some((sid, _)) = self.tracks.iter().find(|(_, t)| {
            t.active
                && t.kind == f.kind
                && (t.stream == stream || t.next.as_deref() == Some(stream))
        }) else {
            return;
        };
        let sid = sid.clone();
        let Some(t) = self.tracks.get_mut(&sid) else {
            return;
        };
        if t.next.as_deref() == Some(stream) {
            if !f.is_video_keyframe() {
                // The old layer plays on until the new one's keyframe.
                return;
            }
            let old = std::mem::replace(&mut t.stream, stream.to_owned());
            t.next = None;
            t.switched = true;
            self.release(&old);
        }
        let Some(t) = self.tracks.get_mut(&sid) else {
            return;
        };
        if t.stream != stream || t.paused {
            return;
        }
        let Some(mid) = t.mid else { return };
        let Some(feed) = self.feeds.get_mut(stream) else {
            return;
        };
        let (rtc_codec, data, own_ms) = match f.kind {
            MediaKind::Video => {
                let Some(rc) = rtc_codec(f.codec) else { return };
                let Some(data) = feed.video.convert(Some(f.codec), f) else {
                    return;
                };
                (rc, data, f.dts.saturating_add_signed(i64::from(f.cts)))
            }
            MediaKind::Audio => {
                let Some(data) = self.opus.convert(f) else {
                    return;
                };
                (RtcCodec::Opus, data, f.dts)
            }
            _ => return,
        };
        if std::mem::take(&mut t.switched)
            && let Some(last) = t.last_ms
        {
            // Another layer (another hub timeline): time goes on one frame later.
            t.offset_ms = i64::try_from(last + LAYER_SWITCH_STEP_MS).unwrap_or(i64::MAX)
                - i64::try_from(own_ms).unwrap_or(i64::MAX);
        }
        let ms = own_ms.saturating_add_signed(t.offset_ms);
        t.last_ms = Some(ms);
        let (at, base) = *self
            .epochs
            .entry(t.main.clone())
            .or_insert((Instant::now(), ms));
        let wallclock = if ms >= base {
            at + Duration::from_millis(ms - base)
        } else {
            at.checked_sub(Duration::from_millis(base - ms))
                .unwrap_or(at)
        };
        let time = match f.kind {
            MediaKind::Video => MediaTime::new(ms.saturating_mul(90), Frequency::NINETY_KHZ),
            _ => MediaTime::new(ms.saturating_mul(48), Frequency::FORTY_EIGHT_KHZ),
        };
        let Some(w) = self.rtc.writer(mid) else {
            return;
        };
        let Some(pt) = w
            .payload_params()
            .find(|p| {
                let spec = p.spec();
                spec.codec == rtc_codec
                    && (rtc_codec != RtcCodec::H264 || crate::codecs::usable(&spec))
            })
            .map(|p| p.pt())
        else {
            return;
        };
        let _ = w.write(pt, wallclock, time, data.to_vec());
    }

    /// Drains str0m: sends transmits, handles events.
    pub(crate) fn drain(&mut self, wr: &WebRtc) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    wr.send(&t);
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        self.connected = true;
                        self.slot.cleanup.connected();
                        wr.stats
                            .connected
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        self.failed = true;
                    }
                    Event::KeyframeRequest(k) => {
                        if let Some(t) = self.tracks.values().find(|t| t.mid == Some(k.mid)) {
                            self.keyframes.push(t.publisher_sid.clone());
                        }
                    }
                    _ => {}
                },
                Err(e) => {
                    tracing::debug!("room subscriber error: {e}");
                    self.failed = true;
                    self.next = Instant::now() + Duration::from_secs(1);
                    return;
                }
            }
        }
    }

    /// Ends every hub subscription.
    pub(crate) fn close(&mut self) {
        for f in self.feeds.values() {
            f.cancel.cancel();
        }
        self.rtc.disconnect();
    }
}

/// str0m's codec for a hub video codec.
fn rtc_codec(c: Codec) -> Option<RtcCodec> {
    Some(match c {
        Codec::H264 => RtcCodec::H264,
        Codec::H265 => RtcCodec::H265,
        Codec::Av1 => RtcCodec::Av1,
        Codec::Vp9 => RtcCodec::Vp9,
        Codec::Vp8 => RtcCodec::Vp8,
        _ => return None,
    })
}
