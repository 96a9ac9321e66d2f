//! Parsing of what an HLS client asks for: the file name under `/{app}/{stream}/` and the
//! LL-HLS delivery directives in the playlist query (`_HLS_msn`, `_HLS_part`, `_HLS_skip`).
//!
//! Both come straight from the network, so parsing is total: anything unexpected is an
//! [`HlsError`] naming what was wrong, never a panic.

use crate::HlsError;

/// Longest query string we look at (a playlist query carries three short directives).
pub const MAX_QUERY_LEN: usize = 512;
/// Longest file name we parse (`<prefix><msn>.<part>.m4s` is far shorter).
pub const MAX_NAME_LEN: usize = 128;
/// Largest media sequence number or part index accepted in a request.
pub const MAX_SEQUENCE: u64 = 1 << 53;

/// The multivariant playlist's file name (`GET /{app}/{stream}/index.m3u8`).
pub const MULTIVARIANT_NAME: &str = "index.m3u8";
/// The media playlist's file name, referenced by the multivariant playlist.
pub const MEDIA_PLAYLIST_NAME: &str = "media.m3u8";

/// One file of a live HLS stream, parsed from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsFile {
    /// `index.m3u8`.
    Multivariant,
    /// `media.m3u8`.
    MediaPlaylist,
    /// `<prefix>init<version>.mp4`: the fMP4 initialisation segment of a given version.
    Init {
        /// Init segment version (changes when codec parameters change).
        version: u32,
    },
    /// `<prefix><msn>.m4s` or `<prefix><msn>.ts`: a whole media segment.
    Segment {
        /// Media sequence number.
        msn: u64,
    },
    /// `<prefix><msn>.<index>.m4s`: a partial segment (LL-HLS).
    Part {
        /// Media sequence number of the parent segment.
        msn: u64,
        /// Index of the part inside its segment, from 0.
        index: u32,
    },
}

impl HlsFile {
    /// Parses a file name. Segment, part and init names must start with `prefix` (the
    /// muxer instance's prefix; names of an older instance are unknown, so a cache never
    /// confuses two instances' files).
    pub fn parse(name: &str, prefix: &str) -> Result<HlsFile, HlsError> {
        if name.len() > MAX_NAME_LEN {
            return Err(HlsError::BadName("name too long"));
        }
        match name {
            MULTIVARIANT_NAME => return Ok(HlsFile::Multivariant),
            MEDIA_PLAYLIST_NAME => return Ok(HlsFile::MediaPlaylist),
            _ => {}
        }
        let rest = name
            .strip_prefix(prefix)
            .ok_or(HlsError::BadName("unknown file"))?;
        if let Some(v) = rest
            .strip_prefix("init")
            .and_then(|r| r.strip_suffix(".mp4"))
        {
            let version = parse_number(v)?;
            let version = u32::try_from(version).map_err(|_| HlsError::BadName("version"))?;
            return Ok(HlsFile::Init { version });
        }
        let (stem, ts) = if let Some(s) = rest.strip_suffix(".m4s") {
            (s, false)
        } else if let Some(s) = rest.strip_suffix(".ts") {
            (s, true)
        } else {
            return Err(HlsError::BadName("unknown extension"));
        };
        match stem.split_once('.') {
            None => Ok(HlsFile::Segment {
                msn: parse_number(stem)?,
            }),
            Some(_) if ts => Err(HlsError::BadName("TS segments have no parts")),
            Some((msn, index)) => {
                let index = u32::try_from(parse_number(index)?)
                    .map_err(|_| HlsError::BadName("part index"))?;
                Ok(HlsFile::Part {
                    msn: parse_number(msn)?,
                    index,
                })
            }
        }
    }
}

/// LL-HLS playlist delivery directives (RFC 8216bis §6.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlaylistQuery {
    /// `_HLS_msn`: hold the response until this media sequence number is available.
    pub msn: Option<u64>,
    /// `_HLS_part`: together with `msn`, hold until this part is available.
    pub part: Option<u32>,
    /// `_HLS_skip=YES` (or `v2`): the client wants a delta update.
    pub skip: bool,
}

