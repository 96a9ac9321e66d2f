//! Stream names: the one parser every protocol uses, so that the name access control decides
//! on is the name the hub looks up.
//!
//! A stream is `app/stream`. RTMP gives the two parts as AMF strings (the stream name's
//! `?query` split off first); HTTP gives them as URL path segments, which are
//! percent-decoded exactly once with RFC 3986 rules (`+` is a plus, not a space: that is
//! form encoding, for queries only). Then the same checks apply to both:
//! - each part is 1..=[`MAX_PART_BYTES`] bytes of UTF-8;
//! - no `/` or `\` inside a part, and a part is not `.` or `..` (names become file and URL
//!   path components: recordings, HLS URIs);
//! - no control character (C0, DEL, C1): a name reaches logs, HTTP headers (`Location`) and
//!   file names, where a CR or LF could forge a line.

use std::fmt;

/// Longest app or stream part, in bytes (a key is two parts and a `/`, within the hub's
/// 1,024-byte key limit).
pub const MAX_PART_BYTES: usize = 500;

/// Why a name is refused (the message is safe to show the client and to log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A part is empty.
    #[error("empty app or stream name")]
    Empty,
    /// A part is longer than [`MAX_PART_BYTES`].
    #[error("app or stream name longer than 500 bytes")]
    TooLong,
    /// A part holds `/` or `\`, or is `.` or `..`.
    #[error("app or stream name with a path separator or a dot segment")]
    Path,
    /// A part holds a control character.
    #[error("app or stream name with a control character")]
    Control,
    /// A percent escape is malformed or the decoded bytes are not UTF-8.
    #[error("app or stream name with a malformed percent escape or invalid UTF-8")]
    Encoding,
}

/// A checked stream name. The only way to make one is through the checks above, so any
/// `StreamName` is safe to log, to put in a header, and to use as a file name part.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamName {
    key: String,
    split: usize,
}

impl StreamName {
    /// From parts that are already plain text (RTMP's app and stream name without its
    /// query, or path segments a router has decoded once).
    pub fn new(app: &str, stream: &str) -> Result<Self, NameError> {
        check_part(app)?;
        check_part(stream)?;
        Ok(Self {
            key: format!("{app}/{stream}"),
            split: app.len(),
        })
    }

    /// From raw URL path segments, still percent-encoded.
    pub fn from_path_segments(app: &str, stream: &str) -> Result<Self, NameError> {
        Self::new(&decode_path_segment(app)?, &decode_path_segment(stream)?)
    }

    /// A file path under an app (VOD: app `vod`; recordings are checked as their stream):
    /// each component is checked as a part is, and they are joined with `/`, so
    /// [`StreamName::stream`] is the whole relative path.
    pub fn file_path<S: AsRef<str>>(app: &str, components: &[S]) -> Result<Self, NameError> {
        check_part(app)?;
        if components.is_empty() {
            return Err(NameError::Empty);
        }
        let mut key = String::from(app);
        for c in components {
            check_part(c.as_ref())?;
            key.push('/');
            key.push_str(c.as_ref());
        }
        Ok(Self {
            key,
            split: app.len(),
        })
    }

    /// From a hub key `app/stream` (the first `/` splits).
    pub fn from_key(key: &str) -> Result<Self, NameError> {
        let (app, stream) = key.split_once('/').ok_or(NameError::Path)?;
        Self::new(app, stream)
    }

    /// The application (first part).
    pub fn app(&self) -> &str {
        &self.key[..self.split]
    }

    /// The stream (second part).
    pub fn stream(&self) -> &str {
        &self.key[self.split + 1..]
    }

    /// `app/stream`: the hub key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

fn check_part(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > MAX_PART_BYTES {
        return Err(NameError::TooLong);
    }
    if s == "." || s == ".." || s.contains(['/', '\\']) {
        return Err(NameError::Path);
    }
    if s.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    Ok(())
}

/// Decodes the `%XX` escapes of one URL path segment (RFC 3986: `+` stays `+`); a malformed
/// escape or bytes that are not UTF-8 are an error, never replaced.
pub fn decode_path_segment(s: &str) -> Result<String, NameError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = |j: usize| b.get(j).and_then(|&h| (h as char).to_digit(16));
            let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2)) else {
                return Err(NameError::Encoding);
            };
            // Two hex digits: at most 0xFF.
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| NameError::Encoding)
}

/// Writes `s` for a log line or a message with every control character escaped (`\n` as
/// `\u{a}`), so no name or value from a client can forge a log line.
pub fn escape_for_log(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_key() {
        let n = StreamName::new("live", "cam 1").unwrap();
        assert_eq!(
            (n.app(), n.stream(), n.key()),
            ("live", "cam 1", "live/cam 1")
        );
        assert_eq!(StreamName::from_key("live/x").unwrap().stream(), "x");
        assert_eq!(StreamName::from_key("live"), Err(NameError::Path));
        assert_eq!(StreamName::from_key("live/a/b"), Err(NameError::Path));
    }

    #[test]
    fn file_paths() {
        let n = StreamName::file_path("vod", &["dir", "a b.mp4"]).unwrap();
        assert_eq!((n.app(), n.stream()), ("vod", "dir/a b.mp4"));
        assert_eq!(
            StreamName::file_path("vod", &["..", "x"]),
            Err(NameError::Path)
        );
        assert_eq!(
            StreamName::file_path::<&str>("vod", &[]),
            Err(NameError::Empty)
        );
    }

    #[test]
    fn plus_is_a_plus_in_paths() {
        let n = StreamName::from_path_segments("live", "q+r").unwrap();
        assert_eq!(n.key(), "live/q+r");
        let n = StreamName::from_path_segments("live", "q%20r").unwrap();
        assert_eq!(n.key(), "live/q r");
        let n = StreamName::from_path_segments("live", "q%2Br").unwrap();
        assert_eq!(n.key(), "live/q+r");
        let n = StreamName::from_path_segments("l%C3%BCve", "x").unwrap();
        assert_eq!(n.app(), "lüve");
    }

    #[test]
    fn refusals() {
        let e = |a: &str, s: &str| StreamName::from_path_segments(a, s).unwrap_err();
        assert_eq!(e("", "x"), NameError::Empty);
        assert_eq!(e("live", ""), NameError::Empty);
        assert_eq!(e("live", ".."), NameError::Path);
        assert_eq!(e("live", "%2E%2E"), NameError::Path);
        assert_eq!(e("live", "a%2Fb"), NameError::Path);
        assert_eq!(e("live", "a%5Cb"), NameError::Path);
        assert_eq!(e("live", "crlf%0d%0aX-Injected:%201"), NameError::Control);
        assert_eq!(e("live", "nul%00"), NameError::Control);
        assert_eq!(e("live", "del%7F"), NameError::Control);
        assert_eq!(e("live", "c1%C2%85"), NameError::Control);
        assert_eq!(e("live", "bad%zz"), NameError::Encoding);
        assert_eq!(e("live", "trunc%4"), NameError::Encoding);
        assert_eq!(e("live", "%FF"), NameError::Encoding);
        assert_eq!(e("live", &"a".repeat(501)), NameError::TooLong);
        assert!(StreamName::new("live", &"a".repeat(500)).is_ok());
        assert_eq!(
            StreamName::new("live", "a\r\nb").unwrap_err(),
            NameError::Control
        );
    }

    #[test]
    fn log_escaping() {
        assert_eq!(escape_for_log("plain name"), "plain name");
        assert_eq!(escape_for_log("a\r\nX: 1"), "a\\u{d}\\u{a}X: 1");
    }
}
