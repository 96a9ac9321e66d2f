//! The hub stream each room track is published as, so every egress (WHEP, HLS, HTTP-FLV,
//! RTMP, SRT, recording) plays it: a participant's camera and microphone share the stream
//! `{app}/{room}~{identity}`; its screen share (and screen audio) is
//! `{app}/{room}~{identity}~screen`. `~` separates the parts (it is not special in URLs,
//! RTMP names or file names).

use livekit_protocol::TrackSource;

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