impl PlaylistQuery {
    /// Parses a raw query string (without the `?`). Unknown parameters are ignored (players
    /// add cache busters and tokens); malformed directives are errors, as the spec asks
    /// (`_HLS_part` without `_HLS_msn` is a 400).
    pub fn parse(query: &str) -> Result<PlaylistQuery, HlsError> {
        if query.len() > MAX_QUERY_LEN {
            return Err(HlsError::BadQuery("query too long"));
        }
        let mut q = PlaylistQuery::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "_HLS_msn" => {
                    q.msn = Some(parse_number(value).map_err(|_| HlsError::BadQuery("_HLS_msn"))?)
                }
                "_HLS_part" => {
                    let p = parse_number(value).map_err(|_| HlsError::BadQuery("_HLS_part"))?;
                    q.part = Some(u32::try_from(p).map_err(|_| HlsError::BadQuery("_HLS_part"))?);
                }
                "_HLS_skip" => match value {
                    "YES" | "v2" => q.skip = true,
                    "NO" | "" => {}
                    _ => return Err(HlsError::BadQuery("_HLS_skip")),
                },
                _ => {}
            }
        }
        if q.part.is_some() && q.msn.is_none() {
            return Err(HlsError::BadQuery("_HLS_part without _HLS_msn"));
        }
        Ok(q)
    }

    /// True when the request must wait for media that may not exist yet.
    pub fn is_blocking(&self) -> bool {
        self.msn.is_some()
    }
}

/// A non-negative decimal number of at most 16 digits, with no sign or leading `+`.
fn parse_number(s: &str) -> Result<u64, HlsError> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HlsError::BadName("number"));
    }
    let n: u64 = s.parse().map_err(|_| HlsError::BadName("number"))?;
    if n > MAX_SEQUENCE {
        return Err(HlsError::BadName("number too large"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_file_kind() {
        let p = "k7-";
        assert_eq!(
            HlsFile::parse("index.m3u8", p).unwrap(),
            HlsFile::Multivariant
        );
        assert_eq!(
            HlsFile::parse("media.m3u8", p).unwrap(),
            HlsFile::MediaPlaylist
        );
        assert_eq!(
            HlsFile::parse("k7-init2.mp4", p).unwrap(),
            HlsFile::Init { version: 2 }
        );
        assert_eq!(
            HlsFile::parse("k7-41.m4s", p).unwrap(),
            HlsFile::Segment { msn: 41 }
        );
        assert_eq!(
            HlsFile::parse("k7-41.ts", p).unwrap(),
            HlsFile::Segment { msn: 41 }
        );
        assert_eq!(
            HlsFile::parse("k7-41.3.m4s", p).unwrap(),
            HlsFile::Part { msn: 41, index: 3 }
        );
    }

    #[test]
    fn refuses_foreign_or_malformed_names() {
        let p = "k7-";
        for bad in [
            "old-41.m4s",
            "k7-41.mp4",
            "k7-.m4s",
            "k7--1.m4s",
            "k7-+1.m4s",
            "k7-1.2.3.m4s",
            "k7-1.2.ts",
            "k7-99999999999999999.m4s",
            "k7-init.mp4",
            "k7-init99999999999.mp4",
            "../k7-1.m4s",
            "",
        ] {
            assert!(HlsFile::parse(bad, p).is_err(), "{bad}");
        }
        let long = format!("k7-{}.m4s", "1".repeat(200));
        assert!(HlsFile::parse(&long, p).is_err());
    }

    #[test]
    fn parses_delivery_directives() {
        let q = PlaylistQuery::parse("_HLS_msn=12&_HLS_part=3&_HLS_skip=YES&t=1").unwrap();
        assert_eq!(
            q,
            PlaylistQuery {
                msn: Some(12),
                part: Some(3),
                skip: true
            }
        );
        assert!(q.is_blocking());
        assert_eq!(PlaylistQuery::parse("").unwrap(), PlaylistQuery::default());
        assert!(PlaylistQuery::parse("_HLS_skip=v2").unwrap().skip);
    }

    #[test]
    fn refuses_bad_directives() {
        for bad in [
            "_HLS_part=1",
            "_HLS_msn=-1",
            "_HLS_msn=abc",
            "_HLS_msn=1&_HLS_part=99999999999",
            "_HLS_skip=maybe",
        ] {
            assert!(PlaylistQuery::parse(bad).is_err(), "{bad}");
        }
        assert!(PlaylistQuery::parse(&"a".repeat(MAX_QUERY_LEN + 1)).is_err());
    }
}
