//! JWTs: arbitrary tokens (refused unless they verify) and arbitrary header and claims bytes
//! under a valid HS256 signature (the header and claims handling we own) never panic.
//! Input: control byte, then header, a NUL, claims.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{FUZZ_JWT_SECRET, jwt, jwt_signed};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, control));
    let publish = control & 1 == 0;
    // As a raw token: the signature cannot verify unless the fuzzer found the HMAC.
    let raw = String::from_utf8_lossy(rest);
    let _ = jwt(FUZZ_JWT_SECRET, &raw, publish, "live/fuzz", ip);
    let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let (header, claims) = rest.split_at(split);
    let claims = claims.get(1..).unwrap_or_default();
    let _ = jwt_signed(header, claims, publish, "live/fuzz", ip);
});
