//! One WHEP viewer: a task that owns its `Rtc` (no lock around it) and drives it per str0m's
//! contract: every mutation (datagram, timeout, media write, candidate) is followed by
//! draining `poll_output` until `Output::Timeout`.
//!
//! The viewer's one hub subscription carries the video and its audio in Opus (as published,
//! or the stream's derived Opus track): both are written as they come.
//!
//! A viewer of an H.264 stream runs its `Rtc` in RTP mode: its video is written as the
//! stream's shared RTP payloads ([`crate::payloads`], built once per stream) and its Opus
//! packets as one payload each, with the viewer's own sequence numbers; str0m adds the
//! header, keeps the RTX history (of the shared bytes), answers NACKs, encrypts and sends.
//! Other video codecs go through str0m's frame mode (str0m packetizes per viewer).
//!
//! The peer is pending (counted against `webrtc.max_pending_peers`) until ICE and DTLS
//! complete; then its session starts (API entry, `play` webhook) and media flows.
//!
//! The peer ends (and frees everything: routes, resource, counters, API entry, its want of
//! the derived audio) on DELETE or kick, when ICE disconnects, when nothing arrives from the viewer for
//! `webrtc.ice_timeout_ms` (which also bounds the time to connect), when the stream ends, or
//! at shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hub::{Subscriber, TryRecv};
use media::Frame;
use std::net::IpAddr;
use str0m::bwe::BweKind;
use str0m::format::Codec as RtcCodec;
use str0m::media::{Frequency, MediaTime, Mid, Pt};
use str0m::net::Receive;
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::payloads::StreamPayloads;
use super::quality::PeerQuality;
use super::{Datagram, PeerCmd, WebRtc};
use crate::Shared;
use control::ViewerGuard;
use control::sessions::Session;
use rtp::audio::AudioOut;
use rtp::video_out::VideoOut;

/// Frees a peer's routes, resource and slot (and its pending place, if it never connected)
/// when dropped: on every exit path of its task, a panic inside str0m included.
pub(crate) struct Cleanup {
    pub(crate) wr: Arc<WebRtc>,
    pub(crate) id: u64,
    pub(crate) ufrag: String,
    pub(crate) resource: String,
    pub(crate) stream: String,
    /// Counted as pending (from the client address `.1`) until [`Cleanup::connected`].
    pub(crate) pending: (bool, Option<IpAddr>),
}

