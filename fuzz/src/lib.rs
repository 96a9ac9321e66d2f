//! Helpers shared by the fuzz targets: building inputs that get past a signature check so
//! the fuzzer reaches the code behind it. Depends only on sans-IO crates.

use std::net::IpAddr;

use access::{Action, StreamName};
use config::AuthConfig;

/// The secret [`jwt_signed`] signs and verifies with.
pub const FUZZ_JWT_SECRET: &str = "fuzz-secret";

/// Verifies `token` for `action` (publish if true) on `key` by `ip` under an HS256 `secret`,
/// with the JWT paths we own (header and claims handling).
pub fn jwt(secret: &str, token: &str, publish: bool, key: &str, ip: IpAddr) -> bool {
    let cfg = AuthConfig {
        jwt_secret: secret.to_owned(),
        ..Default::default()
    };
    let Ok(keys) = access::jwt::JwtKeys::load(&cfg) else {
        return false;
    };
    let action = if publish {
        Action::Publish
    } else {
        Action::Play
    };
    keys.verify(token, action, key, Some(ip), 1_700_000_000)
        .is_ok()
}

/// Builds an HS256 token over raw `header` and `claims` bytes (JSON or not) signed with
/// [`FUZZ_JWT_SECRET`], so arbitrary headers and claims get past the signature check and
/// into the header and claims handling, then verifies it as [`jwt`] does.
pub fn jwt_signed(header: &[u8], claims: &[u8], publish: bool, key: &str, ip: IpAddr) -> bool {
    use hmac::{Hmac, Mac};
    let mut token = b64url(header);
    token.push('.');
    token.push_str(&b64url(claims));
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(FUZZ_JWT_SECRET.as_bytes()) else {
        return false;
    };
    mac.update(token.as_bytes());
    let sig = mac.finalize().into_bytes();
    token.push('.');
    token.push_str(&b64url(&sig));
    jwt(FUZZ_JWT_SECRET, &token, publish, key, ip)
}

/// Base64url without padding (RFC 4648 §5), as JWTs use.
pub fn b64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            let idx = (n >> (18 - 6 * i)) & 0x3F;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

/// A stream name for `key` (`app/stream`), if it is one.
pub fn name(key: &str) -> Option<StreamName> {
    StreamName::from_key(key).ok()
}
