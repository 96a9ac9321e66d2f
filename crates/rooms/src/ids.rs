//! Ids as LiveKit's clients expect them: a prefix (`RM_` room, `PA_` participant, `TR_`
//! track) and 12 random alphanumerics; a subscribed track's media stream id is
//! `{participant sid}|{track sid}`, which the client splits to find the publication.

use rand::Rng;

/// Prefix of room ids.
pub const ROOM: &str = "RM_";
/// Prefix of participant ids.
pub const PARTICIPANT: &str = "PA_";
/// Prefix of track ids.
pub const TRACK: &str = "TR_";
/// Random characters after the prefix.
pub const ID_CHARS: usize = 12;

/// A new id with `prefix`.
pub fn new_id(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut s = String::with_capacity(prefix.len() + ID_CHARS);
    s.push_str(prefix);
    s.extend((0..ID_CHARS).map(|_| char::from(rng.sample(rand::distr::Alphanumeric))));
    s
}

/// The media stream id of a subscribed track (`a=msid:` in the subscriber offer).
pub fn stream_id(participant_sid: &str, track_sid: &str) -> String {
    format!("{participant_sid}|{track_sid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_length() {
        let a = new_id(PARTICIPANT);
        assert!(a.starts_with("PA_"));
        assert_eq!(a.len(), 3 + ID_CHARS);
        assert_ne!(a, new_id(PARTICIPANT));
        assert_eq!(stream_id("PA_a", "TR_b"), "PA_a|TR_b");
    }
}
