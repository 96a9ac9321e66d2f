//! LiveKit's `RoomService` over Twirp, so LiveKit's server SDKs (`RoomServiceClient`) drive
//! Sluice's rooms: `POST /twirp/livekit.RoomService/{method}`, dispatched here onto a
//! [`RoomDirectory`] with no IO of its own (the HTTP route passes the method, two headers and
//! the body, and sends back the [`TwirpReply`]).
//!
//! What the SDKs send (captured from livekit-server-sdk 2.19.2 for Node, see
//! `fixtures/twirp-node.json`): protobuf-JSON bodies with camelCase field names
//! (`trackSid`), defaults left out, bytes in base64, under
//! `Content-Type: application/json;charset=UTF-8`, and `Authorization: Bearer <token>` with a
//! token minted per call carrying only the grant that call needs. Go's SDK sends binary
//! protobuf (`application/protobuf`); both are served, and a reply uses the request's form.
//!
//! Errors are Twirp's: `{"code":"not_found","msg":"..."}` under exactly
//! `Content-Type: application/json` (the Node SDK reads `code` and `msg` only when the type
//! is exactly that, and otherwise takes the body as the message) with the HTTP status Twirp
//! gives each code. The Node SDK retries a 5xx on other regions (LiveKit Cloud hosts only)
//! and throws a 4xx at once.
//!
//! Grants, as LiveKit requires them: `roomCreate` for `CreateRoom` and `DeleteRoom`,
//! `roomList` for `ListRooms`, and `roomAdmin` with `room` equal to the request's room for
//! every per-room method. The token is verified before the body is parsed.

use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::RoomsError;
use crate::directory::RoomDirectory;
use crate::names;
use crate::proto;
use crate::token::{Claims, RoomKeys};

/// Path prefix of the service: the method is the path segment after it.
pub const PATH_PREFIX: &str = "/twirp/livekit.RoomService/";
/// Largest request body (bytes): room and participant metadata are at most 64 KiB in
/// LiveKit, and a `SendData` payload about as much; the body is refused unparsed above it.
pub const MAX_TWIRP_BODY: usize = 1 << 20;
/// Content type of protobuf-JSON bodies (what the Node and Python SDKs send), and of every
/// error.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// Content type of binary protobuf bodies (what the Go SDK sends).
pub const CONTENT_TYPE_PROTOBUF: &str = "application/protobuf";

/// What the HTTP route sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwirpReply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`: [`CONTENT_TYPE_JSON`] or [`CONTENT_TYPE_PROTOBUF`].
    pub content_type: &'static str,
    /// The reply message, or the Twirp error object.
    pub body: Vec<u8>,
}

impl TwirpReply {
    /// A Twirp error (for the route's own refusals too, e.g. a method other than `POST` is
    /// [`ErrorCode::BadRoute`]).
    pub fn error(code: ErrorCode, msg: &str) -> Self {
        #[derive(Serialize)]
        struct Body<'a> {
            code: &'a str,
            msg: &'a str,
        }
        let body = serde_json::to_vec(&Body {
            code: code.as_str(),
            msg,
        })
        .expect("a struct of two strings serialises");
        Self {
            status: code.status(),
            content_type: CONTENT_TYPE_JSON,
            body,
        }
    }
}

/// The Twirp error codes this service returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No such method, or a content type that is neither JSON nor protobuf (404).
    BadRoute,
    /// The body could not be decoded, or is too large (400).
    Malformed,
    /// A field is missing or wrong (400).
    InvalidArgument,
    /// No token, or one that does not verify (401).
    Unauthenticated,
    /// The token lacks the grant (403).
    PermissionDenied,
    /// No such room, participant or track (404).
    NotFound,
    /// A limit was reached (429).
    ResourceExhausted,
    /// The reply could not be encoded (500).
    Internal,
}

impl ErrorCode {
    /// The code as Twirp spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRoute => "bad_route",
            ErrorCode::Malformed => "malformed",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::ResourceExhausted => "resource_exhausted",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status Twirp's specification gives the code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRoute | ErrorCode::NotFound => 404,
            ErrorCode::Malformed | ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::ResourceExhausted => 429,
            ErrorCode::Internal => 500,
        }
    }
}

impl From<&RoomsError> for ErrorCode {
    fn from(e: &RoomsError) -> Self {
        match e {
            RoomsError::Token(_) => ErrorCode::Unauthenticated,
            RoomsError::Denied(_) => ErrorCode::PermissionDenied,
            RoomsError::NotFound(_) => ErrorCode::NotFound,
            RoomsError::Limit(_) => ErrorCode::ResourceExhausted,
            RoomsError::BadRequest(_) | RoomsError::TooLarge { .. } => ErrorCode::InvalidArgument,
        }
    }
}

