//! Recording file names, both ways: `{app}/{name}-{YYYYMMDD}T{HHMMSS}Z-{token}.{ext}` under
//! `record.dir`, where `{token}` is 16 random hex digits, so a file's name cannot be guessed
//! from the stream and the time (a day of 1-second timestamps is 86,400 guesses; the token
//! adds 2^64). [`stream_of`] reads a path back to the stream it recorded, so VOD can apply
//! that stream's play rule to it (`record.access = "stream"`).

use rand::Rng as _;

/// Longest file name component made from a stream key.
pub const MAX_NAME_COMPONENT: usize = 100;
/// Hex digits of the random token in every recording's name.
pub const TOKEN_HEX: usize = 16;
/// Extensions a recording's files have: the media and the MP4 recording's HLS playlist.
const EXTENSIONS: [&str; 3] = ["mp4", "flv", "m3u8"];

/// A stream key component as a safe file name: `[A-Za-z0-9._-]`, others become `_`, no
/// leading dot, bounded length.
pub fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_NAME_COMPONENT)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, '_');
    }
    out
}

/// A fresh random token for a file name.
pub fn token() -> String {
    let mut rng = rand::rng();
    (0..TOKEN_HEX / 2)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// The file stem (no extension) of a recording of `name` started at `stamp`
/// (`YYYYMMDDTHHMMSSZ`) with `token`.
pub fn stem(name: &str, stamp: &str, token: &str) -> String {
    format!("{}-{stamp}-{token}", sanitize(name))
}

/// The stream (`app`, `name`) a recording at `rel` (path components relative to
/// `record.dir`: `[app, file]`) recorded, when `rel` is named as recordings are (or were
/// before the token: `{name}-{stamp}[-{n}].{ext}`, so older recordings are protected too);
/// `None` for anything else. Names were sanitized when written, so this is the sanitized key.
pub fn stream_of<S: AsRef<str>>(rel: &[S]) -> Option<(&str, &str)> {
    let [app, file] = rel else {
        return None;
    };
    let (mut stem, ext) = file.as_ref().rsplit_once('.')?;
    if !EXTENSIONS.contains(&ext) {
        return None;
    }
    let is_token = |t: &str| t.len() == TOKEN_HEX && t.bytes().all(|b| b.is_ascii_hexdigit());
    let is_counter = |t: &str| (1..=4).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit());
    // Older names: a rotation counter instead of the token.
    if let Some((rest, last)) = stem.rsplit_once('-')
        && (is_token(last) || is_counter(last))
    {
        stem = rest;
    }
    let (name, stamp) = stem.rsplit_once('-')?;
    let is_stamp = stamp.len() == 16
        && stamp.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    (is_stamp && !name.is_empty()).then_some((app.as_ref(), name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe() {
        assert_eq!(sanitize("../etc"), "_.._etc");
        assert_eq!(sanitize(".hidden"), "_.hidden");
        assert_eq!(sanitize(""), "_");
        assert_eq!(sanitize("cam 1/ü"), "cam_1__");
        assert_eq!(sanitize(&"a".repeat(500)).len(), MAX_NAME_COMPONENT);
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (token(), token());
        assert_eq!(a.len(), TOKEN_HEX);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn paths_read_back_to_their_stream() {
        let t = "0123456789abcdef";
        let s = stem("cam-1", "20261207T183000Z", t);
        assert_eq!(s, "cam-1-20261207T183000Z-0123456789abcdef");
        for ext in ["mp4", "flv", "m3u8"] {
            let file = format!("{s}.{ext}");
            assert_eq!(stream_of(&["live", file.as_str()]), Some(("live", "cam-1")));
        }
        // Recordings named before the token, with or without a rotation counter.
        assert_eq!(
            stream_of(&["live", "cam-20261207T183000Z.mp4"]),
            Some(("live", "cam"))
        );
        assert_eq!(
            stream_of(&["live", "cam-20261207T183000Z-2.mp4"]),
            Some(("live", "cam"))
        );
        // Anything not named as recordings are is not a recording.
        for bad in [
            "cam.mp4",
            "cam-20261207T183000Z-0123x.mp4",
            "cam-2026120xT183000Z-0123456789abcdef.mp4",
            "-20261207T183000Z-0123456789abcdef.mp4",
            "cam-20261207T183000Z-0123456789abcdef.txt",
        ] {
            assert_eq!(stream_of(&["live", bad]), None, "{bad}");
        }
        assert_eq!(stream_of(&["a", "b", "c"]), None);
    }
}
