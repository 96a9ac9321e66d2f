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
