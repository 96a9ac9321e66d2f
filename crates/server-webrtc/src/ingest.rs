//! One WHIP publisher: a task that owns its `Rtc` (same drain contract, timeouts and cleanup
//! as [`super::peer`]) and turns what str0m depacketizes into hub frames.
//!
//! - Video: str0m's depacketized frames (H.264, H.265, AV1, VP9 or VP8: the one codec the
//!   answer picked) become FLV tags ([`rtp::video_in`]): legacy AVC for H.264, Enhanced
//!   RTMP for the others, each with a sequence header built from in-band data. After a frame
//!   str0m marks non-contiguous (loss it could not repair), frames are dropped until the
//!   next keyframe, and one is requested.
//! - Audio: Opus packets go into the hub as they came (Enhanced RTMP audio, FourCC `Opus`,
//!   after an `OpusHead` sequence header: [`rtp::audio`]). WHEP viewers get them byte for
//!   byte; RTMP, FLV and HLS players and recordings get the hub's derived AAC track, made
//!   once per stream while one of them watches (the transform the binary registers). Nothing
//!   is transcoded here.
//! - Time: both tracks share one millisecond timeline ([`Clock`]): each track is anchored at
//!   the arrival (`network_time`) of its first packet and advanced by its RTP clock, from the
//!   absolute RTP time (no per-packet rounding accumulates); once RTCP Sender Reports of both
//!   tracks are known, the audio anchor is moved so the tracks line up as the sender's own
//!   clock says.
//! - Order: each frame goes to the hub as soon as it is complete (video is not held back for
//!   audio: the derived AAC comes a frame or so after the video of the same time whatever
//!   the ingest does, and its consumers take audio a little behind video; holding video would
//!   only delay WHEP viewers).
//! - Session: listed (and its `publish` webhook fired) when ICE and DTLS complete; until
//!   then the peer counts against `webrtc.max_pending_peers`.
//! - Keyframes (PLI): at connect, after loss, when a viewer joins a stream with no cached
//!   keyframe, and when none came for `webrtc.whip_keyframe_interval_ms`; at most one per
//!   [`KEYFRAME_REQUEST_MIN_GAP`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use str0m::format::Codec as RtcCodec;
use str0m::media::{KeyframeRequestKind, MediaData, MediaKind as RtcKind, MediaTime, Mid};
use str0m::{Event, IceConnectionState, Output, Rtc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::peer::{self, Cleanup};
use rtp::video_in::{VideoIn, VideoUnit};

use super::{Datagram, PeerCmd, WebRtc};
use crate::Shared;
use crate::codecs::hub_codec;

/// Fewest time between two keyframe requests (a burst of reasons sends one PLI).
pub const KEYFRAME_REQUEST_MIN_GAP: Duration = Duration::from_millis(500);
/// How often the stream's viewer count is checked (a viewer joining a stream without a
/// cached keyframe triggers a request).
pub const VIEWER_POLL: Duration = Duration::from_millis(250);
/// RTP packets str0m holds back to reorder video: must cover the largest keyframe's packets
/// (about 500 KB at 1200 bytes a packet).
pub const REORDER_VIDEO_PACKETS: usize = 400;
/// RTP packets str0m holds back to reorder audio (one Opus packet each: 300 ms).
pub const REORDER_AUDIO_PACKETS: usize = 15;

/// Everything an ingest task owns.
pub(crate) struct Ingest {
    pub(crate) cleanup: Cleanup,
    pub(crate) rtc: Rtc,
    /// The stream's hub publisher (its session started when the peer connects) and the
    /// conversion into it.
    pub(crate) sink: HubSink,
    pub(crate) rx: mpsc::Receiver<Datagram>,
    pub(crate) cmd: mpsc::Receiver<PeerCmd>,
    pub(crate) kick: CancellationToken,
}

/// Which track a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Track {
    Video,
    Audio,
}

/// One track's mapping from RTP time to the shared millisecond timeline.
#[derive(Debug, Clone, Copy)]
struct TrackClock {
    /// RTP time (extended) of the first packet and its place on the timeline (ms).
    first_rtp: u64,
    first_ms: u64,
    rate: u64,
    last_ms: Option<u64>,
    /// The latest Sender Report: sender wallclock of an RTP time.
    report: Option<(SystemTime, u64)>,
}

