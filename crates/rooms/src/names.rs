//! The hub stream each room track is published as, so every egress (WHEP, HLS, HTTP-FLV,
//! RTMP, SRT, recording) plays it: a participant's camera and microphone share the stream
//! `{app}/{room}~{identity}`; its screen share (and screen audio) is
//! `{app}/{room}~{identity}~screen`. `~` separates the parts (it is not special in URLs,
//! RTMP names or file names).

use livekit_protocol::TrackSource;

use crate::RoomsError;

/// Longest room name or identity (bytes): both become parts of a stream name.
pub const MAX_NAME_BYTES: usize = 128;

/// Checks a room name or an identity from a token: 1..=[`MAX_NAME_BYTES`] bytes, no
/// control character, no `/` or `\` (they become a stream name's part, a file name, a URL
/// path segment).
pub fn check(name: &str) -> Result<(), RoomsError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(RoomsError::BadRequest(format!(
            "a room name or identity must be 1 to {MAX_NAME_BYTES} bytes"
        )));
    }
    if name.chars().any(|c| c.is_control() || c == '/' || c == '\\') || name == "." || name == ".." {
        return Err(RoomsError::BadRequest(
            "a room name or identity must not hold a control character, `/` or `\\`".into(),
        ));
    }
    Ok(())
}

/// Separator between the room, the identity and the source in a stream name.
pub const SEP: char = '~';

/// The stream part (after `{app}/`) of a track of `source` published by `identity` in
/// `room`.
pub fn stream_part(room: &str, identity: &str, source: TrackSource) -> String {
    match source {
        TrackSource::ScreenShare | TrackSource::ScreenShareAudio => {
            format!("{room}{SEP}{identity}{SEP}screen")
        }
        _ => format!("{room}{SEP}{identity}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check("demo").is_ok());
        assert!(check("alice@example.com").is_ok());
        for bad in ["", "a/b", "a\\b", "..", "a\nb"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert!(check(&"x".repeat(MAX_NAME_BYTES + 1)).is_err());
    }

    #[test]
    fn camera_and_mic_share_a_stream_screen_has_its_own() {
        assert_eq!(stream_part("demo", "alice", TrackSource::Camera), "demo~alice");
        assert_eq!(stream_part("demo", "alice", TrackSource::Microphone), "demo~alice");
        assert_eq!(stream_part("demo", "alice", TrackSource::Unknown), "demo~alice");
        assert_eq!(
            stream_part("demo", "alice", TrackSource::ScreenShareAudio),
            "demo~alice~screen"
        );
    }
}
