//! A tiny CIDR matcher for IPv4 and IPv6 (`10.0.0.0/8`, `2001:db8::/32`, or a bare address).
//! IPv4-mapped IPv6 clients (`::ffff:a.b.c.d`) match IPv4 blocks.

use std::net::IpAddr;
use std::str::FromStr;

/// An address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a CIDR did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadCidr;

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Self, BadCidr> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| BadCidr)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| BadCidr)?
            }
            Some(_) => return Err(BadCidr),
        };
        if prefix > max {
            return Err(BadCidr);
        }
        Ok(Self { addr, prefix })
    }
}

impl Cidr {
    /// True when `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(net.to_bits()) << 96,
                u128::from(ip.to_bits()) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(net.to_bits(), ip.to_bits(), self.prefix)
            }
            _ => false,
        }
    }
}

/// The first `prefix` bits of `a` and `b` agree.
fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    let mask = match prefix {
        0 => 0,
        p => u128::MAX << (128 - u32::from(p.min(128))),
    };
    a & mask == b & mask
}

/// Parses a list of CIDRs, skipping invalid ones (the configuration was validated).
pub fn parse_list(list: &[String]) -> Vec<Cidr> {
    list.iter().filter_map(|s| s.parse().ok()).collect()
}

/// True when any block of `list` contains `ip`.
pub fn any_contains(list: &[Cidr], ip: IpAddr) -> bool {
    list.iter().any(|c| c.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_blocks() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains(ip("10.1.255.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(
            c.contains(ip("::ffff:10.1.2.3")),
            "mapped IPv6 matches IPv4 blocks"
        );
        assert!(!c.contains(ip("2001:db8::1")));
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
    }

    #[test]
    fn ipv6_blocks() {
        let c: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(!c.contains(ip("10.0.0.1")));
        let lo: Cidr = "::1/128".parse().unwrap();
        assert!(lo.contains(ip("::1")) && !lo.contains(ip("::2")));
        let odd: Cidr = "fe80::/10".parse().unwrap();
        assert!(odd.contains(ip("febf::1")) && !odd.contains(ip("fec0::1")));
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0/8",
            "x/8",
            "1.2.3.4/+8",
            "1.2.3.4/0008",
        ] {
            assert_eq!(s.parse::<Cidr>(), Err(BadCidr), "{s}");
        }
    }
}
