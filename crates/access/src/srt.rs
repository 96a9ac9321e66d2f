//! SRT stream ids: what a caller asks for, in the forms encoders and players already send.
//!
//! - The SRT access control syntax, `#!::r=live/cam,m=publish,u=alice,s=TOKEN`: `r` the
//!   resource (`app/stream`), `m` the mode (`request`, the protocol's default, plays;
//!   `publish` publishes; `bidirectional` is refused), `u` a user name, `s` a session token
//!   (checked as `?token=` is), other keys ignored.
//! - `publish:live/cam` and `read:live/cam`, optionally followed by `:user:pass` (the pass is
//!   the token), as MediaMTX takes them.
//! - A plain `live/cam`: publish (what OBS and ffmpeg users type first).
//!
//! Each form may end its resource with `?query` (`live/cam?token=...`), read like an RTMP or
//! HTTP query. The app/stream split and name checks are [`crate::StreamName`]'s.

use crate::Action;

/// Longest stream id read (SRT carries at most 512 bytes in its handshake extension).
pub const MAX_STREAM_ID_BYTES: usize = 512;

/// Why a stream id is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    /// No stream id, or an empty one: Sluice cannot tell which stream is meant.
    #[error(
        "empty stream id (use streamid=live/stream, publish:live/stream or #!::r=live/stream,m=publish)"
    )]
    Empty,
    /// Longer than [`MAX_STREAM_ID_BYTES`].
    #[error("stream id longer than 512 bytes")]
    TooLong,
    /// `#!::` without `r=`.
    #[error("stream id without a resource (r=app/stream)")]
    NoResource,
    /// A mode other than `request` and `publish`.
    #[error("unsupported mode m={0} (use m=publish or m=request)")]
    Mode(String),
    /// A resource that is not `app/stream`.
    #[error("stream id resource {0:?} is not app/stream")]
    NotAppStream(String),
}

/// A parsed stream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtStreamId {
    /// Publish or play.
    pub action: Action,
    /// The app part of the resource (still to be checked by [`crate::StreamName::new`]).
    pub app: String,
    /// The stream part.
    pub stream: String,
    /// The user the caller named (`u=`, or the `:user:` of the MediaMTX form).
    pub user: Option<String>,
    /// The query credentials: the `?query` of the resource, with `token=` added from `s=`
    /// or the MediaMTX pass.
    pub query: Option<String>,
}

impl SrtStreamId {
    /// Parses a stream id (see the module documentation).
    pub fn parse(id: &str) -> Result<Self, StreamIdError> {
        if id.len() > MAX_STREAM_ID_BYTES {
            return Err(StreamIdError::TooLong);
        }
        let id = id.trim_end_matches('\0');
        if id.is_empty() {
            return Err(StreamIdError::Empty);
        }
        // `#` starts a URL fragment, so ffmpeg users write `streamid=%23!::...`, and ffmpeg
        // before 6 sends it without decoding: take `%23!::` as `#!::`.
        if let Some(rest) = id.strip_prefix("%23!::") {
            return Self::access_control(rest);
        }
        if let Some(fields) = id.strip_prefix("#!::") {
            return Self::access_control(fields);
        }
        for (prefix, action) in [("publish:", Action::Publish), ("read:", Action::Play)] {
            if let Some(rest) = id.strip_prefix(prefix) {
                let mut parts = rest.splitn(3, ':');
                let resource = parts.next().unwrap_or_default();
                let user = parts.next().filter(|u| !u.is_empty());
                let pass = parts.next().filter(|p| !p.is_empty());
                return Self::build(action, resource, user, pass);
            }
        }
        Self::build(Action::Publish, id, None, None)
    }

    fn access_control(fields: &str) -> Result<Self, StreamIdError> {
        let (mut resource, mut mode, mut user, mut session) = (None, None, None, None);
        for field in fields.split(',') {
            let (k, v) = field.split_once('=').unwrap_or((field, ""));
            match k.trim() {
                "r" => resource = Some(v),
                "m" => mode = Some(v),
                "u" => user = Some(v).filter(|u| !u.is_empty()),
                "s" => session = Some(v).filter(|s| !s.is_empty()),
                _ => {}
            }
        }
        let action = match mode.unwrap_or("request") {
            "request" => Action::Play,
            "publish" => Action::Publish,
            other => return Err(StreamIdError::Mode(other.to_owned())),
        };
        let resource = resource.ok_or(StreamIdError::NoResource)?;
        Self::build(action, resource, user, session)
    }

