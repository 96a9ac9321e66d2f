//! The room's notices to a participant, applied and told to its client; participant
//! updates queued together go out as one message.

use axum::extract::ws::WebSocket;
use rooms::proto::{self, signal_response::Message as Resp};

use super::Notice;
use super::requests::{set_muted, subscription};
use super::session::{Conns, Me, reconcile, send};
use crate::Shared;
use std::sync::Arc;

const DISCONNECTED: i32 = proto::participant_info::State::Disconnected as i32;

/// Most participant updates merged into one message.
pub const MAX_COALESCED: usize = 64;

/// Participant updates queued together go out as one `ParticipantUpdate` (a burst of joins
/// would otherwise send each member one message per joiner), the latest info of each
/// participant kept; returns it and the next notice of another kind, if one was taken.
pub(super) fn coalesce(
    first: Notice,
    inbox: &mut tokio::sync::mpsc::Receiver<Notice>,
) -> (Notice, Option<Notice>) {
    let Notice::Participants(mut list) = first else {
        return (first, None);
    };
    for _ in 0..MAX_COALESCED {
        match inbox.try_recv() {
            Ok(Notice::Participants(more)) => {
                for p in more {
                    match list.iter_mut().find(|q| q.sid == p.sid) {
                        Some(q) => {
                            // A leave is final whatever the versions say.
                            if p.version >= q.version || p.state == DISCONNECTED {
                                *q = p;
                            }
                        }
                        None => list.push(p),
                    }
                }
            }
            Ok(other) => return (Notice::Participants(list), Some(other)),
            Err(_) => break,
        }
    }
    (Notice::Participants(list), None)
}

/// Handles one notice from the room; false ends the session.
pub(super) async fn notice(
    shared: &Arc<Shared>,
    ws: &mut WebSocket,
    me: &mut Me,
    conn: &mut Conns,
    n: Notice,
) -> bool {
    match n {
        Notice::Participants(list) => {
            for p in &list {
                if p.sid == me.info.sid {
                    if p.version >= me.info.version {
                        me.info = p.clone();
                    }
                    continue;
                }
                reconcile(shared, me, conn, p);
                if p.state == proto::participant_info::State::Disconnected as i32 {
                    me.others.remove(&p.sid);
                } else {
                    me.others.insert(p.sid.clone(), p.clone());
                }
            }
            send(
                ws,
                Resp::Update(proto::ParticipantUpdate { participants: list }),
            )
            .await
        }
        Notice::Data { bytes, reliable } => {
            if let Some(s) = conn.sub.as_mut() {
                s.data(&bytes, reliable);
            }
            true
        }
        Notice::KeyframeWanted => {
            if let Some(p) = conn.publ.as_mut() {
                p.want_keyframe();
            }
            true
        }
        Notice::Mute { track_sid, muted } => {
            set_muted(shared, me, conn, &track_sid, muted);
            send(
                ws,
                Resp::Mute(proto::MuteTrackRequest {
                    sid: track_sid,
                    muted,
                }),
            )
            .await
        }
        Notice::Subscribe {
            track_sids,
            subscribe,
        } => {
            subscription(shared, me, conn, track_sids, subscribe);
            true
        }
        Notice::Room(room) => {
            send(ws, Resp::RoomUpdate(proto::RoomUpdate { room: Some(room) })).await
        }
        Notice::Speakers(speakers) => {
            send(
                ws,
                Resp::SpeakersChanged(proto::SpeakersChanged { speakers }),
            )
            .await
        }
        Notice::Leave(reason) => {
            let _ = send(
                ws,
                Resp::Leave(proto::LeaveRequest {
                    reason: reason as i32,
                    ..Default::default()
                }),
            )
            .await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(sid: &str, version: u32) -> proto::ParticipantInfo {
        proto::ParticipantInfo {
            sid: sid.into(),
            version,
            ..Default::default()
        }
    }

    #[test]
    fn participant_updates_are_merged_latest_first() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        tx.try_send(Notice::Participants(vec![info("PA_b", 1)]))
            .unwrap();
        tx.try_send(Notice::Participants(vec![info("PA_a", 3)]))
            .unwrap();
        tx.try_send(Notice::KeyframeWanted).unwrap();
        tx.try_send(Notice::Participants(vec![info("PA_c", 1)]))
            .unwrap();
        let (n, then) = coalesce(Notice::Participants(vec![info("PA_a", 2)]), &mut rx);
        let Notice::Participants(list) = n else {
            panic!("not participants")
        };
        let got: Vec<_> = list.iter().map(|p| (p.sid.as_str(), p.version)).collect();
        assert_eq!(got, [("PA_a", 3), ("PA_b", 1)]);
        assert!(matches!(then, Some(Notice::KeyframeWanted)));
        // What followed the other notice stays queued, in order.
        assert!(matches!(rx.try_recv(), Ok(Notice::Participants(l)) if l[0].sid == "PA_c"));
    }
}
