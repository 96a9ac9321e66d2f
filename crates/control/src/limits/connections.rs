//! TCP connection admission: the global count with each listener's reserved share, the
//! per-address count and the per-address connection rate (a GCRA token bucket from
//! `governor`, keyed by address).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use governor::clock::DefaultClock;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use super::{
    LimitReason, Limits, ListenerKind, MAX_RATE_TRACKED_ADDRESSES, RATE_SWEEP_MIN_INTERVAL,
};
use crate::ControlError;
use config::Cidr;
use config::LimitsConfig;

type RateTable = RateLimiter<IpAddr, HashMapStateStore<IpAddr>, DefaultClock>;

/// The address a client is limited by: IPv4 as is (IPv4-mapped IPv6 as IPv4), IPv6 by its
/// /64, since one host or customer usually owns a whole /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None if v6.is_loopback() => ip,
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << 64))),
        },
        v4 => v4,
    }
}

/// Connections open per listener, and how the global limit is split between them.
#[derive(Debug, Default)]
struct Counts {
    /// Open connections per listener ([`ListenerKind::index`]).
    open: [usize; ListenerKind::ALL.len()],
}

/// How `max_connections` is shared: each running listener keeps `reserve[i]` slots no other
/// listener may use; the remaining `shared` slots go to whoever comes first.
#[derive(Debug, Clone, Copy)]
struct Shares {
    reserve: [usize; ListenerKind::ALL.len()],
    shared: usize,
}

impl Shares {
    fn new(max: usize, percent: u8, running: &[ListenerKind]) -> Self {
        let each = max * usize::from(percent) / 100;
        let mut reserve = [0; ListenerKind::ALL.len()];
        for l in running {
            reserve[l.index()] = each;
        }
        let kept: usize = reserve.iter().sum();
        Self {
            reserve,
            shared: max.saturating_sub(kept),
        }
    }

    /// Whether one more connection on listener `i` fits: within its reserve, or in the
    /// shared slots not already taken by connections beyond their listener's reserve.
    fn admits(&self, open: &[usize; ListenerKind::ALL.len()], i: usize) -> bool {
        if open[i] < self.reserve[i] {
            return true;
        }
        let shared_used: usize = open
            .iter()
            .zip(self.reserve)
            .map(|(n, r)| n.saturating_sub(r))
            .sum();
        shared_used < self.shared
    }
}

/// Connection counts and the per-address tables.
pub struct ConnectionTable {
    max_per_ip: usize,
    exempt: Vec<Cidr>,
    shares: Shares,
    counts: Mutex<Counts>,
    /// Open connections per address key; an entry exists only while it is above zero, so
    /// the map is bounded by `max` (checked first).
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    rate: Option<RateTable>,
    last_sweep: Mutex<Option<Instant>>,
}