/// The shared timeline of both tracks, in ms since the first packet of either arrived.
#[derive(Debug, Default)]
struct Clock {
    origin: Option<Instant>,
    video: Option<TrackClock>,
    audio: Option<TrackClock>,
    synced: bool,
}

impl Clock {
    /// The timeline time of a packet: strictly increasing per track.
    fn ms(
        &mut self,
        track: Track,
        time: MediaTime,
        arrival: Instant,
        report: Option<(SystemTime, u64)>,
    ) -> u64 {
        let origin = *self.origin.get_or_insert(arrival);
        let rate = u64::from(time.denom()).max(1);
        let slot = match track {
            Track::Video => &mut self.video,
            Track::Audio => &mut self.audio,
        };
        let tc = slot.get_or_insert_with(|| TrackClock {
            first_rtp: time.numer(),
            first_ms: u64::try_from(arrival.saturating_duration_since(origin).as_millis())
                .unwrap_or(u64::MAX),
            rate,
            last_ms: None,
            report: None,
        });
        if report.is_some() {
            tc.report = report;
        }
        self.sync();
        let Some(tc) = (match track {
            Track::Video => self.video.as_mut(),
            Track::Audio => self.audio.as_mut(),
        }) else {
            return 0;
        };
        let ticks = time.numer().saturating_sub(tc.first_rtp);
        let mut ms = tc
            .first_ms
            .saturating_add(ticks.saturating_mul(1000) / tc.rate);
        if let Some(last) = tc.last_ms
            && ms <= last
        {
            ms = last + 1;
        }
        tc.last_ms = Some(ms);
        ms
    }

    /// Once both tracks have a Sender Report: re-anchors audio so that the sender's
    /// wallclock distance between the tracks' first packets is kept on our timeline.
    fn sync(&mut self) {
        if self.synced {
            return;
        }
        let (Some(v), Some(a)) = (self.video.as_ref(), self.audio.as_mut()) else {
            return;
        };
        let (Some(vw), Some(aw)) = (sender_time(v), sender_time(a)) else {
            return;
        };
        // Audio's first sample was captured `aw - vw` after video's first frame.
        let delta_ms = match aw.duration_since(vw) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        };
        a.first_ms = v.first_ms.saturating_add_signed(delta_ms);
        self.synced = true;
    }
}

/// The sender's wallclock of a track's first packet, from its Sender Report.
fn sender_time(tc: &TrackClock) -> Option<SystemTime> {
    let (ntp, sr_rtp) = tc.report?;
    // 32-bit RTP arithmetic: the report may carry the unextended timestamp.
    let diff = i64::from((tc.first_rtp as u32).wrapping_sub(sr_rtp as u32) as i32);
    let us = diff.saturating_mul(1_000_000) / i64::try_from(tc.rate).unwrap_or(1);
    if us >= 0 {
        ntp.checked_add(Duration::from_micros(us.unsigned_abs()))
    } else {
        ntp.checked_sub(Duration::from_micros(us.unsigned_abs()))
    }
}

/// Turns one publisher's depacketized media (str0m's `MediaData`) into hub frames of one
/// stream: the shared timeline, the video converter, the Opus header, strictly increasing
/// times per track. A WHIP ingest has one; a room participant one per stream it publishes.
pub(crate) struct HubSink {
    /// The stream's key (for logs).
    pub(crate) key: String,
    /// The hub publisher, its counters, its session and its limit slot.
    pub(crate) admitted: control::Publishing<control::Session>,
    clock: Clock,
    /// Made for the codec of the first video frame (the one the answer negotiated).
    video: Option<VideoIn>,
    /// The Opus sequence header went to the hub.
    opus_header_sent: bool,
    /// Timeline ms of the first frame given to the hub; earlier frames are dropped, and
    /// hub time is timeline time minus this.
    base: Option<u64>,
    last_video_dts: Option<u64>,
    last_audio_dts: Option<u64>,
    /// When the last video keyframe went to the hub.
    pub(crate) last_keyframe: Instant,
    /// The next video frame starts another simulcast layer: wait for its keyframe.
    layer_switched: bool,
}

impl HubSink {
    /// A sink feeding `admitted`'s hub stream.
    pub(crate) fn new(key: String, admitted: control::Publishing<control::Session>) -> Self {
        Self {
            key,
            admitted,
            clock: Clock::default(),
            video: None,
            opus_header_sent: false,
            base: None,
            last_video_dts: None,
            last_audio_dts: None,
            last_keyframe: Instant::now(),
            layer_switched: false,
        }
    }

