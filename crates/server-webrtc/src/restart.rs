//! ICE restarts of WHEP and WHIP sessions (RFC 9725 §4.4, draft-ietf-wish-whep): a `PATCH`
//! on the session resource whose `application/trickle-ice-sdpfrag` body carries a new
//! `a=ice-ufrag`/`a=ice-pwd` (and possibly candidates), with `If-Match: *` or the current
//! ETag. The answer is `200 OK` with a fragment carrying our new ufrag/pwd and candidates,
//! and a new ETag.
//!
//! We are ICE-lite, so a restart needs no checks of our own: the peer task swaps both sides'
//! credentials in its `Rtc` (str0m's `DirectApi`); the viewer's checks with the new ufrag
//! then come from its new candidates, are answered with the new password, and its new
//! nomination moves the media to the new path (DTLS and SRTP carry on: the DTLS session is
//! not part of ICE). The routing tables learn the new local ufrag before the answer leaves,
//! keeping at most [`MAX_UFRAGS_PER_PEER`] per peer (the old path carries media until the
//! new one is nominated), and the peer's oldest learnt addresses are dropped so the new
//! path's addresses fit within [`MAX_ADDRS_PER_PEER`].

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rtp::sdpfrag::{Fragment, IceCredentials, answer_fragment};
use str0m::{Candidate, IceCreds, Rtc};
use tokio::sync::{mpsc, oneshot};

use super::whep::{err, new_etag};
use super::{MAX_ADDRS_PER_PEER, PeerCmd, Tables, WebRtc};

/// Local ufrags routed to one peer at once: the current one and the one before the last
/// restart (the old path keeps working until the viewer nominates the new one).
pub const MAX_UFRAGS_PER_PEER: usize = 2;
/// Longest wait for the peer task to apply a restart before the PATCH gets 503.
pub const RESTART_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Our candidates as SDP attribute values (`candidate:...`): the UDP host candidates and
/// the passive ICE-TCP ones, as in the POST answer.
pub(crate) fn local_candidates(
    udp: &[std::net::SocketAddr],
    tcp: &[std::net::SocketAddr],
) -> Vec<String> {
    let mut out = Vec::new();
    for addr in udp {
        if let Ok(c) = Candidate::host(*addr, "udp") {
            out.push(c.to_sdp_string());
        }
    }
    for addr in tcp {
        let c = Candidate::builder()
            .tcp()
            .host(*addr)
            .tcptype(str0m::net::TcpType::Passive)
            .build();
        if let Ok(c) = c {
            out.push(c.to_sdp_string());
        }
    }
    out
}

/// A restart for the peer task to apply ([`super::PeerCmd::IceRestart`]).
#[derive(Debug)]
pub(crate) struct Restart {
    /// Our new credentials (already routed).
    pub(crate) local: IceCreds,
    /// The viewer's (or publisher's) new credentials.
    pub(crate) remote: IceCreds,
    /// Its candidates from the fragment (`candidate:...`).
    pub(crate) candidates: Vec<String>,
    /// Answered once applied.
    pub(crate) done: oneshot::Sender<()>,
}

/// Applies a restart to the peer's `Rtc` (called by the peer task that owns it).
pub(crate) fn apply(rtc: &mut Rtc, r: Restart) {
    {
        let mut api = rtc.direct_api();
        api.set_local_ice_credentials(r.local);
        api.set_remote_ice_credentials(r.remote);
    }
    for c in &r.candidates {
        super::peer::add_candidate(rtc, c);
    }
    tracing::info!("webrtc ice restart applied");
    let _ = r.done.send(());
}

/// Routes `new_ufrag` to the peer of `resource` (the routing lock held): the resource's
/// oldest ufrags beyond [`MAX_UFRAGS_PER_PEER`] and its oldest learnt addresses beyond half
/// of [`MAX_ADDRS_PER_PEER`] are dropped. Returns the peer's id, `None` when the resource
/// is gone.
pub(crate) fn route_new_ufrag(t: &mut Tables, resource: &str, new_ufrag: &str) -> Option<u64> {
    let res = t.resources.get_mut(resource)?;
    let route = res
        .local_ufrags
        .last()
        .and_then(|u| t.by_ufrag.get(u))
        .cloned()?;
    res.local_ufrags.push(new_ufrag.to_owned());
    let excess = res.local_ufrags.len().saturating_sub(MAX_UFRAGS_PER_PEER);
    let dropped: Vec<String> = res.local_ufrags.drain(..excess).collect();
    for u in dropped {
        if t.by_ufrag.get(&u).is_some_and(|r| r.id == route.id) {
            t.by_ufrag.remove(&u);
        }
    }
    let id = route.id;
    t.by_ufrag.insert(new_ufrag.to_owned(), route);
    let keep = MAX_ADDRS_PER_PEER / 2;
    if let Some(addrs) = t.addrs.get_mut(&id) {
        let excess = addrs.len().saturating_sub(keep);
        let old: Vec<_> = addrs.drain(..excess).collect();
        for a in old {
            if t.by_addr.get(&a).is_some_and(|r| r.id == id) {
                t.by_addr.remove(&a);
            }
        }
    }
    Some(id)
}

