//! HTTP semantics of a static file, as pure functions: byte ranges (RFC 9110 §14), validators
//! (strong ETag, Last-Modified) and conditional requests (§13: `If-None-Match`,
//! `If-Modified-Since`, `If-Range`). No IO: the caller passes the file's length and
//! modification time and the request's header values.
//!
//! Choices: only a single range is served; a request with several ranges is answered 200
//! with the whole file (RFC 9110 lets a server ignore `Range`), which every player handles
//! and spares us `multipart/byteranges`. A syntactically invalid `Range` is ignored (200) as
//! well; a valid one that selects nothing is 416.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest `Range` header value parsed; longer ones are ignored (served whole).
pub const MAX_RANGE_HEADER_LEN: usize = 1024;

/// An inclusive byte range `first..=last` within a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte offset.
    pub first: u64,
    /// Last byte offset (inclusive).
    pub last: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(self) -> u64 {
        self.last - self.first + 1
    }

    /// The `Content-Range` value for a file of `total` bytes.
    pub fn content_range(self, total: u64) -> String {
        format!("bytes {}-{}/{total}", self.first, self.last)
    }
}

/// What a `Range` header asks of a file of known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range (absent, another unit, several ranges, bad syntax): send it all.
    Whole,
    /// One satisfiable range: 206.
    Partial(ByteRange),
    /// A valid range that selects no byte of the file: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header value for a file of `len` bytes.
pub fn parse_range(value: &str, len: u64) -> RangeRequest {
    if value.len() > MAX_RANGE_HEADER_LEN {
        return RangeRequest::Whole;
    }
    let value = value.trim();
    let Some((unit, set)) = value.split_once('=') else {
        return RangeRequest::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((a, b)) = set.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    match (a.is_empty(), b.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => {
            let Some(n) = digits(b) else {
                return RangeRequest::Whole;
            };
            if n == 0 || len == 0 {
                return RangeRequest::Unsatisfiable;
            }
            RangeRequest::Partial(ByteRange {
                first: len.saturating_sub(n),
                last: len - 1,
            })
        }
        // `a-`: from a to the end.
        (false, true) => {
            let Some(first) = digits(a) else {
                return RangeRequest::Whole;
            };
            if first >= len {
                return RangeRequest::Unsatisfiable;
            }
            RangeRequest::Partial(ByteRange {
                first,
                last: len - 1,
            })
        }
        // `a-b`: a to b inclusive, b clamped to the end.
        (false, false) => {
            let (Some(first), Some(last)) = (digits(a), digits(b)) else {
                return RangeRequest::Whole;
            };
            if last < first {
                return RangeRequest::Whole;
            }
            if first >= len {
                return RangeRequest::Unsatisfiable;
            }
            RangeRequest::Partial(ByteRange {
                first,
                last: last.min(len - 1),
            })
        }
        (true, true) => RangeRequest::Whole,
    }
}

/// A non-empty run of ASCII digits that fits a u64.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A file's validators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// Strong entity tag, quoted: `"<len hex>-<mtime ns hex>"`.
    pub etag: String,
    /// Modification time truncated to whole seconds (HTTP dates have no finer unit).
    pub modified: SystemTime,
}

impl Validators {
    /// The validators of a file of `len` bytes last modified at `mtime`.
    pub fn new(len: u64, mtime: SystemTime) -> Self {
        let since = mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            etag: format!("\"{len:x}-{:x}\"", since.as_nanos()),
            modified: UNIX_EPOCH + Duration::from_secs(since.as_secs()),
        }
    }

    /// The `Last-Modified` value.
    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.modified)
    }
}

/// The conditional and range headers of a GET or HEAD request (absent = `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a str>,
    /// `Range`.
    pub range: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
}

/// How to answer a GET or HEAD of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// 304 Not Modified.
    NotModified,
    /// 200 with the whole file.
    Full,
    /// 206 with one range.
    Partial(ByteRange),
    /// 416 Range Not Satisfiable.
    Unsatisfiable,
}

/// Evaluates the request's conditions in RFC 9110 §13.2.2 order against a file of `len`
/// bytes with validators `v`.
pub fn decide(c: &Conditions<'_>, v: &Validators, len: u64) -> Decision {
    if let Some(inm) = c.if_none_match {
        if etag_list_matches(inm, &v.etag, false) {
            return Decision::NotModified;
        }
    } else if let Some(ims) = c
        .if_modified_since
        .and_then(|d| httpdate::parse_http_date(d).ok())
        && v.modified <= ims
    {
        return Decision::NotModified;
    }
    let Some(range) = c.range else {
        return Decision::Full;
    };
    if let Some(ir) = c.if_range
        && !if_range_matches(ir, v)
    {
        return Decision::Full;
    }
    match parse_range(range, len) {
        RangeRequest::Whole => Decision::Full,
        RangeRequest::Partial(r) => Decision::Partial(r),
        RangeRequest::Unsatisfiable => Decision::Unsatisfiable,
    }
}

/// `If-Range`: an entity tag must match strongly; a date must equal `Last-Modified`.
fn if_range_matches(value: &str, v: &Validators) -> bool {
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return etag_list_matches(value, &v.etag, true) && !value.contains(',');
    }
    httpdate::parse_http_date(value).is_ok_and(|d| d == v.modified)
}