impl ConnectionTable {
    /// The table for `cfg`, with `running` the listeners that exist (each keeps its share of
    /// `max_connections`: `limits.listener_reserve_percent`).
    pub fn new(cfg: &LimitsConfig, running: &[ListenerKind]) -> Result<Self, ControlError> {
        let exempt = cfg
            .exempt
            .iter()
            .map(|b| {
                b.parse::<Cidr>().map_err(|_| {
                    ControlError::Config(format!("limits.exempt: {b:?} is not a CIDR block"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rate = match (
            NonZeroU32::new(cfg.connections_per_ip_per_second),
            NonZeroU32::new(cfg.connections_per_ip_burst),
        ) {
            (Some(per_s), Some(burst)) => Some(RateLimiter::hashmap(
                Quota::per_second(per_s).allow_burst(burst),
            )),
            _ => None,
        };
        Ok(Self {
            max_per_ip: cfg.max_connections_per_ip,
            exempt,
            shares: Shares::new(cfg.max_connections, cfg.listener_reserve_percent, running),
            counts: Mutex::new(Counts::default()),
            per_ip: Mutex::new(HashMap::new()),
            rate,
            last_sweep: Mutex::new(None),
        })
    }

    fn per_ip(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_ip.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections open now on `listener`.
    pub fn open(&self, listener: ListenerKind) -> usize {
        self.counts().open[listener.index()]
    }

    /// Connections open now on every listener.
    #[cfg(test)]
    pub fn open_total(&self) -> usize {
        self.counts().open.iter().sum()
    }

    /// Addresses in the rate table.
    pub fn tracked_addresses(&self) -> usize {
        self.rate.as_ref().map_or(0, |r| r.len())
    }

    /// Drops rate-table entries whose bucket is full again (indistinguishable from new).
    pub fn sweep(&self) {
        if let Some(r) = &self.rate {
            r.retain_recent();
            r.shrink_to_fit();
        }
    }

    /// The key `ip` is limited by per address ([`address_key`]), or `None` when it is in
    /// `limits.exempt` (exempt addresses skip every per-address check, a protocol's own
    /// included).
    pub fn limited_key(&self, ip: IpAddr) -> Option<IpAddr> {
        (!self.exempt.iter().any(|c| c.contains(ip))).then(|| address_key(ip))
    }

    /// Admits a connection from `ip` on `listener`: the rate first (every attempt spends a
    /// token), then the per-address count, then the global count (the listener's reserve,
    /// else the shared slots). Exempt addresses skip the per-address checks.
    pub fn admit(
        &self,
        limits: &Arc<Limits>,
        listener: ListenerKind,
        ip: IpAddr,
        now: Instant,
    ) -> Result<ConnectionPermit, LimitReason> {
        let key = address_key(ip);
        let exempt = self.exempt.iter().any(|c| c.contains(ip));
        if !exempt {
            self.check_rate(key, now)?;
        }
        let mut per_ip = if exempt { None } else { Some(self.per_ip()) };
        if let Some(m) = &per_ip
            && m.get(&key).copied().unwrap_or(0) >= self.max_per_ip
        {
            return Err(LimitReason::PerIpConnections);
        }
        {
            let mut counts = self.counts();
            let i = listener.index();
            if !self.shares.admits(&counts.open, i) {
                return Err(LimitReason::MaxConnections);
            }
            counts.open[i] += 1;
        }
        if let Some(m) = &mut per_ip {
            *m.entry(key).or_insert(0) += 1;
        }
        Ok(ConnectionPermit {
            limits: Arc::clone(limits),
            listener,
            key: (!exempt).then_some(key),
        })
    }

    fn check_rate(&self, key: IpAddr, now: Instant) -> Result<(), LimitReason> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        if rate.len() >= MAX_RATE_TRACKED_ADDRESSES {
            let mut last = self.last_sweep.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_none_or(|t| now.saturating_duration_since(t) >= RATE_SWEEP_MIN_INTERVAL) {
                *last = Some(now);
                rate.retain_recent();
            }
            if rate.len() >= MAX_RATE_TRACKED_ADDRESSES {
                return Err(LimitReason::IpTableFull);
            }
        }
        rate.check_key(&key).map_err(|_| LimitReason::PerIpRate)
    }

    fn release(&self, listener: ListenerKind, key: Option<IpAddr>) {
        {
            let mut counts = self.counts();
            let n = &mut counts.open[listener.index()];
            *n = n.saturating_sub(1);
        }
        if let Some(key) = key {
            let mut m = self.per_ip();
            if let Some(n) = m.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&key);
                }
            }
        }
    }

    #[cfg(test)]
    fn addresses_open(&self) -> usize {
        self.per_ip().len()
    }
}

/// One admitted TCP connection: counted (globally, per listener, per address) until dropped.
pub struct ConnectionPermit {
    limits: Arc<Limits>,
    listener: ListenerKind,
    /// The address key counted, `None` for an exempt address.
    key: Option<IpAddr>,
}

impl std::fmt::Debug for ConnectionPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPermit")
            .field("listener", &self.listener)
            .field("key", &self.key)
            .finish()
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.limits.connections.release(self.listener, self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(edit: impl FnOnce(&mut LimitsConfig)) -> Arc<Limits> {
        let mut cfg = LimitsConfig::default();
        edit(&mut cfg);
        Limits::new(&cfg, &[ListenerKind::Rtmp, ListenerKind::Http]).expect("valid")
    }

    fn admit_on(
        l: &Arc<Limits>,
        listener: ListenerKind,
        ip: &str,
    ) -> Result<ConnectionPermit, LimitReason> {
        let ip: IpAddr = ip.parse().expect("ip");
        l.connections.admit(l, listener, ip, Instant::now())
    }

    #[test]
    fn a_flooded_listener_leaves_the_others_their_reserve() {
        let l = limits(|c| {
            c.max_connections = 20;
            c.listener_reserve_percent = 25;
            c.connections_per_ip_per_second = 0;
            c.exempt = vec!["127.0.0.0/8".into()];
        });
        // HTTP takes its own 5 and the 10 shared slots, and no more.
        let mut flood: Vec<_> = (0..15)
            .map(|_| admit_on(&l, ListenerKind::Http, "127.0.0.1").expect("within share"))
            .collect();
        assert_eq!(
            admit_on(&l, ListenerKind::Http, "127.0.0.1").unwrap_err(),
            LimitReason::MaxConnections
        );
        // RTMP still has its reserve of 5 (RTMPS and HTTPS are not running: no reserve).
        let rtmp: Vec<_> = (0..5)
            .map(|_| admit_on(&l, ListenerKind::Rtmp, "127.0.0.1").expect("reserve"))
            .collect();
        assert_eq!(
            admit_on(&l, ListenerKind::Rtmp, "127.0.0.1").unwrap_err(),
            LimitReason::MaxConnections
        );
        assert_eq!(l.connections.open_total(), 20);
        // One HTTP connection leaves: its slot was a shared one, RTMP may take it now.
        drop(flood.pop());
        let more = admit_on(&l, ListenerKind::Rtmp, "127.0.0.1").expect("shared again");
        assert_eq!(
            admit_on(&l, ListenerKind::Http, "127.0.0.1").unwrap_err(),
            LimitReason::MaxConnections
        );
        drop((flood, rtmp, more));
        assert_eq!(l.connections.open_total(), 0);
    }

    #[test]
    fn no_reserve_is_one_pool() {
        let l = limits(|c| {
            c.max_connections = 4;
            c.listener_reserve_percent = 0;
            c.connections_per_ip_per_second = 0;
        });
        let held: Vec<_> = (0..4)
            .map(|_| admit_on(&l, ListenerKind::Http, "10.0.0.1").expect("pool"))
            .collect();
        assert_eq!(
            admit_on(&l, ListenerKind::Rtmp, "10.0.0.2").unwrap_err(),
            LimitReason::MaxConnections
        );
        drop(held);
    }

    fn admit(l: &Arc<Limits>, ip: &str) -> Result<ConnectionPermit, LimitReason> {
        let ip: IpAddr = ip.parse().expect("ip");
        l.connections
            .admit(l, ListenerKind::Rtmp, ip, Instant::now())
    }

    #[test]
    fn limited_keys_group_ipv6_by_64_and_skip_exempt_addresses() {
        let l = limits(|c| c.exempt = vec!["10.0.0.0/8".into()]);
        let key = |ip: &str| l.connections.limited_key(ip.parse().unwrap());
        assert_eq!(key("10.1.2.3"), None);
        assert_eq!(key("192.0.2.7"), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(key("2001:db8::1"), key("2001:db8::ffff:1"));
        assert_ne!(key("2001:db8::1"), key("2001:db8:0:1::1"));
    }

    #[test]
    fn per_ip_limit_counts_each_address_and_frees_on_drop() {
        let l = limits(|c| {
            c.max_connections_per_ip = 2;
            c.connections_per_ip_per_second = 0;
        });
        let a = admit(&l, "10.0.0.1").expect("first");
        let _b = admit(&l, "10.0.0.1").expect("second");
        assert_eq!(
            admit(&l, "10.0.0.1").unwrap_err(),
            LimitReason::PerIpConnections
        );
        let _other = admit(&l, "10.0.0.2").expect("another address");
        assert_eq!(l.connections.open_total(), 3);
        assert_eq!(l.connections.open(ListenerKind::Rtmp), 3);
        drop(a);
        let _c = admit(&l, "10.0.0.1").expect("slot freed");
        assert_eq!(l.connections.open_total(), 3);
        // IPv4-mapped IPv6 is the same client.
        assert_eq!(
            admit(&l, "::ffff:10.0.0.1").unwrap_err(),
            LimitReason::PerIpConnections
        );
    }

    #[test]
    fn global_limit_applies_to_exempt_addresses_too() {
        let l = limits(|c| {
            c.max_connections = 3;
            c.max_connections_per_ip = 1;
            c.connections_per_ip_burst = 1;
            c.exempt = vec!["127.0.0.0/8".into()];
        });
        let held: Vec<_> = (0..3)
            .map(|_| admit(&l, "127.0.0.1").expect("exempt from per-ip and rate"))
            .collect();
        assert_eq!(
            admit(&l, "127.0.0.1").unwrap_err(),
            LimitReason::MaxConnections
        );
        assert_eq!(l.connections.addresses_open(), 0, "exempt not tracked");
        drop(held);
        assert_eq!(l.connections.open_total(), 0);
        let _ok = admit(&l, "10.1.1.1").expect("free again");
    }

    #[test]
    fn rate_limit_refuses_beyond_the_burst() {
        let l = limits(|c| {
            c.connections_per_ip_per_second = 1;
            c.connections_per_ip_burst = 3;
        });
        for _ in 0..3 {
            drop(admit(&l, "192.0.2.7").expect("within burst"));
        }
        assert_eq!(admit(&l, "192.0.2.7").unwrap_err(), LimitReason::PerIpRate);
        // Another address has its own bucket.
        assert!(admit(&l, "192.0.2.8").is_ok());
        assert_eq!(l.connections.tracked_addresses(), 2);
        assert_eq!(l.connections.open_total(), 0);
    }

    #[test]
    fn refused_connections_leave_no_count_behind() {
        let l = limits(|c| {
            c.max_connections = 1;
            c.connections_per_ip_per_second = 0;
        });
        let _a = admit(&l, "10.0.0.1").expect("first");
        assert_eq!(
            admit(&l, "10.0.0.2").unwrap_err(),
            LimitReason::MaxConnections
        );
        assert_eq!(l.connections.open_total(), 1);
        assert_eq!(l.connections.addresses_open(), 1);
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let a = address_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = address_key("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = address_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let lo: IpAddr = "::1".parse().unwrap();
        assert_eq!(address_key(lo), lo);
    }
}
