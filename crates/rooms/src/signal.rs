//! The signalling codec of `/rtc`: each WebSocket binary message from a client is one
//! protobuf `SignalRequest`, each message to it one `SignalResponse` (LiveKit's client SDKs
//! use binary protobuf, not JSON, on this socket).
//!
//! A request comes from a participant, who is only as trusted as a join token: before prost
//! decodes it, its size is bounded ([`MAX_SIGNAL_MESSAGE`]) and its wire structure is walked
//! without allocating, so that the number of nested messages ([`MAX_SIGNAL_NESTED`]) and their
//! depth ([`MAX_SIGNAL_DEPTH`]) are bounded too. Without that walk, a 1 MiB message of empty
//! repeated sub-messages (two bytes each on the wire, about 300 bytes each once decoded, e.g.
//! `SyncState.publish_tracks`) would cost some 300 MiB to decode.

use prost::Message;

use crate::RoomsError;
use crate::proto;

/// Largest signal message accepted (bytes). A publisher's offer with every codec and
/// simulcast layer is tens of kilobytes; a larger WebSocket message is refused unparsed.
pub const MAX_SIGNAL_MESSAGE: usize = 1 << 20;
/// Most sub-messages (fields that decode as a message, at any depth) in one request: a
/// reconnecting client's `SyncState` with 100 tracks has a few thousand, and each costs up
/// to a few hundred bytes once decoded, so this bounds a request's decoded size to a few MiB.
pub const MAX_SIGNAL_NESTED: usize = 16_384;
/// Deepest nesting of messages in a request. LiveKit's requests nest about six deep; prost's
/// own limit (100) is far above what a request needs.
pub const MAX_SIGNAL_DEPTH: usize = 16;

/// Decodes one client message (a WebSocket binary message).
pub fn decode_request(bytes: &[u8]) -> Result<proto::SignalRequest, RoomsError> {
    if bytes.len() > MAX_SIGNAL_MESSAGE {
        return Err(RoomsError::TooLarge {
            what: "signal message",
            len: bytes.len(),
            max: MAX_SIGNAL_MESSAGE,
        });
    }
    let mut nested = 0;
    match walk(bytes, 0, &mut nested) {
        Ok(true) => {}
        Ok(false) => {
            return Err(RoomsError::BadRequest(
                "signal message is not a protobuf message".to_owned(),
            ));
        }
        Err(why) => return Err(RoomsError::BadRequest(format!("signal message {why}"))),
    }
    proto::SignalRequest::decode(bytes)
        .map_err(|e| RoomsError::BadRequest(format!("signal message: {e}")))
}

/// Encodes one server message (sent as a WebSocket binary message).
pub fn encode_response(resp: &proto::SignalResponse) -> Vec<u8> {
    resp.encode_to_vec()
}

/// Encodes a client message, as LiveKit's client SDKs do (for tests and loopback clients).
pub fn encode_request(req: &proto::SignalRequest) -> Vec<u8> {
    req.encode_to_vec()
}

/// Why a walk refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// More than [`MAX_SIGNAL_NESTED`] sub-messages.
    TooMany,
    /// A sub-message deeper than [`MAX_SIGNAL_DEPTH`].
    TooDeep,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooMany => write!(f, "has more than {MAX_SIGNAL_NESTED} sub-messages"),
            Refusal::TooDeep => write!(f, "nests messages deeper than {MAX_SIGNAL_DEPTH}"),
        }
    }
}

/// Walks `buf` as the fields of a protobuf message without decoding it. `Ok(false)`: it is
/// not well-formed protobuf (then it can only be a string or bytes field). The walk accepts
/// everything prost accepts as a message (and more), so nothing prost decodes as a message
/// escapes the count. Every
/// length-delimited field whose contents are themselves a well-formed message could be
/// decoded as a message, so each is counted in `nested` (an over-count for strings that
/// happen to parse, which real strings like SDP, ids and names do not: their first byte is
/// not a valid key). Work is at most `buf.len() * MAX_SIGNAL_DEPTH` steps.
fn walk(buf: &[u8], depth: usize, nested: &mut usize) -> Result<bool, Refusal> {
    // What this level found, added to `nested` once the whole level is known to be a message.
    let mut here = 0usize;
    let is_message = fields(buf, |inner| {
        let mut inner_count = 0usize;
        let inner_is_message = if inner.is_empty() {
            true
        } else if depth + 1 >= MAX_SIGNAL_DEPTH {
            // Too deep to walk: refuse it if it could be a message at all.
            if fields(inner, |_| Ok(()))? {
                return Err(Refusal::TooDeep);
            }
            false
        } else {
            walk(inner, depth + 1, &mut inner_count)?
        };
        if inner_is_message {
            here = here.saturating_add(1).saturating_add(inner_count);
            if nested.saturating_add(here) > MAX_SIGNAL_NESTED {
                return Err(Refusal::TooMany);
            }
        }
        Ok(())
    })?;
    if is_message {
        *nested += here;
    }
    Ok(is_message)
}

