//! Trickle ICE and ICE restart fragments (RFC 8840 `application/trickle-ice-sdpfrag`) of
//! WHEP/WHIP `PATCH` requests: what a hostile client's fragment holds, whether it restarts
//! ICE with usable credentials (RFC 8839), and the answer fragment we send back, made only of
//! lines we write.

/// Most candidates taken from one fragment.
pub const MAX_FRAGMENT_CANDIDATES: usize = 32;
/// Longest ufrag, pwd, candidate or echoed `m=` line taken from a fragment (RFC 8839 caps
/// ufrag and pwd at 256 characters).
pub const MAX_FRAGMENT_VALUE: usize = 256;

/// ICE credentials (ufrag and password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCredentials {
    /// The username fragment.
    pub ufrag: String,
    /// The password.
    pub pass: String,
}

/// What a trickle/restart fragment (RFC 8840) holds, as far as we use it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// `a=ice-ufrag:` (the first).
    pub ufrag: Option<String>,
    /// `a=ice-pwd:` (the first).
    pub pwd: Option<String>,
    /// The first `m=` line, echoed in the answer fragment.
    pub mline: Option<String>,
    /// The first `a=mid:`, echoed in the answer fragment.
    pub mid: Option<String>,
    /// `a=candidate:` lines (without the `a=`), at most [`MAX_FRAGMENT_CANDIDATES`].
    pub candidates: Vec<String>,
}

/// Parses a fragment line by line (CRLF or LF); unknown lines are ignored, values longer than
/// [`MAX_FRAGMENT_VALUE`] are kept truncated only for `m=` (ufrag/pwd are then refused by
/// [`restart_creds`]); an `m=` line with control bytes is ignored (it would be echoed).
pub fn parse_fragment(text: &str) -> Fragment {
    let mut f = Fragment::default();
    for line in text.lines().map(|l| l.trim_end_matches('\r').trim()) {
        if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
            f.ufrag.get_or_insert_with(|| v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
            f.pwd.get_or_insert_with(|| v.trim().to_owned());
        } else if line.starts_with("m=") {
            // Echoed in the answer: only printable ASCII, so a lone CR (which `lines()`
            // leaves inside a line) or other control bytes cannot split or forge lines.
            if f.mline.is_none() && line.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                let end = line.floor_char_boundary(MAX_FRAGMENT_VALUE);
                f.mline = line.get(..end).map(str::to_owned);
            }
        } else if let Some(v) = line.strip_prefix("a=mid:") {
            if f.mid.is_none() && is_token(v) {
                f.mid = Some(v.to_owned());
            }
        } else if let Some(v) = line.strip_prefix("a=candidate:")
            && f.candidates.len() < MAX_FRAGMENT_CANDIDATES
            && v.len() <= MAX_FRAGMENT_VALUE
        {
            f.candidates.push(format!("candidate:{v}"));
        }
    }
    f
}

/// A mid we echo: 1 to 32 visible ASCII characters.
fn is_token(v: &str) -> bool {
    !v.is_empty() && v.len() <= 32 && v.bytes().all(|b| b.is_ascii_graphic())
}