    /// The video now comes from another simulcast layer (another SSRC, another RTP time
    /// base): its clock is anchored anew at the layer's first packet and frames wait for
    /// its keyframe; hub time stays strictly increasing.
    pub(crate) fn switch_layer(&mut self) {
        self.clock.video = None;
        self.clock.synced = false;
        self.layer_switched = true;
    }

    /// One depacketized frame from the publisher; true when a keyframe should be requested
    /// (loss str0m could not repair).
    pub(crate) fn media(&mut self, d: &MediaData) -> bool {
        let codec = d.params.spec().codec;
        let track = match codec {
            RtcCodec::Opus => Track::Audio,
            c if hub_codec(c).is_some() => Track::Video,
            _ => return false,
        };
        let report = d
            .last_sender_info
            .as_ref()
            .map(|s| (s.ntp_time, s.rtp_time.numer()));
        let ms = self.clock.ms(track, d.time, d.network_time, report);
        match track {
            Track::Video => {
                let contiguous = d.contiguous && !std::mem::take(&mut self.layer_switched);
                let Some(v) = self.video_in(codec) else {
                    return false;
                };
                let (unit, want_key) = v.accept(&d.data, contiguous);
                if let Some(u) = unit {
                    self.video(u, ms);
                }
                want_key
            }
            Track::Audio => {
                self.audio(&d.data, ms);
                false
            }
        }
    }

    /// Hub time of timeline `ms`, strictly after `last`; `None` before the hub's start.
    fn hub_time(&mut self, ms: u64, track: Track) -> Option<u64> {
        let base = *self.base.get_or_insert(ms);
        let dts = ms.checked_sub(base)?;
        let last = match track {
            Track::Video => &mut self.last_video_dts,
            Track::Audio => &mut self.last_audio_dts,
        };
        if last.is_some_and(|l| dts <= l) {
            return None;
        }
        *last = Some(dts);
        Some(dts)
    }

    /// The video converter for `codec`, made at its first frame (and remade, with a log, if
    /// the publisher switches codec).
    fn video_in(&mut self, codec: RtcCodec) -> Option<&mut VideoIn> {
        let codec = hub_codec(codec)?;
        if self.video.as_ref().is_none_or(|v| v.codec() != codec) {
            tracing::info!(stream = %self.key, "webrtc ingest video: {}", rtp::sdp::codec_name(codec));
            self.video = VideoIn::new(codec);
        }
        self.video.as_mut()
    }

    fn video(&mut self, u: VideoUnit, ms: u64) {
        let Some(dts) = self.hub_time(ms, Track::Video) else {
            return;
        };
        if u.keyframe {
            self.last_keyframe = Instant::now();
        }
        if let Some(header) = u.header {
            self.push(header, flv::mux::TAG_VIDEO, dts);
        }
        self.push(u.frame, flv::mux::TAG_VIDEO, dts);
    }

    /// One Opus packet, into the hub as it came (its sequence header before the first).
    fn audio(&mut self, packet: &[u8], ms: u64) {
        if packet.is_empty() {
            return;
        }
        let Some(dts) = self.hub_time(ms, Track::Audio) else {
            return;
        };
        if !self.opus_header_sent {
            self.push(rtp::audio::opus_header_body(), flv::mux::TAG_AUDIO, dts);
            self.opus_header_sent = true;
        }
        self.push(rtp::audio::opus_body(packet), flv::mux::TAG_AUDIO, dts);
    }

    fn push(&mut self, body: Vec<u8>, tag_type: u8, dts: u64) {
        // The hub takes publisher timestamps as 32-bit RTMP time and unwraps them.
        let ts = (dts & 0xFFFF_FFFF) as u32;
        match flv::frame_from_tag(tag_type, ts, Bytes::from(body)) {
            Ok(frame) => {
                self.admitted.counters.observe(&frame);
                self.admitted.publisher.push(frame);
            }
            Err(e) => tracing::debug!(stream = %self.key, "webrtc ingest: frame not built: {e}"),
        }
    }
}

/// What the task keeps between events.
struct State {
    connected: bool,
    disconnected: bool,
    video_mid: Option<Mid>,
    /// A keyframe request is wanted.
    want_key: bool,
    last_request: Option<Instant>,
    subscribers: u64,
    received: usize,
}

