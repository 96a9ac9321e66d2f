//! The shared UDP socket's reader: routes each datagram to its peer in O(1).
//!
//! A datagram from a known remote address goes to that peer. Otherwise it must be a STUN
//! message whose USERNAME starts with one of our local ufrags (`ours:theirs`); its source
//! address is then remembered for that peer (at most [`MAX_ADDRS_PER_PEER`]), which is how
//! DTLS/SRTP from the same address finds the peer afterwards. Anything else is dropped and
//! counted. The peer's str0m checks STUN integrity; a forged STUN with a guessed ufrag can
//! at most add an address that leads to the same peer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use str0m::ice::StunMessage;
use tokio_util::sync::CancellationToken;

use super::{Datagram, MAX_ADDRS_PER_PEER, MAX_DATAGRAM, PeerRoute, WebRtc};

/// Reads the socket until shutdown.
pub(crate) async fn run(rtc: Arc<WebRtc>, shutdown: CancellationToken) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, source) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = rtc.socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP port unreachable and the like surface here: keep reading.
                    tracing::debug!("webrtc udp recv: {e}");
                    continue;
                }
            },
        };
        rtc.stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
        let data = buf.get(..n).unwrap_or_default();
        if !route(&rtc, source, data) {
            rtc.stats.datagrams_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Routes one datagram; false when it was dropped.
pub(crate) fn route(rtc: &WebRtc, source: std::net::SocketAddr, data: &[u8]) -> bool {
    if data.is_empty() || data.len() >= MAX_DATAGRAM {
        return false;
    }
    let target: Option<PeerRoute> = {
        let mut t = rtc.tables();
        if let Some(r) = t.by_addr.get(&source) {
            Some(r.clone())
        } else {
            let ufrag = StunMessage::parse(data)
                .ok()
                .and_then(|m| m.split_username().map(|(ours, _)| ours.to_owned()));
            match ufrag.and_then(|u| t.by_ufrag.get(&u).cloned()) {
                Some(r) => {
                    let addrs = t.addrs.entry(r.id).or_default();
                    if addrs.len() < MAX_ADDRS_PER_PEER {
                        addrs.push(source);
                        t.by_addr.insert(source, r.clone());
                    }
                    Some(r)
                }
                None => None,
            }
        }
    };
    let Some(r) = target else {
        return false;
    };
    r.tx.try_send(Datagram {
        source,
        data: data.to_vec(),
        at: std::time::Instant::now(),
    })
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webrtc::WebRtcConfig;
    use tokio::sync::mpsc;

    /// A STUN binding request (RFC 8489 header) with USERNAME, PRIORITY and a (not
    /// checked here) MESSAGE-INTEGRITY attribute: what str0m's parser requires.
    fn stun_request(username: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&[0x00, 0x06]);
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        attr.extend_from_slice(&[0x00, 0x24, 0, 4, 0x6E, 0, 0x1E, 0xFF]);
        attr.extend_from_slice(&[0x00, 0x08, 0, 20]);
        attr.extend_from_slice(&[0xAB; 20]);
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attr);
        m
    }

    async fn service() -> WebRtc {
        let cfg = WebRtcConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        };
        WebRtc::bind(&cfg).await.unwrap()
    }

    #[tokio::test]
    async fn routes_by_ufrag_then_by_address_and_drops_the_rest() {
        let rtc = service().await;
        let (tx, mut rx) = mpsc::channel(PEER_QUEUE_TEST);
        rtc.tables()
            .by_ufrag
            .insert("ourfrag".to_owned(), PeerRoute { id: 1, tx });
        let a: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
        // Not STUN, unknown source: dropped.
        assert!(!route(&rtc, a, &[0x80, 0x60, 0, 1, 0, 0, 0, 0]));
        // STUN for another ufrag: dropped; nothing learnt.
        assert!(!route(&rtc, a, &stun_request("other:theirs")));
        assert!(rtc.tables().by_addr.is_empty());
        // STUN for our ufrag: routed, and the address is learnt.
        assert!(route(&rtc, a, &stun_request("ourfrag:theirs")));
        assert_eq!(rx.try_recv().unwrap().source, a);
        // Now DTLS/RTP from that address finds the peer without STUN.
        assert!(route(&rtc, a, &[22, 254, 253, 0, 0]));
        assert_eq!(rx.try_recv().unwrap().data, [22, 254, 253, 0, 0]);
        // Empty datagrams never route.
        assert!(!route(&rtc, a, &[]));
    }

    const PEER_QUEUE_TEST: usize = 4;

    #[tokio::test]
    async fn learnt_addresses_and_queues_are_bounded() {
        let rtc = service().await;
        let (tx, _rx) = mpsc::channel(PEER_QUEUE_TEST);
        rtc.tables()
            .by_ufrag
            .insert("u".to_owned(), PeerRoute { id: 9, tx });
        for port in 0..(MAX_ADDRS_PER_PEER as u16 + 5) {
            let a = std::net::SocketAddr::from(([127, 0, 0, 1], 50_000 + port));
            route(&rtc, a, &stun_request("u:x"));
        }
        assert_eq!(rtc.tables().by_addr.len(), MAX_ADDRS_PER_PEER);
        // The queue holds PEER_QUEUE_TEST datagrams; the rest are refused (counted by run).
        let a = std::net::SocketAddr::from(([127, 0, 0, 1], 50_000));
        let delivered = (0..10).filter(|_| route(&rtc, a, &[1, 2, 3])).count();
        assert!(delivered <= PEER_QUEUE_TEST);
        // Forgetting the peer removes every route to it.
        rtc.forget(9, "u", "none", "live/x");
        assert!(rtc.tables().by_addr.is_empty() && rtc.tables().by_ufrag.is_empty());
    }

    #[tokio::test]
    async fn random_datagrams_never_panic_and_never_route() {
        let rtc = service().await;
        let (tx, _rx) = mpsc::channel(PEER_QUEUE_TEST);
        rtc.tables()
            .by_ufrag
            .insert("known".to_owned(), PeerRoute { id: 2, tx });
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let a: std::net::SocketAddr = "127.0.0.1:41000".parse().unwrap();
        for i in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 1500) as usize;
            let mut d: Vec<u8> = (0..len).map(|k| (x >> (k % 56)) as u8).collect();
            if i % 2 == 0 && d.len() >= 20 {
                d[0] = 0;
                d[1] = 1;
                d[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
            }
            assert!(!route(&rtc, a, &d), "noise must not reach a peer");
        }
    }
}
