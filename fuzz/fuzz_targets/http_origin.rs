//! Where a browser request comes from, from hostile headers: the `Host` (or HTTP/2
//! authority), `Origin` and `Sec-Fetch-Site` the token-less REST API checks against DNS
//! rebinding and cross-site requests. A host that is accepted has no control character, and a
//! request is never same-site by `Origin` with a host that `Host` would not name.
//! Input: host, a NUL, origin, a NUL, sec-fetch-site, a NUL, one allowed-hosts entry.
#![no_main]

use access::origin::{host_allowed, is_cross_site, split_host};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\0');
    let host = parts.next().unwrap_or("");
    let origin = parts.next();
    let site = parts.next();
    let allowed: Vec<String> = parts.next().map(|a| vec![a.to_owned()]).unwrap_or_default();
    if let Some((name, _)) = split_host(host) {
        assert!(!name.chars().any(char::is_control));
        assert!(!name.is_empty());
        assert_eq!(name, name.to_ascii_lowercase());
    }
    if host_allowed(Some(host), &allowed) {
        assert!(split_host(host).is_some());
    }
    let cross = is_cross_site(site, origin, Some(host));
    if site.is_none() && origin.is_none() {
        assert!(!cross, "no browser header: not a browser's cross-site request");
    }
    // Same origin by `Origin` alone: the origin names the very host the request was sent to.
    if site.is_none()
        && let Some(o) = origin
        && !cross
    {
        let (_, rest) = o.trim().split_once("://").expect("a parsed origin");
        let (o_host, _) = split_host(rest).expect("a parsed origin host");
        let (h_host, _) = split_host(host).expect("a parsed host");
        assert_eq!(o_host, h_host);
    }
});
