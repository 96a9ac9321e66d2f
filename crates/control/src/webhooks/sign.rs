//! `X-Sluice-Signature`: HMAC-SHA256 over `"<timestamp>.<body>"`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `X-Sluice-Signature` value for a delivery: `sha256=<lowercase hex HMAC-SHA256(secret,
/// "<timestamp>.<body>")>`, where `timestamp` is the `X-Sluice-Timestamp` value.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    format!("sha256={}", hmac_hex(secret, &[ts.as_bytes(), b".", body]))
}

/// Lowercase hex HMAC-SHA256 of the concatenated `parts`.
fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    for p in parts {
        mac.update(p);
    }
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_test_case_2() {
        assert_eq!(
            hmac_hex(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signs_timestamp_dot_body() {
        // Computed independently: Python hmac.new(b"s3cret", b"1700000000." + body, sha256).
        assert_eq!(
            sign(b"s3cret", 1_700_000_000, br#"{"event":"publish"}"#),
            "sha256=83b8f8a442c719b71a42c6fb7f1f8aff2a4b3d925a8830572ebf692164e24537"
        );
        assert_ne!(
            sign(b"s3cret", 1_700_000_001, br#"{"event":"publish"}"#),
            sign(b"s3cret", 1_700_000_000, br#"{"event":"publish"}"#)
        );
    }
}