    fn build(
        action: Action,
        resource: &str,
        user: Option<&str>,
        token: Option<&str>,
    ) -> Result<Self, StreamIdError> {
        let (path, query) = match resource.split_once('?') {
            Some((p, q)) => (p, Some(q).filter(|q| !q.is_empty())),
            None => (resource, None),
        };
        let path = path.trim_matches('/');
        if path.is_empty() {
            return Err(StreamIdError::Empty);
        }
        let (app, stream) = path
            .split_once('/')
            .ok_or_else(|| StreamIdError::NotAppStream(path.to_owned()))?;
        let token = token.map(|t| format!("token={}", encode(t)));
        let query = match (query, token) {
            (Some(q), Some(t)) => Some(format!("{q}&{t}")),
            (q, t) => q.map(str::to_owned).or(t),
        };
        Ok(Self {
            action,
            app: app.to_owned(),
            stream: stream.to_owned(),
            user: user.map(str::to_owned),
            query,
        })
    }
}

/// Percent-encodes what a query value cannot hold as is.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QueryCredentials;

    fn ok(id: &str) -> SrtStreamId {
        SrtStreamId::parse(id).unwrap_or_else(|e| panic!("{id}: {e}"))
    }

    #[test]
    fn access_control_syntax() {
        let s = ok("#!::r=live/cam,m=publish,u=alice,s=abc.def");
        assert_eq!(s.action, Action::Publish);
        assert_eq!((s.app.as_str(), s.stream.as_str()), ("live", "cam"));
        assert_eq!(s.user.as_deref(), Some("alice"));
        assert_eq!(s.query.as_deref(), Some("token=abc.def"));
        let q = QueryCredentials::parse(s.query.as_deref().unwrap());
        assert_eq!(
            q.token.map(|(_, decoded)| decoded).as_deref(),
            Some("abc.def")
        );
        // The protocol's default mode is request: play.
        assert_eq!(ok("#!::r=live/cam").action, Action::Play);
        assert_eq!(ok("%23!::r=live/cam,m=publish").action, Action::Publish);
        assert_eq!(ok("#!::m=request,r=live/cam,t=stream").action, Action::Play);
        assert_eq!(
            SrtStreamId::parse("#!::r=live/cam,m=bidirectional"),
            Err(StreamIdError::Mode("bidirectional".into()))
        );
        assert_eq!(
            SrtStreamId::parse("#!::m=publish"),
            Err(StreamIdError::NoResource)
        );
    }

    #[test]
    fn mediamtx_forms() {
        let s = ok("publish:live/cam");
        assert_eq!(
            (s.action, s.app.as_str(), s.stream.as_str()),
            (Action::Publish, "live", "cam")
        );
        let s = ok("read:live/cam:bob:s3cret/+");
        assert_eq!(s.action, Action::Play);
        assert_eq!(s.user.as_deref(), Some("bob"));
        assert_eq!(s.query.as_deref(), Some("token=s3cret%2F%2B"));
        let q = QueryCredentials::parse(s.query.as_deref().unwrap());
        assert_eq!(q.token.map(|(_, d)| d).as_deref(), Some("s3cret/+"));
    }

    #[test]
    fn plain_names_publish_and_queries_carry_credentials() {
        let s = ok("live/cam?token=xyz");
        assert_eq!(s.action, Action::Publish);
        assert_eq!(s.query.as_deref(), Some("token=xyz"));
        let s = ok("/live/cam/");
        assert_eq!((s.app.as_str(), s.stream.as_str()), ("live", "cam"));
        let s = ok("#!::r=live/cam?expires=1&sign=ab,m=publish,s=t");
        assert_eq!(s.query.as_deref(), Some("expires=1&sign=ab&token=t"));
    }

    #[test]
    fn refusals() {
        assert_eq!(SrtStreamId::parse(""), Err(StreamIdError::Empty));
        assert_eq!(SrtStreamId::parse("\0\0"), Err(StreamIdError::Empty));
        assert_eq!(SrtStreamId::parse("publish:"), Err(StreamIdError::Empty));
        assert_eq!(
            SrtStreamId::parse("cam"),
            Err(StreamIdError::NotAppStream("cam".into()))
        );
        assert_eq!(
            SrtStreamId::parse(&"a/".repeat(300)),
            Err(StreamIdError::TooLong)
        );
        // Deeper paths parse here and are refused by the name checks.
        let s = ok("live/a/b");
        assert!(crate::StreamName::new(&s.app, &s.stream).is_err());
    }
}
