//! The UDP sockets of the WebRTC port and their readers: each routes every datagram to its
//! peer in O(1).
//!
//! `webrtc.udp_sockets` sockets are bound to one address with SO_REUSEPORT; the kernel
//! hashes each remote 4-tuple to one socket, so a peer's datagrams all reach one reader, and
//! the readers share one routing table, so whichever reader gets a datagram finds its peer.
//!
//! A datagram from a known remote address goes to that peer. Otherwise it must be a STUN
//! message whose USERNAME starts with one of our local ufrags (`ours:theirs`); its source
//! address is then remembered for that peer (at most [`MAX_ADDRS_PER_PEER`]), which is how
//! DTLS/SRTP from the same address finds the peer afterwards. Anything else is dropped and
//! counted. The peer's str0m checks STUN integrity; a forged STUN with a guessed ufrag can
//! at most add an address that leads to the same peer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use socket2::{Domain, Socket, Type};
use str0m::net::Protocol;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::{Datagram, MAX_ADDRS_PER_PEER, MAX_DATAGRAM, PeerRoute, WebRtc};

/// Binds `n` UDP sockets to `listen` (SO_REUSEPORT when `n > 1`; the first resolves port 0,
/// the others bind the port it got), each asking for `buffer` bytes of receive and send
/// buffer (best effort, logged when the kernel gives less). Returns them and the bound
/// address.
pub(crate) fn bind_sockets(
    listen: SocketAddr,
    n: usize,
    buffer: usize,
) -> std::io::Result<(Vec<UdpSocket>, SocketAddr)> {
    let mut addr = listen;
    let mut out = Vec::with_capacity(n);
    for i in 0..n.max(1) {
        let s = Socket::new(
            Domain::for_address(addr),
            Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        if n > 1 {
            s.set_reuse_port(true)?;
        }
        s.set_nonblocking(true)?;
        if buffer > 0 {
            set_buffers(&s, buffer, i == 0);
        }
        s.bind(&addr.into())?;
        if i == 0 {
            addr = s
                .local_addr()?
                .as_socket()
                .ok_or_else(|| std::io::Error::other("UDP socket has no IP address after bind"))?;
        }
        out.push(UdpSocket::from_std(s.into())?);
    }
    Ok((out, addr))
}

/// Asks for `want` bytes of receive and send buffer; logs (once, `log`) what the kernel
/// gave when less (Linux reports double the usable size, and caps at rmem_max/wmem_max).
fn set_buffers(s: &Socket, want: usize, log: bool) {
    let rcv = s
        .set_recv_buffer_size(want)
        .and_then(|()| s.recv_buffer_size());
    let snd = s
        .set_send_buffer_size(want)
        .and_then(|()| s.send_buffer_size());
    if !log {
        return;
    }
    match (rcv, snd) {
        (Ok(r), Ok(w)) if r >= want && w >= want => {
            tracing::debug!(recv = r, send = w, "webrtc udp socket buffers");
        }
        (r, w) => tracing::info!(
            want,
            recv = ?r.ok(),
            send = ?w.ok(),
            "webrtc udp socket buffers smaller than webrtc.socket_buffer_bytes \
             (raise net.core.rmem_max / wmem_max)"
        ),
    }
}

/// Reads socket `index` until shutdown.
pub(crate) async fn run(rtc: Arc<WebRtc>, index: usize, shutdown: CancellationToken) {
    let Some(socket) = rtc.sockets.get(index).cloned() else {
        return;
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, source) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
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

/// The local ufrag (`ours` in `ours:theirs`) of a STUN message's USERNAME, if `data` is one
/// (`rtp::stun`: the demultiplexing key only; str0m checks the request itself).
pub(crate) fn local_ufrag(data: &[u8]) -> Option<String> {
    rtp::stun::local_ufrag(data).map(str::to_owned)
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
            match local_ufrag(data).and_then(|u| t.by_ufrag.get(&u).cloned()) {
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
        destination: rtc.udp_destination(),
        proto: Protocol::Udp,
        data: data.to_vec(),
        at: std::time::Instant::now(),
    })
    .is_ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::WebRtcConfig;
    use tokio::sync::mpsc;

    /// A STUN binding request (RFC 8489 header) with USERNAME, PRIORITY and a (not
    /// checked here) MESSAGE-INTEGRITY attribute: what str0m's parser requires.
    pub(crate) fn stun_request(username: &str) -> Vec<u8> {
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

    /// Our demultiplexing read agrees with str0m's STUN parser on what it routes by.
    #[test]
    fn ufrag_matches_str0ms_parser() {
        use str0m::ice::StunMessage;
        for username in ["srv1:cli9", "a:b", "long-ufrag-0123456789:x"] {
            let m = stun_request(username);
            let theirs = StunMessage::parse(&m)
                .ok()
                .and_then(|m| m.split_username().map(|(ours, _)| ours.to_owned()));
            assert_eq!(local_ufrag(&m), theirs, "{username}");
            assert!(theirs.is_some());
        }
    }

    async fn service() -> WebRtc {
        let cfg = WebRtcConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            tcp_listen: String::new(),
            udp_sockets: 1,
            ..Default::default()
        };
        WebRtc::bind(&cfg).await.unwrap()
    }

    #[tokio::test]
    async fn sharded_sockets_share_the_port_and_lose_no_source() {
        let cfg = WebRtcConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            tcp_listen: String::new(),
            udp_sockets: 2,
            ..Default::default()
        };
        let rtc = Arc::new(WebRtc::bind(&cfg).await.unwrap());
        assert_eq!(rtc.sockets.len(), 2);
        for s in &rtc.sockets {
            assert_eq!(s.local_addr().unwrap(), rtc.local);
        }
        assert_ne!(rtc.local.port(), 0);
        const SOURCES: usize = 24;
        let (tx, mut rx) = mpsc::channel(SOURCES * 2);
        // One peer per source (a peer learns at most MAX_ADDRS_PER_PEER addresses), all
        // feeding one queue so the test sees every datagram.
        for i in 0..SOURCES {
            let route = PeerRoute {
                id: 100 + i as u64,
                tx: tx.clone(),
            };
            rtc.tables().by_ufrag.insert(format!("shard{i}"), route);
        }
        let shutdown = CancellationToken::new();
        let tracker = tokio_util::task::TaskTracker::new();
        rtc.spawn_io(&shutdown, &tracker);
        // Several sources (distinct 4-tuples, so the kernel spreads them over both sockets):
        // each sends one STUN request, then one non-STUN datagram only its learnt address
        // routes. Every one must reach the peer, whichever socket it landed on.
        let mut clients = Vec::new();
        for i in 0..SOURCES {
            let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let user = format!("shard{i}:x");
            c.send_to(&stun_request(&user), rtc.local).await.unwrap();
            clients.push(c);
        }
        let mut got = std::collections::HashSet::new();
        while got.len() < SOURCES {
            let d = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
                .await
                .expect("every STUN request routed")
                .unwrap();
            assert_eq!(d.proto, Protocol::Udp);
            assert_eq!(d.destination, rtc.local);
            got.insert(d.source);
        }
        for c in &clients {
            c.send_to(&[0x80, 0x60, 0, 1], rtc.local).await.unwrap();
        }
        let mut rtp = std::collections::HashSet::new();
        while rtp.len() < SOURCES {
            let d = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
                .await
                .expect("every follow-up datagram routed by address")
                .unwrap();
            assert_eq!(d.data, [0x80, 0x60, 0, 1]);
            rtp.insert(d.source);
        }
        assert_eq!(got, rtp);
        assert_eq!(
            rtc.stats.datagrams_in.load(Ordering::Relaxed),
            2 * SOURCES as u64
        );
        assert_eq!(rtc.stats.datagrams_dropped.load(Ordering::Relaxed), 0);
        // Sending picks a socket per destination, always the same one for an address.
        let t = str0m::net::Transmit {
            proto: Protocol::Udp,
            source: rtc.local,
            destination: clients[0].local_addr().unwrap(),
            contents: vec![9u8; 10].into(),
        };
        assert_eq!(rtc.send(&t), Some(10));
        let mut buf = [0u8; 32];
        let (n, from) = clients[0].recv_from(&mut buf).await.unwrap();
        assert_eq!((n, from), (10, rtc.local));
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
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
        crate::forget_in(&mut rtc.tables(), 9, "u", "none", "live/x");
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