/// Whether a comma-separated entity-tag list (or `*`) contains `etag`. Weak comparison
/// ignores a `W/` prefix; strong comparison never matches a weak tag.
fn etag_list_matches(list: &str, etag: &str, strong: bool) -> bool {
    if list.trim() == "*" {
        return true;
    }
    list.split(',')
        .map(str::trim)
        .any(|t| match t.strip_prefix("W/") {
            Some(weak) => !strong && weak == etag,
            None => t == etag,
        })
}

/// The `Content-Type` of a file, by its extension (case-insensitive).
pub fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "mp4" | "m4s" => "video/mp4",
        "flv" => "video/x-flv",
        "ts" => "video/mp2t",
        "m3u8" => "application/vnd.apple.mpegurl",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(first: u64, last: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange { first, last })
    }

    #[test]
    fn single_ranges() {
        assert_eq!(parse_range("bytes=0-0", 10), p(0, 0));
        assert_eq!(parse_range("bytes=0-9", 10), p(0, 9));
        assert_eq!(parse_range("bytes=2-5", 10), p(2, 5));
        assert_eq!(parse_range("bytes=2-500", 10), p(2, 9));
        assert_eq!(parse_range("bytes=7-", 10), p(7, 9));
        assert_eq!(parse_range("bytes=-3", 10), p(7, 9));
        assert_eq!(parse_range("bytes=-30", 10), p(0, 9));
        assert_eq!(parse_range(" Bytes = 1 - 2 ", 10), p(1, 2));
        assert_eq!(ByteRange { first: 2, last: 5 }.len(), 4);
        assert_eq!(
            ByteRange { first: 2, last: 5 }.content_range(10),
            "bytes 2-5/10"
        );
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(parse_range("bytes=10-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=10-20", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), RangeRequest::Unsatisfiable);
    }

    #[test]
    fn ignored_ranges_serve_the_whole_file() {
        for v in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-2,4-5",
            "items=0-1",
            "bytes=0-1-2",
            "bytes=99999999999999999999999-",
            "bytes=0x1-2",
        ] {
            assert_eq!(parse_range(v, 10), RangeRequest::Whole, "{v:?}");
        }
        let long = format!("bytes=0-{}", "0".repeat(MAX_RANGE_HEADER_LEN));
        assert_eq!(parse_range(&long, 10), RangeRequest::Whole);
    }

    fn validators() -> Validators {
        Validators::new(10, UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789))
    }

    #[test]
    fn validators_are_strong_and_second_precise() {
        let v = validators();
        assert_eq!(v.etag, format!("\"a-{:x}\"", 1_700_000_000_123_456_789u128));
        assert_eq!(v.last_modified(), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_ne!(
            Validators::new(11, UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789)).etag,
            v.etag
        );
    }

    #[test]
    fn conditional_requests() {
        let v = validators();
        let etag = v.etag.clone();
        let lm = v.last_modified();
        let c = |inm, ims| Conditions {
            if_none_match: inm,
            if_modified_since: ims,
            ..Default::default()
        };
        assert_eq!(decide(&c(None, None), &v, 10), Decision::Full);
        assert_eq!(decide(&c(Some(&etag), None), &v, 10), Decision::NotModified);
        let listed = format!("\"x\", W/{etag}");
        assert_eq!(
            decide(&c(Some(&listed), None), &v, 10),
            Decision::NotModified
        );
        assert_eq!(decide(&c(Some("*"), None), &v, 10), Decision::NotModified);
        assert_eq!(decide(&c(Some("\"other\""), None), &v, 10), Decision::Full);
        assert_eq!(decide(&c(None, Some(&lm)), &v, 10), Decision::NotModified);
        let earlier = "Tue, 14 Nov 2023 22:13:19 GMT";
        assert_eq!(decide(&c(None, Some(earlier)), &v, 10), Decision::Full);
        assert_eq!(decide(&c(None, Some("garbage")), &v, 10), Decision::Full);
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            decide(&c(Some("\"other\""), Some(&lm)), &v, 10),
            Decision::Full
        );
    }

    #[test]
    fn if_range_guards_the_range() {
        let v = validators();
        let r = |ir| Conditions {
            range: Some("bytes=0-1"),
            if_range: ir,
            ..Default::default()
        };
        let part = Decision::Partial(ByteRange { first: 0, last: 1 });
        assert_eq!(decide(&r(None), &v, 10), part);
        assert_eq!(decide(&r(Some(&v.etag)), &v, 10), part);
        let lm = v.last_modified();
        assert_eq!(decide(&r(Some(&lm)), &v, 10), part);
        assert_eq!(decide(&r(Some("\"stale\"")), &v, 10), Decision::Full);
        let weak = format!("W/{}", v.etag);
        assert_eq!(decide(&r(Some(&weak)), &v, 10), Decision::Full);
        let other_day = "Wed, 15 Nov 2023 22:13:20 GMT";
        assert_eq!(decide(&r(Some(other_day)), &v, 10), Decision::Full);
        let past_end = Conditions {
            range: Some("bytes=10-"),
            ..Default::default()
        };
        assert_eq!(decide(&past_end, &v, 10), Decision::Unsatisfiable);
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("a.mp4"), "video/mp4");
        assert_eq!(content_type("seg/1.M4S"), "video/mp4");
        assert_eq!(content_type("a.flv"), "video/x-flv");
        assert_eq!(content_type("a.ts"), "video/mp2t");
        assert_eq!(content_type("a.m3u8"), "application/vnd.apple.mpegurl");
        assert_eq!(content_type("a.json"), "application/json");
        assert_eq!(content_type("a.txt"), "application/octet-stream");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