/// A refusal on its way to becoming a [`TwirpReply::error`].
struct Fail(ErrorCode, String);

impl From<RoomsError> for Fail {
    fn from(e: RoomsError) -> Self {
        Fail(ErrorCode::from(&e), e.to_string())
    }
}

/// The methods of `RoomService` served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    CreateRoom,
    ListRooms,
    DeleteRoom,
    ListParticipants,
    GetParticipant,
    RemoveParticipant,
    MutePublishedTrack,
    UpdateParticipant,
    UpdateSubscriptions,
    SendData,
    UpdateRoomMetadata,
}

impl Method {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "CreateRoom" => Method::CreateRoom,
            "ListRooms" => Method::ListRooms,
            "DeleteRoom" => Method::DeleteRoom,
            "ListParticipants" => Method::ListParticipants,
            "GetParticipant" => Method::GetParticipant,
            "RemoveParticipant" => Method::RemoveParticipant,
            "MutePublishedTrack" => Method::MutePublishedTrack,
            "UpdateParticipant" => Method::UpdateParticipant,
            "UpdateSubscriptions" => Method::UpdateSubscriptions,
            "SendData" => Method::SendData,
            "UpdateRoomMetadata" => Method::UpdateRoomMetadata,
            _ => return None,
        })
    }
}

/// The two body forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Protobuf,
}

impl Format {
    /// From a `Content-Type` (parameters such as `;charset=UTF-8` ignored).
    fn parse(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case(CONTENT_TYPE_JSON) {
            Some(Format::Json)
        } else if media.eq_ignore_ascii_case(CONTENT_TYPE_PROTOBUF) {
            Some(Format::Protobuf)
        } else {
            None
        }
    }
}

/// The grant a method needs.
enum Need<Req> {
    /// `roomCreate`.
    Create,
    /// `roomList`.
    List,
    /// `roomAdmin` on the room the request names.
    Admin(fn(&Req) -> &str),
}

/// Serves one call of `RoomService.{method}`: `authorization` is the `Authorization` header,
/// `content_type` the `Content-Type` header, `body` the request body as received.
pub fn handle(
    method: &str,
    authorization: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    keys: &RoomKeys,
    dir: &dyn RoomDirectory,
) -> TwirpReply {
    match dispatch(method, authorization, content_type, body, keys, dir) {
        Ok(reply) => reply,
        Err(Fail(code, msg)) => TwirpReply::error(code, &msg),
    }
}