/// Reads one level of fields of `buf`, calling `delimited` with the contents of each
/// length-delimited one. `Ok(false)` when `buf` is not a well-formed sequence of fields.
fn fields(
    mut buf: &[u8],
    mut delimited: impl FnMut(&[u8]) -> Result<(), Refusal>,
) -> Result<bool, Refusal> {
    while !buf.is_empty() {
        let Some(key) = varint(&mut buf) else {
            return Ok(false);
        };
        let field = key >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Ok(false);
        }
        let skip = match key & 7 {
            0 => {
                if varint(&mut buf).is_none() {
                    return Ok(false);
                }
                0
            }
            1 => 8,
            5 => 4,
            2 => {
                let Some(len) = varint(&mut buf) else {
                    return Ok(false);
                };
                let Some(len) = usize::try_from(len).ok().filter(|&l| l <= buf.len()) else {
                    return Ok(false);
                };
                let (inner, rest) = buf.split_at(len);
                delimited(inner)?;
                buf = rest;
                0
            }
            // Group start and end (3, 4): no payload of their own. LiveKit's protocol has no
            // groups, but prost skips unknown ones inside a message, so the fields around
            // them must still be seen and counted.
            3 | 4 => 0,
            // 6 and 7 are not wire types.
            _ => return Ok(false),
        };
        let Some(rest) = buf.get(skip..) else {
            return Ok(false);
        };
        buf = rest;
    }
    Ok(true)
}

