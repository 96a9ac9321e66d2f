//! HMAC-signed URLs for CDN-style hot-link protection:
//! `?expires=<unix seconds>&sign=<hex>` where
//! `sign = lowercase hex(HMAC-SHA256(auth.url_signing_secret, "<app>/<stream>:<expires>"))`.
//!
//! `<stream>` is the stream name without any extension (`live/cam1:1767225600` signs
//! `/live/cam1.flv`, `/live/cam1/index.m3u8` and its segments, and `rtmp://host/live/cam1`).
//!
//! That signature allows playing only. Publishing needs a signature of
//! `"publish:<app>/<stream>:<expires>"`: the action is part of what is signed, so the play
//! URLs handed to every viewer (HLS playlists carry them into each URI) cannot publish.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Action;
use crate::refusal::{Reason, Refusal};

type HmacSha256 = Hmac<Sha256>;

/// Longest hex signature accepted (SHA-256 is 64 hex digits).
const SIGN_HEX_LEN: usize = 64;

/// The string that is signed for `action` on `key` (`app/stream`) until `expires`.
pub fn signed_string(action: Action, key: &str, expires: u64) -> String {
    match action {
        Action::Play => format!("{key}:{expires}"),
        Action::Publish => format!("publish:{key}:{expires}"),
    }
}

/// The `sign` parameter for `action` on `key`, valid until `expires` (unix seconds).
pub fn sign(secret: &[u8], action: Action, key: &str, expires: u64) -> String {
    // HMAC takes keys of any length.
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(signed_string(action, key, expires).as_bytes());
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(SIGN_HEX_LEN);
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Checks `sign` (hex) and `expires` (decimal unix seconds) for `action` on `key` at `now_s`,
/// comparing in constant time.
pub fn verify(
    secret: &[u8],
    action: Action,
    key: &str,
    expires: &str,
    sign: &str,
    now_s: u64,
) -> Result<(), Refusal> {
    let bad = || Refusal::new(Reason::BadToken, "the URL signature does not verify");
    let expires_n: u64 = if !expires.is_empty()
        && expires.len() <= 20
        && expires.bytes().all(|b| b.is_ascii_digit())
    {
        expires.parse().map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    let Some(tag) = hex_decode(sign).filter(|t| t.len() == SIGN_HEX_LEN / 2) else {
        return Err(bad());
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return Err(bad());
    };
    mac.update(signed_string(action, key, expires_n).as_bytes());
    mac.verify_slice(&tag).map_err(|_| bad())?;
    if expires_n < now_s {
        return Err(Refusal::new(Reason::Expired, "the signed URL has expired"));
    }
    Ok(())
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 2 * SIGN_HEX_LEN {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let hi = (p.first()?.to_ascii_lowercase() as char).to_digit(16)?;
            let lo = (p.get(1)?.to_ascii_lowercase() as char).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // Computed independently: printf 'live/cam:1700000000' |
        //   openssl dgst -sha256 -hmac secret
        let s = sign(b"secret", Action::Play, "live/cam", 1_700_000_000);
        assert_eq!(s.len(), 64);
        assert_eq!(s, KNOWN);
    }

    const KNOWN: &str = "59d1966bfff4cc525da2a5978e0f99226bf52eba3255f886694a3653ba7e3b29";

    #[test]
    fn verify_accepts_valid_and_refuses_tampered_or_expired() {
        let s = sign(b"k", Action::Play, "live/a", 2000);
        assert_eq!(
            verify(b"k", Action::Play, "live/a", "2000", &s, 1000),
            Ok(())
        );
        assert_eq!(
            verify(
                b"k",
                Action::Play,
                "live/a",
                "2000",
                &s.to_uppercase(),
                1000
            ),
            Ok(())
        );
        let r = |res: Result<(), Refusal>| res.unwrap_err().reason;
        assert_eq!(
            r(verify(b"k", Action::Play, "live/a", "2000", &s, 2001)),
            Reason::Expired
        );
        assert_eq!(
            r(verify(b"k", Action::Play, "live/b", "2000", &s, 1000)),
            Reason::BadToken
        );
        assert_eq!(
            r(verify(b"k", Action::Play, "live/a", "2001", &s, 1000)),
            Reason::BadToken
        );
        assert_eq!(
            r(verify(b"x", Action::Play, "live/a", "2000", &s, 1000)),
            Reason::BadToken
        );
        let mut t = s.clone();
        t.replace_range(0..1, if s.starts_with('0') { "1" } else { "0" });
        assert_eq!(
            r(verify(b"k", Action::Play, "live/a", "2000", &t, 1000)),
            Reason::BadToken
        );
        for (e, g) in [
            ("", s.as_str()),
            ("-1", s.as_str()),
            ("2000", ""),
            ("2000", "zz"),
            ("2000", &s[..62]),
        ] {
            assert_eq!(
                r(verify(b"k", Action::Play, "live/a", e, g, 0)),
                Reason::BadToken,
                "{e} {g}"
            );
        }
    }

    /// A play signature (what playlists hand every viewer) never publishes, and a publish
    /// signature is a different string.
    #[test]
    fn the_action_is_signed() {
        let play = sign(b"k", Action::Play, "live/a", 2000);
        let publish = sign(b"k", Action::Publish, "live/a", 2000);
        assert_ne!(play, publish);
        assert_eq!(
            verify(b"k", Action::Play, "live/a", "2000", &play, 1000),
            Ok(())
        );
        assert_eq!(
            verify(b"k", Action::Publish, "live/a", "2000", &play, 1000)
                .unwrap_err()
                .reason,
            Reason::BadToken
        );
        assert_eq!(
            verify(b"k", Action::Publish, "live/a", "2000", &publish, 1000),
            Ok(())
        );
        assert_eq!(
            verify(b"k", Action::Play, "live/a", "2000", &publish, 1000)
                .unwrap_err()
                .reason,
            Reason::BadToken
        );
    }
}
