//! Rooms without IO: what the LiveKit-protocol SFU (`server-webrtc`'s `rooms`) decides on.
//!
//! - [`token`]: LiveKit access tokens (HS256 JWTs signed with a `[rooms.keys]` secret) and
//!   their grants.
//! - [`ids`]: room, participant and track ids in the forms LiveKit's clients check (`RM_`,
//!   `PA_`, `TR_`) and the stream id of a subscribed track (`PA_x|TR_y`).
//! - [`names`]: the hub stream a room track is published as.
//! - [`directory`]: the operations LiveKit's `RoomService` (and Sluice's API) performs on
//!   rooms, as a trait the server implements.
//! - [`signal`]: the signalling codec (`SignalRequest` in, `SignalResponse` out, binary
//!   protobuf over the `/rtc` WebSocket), bounded against hostile messages.
//! - [`twirp`]: LiveKit's `RoomService` over Twirp (what its server SDKs call), dispatched
//!   onto a [`directory::RoomDirectory`].
//! - [`webhook`]: LiveKit-form webhook events and the token that signs their body.
//! - [`join`]: the token `POST /api/join` hands a browser.
//!
//! The crate's rule: no socket, no task, no clock read; time is passed in.

#![forbid(unsafe_code)]

pub mod directory;
pub mod ids;
pub mod join;
pub mod names;
pub mod signal;
pub mod token;
pub mod twirp;
pub mod webhook;

/// The LiveKit protocol's generated types (`livekit-protocol`), re-exported so every user
/// names the same version.
pub use livekit_protocol as proto;

/// Errors of room operations and token checks. The message is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomsError {
    /// The token is missing, malformed, signed with an unknown key or badly, or expired.
    #[error("invalid token: {0}")]
    Token(String),
    /// The token is valid but does not grant what was asked.
    #[error("permission denied: {0}")]
    Denied(String),
    /// No such room, participant or track.
    #[error("{0} not found")]
    NotFound(String),
    /// A limit (`rooms.max_rooms`, `rooms.max_participants`) was reached.
    #[error("limit reached: {0}")]
    Limit(String),
    /// The request is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A message or body is larger than a limit allows; it was not parsed.
    #[error("{what} of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// What was refused (`signal message`, `RoomService request body`).
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}