/// Runs the ingest until it ends, then frees everything it held.
pub(crate) async fn run(shared: Arc<Shared>, wr: Arc<WebRtc>, mut p: Ingest) {
    let ice_timeout = Duration::from_millis(shared.ctl.config.webrtc.ice_timeout_ms);
    let interval = Duration::from_millis(shared.ctl.config.webrtc.whip_keyframe_interval_ms);
    let mut last_rx = Instant::now();
    let connect_by = last_rx + ice_timeout;
    let mut st = State {
        connected: false,
        disconnected: false,
        video_mid: None,
        want_key: true,
        last_request: None,
        subscribers: 0,
        received: 0,
    };
    let mut next = drain(&mut p, &wr, &mut st);
    let shutdown = shared.ctl.shutdown.clone();
    let mut poll = tokio::time::interval(VIEWER_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut kicked = false;
    loop {
        if st.disconnected || !p.rtc.is_alive() {
            break;
        }
        let silent_until = last_rx + ice_timeout;
        let mut wake = next.min(silent_until);
        if !st.connected {
            wake = wake.min(connect_by);
        }
        tokio::select! {
            biased;
            _ = p.kick.cancelled() => {
                kicked = true;
                break;
            }
            _ = shutdown.cancelled() => break,
            d = p.rx.recv() => {
                let Some(d) = d else { break };
                last_rx = Instant::now();
                p.sink.admitted.session.bytes(d.data.len());
                st.received += d.data.len();
                peer::receive(&mut p.rtc, &wr, d);
            }
            c = p.cmd.recv() => match c {
                Some(PeerCmd::AddCandidate(line)) => peer::add_candidate(&mut p.rtc, &line),
                Some(PeerCmd::IceRestart(r)) => super::restart::apply(&mut p.rtc, r),
                None => break,
            },
            _ = poll.tick() => {
                let now = Instant::now();
                if let Some(s) = shared.ctl.hub.stream(&p.sink.key) {
                    if s.subscribers > st.subscribers && s.gop_frames == 0 {
                        st.want_key = true;
                    }
                    st.subscribers = s.subscribers;
                }
                let since_request = st.last_request.map_or(interval, |t| now - t);
                if now - p.sink.last_keyframe >= interval && since_request >= interval {
                    st.want_key = true;
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if !peer::timeout(&mut p.rtc, &p.sink.key, silent_until, st.connected, connect_by) {
                    break;
                }
            }
        }
        request_keyframe(&mut p.rtc, &mut st);
        next = drain(&mut p, &wr, &mut st);
    }
    p.rtc.disconnect();
    let _ = drain(&mut p, &wr, &mut st);
    if kicked {
        // DELETE (or an API kick) ends the publish now: no grace period for a publisher
        // that said it is done.
        shared.ctl.hub.end_stream(&p.sink.key);
    }
    let key = std::mem::take(&mut p.sink.key);
    drop(p.sink);
    drop(p.cleanup);
    tracing::info!(stream = %key, bytes = st.received, "whip publisher closed");
}

/// Sends a PLI when one is wanted, the video track is known and the last one is old enough.
fn request_keyframe(rtc: &mut Rtc, st: &mut State) {
    let now = Instant::now();
    if !st.want_key
        || !st.connected
        || st
            .last_request
            .is_some_and(|t| now - t < KEYFRAME_REQUEST_MIN_GAP)
    {
        return;
    }
    let Some(mid) = st.video_mid else { return };
    let mut api = rtc.direct_api();
    let Some(rx) = api.stream_rx_by_mid(mid, None) else {
        return;
    };
    rx.request_keyframe(KeyframeRequestKind::Pli);
    st.want_key = false;
    st.last_request = Some(now);
    tracing::debug!("whip: keyframe requested");
}

/// Drains `poll_output` until a timeout, sending transmits and handling events.
fn drain(p: &mut Ingest, wr: &WebRtc, st: &mut State) -> Instant {
    loop {
        match p.rtc.poll_output() {
            Ok(Output::Timeout(t)) => return t,
            Ok(Output::Transmit(t)) => {
                wr.send(&t);
            }
            Ok(Output::Event(e)) => event(p, wr, st, e),
            Err(e) => {
                tracing::debug!("whip peer error: {e}");
                st.disconnected = true;
                return Instant::now() + Duration::from_secs(1);
            }
        }
    }
}

fn event(p: &mut Ingest, wr: &WebRtc, st: &mut State, e: Event) {
    match e {
        Event::MediaAdded(m) if m.kind == RtcKind::Video => st.video_mid = Some(m.mid),
        Event::Connected => {
            st.connected = true;
            st.want_key = true;
            p.cleanup.connected();
            // The session really starts now: listed, and its `publish` webhook fired.
            p.sink.admitted.session.start();
            wr.stats.connected.fetch_add(1, Ordering::Relaxed);
            tracing::info!(stream = %p.sink.key, "whip publisher connected");
        }
        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
            st.disconnected = true;
        }
        Event::MediaData(d) => media(p, st, &d),
        _ => {}
    }
}

/// One depacketized frame from the publisher.
fn media(p: &mut Ingest, st: &mut State, d: &MediaData) {
    if hub_codec(d.params.spec().codec).is_some() {
        st.video_mid.get_or_insert(d.mid);
    }
    st.want_key |= p.sink.media(d);
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::media::Frequency;

    #[test]
    fn clock_maps_both_tracks_on_one_timeline() {
        let t0 = Instant::now();
        let mut c = Clock::default();
        let v = |n| MediaTime::new(n, Frequency::NINETY_KHZ);
        let a = |n| MediaTime::new(n, Frequency::FORTY_EIGHT_KHZ);
        assert_eq!(c.ms(Track::Video, v(9_000_000), t0, None), 0);
        // Audio's first packet arrives 30 ms later: its track starts at 30.
        let t30 = t0 + Duration::from_millis(30);
        assert_eq!(c.ms(Track::Audio, a(123_456), t30, None), 30);
        // Later packets follow their RTP clocks, not their arrival.
        assert_eq!(c.ms(Track::Video, v(9_000_000 + 3000), t0, None), 33);
        assert_eq!(c.ms(Track::Audio, a(123_456 + 960), t0, None), 50);
        // Same or earlier RTP time still moves forward (strictly increasing per track).
        assert_eq!(c.ms(Track::Video, v(9_000_000 + 3000), t0, None), 34);
        assert_eq!(c.ms(Track::Video, v(8_000_000), t0, None), 35);
    }

    #[test]
    fn sender_reports_line_the_tracks_up() {
        let t0 = Instant::now();
        let ntp = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut c = Clock::default();
        let v = |n| MediaTime::new(n, Frequency::NINETY_KHZ);
        let a = |n| MediaTime::new(n, Frequency::FORTY_EIGHT_KHZ);
        // Video's first frame at RTP 90_000, whose report says RTP 90_000 = ntp.
        assert_eq!(c.ms(Track::Video, v(90_000), t0, Some((ntp, 90_000))), 0);
        // Audio arrives 200 ms later (say, a slow path), but the sender says its first
        // sample (RTP 4800) was captured 100 ms after the video frame (RTP 0 = ntp).
        let late = t0 + Duration::from_millis(200);
        c.ms(Track::Audio, a(4800), late, Some((ntp, 0)));
        assert!(c.synced);
        assert_eq!(c.ms(Track::Audio, a(4800 + 960), late, None), 120);
    }

    #[test]
    fn flv_bodies_parse_back_to_frames() {
        let f = flv::frame_from_tag(
            flv::mux::TAG_VIDEO,
            40,
            Bytes::from(rtp::video_in::avc_body(true, 1, &[0, 0, 0, 1, 0x65])),
        )
        .unwrap();
        assert!(f.is_video_keyframe());
        assert_eq!(f.codec, media::Codec::H264);
        assert_eq!(f.payload().as_ref(), &[0, 0, 0, 1, 0x65]);
        let f = flv::frame_from_tag(
            flv::mux::TAG_VIDEO,
            0,
            Bytes::from(rtp::video_in::avc_body(true, 0, &[1, 2])),
        )
        .unwrap();
        assert_eq!(f.role, media::FrameRole::SequenceHeader);
        let f = flv::frame_from_tag(
            flv::mux::TAG_AUDIO,
            0,
            Bytes::from(rtp::audio::opus_header_body()),
        )
        .unwrap();
        assert_eq!(
            (f.codec, f.role),
            (media::Codec::Opus, media::FrameRole::SequenceHeader)
        );
        let f = flv::frame_from_tag(
            flv::mux::TAG_AUDIO,
            21,
            Bytes::from(rtp::audio::opus_body(&[0xFC, 9])),
        )
        .unwrap();
        assert_eq!((f.role, f.dts), (media::FrameRole::Coded, 21));
        assert_eq!(f.payload().as_ref(), &[0xFC, 9]);
    }
}