/// Runs a restart of session `resource` (of stream `key`) whose PATCH passed the checks:
/// routes a new local ufrag, has the peer task apply both sides' new credentials, and
/// answers `200 OK` with our fragment and a new ETag (the resource's remote ufrag and ETag
/// updated). 404 when the session is gone, 503 when its task does not answer in
/// [`RESTART_REPLY_TIMEOUT`].
pub(crate) async fn restart(
    wr: &WebRtc,
    resource: &str,
    key: &str,
    cmd: &mpsc::Sender<PeerCmd>,
    remote: IceCredentials,
    frag: &Fragment,
) -> Result<Response, Response> {
    let remote = IceCreds {
        ufrag: remote.ufrag,
        pass: remote.pass,
    };
    let gone = || err(StatusCode::NOT_FOUND, "not_found", "no such WebRTC session");
    let local = IceCreds::new();
    let remote_ufrag = remote.ufrag.clone();
    let id = route_new_ufrag(&mut wr.tables(), resource, &local.ufrag).ok_or_else(gone)?;
    let (done, applied) = oneshot::channel();
    let r = Restart {
        local: local.clone(),
        remote,
        candidates: frag.candidates.clone(),
        done,
    };
    let busy = || {
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the session cannot restart ICE now",
        )
    };
    cmd.try_send(PeerCmd::IceRestart(r)).map_err(|_| busy())?;
    match tokio::time::timeout(RESTART_REPLY_TIMEOUT, applied).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Err(gone()),
        Err(_) => return Err(busy()),
    }
    let etag = new_etag(id);
    {
        let mut t = wr.tables();
        let res = t
            .resources
            .get_mut(resource)
            .filter(|r| r.stream == key)
            .ok_or_else(gone)?;
        res.etag = etag.clone();
        res.remote_ufrag = remote_ufrag;
    }
    tracing::info!(%key, "webrtc ice restart");
    let ours = IceCredentials {
        ufrag: local.ufrag.clone(),
        pass: local.pass.clone(),
    };
    let body = answer_fragment(
        &ours,
        frag,
        &local_candidates(&wr.candidates, &wr.tcp_candidates),
    );
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/trickle-ice-sdpfrag"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PeerRoute, Resource};
    use rtp::sdpfrag::{parse_fragment, restart_creds};
    use tokio_util::sync::CancellationToken;

    /// What Chromium sends after `restartIce()` (RFC 8840 fragment, max-bundle: the first
    /// m-section only).
    const RESTART: &str = "a=ice-options:trickle ice2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n\
        a=mid:0\r\n\
        a=ice-ufrag:Zq9v\r\n\
        a=ice-pwd:x4PuvgK8zDVv0vX7+lH0/2Bq\r\n\
        a=candidate:1 1 udp 2122260223 192.0.2.7 51000 typ host ufrag Zq9v\r\n\
        a=end-of-candidates\r\n";

    #[test]
    fn parses_a_restart_fragment_and_answers_with_new_credentials() {
        let f = parse_fragment(RESTART);
        assert_eq!(f.ufrag.as_deref(), Some("Zq9v"));
        assert_eq!(f.pwd.as_deref(), Some("x4PuvgK8zDVv0vX7+lH0/2Bq"));
        assert_eq!(
            f.mline.as_deref(),
            Some("m=video 9 UDP/TLS/RTP/SAVPF 96 97")
        );
        assert_eq!(f.mid.as_deref(), Some("0"));
        assert_eq!(
            f.candidates,
            ["candidate:1 1 udp 2122260223 192.0.2.7 51000 typ host ufrag Zq9v"]
        );
        let creds = restart_creds(&f, "old1").unwrap().unwrap();
        assert_eq!(creds.ufrag, "Zq9v");
        // The candidate line is one str0m parses.
        assert!(Candidate::from_sdp_string(&f.candidates[0]).is_ok());

        let local = IceCredentials {
            ufrag: "srv1".into(),
            pass: "0123456789012345678901".into(),
        };
        let cands = local_candidates(&["192.0.2.1:5000".parse().unwrap()], &[]);
        let a = answer_fragment(&local, &f, &cands);
        let lines: Vec<&str> = a.split("\r\n").collect();
        assert_eq!(
            lines[..5],
            [
                "a=ice-lite",
                "a=ice-ufrag:srv1",
                "a=ice-pwd:0123456789012345678901",
                "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
                "a=mid:0"
            ]
        );
        assert!(
            lines[5].starts_with("a=candidate:") && lines[5].contains("192.0.2.1 5000 typ host")
        );
        assert_eq!(lines[6], "a=end-of-candidates");
        // The answer fragment parses back to our credentials.
        let back = parse_fragment(&a);
        assert_eq!(back.ufrag.as_deref(), Some("srv1"));
        assert_eq!(back.candidates.len(), 1);
    }

    fn resource(ufrag: &str, cmd: mpsc::Sender<crate::PeerCmd>) -> Resource {
        Resource {
            stream: "live/x".into(),
            etag: "\"1\"".into(),
            kick: CancellationToken::new(),
            cmd,
            remote_ufrag: "them".into(),
            local_ufrags: vec![ufrag.into()],
        }
    }

    #[test]
    fn a_restart_routes_the_new_ufrag_and_keeps_the_tables_bounded() {
        let mut t = Tables::default();
        let (tx, _rx) = mpsc::channel(1);
        let (cmd, _crx) = mpsc::channel(1);
        t.by_ufrag.insert("u0".into(), PeerRoute { id: 7, tx });
        t.resources.insert("r".into(), resource("u0", cmd));
        let addrs: Vec<std::net::SocketAddr> = (0..MAX_ADDRS_PER_PEER as u16)
            .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], 40_000 + p)))
            .collect();
        for a in &addrs {
            let r = t.by_ufrag["u0"].clone();
            t.by_addr.insert(*a, r);
        }
        t.addrs.insert(7, addrs.clone());

        assert_eq!(route_new_ufrag(&mut t, "r", "u1"), Some(7));
        assert_eq!(t.by_ufrag["u1"].id, 7);
        assert!(t.by_ufrag.contains_key("u0"), "the old path still routes");
        // Room for the new path's addresses: the newest half of the old ones stay.
        assert_eq!(t.addrs[&7], addrs[MAX_ADDRS_PER_PEER / 2..]);
        assert_eq!(t.by_addr.len(), MAX_ADDRS_PER_PEER / 2);
        assert!(!t.by_addr.contains_key(&addrs[0]));

        assert_eq!(route_new_ufrag(&mut t, "r", "u2"), Some(7));
        assert_eq!(route_new_ufrag(&mut t, "r", "u3"), Some(7));
        let mut keys: Vec<_> = t.by_ufrag.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["u2", "u3"]);
        assert_eq!(t.resources["r"].local_ufrags, ["u2", "u3"]);
        assert_eq!(route_new_ufrag(&mut t, "gone", "u4"), None);

        // Forgetting the peer removes every ufrag it had.
        crate::forget_in(&mut t, 7, "u0", "r", "live/x");
        assert!(t.by_ufrag.is_empty() && t.by_addr.is_empty() && t.resources.is_empty());
    }

    #[tokio::test]
    async fn apply_swaps_the_rtc_credentials_and_answers() {
        let mut rtc = str0m::RtcConfig::new()
            .set_ice_lite(true)
            .build(std::time::Instant::now());
        let local = IceCreds {
            ufrag: "newl".into(),
            pass: "0123456789012345678901".into(),
        };
        let (done, rx) = oneshot::channel();
        apply(
            &mut rtc,
            Restart {
                local: local.clone(),
                remote: IceCreds {
                    ufrag: "newr".into(),
                    pass: "abcdefghijklmnopqrstuv".into(),
                },
                candidates: vec!["candidate:1 1 udp 1 192.0.2.7 9 typ host".into()],
                done,
            },
        );
        assert_eq!(rtc.direct_api().local_ice_credentials(), local);
        rx.await.expect("answered");
    }
}
