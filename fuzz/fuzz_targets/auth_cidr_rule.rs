//! CIDR parsing and rule pattern matching: arbitrary CIDRs, patterns and stream keys never
//! panic; a CIDR that parses contains its own address. Input: 16 bytes of address (IPv4 when
//! the first is even), then lines: cidr, pattern, key.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let (addr, rest) = data.split_at(16);
    let mut v6 = [0u8; 16];
    v6.copy_from_slice(addr);
    let ip = if addr[0] % 2 == 0 {
        IpAddr::V4(Ipv4Addr::new(addr[1], addr[2], addr[3], addr[4]))
    } else {
        IpAddr::V6(Ipv6Addr::from(v6))
    };
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let cidr = lines.next().unwrap_or("");
    let pattern = lines.next().unwrap_or("");
    let key = lines.next().unwrap_or("");
    let _ = cidr.parse::<config::Cidr>().map(|c| c.contains(ip));
    if let Some(base) = cidr
        .split('/')
        .next()
        .and_then(|a| a.parse::<IpAddr>().ok())
        && let Ok(block) = cidr.parse::<config::Cidr>()
    {
        let inside = block.contains(base);
        assert!(inside, "{cidr} contains {base}");
    }
    let matches = access::pattern_matches(pattern, key);
    // A one-rule policy with that pattern and allow list, deciding a play by `ip`.
    let cfg = config::AuthConfig {
        rules: vec![config::AuthRule {
            pattern: pattern.to_owned(),
            publish: config::AuthMode::Token,
            play: config::AuthMode::Open,
            allow_ips: vec![cidr.to_owned()],
            deny_ips: Vec::new(),
        }],
        ..Default::default()
    };
    if let (Ok(policy), Some(name)) = (access::Policy::new(&cfg), sluice_fuzz::name(key)) {
        let mut req = access::Request::new(access::Action::Play, &name, "rtmp");
        req.ip = Some(ip);
        let _ = policy.decide(&req, 0);
    }
    if pattern == "*" || pattern == key {
        assert!(matches, "{pattern:?} matches {key:?}");
    }
});
