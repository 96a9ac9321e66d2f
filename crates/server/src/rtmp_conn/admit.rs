//! Admission of an RTMP connection's publish or play: access control (`[auth]`), stream
//! names, the limits, the hub, and the session's entry in the API.

use super::*;

impl Conn {
    /// Access control (`[auth]`) of a publish or play: on refusal the client gets
    /// `NetStream.{Publish,Play}.Unauthorized` and the connection closes.
    pub(super) async fn authorize(
        &mut self,
        action: Action,
        stream_id: u32,
        name: &str,
        query: Option<&str>,
    ) -> bool {
        let query = crate::auth::merge_queries(query, self.connect_query.as_deref());
        let req = crate::auth::Request {
            query: query.as_deref(),
            ip: Some(self.peer.ip()),
            ..crate::auth::Request::new(action, self.app.as_deref().unwrap_or(""), name, "rtmp")
        };
        let Err(refusal) = crate::auth::check(&self.shared, &req).await else {
            return true;
        };
        let code = crate::auth::rtmp_code(action);
        let msg = refusal.to_string();
        match action {
            Action::Publish => self.session.reject_publish(stream_id, code, &msg),
            Action::Play => self.session.reject_play(stream_id, code, &msg),
        }
        self.closing = true;
        false
    }

    fn stream_key(&self, name: &str) -> Option<String> {
        let app = self.app.as_deref()?;
        let valid = |s: &str| !s.is_empty() && !s.contains(['/', '\\']) && s != ".." && s != ".";
        (valid(app) && valid(name)).then(|| format!("{app}/{name}"))
    }

    pub(super) fn on_publish(&mut self, stream_id: u32, name: &str) {
        if self.publishing.is_some() || self.playing.is_some() {
            self.session.reject_publish(
                stream_id,
                "NetStream.Publish.BadName",
                "this connection already publishes or plays a stream",
            );
            return;
        }
        let Some(key) = self.stream_key(name) else {
            self.session.reject_publish(
                stream_id,
                "NetStream.Publish.BadName",
                "invalid stream name",
            );
            return;
        };
        let app = self.app.clone().unwrap_or_default();
        let slot = match crate::limits::admit_publisher(&self.shared, &app, self.protocol) {
            Ok(s) => s,
            Err(refusal) => {
                self.session.reject_publish(
                    stream_id,
                    "NetStream.Publish.Rejected",
                    &refusal.to_string(),
                );
                return;
            }
        };
        let info = PublisherInfo {
            protocol: self.protocol,
            remote: self.peer.to_string(),
        };
        match self.shared.hub.publish(&key, info) {
            Ok(publisher) => {
                tracing::Span::current().record("stream", key.as_str());
                tracing::info!(peer = %self.peer, %key, "rtmp publish");
                self.session.accept_publish(stream_id);
                crate::hls_http::on_publish(&self.shared, &key);
                crate::record::on_publish(&self.shared, &key);
                self.publishing = Some(Publishing {
                    stream_id,
                    publisher,
                    counters: self.shared.streams.get_or_create(&key),
                    api: self.register(SessionKind::Publisher, key),
                    _limit: slot,
                });
            }
            Err(e) => {
                tracing::warn!(peer = %self.peer, %key, "rtmp publish refused: {e}");
                self.session
                    .reject_publish(stream_id, "NetStream.Publish.BadName", &e.to_string());
            }
        }
    }

    pub(super) fn on_play(&mut self, stream_id: u32, name: &str) {
        if self.publishing.is_some() || self.playing.is_some() {
            self.session.reject_play(
                stream_id,
                "NetStream.Play.Failed",
                "this connection already publishes or plays a stream",
            );
            return;
        }
        let Some(key) = self.stream_key(name) else {
            self.session.reject_play(
                stream_id,
                "NetStream.Play.StreamNotFound",
                "invalid stream name",
            );
            return;
        };
        match self.shared.hub.subscribe(&key) {
            Ok(sub) => {
                let slot =
                    match crate::limits::admit_viewer(&self.shared, &key, ViewerProtocol::Rtmp) {
                        Ok(s) => s,
                        Err(refusal) => {
                            self.session.reject_play(
                                stream_id,
                                "NetStream.Play.Failed",
                                &refusal.to_string(),
                            );
                            return;
                        }
                    };
                tracing::Span::current().record("stream", key.as_str());
                tracing::info!(peer = %self.peer, %key, "rtmp play");
                self.session.accept_play(stream_id);
                self.playing = Some(Playing {
                    stream_id,
                    sub,
                    egress: RtmpEgress::new(stream_id, self.session.out_chunk_size()),
                    paused: false,
                    audio: true,
                    video: true,
                    hold: AudioHold::default(),
                    viewer: ViewerGuard::new(&self.shared, &key, ViewerProtocol::Rtmp)
                        .holding(slot),
                    api: self.register(SessionKind::Viewer, key),
                    probe: LatencyProbe::default(),
                });
            }
            Err(e) => {
                tracing::info!(peer = %self.peer, %key, "rtmp play refused: {e}");
                self.session.reject_play(
                    stream_id,
                    "NetStream.Play.StreamNotFound",
                    &e.to_string(),
                );
            }
        }
    }

    /// Lists this connection's publisher or viewer session in the API.
    fn register(&self, kind: SessionKind, stream: String) -> SessionGuard {
        let info = SessionInfo {
            kind,
            protocol: ViewerProtocol::Rtmp.as_str(),
            stream,
            remote: self.peer.to_string(),
        };
        self.shared.sessions.register(info, self.kick.clone())
    }
}