fn dispatch(
    method: &str,
    authorization: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    keys: &RoomKeys,
    dir: &dyn RoomDirectory,
) -> Result<TwirpReply, Fail> {
    let Some(m) = Method::parse(method) else {
        let shown: String = method
            .chars()
            .take(64)
            .filter(|c| !c.is_control())
            .collect();
        return Err(Fail(
            ErrorCode::BadRoute,
            format!("no method {shown:?} in livekit.RoomService"),
        ));
    };
    let format = content_type.and_then(Format::parse).ok_or_else(|| {
        Fail(
            ErrorCode::BadRoute,
            format!("Content-Type must be {CONTENT_TYPE_JSON} or {CONTENT_TYPE_PROTOBUF}"),
        )
    })?;
    if body.len() > MAX_TWIRP_BODY {
        return Err(Fail(
            ErrorCode::Malformed,
            format!(
                "body of {} bytes is over the limit of {MAX_TWIRP_BODY}",
                body.len()
            ),
        ));
    }
    let token = authorization
        .map(str::trim)
        .and_then(|h| {
            h.get(..7)
                .filter(|s| s.eq_ignore_ascii_case("bearer "))
                .map(|_| h[7..].trim())
        })
        .ok_or_else(|| {
            Fail(
                ErrorCode::Unauthenticated,
                "missing Authorization: Bearer <token>".to_owned(),
            )
        })?;
    let claims = keys.verify(token)?;
    let call = Call {
        format,
        body,
        claims: &claims,
    };
    use proto::*;
    match m {
        Method::CreateRoom => call.run(Need::Create, |r: CreateRoomRequest| {
            names::check("room", &r.name)?;
            dir.create_room(r)
        }),
        Method::ListRooms => call.run(Need::List, |r: ListRoomsRequest| {
            Ok(ListRoomsResponse {
                rooms: dir.list_rooms(&r.names),
            })
        }),
        Method::DeleteRoom => call.run(Need::Create, |r: DeleteRoomRequest| {
            require("room", &r.room)?;
            dir.delete_room(&r.room)?;
            Ok(DeleteRoomResponse {})
        }),
        Method::ListParticipants => {
            call.run(Need::Admin(|r: &ListParticipantsRequest| &r.room), |r| {
                Ok(ListParticipantsResponse {
                    participants: dir.list_participants(&r.room)?,
                })
            })
        }
        Method::GetParticipant => {
            call.run(Need::Admin(|r: &RoomParticipantIdentity| &r.room), |r| {
                require("identity", &r.identity)?;
                dir.get_participant(&r.room, &r.identity)
            })
        }
        Method::RemoveParticipant => {
            call.run(Need::Admin(|r: &RoomParticipantIdentity| &r.room), |r| {
                require("identity", &r.identity)?;
                dir.remove_participant(&r.room, &r.identity)?;
                Ok(RemoveParticipantResponse {})
            })
        }
        Method::MutePublishedTrack => {
            call.run(Need::Admin(|r: &MuteRoomTrackRequest| &r.room), |r| {
                require("identity", &r.identity)?;
                require("trackSid", &r.track_sid)?;
                let track =
                    dir.mute_published_track(&r.room, &r.identity, &r.track_sid, r.muted)?;
                Ok(MuteRoomTrackResponse { track: Some(track) })
            })
        }
        Method::UpdateParticipant => {
            call.run(Need::Admin(|r: &UpdateParticipantRequest| &r.room), |r| {
                require("identity", &r.identity)?;
                dir.update_participant(r)
            })
        }
        Method::UpdateSubscriptions => {
            call.run(Need::Admin(|r: &UpdateSubscriptionsRequest| &r.room), |r| {
                require("identity", &r.identity)?;
                dir.update_subscriptions(r)?;
                Ok(UpdateSubscriptionsResponse {})
            })
        }
        Method::SendData => call.run(Need::Admin(|r: &SendDataRequest| &r.room), |r| {
            dir.send_data(r)?;
            Ok(SendDataResponse {})
        }),
        Method::UpdateRoomMetadata => call
            .run(Need::Admin(|r: &UpdateRoomMetadataRequest| &r.room), |r| {
                dir.update_room_metadata(&r.room, &r.metadata)
            }),
    }
}

/// A field the method cannot do without.
fn require(field: &str, value: &str) -> Result<(), RoomsError> {
    if value.is_empty() {
        return Err(RoomsError::BadRequest(format!("{field} is required")));
    }
    Ok(())
}

/// One call whose token verified.
struct Call<'a> {
    format: Format,
    body: &'a [u8],
    claims: &'a Claims,
}

impl Call<'_> {
    /// Checks the grant, decodes the request, runs `f` and encodes its reply.
    fn run<Req, Resp>(
        &self,
        need: Need<Req>,
        f: impl FnOnce(Req) -> Result<Resp, RoomsError>,
    ) -> Result<TwirpReply, Fail>
    where
        Req: Message + Default + DeserializeOwned,
        Resp: Message + Serialize,
    {
        let grant = &self.claims.video;
        let denied = |why: &str| Err(Fail(ErrorCode::PermissionDenied, why.to_owned()));
        match need {
            Need::Create if !grant.room_create => return denied("the token lacks roomCreate"),
            Need::List if !grant.room_list => return denied("the token lacks roomList"),
            Need::Admin(_) if !grant.room_admin => return denied("the token lacks roomAdmin"),
            _ => {}
        }
        let req: Req = match self.format {
            Format::Json => serde_json::from_slice(self.body)
                .map_err(|e| Fail(ErrorCode::Malformed, format!("request JSON: {e}")))?,
            Format::Protobuf => Req::decode(self.body)
                .map_err(|e| Fail(ErrorCode::Malformed, format!("request protobuf: {e}")))?,
        };
        if let Need::Admin(room_of) = need {
            let room = room_of(&req);
            require("room", room)?;
            if room != grant.room {
                return denied("the token's roomAdmin is for another room");
            }
        }
        let resp = f(req)?;
        let (content_type, body) = match self.format {
            Format::Json => (
                CONTENT_TYPE_JSON,
                serde_json::to_vec(&resp)
                    .map_err(|e| Fail(ErrorCode::Internal, format!("reply JSON: {e}")))?,
            ),
            Format::Protobuf => (CONTENT_TYPE_PROTOBUF, resp.encode_to_vec()),
        };
        Ok(TwirpReply {
            status: 200,
            content_type,
            body,
        })
    }
}

#[cfg(test)]
mod tests;