impl Cleanup {
    /// ICE and DTLS completed: the peer is no longer pending.
    pub(crate) fn connected(&mut self) {
        if std::mem::take(&mut self.pending.0) {
            self.wr.tables().unpend(self.pending.1);
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        {
            let mut t = self.wr.tables();
            super::forget_in(&mut t, self.id, &self.ufrag, &self.resource, &self.stream);
            if self.pending.0 {
                t.unpend(self.pending.1);
            }
        }
        self.wr.stats.peers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Everything a peer task owns.
pub(crate) struct Peer {
    pub(crate) cleanup: Cleanup,
    pub(crate) rtc: Rtc,
    pub(crate) stream: String,
    /// Video and Opus audio (as published, or the stream's derived Opus track).
    pub(crate) sub: Subscriber,
    pub(crate) rx: mpsc::Receiver<Datagram>,
    pub(crate) cmd: mpsc::Receiver<PeerCmd>,
    pub(crate) kick: CancellationToken,
    pub(crate) viewer: ViewerGuard,
    /// Listed (and announced) when the peer connects.
    pub(crate) session: Session,
    /// The stream's shared RTP payloads when the `Rtc` is in RTP mode (H.264 video).
    pub(crate) payloads: Option<Arc<StreamPayloads>>,
}

/// What the drain loop learnt.
#[derive(Debug, Default)]
struct State {
    video: Option<(Mid, Pt)>,
    /// The codec negotiated for `video`.
    video_codec: Option<RtcCodec>,
    audio: Option<(Mid, Pt)>,
    connected: bool,
    disconnected: bool,
    /// Wallclock of hub time `.1` (ms): ties both tracks' Sender Reports to one timeline.
    epoch: Option<(Instant, u64)>,
    sent: usize,
    quality: PeerQuality,
    /// RTP mode: the next (extended) sequence numbers of the video and audio tracks.
    seq: (u64, u64),
}

impl State {
    fn wallclock(&mut self, ms: u64) -> Instant {
        let (at, base) = *self.epoch.get_or_insert((Instant::now(), ms));
        if ms >= base {
            at + Duration::from_millis(ms - base)
        } else {
            at.checked_sub(Duration::from_millis(base - ms))
                .unwrap_or(at)
        }
    }
}

/// Most queued datagrams or hub frames taken in one wake besides the one that woke the
/// peer: what is ready is handled together (one str0m timeout and one drain
/// for all of it) while a flood still yields to the other branches and tasks.
pub const MAX_BATCH: usize = 32;
/// Most rounds of "str0m's timeout is already due: give it and drain again" in one wake
/// (str0m asks for an immediate timeout after a write, to packetize it).
pub const MAX_SETTLE_ROUNDS: usize = 4;

/// Runs the peer until it ends, then frees everything it held.
pub(crate) async fn run(shared: Arc<Shared>, wr: Arc<WebRtc>, mut p: Peer) {
    let ice_timeout = Duration::from_millis(shared.ctl.config.webrtc.ice_timeout_ms);
    let mut st = State {
        // Random starting points below 2^16 (RFC 3550; ROC 0, nothing to signal).
        seq: (
            u64::from(rand::random::<u16>()),
            u64::from(rand::random::<u16>()),
        ),
        ..State::default()
    };
    // Video conversions (H.264 Annex B, the other codecs' bytes) are shared with the
    // stream's other viewers.
    let mut annexb = VideoOut::default().with_cache(wr.annexb.get(&p.stream));
    let opus = AudioOut::default().with_cache(wr.opus.get(&p.stream));
    let mut last_rx = Instant::now();
    // ICE and DTLS must both complete within one ice_timeout of the answer.
    let connect_by = last_rx + ice_timeout;
    let mut next = settle(&mut p, &wr, &mut st);
    // The cancellation futures and the timer live as long as the peer: each wake polls
    // them, instead of registering (and on drop unregistering) new ones every time.
    let kicked = p.kick.clone().cancelled_owned();
    tokio::pin!(kicked);
    let stopping = shared.ctl.shutdown.clone().cancelled_owned();
    tokio::pin!(stopping);
    // One timer for the peer's life, moved only when the wake time changes (not a new
    // timer entry per wake).
    let sleep = tokio::time::sleep_until(next.into());
    tokio::pin!(sleep);
    loop {
        if st.disconnected || !p.rtc.is_alive() {
            break;
        }
        let silent_until = last_rx + ice_timeout;
        let mut wake = next.min(silent_until);
        if !st.connected {
            wake = wake.min(connect_by);
        }
        let wake = tokio::time::Instant::from_std(wake);
        if sleep.deadline() != wake {
            sleep.as_mut().reset(wake);
        }
        let connected = st.connected;
        tokio::select! {
            biased;
            () = &mut kicked => break,
            () = &mut stopping => break,
            d = p.rx.recv() => {
                let Some(d) = d else { break };
                last_rx = Instant::now();
                receive(&mut p.rtc, &wr, d);
                for _ in 0..MAX_BATCH {
                    let Ok(d) = p.rx.try_recv() else { break };
                    receive(&mut p.rtc, &wr, d);
                }
            }
            c = p.cmd.recv() => match c {
                Some(PeerCmd::AddCandidate(line)) => add_candidate(&mut p.rtc, &line),
                Some(PeerCmd::IceRestart(r)) => super::restart::apply(&mut p.rtc, r),
                None => break,
            },
            f = p.sub.recv(), if connected => {
                let Some(f) = f else { break };
                let live = p.sub.backlog() == 0;
                let t0 = Instant::now();
                let wrote = write_frame(&mut p, &wr, &mut st, &mut annexb, &opus, &f);
                let video = wrote && f.kind == media::MediaKind::Video;
                let more = write_ready(&mut p, &wr, &mut st, &mut annexb, &opus);
                if more.ended {
                    break;
                }
                if wrote || more.wrote {
                    next = packetize(&mut p, &wr, &mut st);
                    if video && live {
                        wr.stats.latency(t0.elapsed().as_micros() as u64);
                    }
                }
                continue;
            }
            () = &mut sleep => {
                if !timeout(&mut p.rtc, &p.stream, silent_until, st.connected, connect_by) {
                    break;
                }
            }
        }
        next = settle(&mut p, &wr, &mut st);
    }
    p.rtc.disconnect();
    let _ = drain(&mut p, &wr, &mut st);
    drop(p.cleanup);
    tracing::info!(stream = %p.stream, bytes = st.sent, "webrtc peer closed");
}

/// What [`write_ready`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Pumped {
    /// Something was written to a track.
    wrote: bool,
    /// The stream ended: the peer must close.
    ended: bool,
}

/// Writes the hub frames that are ready now, without waiting (at most [`MAX_BATCH`]), so
/// one wake and one drain serve all of them: a video frame and the audio beside it, or a
/// burst after a stall, no longer cost one wake each. Only once connected, as the select's
/// guards have it.
fn write_ready(
    p: &mut Peer,
    wr: &WebRtc,
    st: &mut State,
    annexb: &mut VideoOut,
    opus: &AudioOut,
) -> Pumped {
    let mut out = Pumped::default();
    if !st.connected {
        return out;
    }
    for _ in 0..MAX_BATCH {
        match p.sub.try_recv() {
            TryRecv::Frame(f) => out.wrote |= write_frame(p, wr, st, annexb, opus, &f),
            TryRecv::Empty => break,
            TryRecv::Ended => {
                out.ended = true;
                return out;
            }
        }
    }
    out
}

/// After media writes: str0m packetizes what was written on its next timeout, which it
/// asks for at once, so give it now (sparing the drain that would only learn that) and
/// settle. Returns when str0m wants to be woken next.
fn packetize(p: &mut Peer, wr: &WebRtc, st: &mut State) -> Instant {
    let _ = p.rtc.handle_input(Input::Timeout(Instant::now()));
    settle(p, wr, st)
}

/// Drains str0m's output and, while the timeout it asks for is already due (it packetizes
/// written media on a timeout), gives it that timeout and drains again, at most
/// [`MAX_SETTLE_ROUNDS`] times: what a wake wrote leaves in the same wake, not one timer
/// wake later. Returns when str0m wants to be woken next.
fn settle(p: &mut Peer, wr: &WebRtc, st: &mut State) -> Instant {
    let mut next = drain(p, wr, st);
    for _ in 0..MAX_SETTLE_ROUNDS {
        if st.disconnected {
            break;
        }
        let now = Instant::now();
        if next > now {
            break;
        }
        let _ = p.rtc.handle_input(Input::Timeout(now));
        next = drain(p, wr, st);
    }
    next
}

/// Feeds one datagram to `rtc`; what str0m refuses is counted as dropped.
pub(crate) fn receive(rtc: &mut Rtc, wr: &WebRtc, d: Datagram) {
    let Ok(contents) = d.data.as_slice().try_into() else {
        wr.stats.datagrams_dropped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let input = Input::Receive(
        d.at,
        Receive {
            proto: d.proto,
            source: d.source,
            destination: d.destination,
            contents,
        },
    );
    if rtc.handle_input(input).is_err() {
        wr.stats.datagrams_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Adds a trickled remote candidate (`a=candidate:...` or `candidate:...`).
pub(crate) fn add_candidate(rtc: &mut Rtc, line: &str) {
    let line = line.trim_start_matches("a=");
    match Candidate::from_sdp_string(line) {
        Ok(c) => rtc.add_remote_candidate(c),
        Err(e) => tracing::debug!(
            error = %access::escape_for_log(&e.to_string()),
            "webrtc trickle candidate ignored"
        ),
    }
}

/// The timer fired: false when the peer must close (silent past `silent_until`, or not
/// connected by `connect_by`), else str0m gets its timeout.
pub(crate) fn timeout(
    rtc: &mut Rtc,
    stream: &str,
    silent_until: Instant,
    connected: bool,
    connect_by: Instant,
) -> bool {
    let now = Instant::now();
    if now >= silent_until {
        tracing::info!(%stream, "webrtc peer timed out (no traffic)");
        return false;
    }
    if !connected && now >= connect_by {
        tracing::info!(%stream, "webrtc peer timed out (ICE/DTLS never completed)");
        return false;
    }
    let _ = rtc.handle_input(Input::Timeout(now));
    true
}

/// Drains `poll_output` until a timeout, sending transmits and handling events; returns
/// when str0m wants to be woken next.
fn drain(p: &mut Peer, wr: &WebRtc, st: &mut State) -> Instant {
    loop {
        match p.rtc.poll_output() {
            Ok(Output::Timeout(t)) => return t,
            Ok(Output::Transmit(t)) => {
                st.quality.on_transmit(&t.contents);
                if let Some(n) = wr.send(&t) {
                    p.viewer.sent(n);
                    p.session.bytes(n);
                    st.sent += n;
                }
            }
            Ok(Output::Event(e)) => event(p, wr, st, e),
            Err(e) => {
                tracing::debug!("webrtc peer error: {e}");
                st.disconnected = true;
                return Instant::now() + Duration::from_secs(1);
            }
        }
    }
}

fn event(p: &mut Peer, wr: &WebRtc, st: &mut State, e: Event) {
    match e {
        Event::MediaAdded(m) => {
            // The negotiated payload types of the section (what `Writer::payload_params`
            // gives, which RTP mode does not allow).
            let Some(media) = p.rtc.media(m.mid) else {
                return;
            };
            let remote = media.remote_pts().to_vec();
            let pt = p
                .rtc
                .codec_config()
                .params()
                .iter()
                .filter(|pp| remote.contains(&pp.pt()))
                .find_map(|pp| {
                    let spec = pp.spec();
                    let ok = spec.codec == RtcCodec::Opus || crate::codecs::usable(&spec);
                    ok.then_some((spec.codec, pp.pt()))
                });
            if let Some((_, pt)) = pt {
                st.quality.media_pt(*pt);
            }
            match pt {
                Some((RtcCodec::Opus, pt)) => st.audio = Some((m.mid, pt)),
                Some((codec, pt)) => {
                    st.video = Some((m.mid, pt));
                    st.video_codec = Some(codec);
                }
                None => {}
            }
        }
        Event::Connected => {
            st.connected = true;
            p.cleanup.connected();
            // The session really starts now: listed, and its `play` webhook fired.
            p.session.start();
            wr.stats.connected.fetch_add(1, Ordering::Relaxed);
            tracing::info!(stream = %p.stream, "webrtc peer connected");
        }
        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
            st.disconnected = true;
        }
        // Pass-through: nothing to re-encode; the next keyframe comes with the GOP.
        Event::KeyframeRequest(_) => tracing::trace!("webrtc keyframe request ignored"),
        Event::PeerStats(s) => {
            st.quality.on_peer(&s, &wr.stats.quality, &p.stream);
            p.session.set_detail(st.quality.to_json());
        }
        Event::MediaEgressStats(s) => {
            st.quality.on_egress(&s, &wr.stats.quality);
            p.session.set_detail(st.quality.to_json());
        }
        Event::EgressBitrateEstimate(
            BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. },
        ) => st.quality.set_estimate(estimate.as_u64()),
        _ => {}
    }
}

/// Writes one hub frame to its track (video, or Opus audio); true if something was written.
fn write_frame(
    p: &mut Peer,
    wr: &WebRtc,
    st: &mut State,
    annexb: &mut VideoOut,
    opus: &AudioOut,
    f: &Frame,
) -> bool {
    if f.kind == media::MediaKind::Audio {
        return write_audio(p, st, opus, f);
    }
    let Some(data) = annexb.convert(st.video_codec.and_then(crate::codecs::hub_codec), f) else {
        return false;
    };
    let Some((mid, pt)) = st.video else {
        return false;
    };
    let pts = f.dts.saturating_add_signed(i64::from(f.cts));
    let wallclock = st.wallclock(pts);
    if let Some(payloads) = &p.payloads {
        let (built, n) = payloads.h264(&data);
        if n > 0 {
            wr.stats
                .payloads_built
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        let Some(built) = built else {
            return false;
        };
        let mut api = p.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return false;
        };
        // The 90 kHz clock, wrapping as RTP timestamps do.
        let time = pts.wrapping_mul(90) as u32;
        for b in built.iter() {
            let seq: SeqNo = st.seq.0.into();
            st.seq.0 += 1;
            tx.write_rtp(
                RtpWrite::new(pt, seq, time, wallclock, Arc::clone(&b.data))
                    .marker(b.marker)
                    .nackable(true),
            );
        }
        st.quality
            .payloads_written(built.len() as u64, payloads.built());
        wr.stats
            .payloads_written
            .fetch_add(built.len() as u64, Ordering::Relaxed);
        return true;
    }
    let time = MediaTime::new(pts.saturating_mul(90), Frequency::NINETY_KHZ);
    let Some(w) = p.rtc.writer(mid) else {
        return false;
    };
    w.write(pt, wallclock, time, data).is_ok()
}

/// Writes one Opus frame (the packet as the hub carries it) to the audio track, at its dts
/// on the 48 kHz RTP clock; true if written.
fn write_audio(p: &mut Peer, st: &mut State, opus: &AudioOut, f: &Frame) -> bool {
    let Some((mid, pt)) = st.audio else {
        return false;
    };
    let Some(data) = opus.convert(f) else {
        return false;
    };
    let wallclock = st.wallclock(f.dts);
    if p.payloads.is_some() {
        // RTP mode: the Opus packet is the payload (RFC 7587), not answered by NACK (as
        // str0m's Opus packetizer has it).
        let mut api = p.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return false;
        };
        let seq: SeqNo = st.seq.1.into();
        st.seq.1 += 1;
        let time = f.dts.wrapping_mul(48) as u32;
        tx.write_rtp(RtpWrite::new(pt, seq, time, wallclock, data));
        return true;
    }
    let time = MediaTime::new(f.dts.saturating_mul(48), Frequency::FORTY_EIGHT_KHZ);
    let Some(w) = p.rtc.writer(mid) else {
        return false;
    };
    w.write(pt, wallclock, time, data).is_ok()
}