/// RFC 8839 `ice-char`: ALPHA / DIGIT / "+" / "/".
fn ice_chars(v: &str) -> bool {
    v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The remote credentials of a restart: `Ok(None)` when the fragment is plain trickle (no
/// ufrag, or the current `remote_ufrag` again), the new credentials when they are usable
/// (RFC 8839: ufrag of 4 to 256 and pwd of 22 to 256 ice-chars), else why not.
pub fn restart_creds(
    f: &Fragment,
    remote_ufrag: &str,
) -> Result<Option<IceCredentials>, &'static str> {
    match (&f.ufrag, &f.pwd) {
        (None, None) => Ok(None),
        (Some(u), _) if u == remote_ufrag => Ok(None),
        (None, Some(_)) => Err("an a=ice-pwd without an a=ice-ufrag"),
        (Some(_), None) => Err("an ICE restart needs a=ice-pwd with the new a=ice-ufrag"),
        (Some(u), Some(p)) => {
            if !(4..=MAX_FRAGMENT_VALUE).contains(&u.len()) || !ice_chars(u) {
                return Err("a=ice-ufrag must be 4 to 256 ice-chars (RFC 8839)");
            }
            if !(22..=MAX_FRAGMENT_VALUE).contains(&p.len()) || !ice_chars(p) {
                return Err("a=ice-pwd must be 22 to 256 ice-chars (RFC 8839)");
            }
            Ok(Some(IceCredentials {
                ufrag: u.clone(),
                pass: p.clone(),
            }))
        }
    }
}

/// The answer fragment: our new credentials, the request's first `m=` line and mid (when it
/// had them), our candidates and `a=end-of-candidates` (ICE-lite: we gather nothing more).
pub fn answer_fragment(
    local: &IceCredentials,
    request: &Fragment,
    candidates: &[String],
) -> String {
    let mut out = String::from("a=ice-lite\r\n");
    out.push_str(&format!(
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\n",
        local.ufrag, local.pass
    ));
    if let Some(m) = &request.mline {
        out.push_str(m);
        out.push_str("\r\n");
    }
    if let Some(mid) = &request.mid {
        out.push_str(&format!("a=mid:{mid}\r\n"));
    }
    for c in candidates {
        out.push_str(&format!("a={c}\r\n"));
    }
    out.push_str("a=end-of-candidates\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trickle_and_unusable_fragments() {
        // No ufrag, or the current one: trickle.
        let f = parse_fragment("a=candidate:1 1 udp 1 192.0.2.7 1 typ host\r\n");
        assert_eq!(restart_creds(&f, "abcd"), Ok(None));
        let f = parse_fragment("a=ice-ufrag:abcd\na=ice-pwd:whatever\n");
        assert_eq!(restart_creds(&f, "abcd"), Ok(None));
        // A new ufrag without a pwd, a pwd alone, bad characters, bad lengths: refused.
        for bad in [
            "a=ice-ufrag:newu\r\n",
            "a=ice-pwd:0123456789012345678901\r\n",
            "a=ice-ufrag:ne w\r\na=ice-pwd:0123456789012345678901\r\n",
            "a=ice-ufrag:ab\r\na=ice-pwd:0123456789012345678901\r\n",
            "a=ice-ufrag:newu\r\na=ice-pwd:short\r\n",
            "a=ice-ufrag:newu\r\na=ice-pwd:0123456789012345678901:\r\n",
        ] {
            assert!(
                restart_creds(&parse_fragment(bad), "abcd").is_err(),
                "{bad}"
            );
        }
        let long = format!(
            "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\n",
            "u".repeat(300),
            "p".repeat(30)
        );
        assert!(restart_creds(&parse_fragment(&long), "abcd").is_err());
    }

    #[test]
    fn fragments_are_bounded_and_noise_never_panics() {
        let many: String = (0..100)
            .map(|i| format!("a=candidate:{i} 1 udp 1 192.0.2.7 {i} typ host\r\n"))
            .collect();
        assert_eq!(
            parse_fragment(&many).candidates.len(),
            MAX_FRAGMENT_CANDIDATES
        );
        let long_m = format!("m={}\r\n", "x".repeat(400));
        let f = parse_fragment(&long_m);
        assert!(f.mline.unwrap().len() <= MAX_FRAGMENT_VALUE);
        // Echoed m-lines are printable ASCII: a lone CR inside the line (found by the
        // whep_sdpfrag fuzz target) or other bytes would reach the answer and split a line.
        assert_eq!(
            parse_fragment("m=audio 9 X 111\r\u{92}junk\r\n").mline,
            None
        );
        assert_eq!(
            parse_fragment(&format!("m={}\r\n", "é".repeat(4))).mline,
            None
        );
        let ok = parse_fragment("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n");
        assert_eq!(ok.mline.as_deref(), Some("m=audio 9 UDP/TLS/RTP/SAVPF 111"));
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            const ALPHABET: &[u8] = b"a=ice-ufrgpwdm:\r\n candite";
            let s: String = (0..(x % 200))
                .map(|k| {
                    let i = ((x >> (k % 50)) % ALPHABET.len() as u64) as usize;
                    char::from(ALPHABET[i])
                })
                .collect();
            let f = parse_fragment(&s);
            let _ = restart_creds(&f, "abcd");
        }
    }
}
