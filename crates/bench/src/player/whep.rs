//! WHEP player: one str0m `Rtc` per viewer as an ordinary WebRTC client (full ICE,
//! controlling, DTLS client as the answer decides), offering recvonly H.264 video and Opus
//! audio, on its own UDP socket bound to 127.0.0.1:0. It POSTs the offer, applies the answer
//! (the server's ICE candidates come from it), drives the `Rtc` until `shared.stop`, then
//! DELETEs the resource named by `Location`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, Frequency, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use super::CONNECT_TIMEOUT;
use super::whep_http::{self, Response};
use crate::cli::Url;
use crate::stats::{PlayerError, PlayerStats, Shared};

/// Most WHEP viewers one run may open (each is a DTLS session and a UDP socket).
pub const MAX_WHEP_VIEWERS: usize = 5_000;
/// Most WHEP viewers started per second: every start is an ICE + DTLS handshake on both
/// sides, which would otherwise dominate the server CPU being measured.
pub const MAX_WHEP_RAMP: u32 = 50;
/// How long the DELETE of the resource may take when the viewer stops.
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(5);
/// UDP receive buffer per viewer (one datagram; str0m's MTU is below this).
pub const UDP_BUF: usize = 2048;
/// Longest sleep between `Rtc` timeouts (str0m asks for its own; this bounds a bogus one).
pub const MAX_POLL_SLEEP: Duration = Duration::from_secs(1);

/// The WHEP viewer's local state: the `Rtc` and its socket.
struct Viewer {
    rtc: Rtc,
    sock: tokio::net::UdpSocket,
    local: SocketAddr,
}

/// Builds an `Rtc` with a host candidate on `local` and a recvonly H.264 + Opus offer;
/// returns the viewer, its offer SDP and the pending offer to accept the answer with.
fn offer(local: SocketAddr) -> Result<(Rtc, String, str0m::change::SdpPendingOffer), PlayerError> {
    let mut rtc = RtcConfig::new()
        // RTP mode: packets are counted, not depacketized. str0m's frame assembler drops
        // frames whose RTP time is behind the last one emitted, i.e. every B-frame of a
        // Main-profile stream, which would undercount frames the server did deliver.
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(Instant::now());
    let cand = Candidate::host(local, "udp").map_err(|_| PlayerError::ConnectFailed)?;
    rtc.add_local_candidate(cand);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().ok_or(PlayerError::Protocol)?;
    let sdp = offer.to_sdp_string();
    Ok((rtc, sdp, pending))
}

/// POSTs the offer and applies the answer. Returns the viewer and the resource URL
/// (`(authority, path)`) to DELETE.
async fn signal(url: &Url) -> Result<(Viewer, (String, String)), PlayerError> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|_| PlayerError::ConnectFailed)?;
    let local = sock.local_addr().map_err(|_| PlayerError::ConnectFailed)?;
    let (mut rtc, sdp, pending) = offer(local)?;
    let resp: Response = tokio::time::timeout(
        CONNECT_TIMEOUT,
        whep_http::request(
            &url.authority(),
            "POST",
            &url.path,
            Some("application/sdp"),
            &sdp,
        ),
    )
    .await
    .map_err(|_| PlayerError::ConnectFailed)?
    .map_err(|e| match e {
        crate::BenchError::Io(_) => PlayerError::ConnectFailed,
        _ => PlayerError::Protocol,
    })?;
    if resp.status != 201 {
        return Err(PlayerError::Refused);
    }
    let location = resp.location.as_deref().ok_or(PlayerError::Protocol)?;
    let resource = whep_http::resolve_location(url, location).map_err(|_| PlayerError::Protocol)?;
    let answer = SdpAnswer::from_sdp_string(&resp.body).map_err(|_| PlayerError::Protocol)?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|_| PlayerError::Protocol)?;
    Ok((Viewer { rtc, sock, local }, resource))
}

/// Plays the WHEP endpoint `url` until `shared.stop`, then deletes the resource.
pub async fn play(url: &Url, shared: &Shared, st: &mut PlayerStats) -> Result<(), PlayerError> {
    let (mut v, (authority, path)) = signal(url).await?;
    let r = drive(&mut v, shared, st).await;
    v.rtc.disconnect();
    // DELETE even after a failure: the server frees the peer at once, not at its ICE timeout.
    let del = tokio::time::timeout(
        DELETE_TIMEOUT,
        whep_http::request(&authority, "DELETE", &path, None, ""),
    )
    .await;
    st.resource_deleted = matches!(del, Ok(Ok(ref resp)) if (200..300).contains(&resp.status));
    r
}

