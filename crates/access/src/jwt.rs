//! JWT verification: HS256 (`auth.jwt_secret`), RS256/ES256 (`auth.jwt_public_key_file`, PEM)
//! and keys chosen by `kid` from a JWKS file (`auth.jwks_file`).
//!
//! Claims: `exp` (required), `nbf` (optional), `action` (`"publish"`, `"play"` or `"*"`,
//! required), `stream` (an `app/stream` pattern with `*`, required; `sub` is used when
//! `stream` is absent) and `ip` (optional: an address or CIDR the client must be in).

use std::net::IpAddr;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{AlgorithmFamily, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;

use crate::AccessError;
use crate::Action;
use crate::pattern::pattern_matches;
use crate::refusal::{Reason, Refusal};
use config::AuthConfig;
use config::Cidr;

/// Longest token accepted (bytes): bounds the work spent on a hostile one.
pub const MAX_TOKEN_LEN: usize = 8192;
/// Clock skew (seconds) tolerated on `exp` and `nbf`.
pub const JWT_LEEWAY_S: u64 = 30;
/// Most keys read from `auth.jwks_file`.
pub const MAX_JWKS_KEYS: usize = 64;
/// Largest key file read (bytes).
const MAX_KEY_FILE: u64 = 1024 * 1024;

/// The keys tokens may be signed with.
#[derive(Default)]
pub struct JwtKeys {
    hmac: Option<DecodingKey>,
    public: Option<DecodingKey>,
    jwks: Vec<(String, DecodingKey)>,
}

impl std::fmt::Debug for JwtKeys {
    // Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("hmac", &self.hmac.is_some())
            .field("public", &self.public.is_some())
            .field("jwks", &self.jwks.len())
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    exp: Option<u64>,
    nbf: Option<u64>,
    action: Option<String>,
    stream: Option<String>,
    sub: Option<String>,
    ip: Option<String>,
}

fn read_key_file(key: &str, path: &str) -> Result<Vec<u8>, AccessError> {
    let err = |why: String| AccessError::Config(format!("{key}: {path}: {why}"));
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.len() > MAX_KEY_FILE {
        return Err(err("larger than 1 MiB".to_owned()));
    }
    std::fs::read(path).map_err(|e| err(e.to_string()))
}

impl JwtKeys {
    /// Loads the configured keys (reading the key files once, at start).
    pub fn load(cfg: &AuthConfig) -> Result<Self, AccessError> {
        let mut keys = JwtKeys::default();
        if !cfg.jwt_secret.is_empty() {
            keys.hmac = Some(DecodingKey::from_secret(cfg.jwt_secret.as_bytes()));
        }
        if !cfg.jwt_public_key_file.is_empty() {
            let pem = read_key_file("auth.jwt_public_key_file", &cfg.jwt_public_key_file)?;
            let key = DecodingKey::from_rsa_pem(&pem)
                .or_else(|_| DecodingKey::from_ec_pem(&pem))
                .map_err(|e| {
                    AccessError::Config(format!(
                        "auth.jwt_public_key_file: {}: not an RSA or EC public key in PEM: {e}",
                        cfg.jwt_public_key_file
                    ))
                })?;
            keys.public = Some(key);
        }
        if !cfg.jwks_file.is_empty() {
            let text = read_key_file("auth.jwks_file", &cfg.jwks_file)?;
            let set: JwkSet = serde_json::from_slice(&text).map_err(|e| {
                AccessError::Config(format!("auth.jwks_file: {}: {e}", cfg.jwks_file))
            })?;
            for jwk in set.keys.iter().take(MAX_JWKS_KEYS) {
                let (Some(kid), Ok(key)) = (&jwk.common.key_id, DecodingKey::from_jwk(jwk)) else {
                    continue;
                };
                keys.jwks.push((kid.clone(), key));
            }
            if keys.jwks.is_empty() {
                return Err(AccessError::Config(format!(
                    "auth.jwks_file: {}: no usable key with a kid",
                    cfg.jwks_file
                )));
            }
        }
        Ok(keys)
    }

    /// True when no key is configured (every token is refused).
    pub fn is_empty(&self) -> bool {
        self.hmac.is_none() && self.public.is_none() && self.jwks.is_empty()
    }

    fn key_for(&self, family: AlgorithmFamily, kid: Option<&str>) -> Option<&DecodingKey> {
        if family == AlgorithmFamily::Hmac {
            return self.hmac.as_ref();
        }
        if let Some(kid) = kid
            && let Some((_, k)) = self.jwks.iter().find(|(id, _)| id == kid)
        {
            return (k.family() == family).then_some(k);
        }
        self.public.as_ref().filter(|k| k.family() == family)
    }

    /// Verifies `token` for `action` on `key` (`app/stream`) by a client at `ip`.
    pub fn verify(
        &self,
        token: &str,
        action: Action,
        key: &str,
        ip: Option<IpAddr>,
        now_s: u64,
    ) -> Result<(), Refusal> {
        let bad = |why: &str| Refusal::new(Reason::BadToken, format!("invalid token: {why}"));
        if token.len() > MAX_TOKEN_LEN {
            return Err(bad("too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad("malformed"))?;
        let family = header.alg.family();
        let Some(dkey) = self.key_for(family, header.kid.as_deref()) else {
            return Err(bad("no key for its algorithm or kid"));
        };
        let mut validation = Validation::new_for_family(family);
        // `exp` must be present; it and `nbf` are checked below against the time passed in.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Claims>(token, dkey, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::ExpiredSignature => Refusal::new(Reason::Expired, "the token has expired"),
            ErrorKind::ImmatureSignature => {
                Refusal::new(Reason::Expired, "the token is not valid yet (nbf)")
            }
            ErrorKind::MissingRequiredClaim(c) => bad(&format!("missing claim {c}")),
            ErrorKind::InvalidSignature => bad("bad signature"),
            _ => bad("does not verify"),
        })?;
        let c = &data.claims;
        if c.exp
            .is_some_and(|exp| exp.saturating_add(JWT_LEEWAY_S) < now_s)
        {
            return Err(Refusal::new(Reason::Expired, "the token has expired"));
        }
        if c.nbf
            .is_some_and(|nbf| nbf > now_s.saturating_add(JWT_LEEWAY_S))
        {
            return Err(Refusal::new(
                Reason::Expired,
                "the token is not valid yet (nbf)",
            ));
        }
        check_claims(&data.claims, action, key, ip)
    }
}

fn check_claims(c: &Claims, action: Action, key: &str, ip: Option<IpAddr>) -> Result<(), Refusal> {
    match c.action.as_deref() {
        Some("*") => {}
        Some(a) if a == action.as_str() => {}
        Some(_) => {
            return Err(Refusal::new(
                Reason::WrongAction,
                format!("the token does not allow {}", action.as_str()),
            ));
        }
        None => {
            return Err(Refusal::new(
                Reason::WrongAction,
                "the token has no action claim",
            ));
        }
    }
    let Some(pattern) = c.stream.as_deref().or(c.sub.as_deref()) else {
        return Err(Refusal::new(
            Reason::WrongStream,
            "the token has no stream claim",
        ));
    };
    if !pattern_matches(pattern, key) {
        return Err(Refusal::new(
            Reason::WrongStream,
            format!("the token is not valid for stream {key}"),
        ));
    }
    if let Some(bound) = c.ip.as_deref() {
        let Ok(cidr) = bound.parse::<Cidr>() else {
            return Err(Refusal::new(
                Reason::BadToken,
                "invalid token: bad ip claim",
            ));
        };
        if !ip.is_some_and(|ip| cidr.contains(ip)) {
            return Err(Refusal::new(
                Reason::WrongIp,
                "the token is bound to another client address",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn hs(claims: serde_json::Value, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn keys() -> JwtKeys {
        JwtKeys::load(&AuthConfig {
            jwt_secret: "s3cret".into(),
            ..AuthConfig::default()
        })
        .unwrap()
    }

    fn reason(r: Result<(), Refusal>) -> Option<Reason> {
        r.err().map(|e| e.reason)
    }

    #[test]
    fn hs256_claims() {
        let k = keys();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let exp = now() + 600;
        let ok = hs(
            serde_json::json!({"exp": exp, "action": "publish", "stream": "live/*"}),
            "s3cret",
        );
        assert_eq!(
            reason(k.verify(&ok, Action::Publish, "live/a", Some(ip), now())),
            None
        );
        assert_eq!(
            reason(k.verify(&ok, Action::Play, "live/a", Some(ip), now())),
            Some(Reason::WrongAction)
        );
        assert_eq!(
            reason(k.verify(&ok, Action::Publish, "other/a", Some(ip), now())),
            Some(Reason::WrongStream)
        );
        let any = hs(
            serde_json::json!({"exp": exp, "action": "*", "sub": "live/a"}),
            "s3cret",
        );
        assert_eq!(
            reason(k.verify(&any, Action::Play, "live/a", None, now())),
            None
        );
        assert_eq!(
            reason(k.verify(&any, Action::Play, "live/ab", None, now())),
            Some(Reason::WrongStream)
        );
        let bound = hs(
            serde_json::json!({"exp": exp, "action": "play", "stream": "*", "ip": "192.0.2.0/24"}),
            "s3cret",
        );
        assert_eq!(
            reason(k.verify(&bound, Action::Play, "x/y", Some(ip), now())),
            None
        );
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(
            reason(k.verify(&bound, Action::Play, "x/y", Some(other), now())),
            Some(Reason::WrongIp)
        );
        assert_eq!(
            reason(k.verify(&bound, Action::Play, "x/y", None, now())),
            Some(Reason::WrongIp)
        );
    }

    #[test]
    fn time_and_signature_failures() {
        let k = keys();
        let expired = hs(
            serde_json::json!({"exp": now() - 3600, "action": "*", "stream": "*"}),
            "s3cret",
        );
        assert_eq!(
            reason(k.verify(&expired, Action::Play, "a/b", None, now())),
            Some(Reason::Expired)
        );
        let early = hs(
            serde_json::json!({"exp": now() + 7200, "nbf": now() + 3600, "action": "*", "stream": "*"}),
            "s3cret",
        );
        assert_eq!(
            reason(k.verify(&early, Action::Play, "a/b", None, now())),
            Some(Reason::Expired)
        );
        let no_exp = hs(serde_json::json!({"action": "*", "stream": "*"}), "s3cret");
        assert_eq!(
            reason(k.verify(&no_exp, Action::Play, "a/b", None, now())),
            Some(Reason::BadToken)
        );
        let wrong_key = hs(
            serde_json::json!({"exp": now() + 60, "action": "*", "stream": "*"}),
            "other",
        );
        assert_eq!(
            reason(k.verify(&wrong_key, Action::Play, "a/b", None, now())),
            Some(Reason::BadToken)
        );
        // Tampered payload: the claims of another token with this token's signature.
        let good = hs(
            serde_json::json!({"exp": now() + 60, "action": "play", "stream": "a/b"}),
            "s3cret",
        );
        let evil = hs(
            serde_json::json!({"exp": now() + 60, "action": "*", "stream": "*"}),
            "x",
        );
        let g: Vec<&str> = good.split('.').collect();
        let e: Vec<&str> = evil.split('.').collect();
        let tampered = format!("{}.{}.{}", g[0], e[1], g[2]);
        assert_eq!(
            reason(k.verify(&tampered, Action::Publish, "a/b", None, now())),
            Some(Reason::BadToken)
        );
        for junk in [
            "",
            "a.b.c",
            "....",
            "eyJhbGciOiJub25lIn0.e30.",
            &"x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(
                reason(k.verify(junk, Action::Play, "a/b", None, now())),
                Some(Reason::BadToken),
                "{junk}"
            );
        }
        // No key configured: every token is refused.
        assert_eq!(
            reason(JwtKeys::default().verify(&good, Action::Play, "a/b", None, now())),
            Some(Reason::BadToken)
        );
    }
    const EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQglUNWsVn0UspgGNWR
u3NQQKSzmgvMo+sucWhQQLvY8UGhRANCAATODjzKcfVxcvVsj1fy/VdhuRZFAoCz
VrosFrhrBnlaoCAzgmDjxg3jT/YdX9XDW94h0cbT9v5ppYWNOz84HjOY
-----END PRIVATE KEY-----
";
    const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEzg48ynH1cXL1bI9X8v1XYbkWRQKA
s1a6LBa4awZ5WqAgM4Jg48YN40/2HV/Vw1veIdHG0/b+aaWFjTs/OB4zmA==
-----END PUBLIC KEY-----
";

    fn temp_file(name: &str, text: &str) -> String {
        let p = std::env::temp_dir().join(format!("sluice-jwt-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn es256_from_pem_and_jwks() {
        let enc = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
        let claims = serde_json::json!({"exp": now() + 60, "action": "play", "stream": "live/*"});
        let plain = encode(&Header::new(Algorithm::ES256), &claims, &enc).unwrap();
        let pem_keys = JwtKeys::load(&AuthConfig {
            jwt_public_key_file: temp_file("pub.pem", EC_PUBLIC),
            ..AuthConfig::default()
        })
        .unwrap();
        assert_eq!(
            reason(pem_keys.verify(&plain, Action::Play, "live/x", None, now())),
            None
        );
        // An HS256 token is refused when only a public key is configured (no alg confusion).
        let hs_token = hs(claims.clone(), EC_PUBLIC);
        assert_eq!(
            reason(pem_keys.verify(&hs_token, Action::Play, "live/x", None, now())),
            Some(Reason::BadToken)
        );

        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&enc, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some("k1".into());
        let set = jsonwebtoken::jwk::JwkSet { keys: vec![jwk] };
        let jwks_keys = JwtKeys::load(&AuthConfig {
            jwks_file: temp_file("jwks.json", &serde_json::to_string(&set).unwrap()),
            ..AuthConfig::default()
        })
        .unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        let with_kid = encode(&header, &claims, &enc).unwrap();
        assert_eq!(
            reason(jwks_keys.verify(&with_kid, Action::Play, "live/x", None, now())),
            None
        );
        header.kid = Some("k2".into());
        let unknown_kid = encode(&header, &claims, &enc).unwrap();
        assert_eq!(
            reason(jwks_keys.verify(&unknown_kid, Action::Play, "live/x", None, now())),
            Some(Reason::BadToken)
        );
        assert!(
            JwtKeys::load(&AuthConfig {
                jwt_public_key_file: temp_file("junk.pem", "not a key"),
                ..AuthConfig::default()
            })
            .is_err()
        );
    }
}
