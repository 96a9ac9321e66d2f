//! An RTMP connection's publish or play, through the control plane's one admission path:
//! the stream name is checked, access control decides (a refusal closes the connection),
//! then limits, hub and session registry; each refusal becomes the RTMP status the client
//! understands.

use access::{Action, StreamName};
use control::{Caller, Refusal, ViewerProtocol};

use super::*;

impl Conn {
    /// Sends `refusal` for `action` on `stream_id`; closes the connection after an access
    /// refusal.
    fn refuse(&mut self, action: Action, stream_id: u32, refusal: &Refusal) {
        let code = refusal.rtmp_code(action);
        let msg = refusal.to_string();
        match action {
            Action::Publish => self.session.reject_publish(stream_id, code, &msg),
            Action::Play => self.session.reject_play(stream_id, code, &msg),
        }
        if refusal.closes_connection() {
            self.closing = true;
        }
    }

    /// Admits a publish or play of `name` (its `?query` already split off into `query`).
    pub(super) async fn admit(
        &mut self,
        action: Action,
        stream_id: u32,
        name: &str,
        query: Option<&str>,
    ) {
        if self.publishing.is_some() || self.playing.is_some() {
            let r = Refusal::Unavailable(
                "this connection already publishes or plays a stream".to_owned(),
            );
            self.refuse(action, stream_id, &r);
            return;
        }
        let name = match StreamName::new(self.app.as_deref().unwrap_or(""), name) {
            Ok(n) => n,
            Err(e) => {
                self.refuse(action, stream_id, &Refusal::BadName(e));
                return;
            }
        };
        let query = access::merge_queries(query, self.connect_query.as_deref());
        let caller = Caller {
            query: query.as_deref(),
            ..Caller::new("rtmp", Some(self.peer.ip()))
        };
        let auth = match self.ctl.authorize(action, name, &caller).await {
            Ok(a) => a,
            Err(r) => {
                self.refuse(action, stream_id, &r);
                return;
            }
        };
        tracing::Span::current().record("stream", auth.name().key());
        let remote = self.peer.to_string();
        let kick = self.kick.clone();
        match action {
            Action::Publish => match self.ctl.publish(auth, self.protocol, remote, kick) {
                Ok(admitted) => {
                    self.session.accept_publish(stream_id);
                    self.publishing = Some(Publishing {
                        stream_id,
                        admitted,
                    });
                }
                Err(r) => self.refuse(action, stream_id, &r),
            },
            Action::Play => match self.ctl.play(auth, ViewerProtocol::Rtmp, remote, kick) {
                Ok(control::Playing {
                    subscriber,
                    viewer,
                    session,
                    ..
                }) => {
                    self.session.accept_play(stream_id);
                    self.playing = Some(Playing {
                        stream_id,
                        sub: subscriber,
                        egress: RtmpEgress::new(stream_id, self.session.out_chunk_size()),
                        paused: false,
                        audio: true,
                        video: true,
                        hold: AudioHold::default(),
                        viewer,
                        api: session,
                        probe: LatencyProbe::default(),
                    });
                }
                Err(r) => self.refuse(action, stream_id, &r),
            },
        }
    }
}