/// The poll loop: drain `poll_output`, then wait for a datagram, the `Rtc` timeout or stop.
async fn drive(v: &mut Viewer, shared: &Shared, st: &mut PlayerStats) -> Result<(), PlayerError> {
    let mut buf = vec![0u8; UDP_BUF];
    let connect_by = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let mut stall = super::stall_ticker();
    loop {
        let timeout = loop {
            match v.rtc.poll_output().map_err(|_| PlayerError::Protocol)? {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    // A full socket buffer drops the datagram, as UDP may; str0m retransmits.
                    let _ = v.sock.try_send_to(&t.contents, t.destination);
                }
                Output::Event(e) => on_event(e, shared, st)?,
            }
        };
        let now = Instant::now();
        let wait = timeout.saturating_duration_since(now).min(MAX_POLL_SLEEP);
        let input_at = tokio::select! {
            biased;
            _ = shared.stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(connect_by), if st.connect_ns.is_none() => {
                return Err(PlayerError::ConnectFailed);
            }
            _ = stall.tick() => {
                st.check_stall(shared, shared.now_ns());
                None
            }
            r = v.sock.recv_from(&mut buf) => match r {
                Ok((n, source)) => Some((n, source)),
                // ICMP port unreachable and the like: keep going, ICE decides.
                Err(_) => None,
            },
            _ = tokio::time::sleep(wait) => None,
        };
        let now = Instant::now();
        let input = match input_at {
            Some((n, source)) => {
                st.received(shared, n);
                let data = buf.get(..n).unwrap_or_default();
                // Not STUN/DTLS/RTP (a stray datagram): ignore it.
                let Ok(contents) = data.try_into() else {
                    continue;
                };
                Input::Receive(
                    now,
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: v.local,
                        contents,
                    },
                )
            }
            None => Input::Timeout(now),
        };
        v.rtc
            .handle_input(input)
            .map_err(|_| PlayerError::Protocol)?;
    }
}

/// Counts one `Rtc` event into `st`.
fn on_event(e: Event, shared: &Shared, st: &mut PlayerStats) -> Result<(), PlayerError> {
    match e {
        Event::Connected => st.connected(shared, shared.now_ns()),
        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
            return Err(PlayerError::ClosedEarly);
        }
        // One video frame per marker bit (RFC 6184: the last packet of an access unit);
        // every audio (Opus) packet counts. Padding (empty, BWE probes) is not media.
        Event::RtpPacket(p) if !p.payload.is_empty() => {
            let video = p.time.frequency() == Frequency::NINETY_KHZ;
            let ms = (p.time.as_seconds() * 1000.0) as u64;
            if !video || p.header.marker {
                st.rtp_media(shared, shared.now_ns(), video, ms, p.payload.len());
            } else {
                st.media_bytes += p.payload.len() as u64;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offer is what the server's WHEP check wants: recvonly H.264 with
    /// packetization-mode=1 and Opus, ICE credentials, a fingerprint and our host candidate.
    #[test]
    fn offer_is_recvonly_h264_and_opus_with_candidate() {
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let (_rtc, sdp, _pending) = offer(local).unwrap();
        assert!(sdp.starts_with("v=0"), "{sdp}");
        let m: Vec<&str> = sdp.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(m.len(), 2, "{sdp}");
        assert!(
            m[0].starts_with("m=video") && m[1].starts_with("m=audio"),
            "{m:?}"
        );
        assert_eq!(sdp.matches("a=recvonly").count(), 2, "{sdp}");
        assert!(sdp.contains("H264/90000"), "{sdp}");
        assert!(sdp.contains("packetization-mode=1"), "{sdp}");
        assert!(sdp.to_ascii_lowercase().contains("opus/48000/2"), "{sdp}");
        assert!(sdp.contains("a=ice-ufrag:") && sdp.contains("a=fingerprint:"));
        assert!(sdp.contains("127.0.0.1 40000 typ host"), "{sdp}");
        assert!(!sdp.contains("a=ice-lite"), "a viewer is a full ICE agent");
    }

    /// An answer that is not SDP is a protocol error, never a panic.
    #[test]
    fn bad_answer_is_rejected() {
        assert!(SdpAnswer::from_sdp_string("HTTP/1.1 nonsense").is_err());
    }
}
