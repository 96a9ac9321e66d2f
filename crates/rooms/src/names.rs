//! The hub stream each room track is published as, so every egress (WHEP, HLS, HTTP-FLV,
//! RTMP, SRT, recording) plays it: a participant's camera and microphone share the stream
//! `{app}/{room}~{identity}`; its screen share (and screen audio) is
//! `{app}/{room}~{identity}~screen`. `~` separates the parts (it is not special in URLs,
//! RTMP names or file names).
//!
//! So that every room name and identity makes a valid, unambiguous stream name, both are
//! checked with [`check`] wherever they enter (a join token, `CreateRoom`).

use livekit_protocol::TrackSource;

use crate::RoomsError;

/// Separator between the room, the identity and the source in a stream name.
pub const SEP: char = '~';
/// Longest room name or identity (bytes): `{room}~{identity}~screen` then stays within a
/// hub stream name part (500 bytes, `access::name::MAX_PART_BYTES`).
pub const MAX_NAME_BYTES: usize = 200;

/// Checks a room name or an identity (`what` names it in the error): 1 to
/// [`MAX_NAME_BYTES`] bytes, no control character (names reach logs and headers), no `/` or
/// `\` and not `.` or `..` (they become path components), no [`SEP`] (so that
/// `room~identity` splits one way only).
pub fn check(what: &str, name: &str) -> Result<(), RoomsError> {
    let bad = |why: &str| Err(RoomsError::BadRequest(format!("{what} {why}")));
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad(&format!("is longer than {MAX_NAME_BYTES} bytes"));
    }
    if name.chars().any(char::is_control) {
        return bad("has a control character");
    }
    if name.contains(['/', '\\', SEP]) || name == "." || name == ".." {
        return bad(&format!("has '/', '\\' or '{SEP}', or is a dot segment"));
    }
    Ok(())
}

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
    fn camera_and_mic_share_a_stream_screen_has_its_own() {
        assert_eq!(
            stream_part("demo", "alice", TrackSource::Camera),
            "demo~alice"
        );
        assert_eq!(
            stream_part("demo", "alice", TrackSource::Microphone),
            "demo~alice"
        );
        assert_eq!(
            stream_part("demo", "alice", TrackSource::Unknown),
            "demo~alice"
        );
        assert_eq!(
            stream_part("demo", "alice", TrackSource::ScreenShareAudio),
            "demo~alice~screen"
        );
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(check("room", "demo room é"), Ok(()));
        assert_eq!(check("room", &"r".repeat(MAX_NAME_BYTES)), Ok(()));
        for bad in [
            "", ".", "..", "a/b", "a\\b", "a~b", "a\nb", "a\u{7f}", "a\u{85}",
        ] {
            let err = check("identity", bad).unwrap_err();
            assert!(err.to_string().contains("identity"), "{bad:?}: {err}");
        }
        assert!(check("room", &"r".repeat(MAX_NAME_BYTES + 1)).is_err());
    }
}