/// Reads a base-128 varint (at most 10 bytes), advancing `buf`.
fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::signal_request::Message as Req;

    /// Requests as LiveKit's client SDK sends them; also the fuzz seeds
    /// (`fuzz/seeds/rooms_signal/`, written by `write_fuzz_seeds`).
    fn samples() -> Vec<(&'static str, proto::SignalRequest)> {
        let offer = proto::SessionDescription {
            r#type: "offer".into(),
            sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
                  m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
                  a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
                  a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:\
                  00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\n\
                  a=mid:0\r\na=sctp-port:5000\r\n"
                .into(),
            id: 1,
            ..Default::default()
        };
        let add_track = proto::AddTrackRequest {
            cid: "f2c3d0f4-camera".into(),
            name: "camera".into(),
            r#type: proto::TrackType::Video as i32,
            width: 1280,
            height: 720,
            source: proto::TrackSource::Camera as i32,
            layers: vec![
                proto::VideoLayer {
                    quality: proto::VideoQuality::Low as i32,
                    width: 320,
                    height: 180,
                    bitrate: 150_000,
                    ..Default::default()
                },
                proto::VideoLayer {
                    quality: proto::VideoQuality::High as i32,
                    width: 1280,
                    height: 720,
                    bitrate: 1_700_000,
                    ..Default::default()
                },
            ],
            simulcast_codecs: vec![proto::SimulcastCodec {
                codec: "vp8".into(),
                cid: "f2c3d0f4-camera".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let ping = proto::Ping {
            timestamp: 1_765_000_000_000,
            rtt: 42,
        };
        [
            ("offer", Req::Offer(offer)),
            ("add_track", Req::AddTrack(add_track)),
            ("ping_req", Req::PingReq(ping)),
        ]
        .into_iter()
        .map(|(n, m)| (n, proto::SignalRequest { message: Some(m) }))
        .collect()
    }

    #[test]
    fn requests_round_trip() {
        for (name, req) in samples() {
            let bytes = encode_request(&req);
            assert_eq!(decode_request(&bytes).as_ref(), Ok(&req), "{name}");
        }
        // An empty message is a request with no message set (the caller ignores it).
        assert_eq!(decode_request(&[]), Ok(proto::SignalRequest::default()));
    }

    #[test]
    fn responses_encode_as_protobuf() {
        let resp = proto::SignalResponse {
            message: Some(proto::signal_response::Message::PongResp(proto::Pong {
                last_ping_timestamp: 5,
                timestamp: 6,
            })),
        };
        let bytes = encode_response(&resp);
        assert_eq!(proto::SignalResponse::decode(bytes.as_slice()), Ok(resp));
    }

    #[test]
    fn oversized_message_is_refused_unparsed() {
        let big = vec![0u8; MAX_SIGNAL_MESSAGE + 1];
        let err = decode_request(&big).unwrap_err();
        assert_eq!(
            err,
            RoomsError::TooLarge {
                what: "signal message",
                len: MAX_SIGNAL_MESSAGE + 1,
                max: MAX_SIGNAL_MESSAGE
            }
        );
        assert!(err.to_string().contains("1048576"), "{err}");
    }

    #[test]
    fn malformed_messages_are_errors() {
        for bad in [
            &[0xff][..],             // truncated varint key
            &[0x0a, 0x05, 0x01][..], // offer longer than the message
            &[0x0b][..],             // group start
            &[0x00, 0x01][..],       // field 0
            &[0x08, 0xff, 0xff][..], // truncated varint value
            &[0x0a, 0x02, 0x12][..], // length past the end
            &[0x0a, 0x01, 0x08][..], // an offer whose inner varint is cut
        ] {
            assert!(
                matches!(decode_request(bad), Err(RoomsError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }

    /// `SyncState` (field 12) holding `n` empty `publish_tracks` (field 3), each two bytes.
    fn sync_state_with_empty_tracks(n: usize) -> Vec<u8> {
        let inner: Vec<u8> = std::iter::repeat_n([0x1a, 0x00], n).flatten().collect();
        let mut out = vec![0x62];
        let mut len = inner.len();
        while len >= 0x80 {
            out.push((len as u8) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend(inner);
        out
    }

    #[test]
    fn many_small_sub_messages_are_refused_before_decoding() {
        // Just below the budget (the SyncState itself is one) decodes...
        let ok = sync_state_with_empty_tracks(MAX_SIGNAL_NESTED - 1);
        match decode_request(&ok) {
            Ok(proto::SignalRequest {
                message: Some(Req::SyncState(s)),
            }) => assert_eq!(s.publish_tracks.len(), MAX_SIGNAL_NESTED - 1),
            other => panic!("{:?}", other.map(|_| ())),
        }
        // ...one more, far under the byte limit, is refused.
        let bad = sync_state_with_empty_tracks(MAX_SIGNAL_NESTED);
        assert!(bad.len() < MAX_SIGNAL_MESSAGE / 10);
        let err = decode_request(&bad).unwrap_err();
        assert!(err.to_string().contains("sub-messages"), "{err}");
    }

    #[test]
    fn sub_messages_beside_an_unknown_group_are_counted() {
        // prost skips an unknown group (field 15, start and end) and decodes the fields
        // around it: they must be counted all the same.
        let with_group = |n: usize| {
            let mut inner = vec![0x7b, 0x7c];
            inner.extend(std::iter::repeat_n([0x1a, 0x00], n).flatten());
            let mut m = vec![0x62];
            let mut len = inner.len();
            while len >= 0x80 {
                m.push((len as u8) | 0x80);
                len >>= 7;
            }
            m.push(len as u8);
            m.extend(inner);
            m
        };
        match decode_request(&with_group(MAX_SIGNAL_NESTED - 1)) {
            Ok(proto::SignalRequest {
                message: Some(Req::SyncState(s)),
            }) => assert_eq!(s.publish_tracks.len(), MAX_SIGNAL_NESTED - 1),
            other => panic!("{:?}", other.map(|_| ())),
        }
        let err = decode_request(&with_group(MAX_SIGNAL_NESTED)).unwrap_err();
        assert!(err.to_string().contains("sub-messages"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        // Each level: field 1, length-delimited, holding the next level.
        let mut msg: Vec<u8> = vec![0x08, 0x01];
        for _ in 0..MAX_SIGNAL_DEPTH + 1 {
            let mut outer = vec![0x0a, msg.len() as u8];
            outer.extend(&msg);
            msg = outer;
        }
        let err = decode_request(&msg).unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
    }

    #[test]
    fn strings_are_not_counted_as_messages() {
        // An offer's SDP text does not parse as protobuf: one sub-message (the offer).
        let mut nested = 0;
        let (_, req) = samples().remove(0);
        assert_eq!(walk(&encode_request(&req), 0, &mut nested), Ok(true));
        assert_eq!(nested, 1);
    }

    /// Writes the fuzz seeds: `SLUICE_WRITE_SEEDS=1 cargo test -p rooms write_fuzz_seeds`.
    #[test]
    fn write_fuzz_seeds() {
        if std::env::var_os("SLUICE_WRITE_SEEDS").is_none() {
            return;
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/rooms_signal");
        std::fs::create_dir_all(dir).unwrap();
        for (name, req) in samples() {
            std::fs::write(format!("{dir}/{name}.bin"), encode_request(&req)).unwrap();
        }
    }
}
