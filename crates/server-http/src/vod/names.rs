//! What may be named, as pure functions: request paths under `/vod/` (no way out of the
//! directory), upload names, and the container formats an upload may hold.

/// Longest file name accepted for an upload.
pub const MAX_NAME_LEN: usize = 200;
/// Longest request path (after `/vod/`) accepted.
pub const MAX_PATH_LEN: usize = 1024;
/// Most path components in a request path.
pub const MAX_PATH_DEPTH: usize = 16;
/// Bytes of an upload's beginning needed to recognise its format (the third MPEG-TS sync
/// byte is at offset 376).
pub const SNIFF_LEN: usize = 377;

/// Why a request path or a name is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Traversal or a character that has no place in a served path (`..`, `\`, NUL, an
    /// encoded `/`, an empty component, too long).
    BadPath(&'static str),
    /// A component starts with a dot (hidden files and in-progress uploads are private).
    Hidden,
}

/// Splits the raw (still percent-encoded) path after `/vod/` into decoded components,
/// refusing everything that could leave the directory or name a private file.
pub fn request_components(raw: &str) -> Result<Vec<String>, NameError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(NameError::BadPath("path too long"));
    }
    let mut out = Vec::new();
    for part in raw.split('/') {
        if out.len() == MAX_PATH_DEPTH {
            return Err(NameError::BadPath("path too deep"));
        }
        // The one path-segment decoder stream names use too (`+` stays `+`).
        let decoded = access::name::decode_path_segment(part)
            .map_err(|_| NameError::BadPath("malformed percent escape or not UTF-8"))?;
        if decoded.is_empty() {
            return Err(NameError::BadPath("empty path component"));
        }
        if decoded == "." || decoded == ".." {
            return Err(NameError::BadPath("dot segment"));
        }
        if decoded.contains(['/', '\\', '\0']) {
            return Err(NameError::BadPath("separator or NUL in a path component"));
        }
        if decoded.starts_with('.') {
            return Err(NameError::Hidden);
        }
        out.push(decoded);
    }
    Ok(out)
}

/// Checks an upload's file name: one path component of `[A-Za-z0-9._-]`, no leading dot,
/// 1..=[`MAX_NAME_LEN`] characters.
pub fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("the name is longer than 200 characters");
    }
    if name.starts_with('.') {
        return Err("the name starts with a dot");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("the name may hold only A-Z a-z 0-9 . _ -");
    }
    Ok(())
}

/// A container format recognised by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// FLV: `FLV` version 1.
    Flv,
    /// ISO BMFF (MP4, fragmented MP4 segment): `ftyp`, `styp` or `moof` box first.
    Mp4,
    /// MPEG-TS: sync byte 0x47 at 0, 188 and 376.
    MpegTs,
}

/// Recognises the container of a file from its first bytes (at least [`SNIFF_LEN`] of them
/// when the file is that long).
pub fn sniff(head: &[u8]) -> Option<Container> {
    if head.starts_with(b"FLV\x01") {
        return Some(Container::Flv);
    }
    if let Some(kind) = head.get(4..8)
        && [b"ftyp", b"styp", b"moof"].iter().any(|k| kind == *k)
    {
        return Some(Container::Mp4);
    }
    if [0, 188, 376].iter().all(|&i| head.get(i) == Some(&0x47)) {
        return Some(Container::MpegTs);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_decode_into_components() {
        assert_eq!(request_components("demo.flv").unwrap(), ["demo.flv"]);
        assert_eq!(
            request_components("show/ep%201.mp4").unwrap(),
            ["show", "ep 1.mp4"]
        );
        assert_eq!(request_components("a+b.ts").unwrap(), ["a+b.ts"]);
    }

    #[test]
    fn traversal_is_refused() {
        for raw in [
            "..",
            "../Cargo.toml",
            "a/../../x",
            "%2e%2e/Cargo.toml",
            "%2E%2E/x",
            "..%2fCargo.toml",
            "..%2FCargo.toml",
            "a%5c..%5cx",
            "..\\Cargo.toml",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "x%00.flv",
            "bad%zz",
            "bad%2",
            "%ff%fe",
            "",
        ] {
            assert!(
                matches!(request_components(raw), Err(NameError::BadPath(_))),
                "{raw:?} accepted"
            );
        }
        let deep = vec!["a"; MAX_PATH_DEPTH + 1].join("/");
        assert!(request_components(&deep).is_err());
        assert!(request_components(&"a".repeat(MAX_PATH_LEN + 1)).is_err());
    }

    #[test]
    fn hidden_files_are_private() {
        for raw in [".upload-1234.part", "a/.secret", "%2eenv"] {
            assert_eq!(request_components(raw), Err(NameError::Hidden), "{raw}");
        }
    }

    #[test]
    fn upload_names() {
        for ok in ["demo.flv", "a", "A-b_c.1.mp4", &"x".repeat(MAX_NAME_LEN)] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "..",
            "a/b",
            "a\\b",
            "a b",
            "a\0b",
            "é.mp4",
            "a%2fb",
            &"x".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn containers_by_their_first_bytes() {
        assert_eq!(sniff(b"FLV\x01\x05\0\0\0\x09"), Some(Container::Flv));
        assert_eq!(sniff(b"FLV\x02"), None);
        assert_eq!(sniff(b"\0\0\0\x20ftypisom\0\0\x02\0"), Some(Container::Mp4));
        assert_eq!(sniff(b"\0\0\0\x18styp"), Some(Container::Mp4));
        assert_eq!(sniff(b"\0\0\0\x18moof"), Some(Container::Mp4));
        let mut ts = vec![0u8; 3 * 188];
        for i in [0, 188, 376] {
            ts[i] = 0x47;
        }
        assert_eq!(sniff(&ts), Some(Container::MpegTs));
        assert_eq!(sniff(&ts[..SNIFF_LEN]), Some(Container::MpegTs));
        assert_eq!(sniff(&ts[..SNIFF_LEN - 1]), None);
        ts[188] = 0;
        assert_eq!(sniff(&ts), None);
        assert_eq!(sniff(b"hello, world\n"), None);
        assert_eq!(sniff(b""), None);
    }
}
