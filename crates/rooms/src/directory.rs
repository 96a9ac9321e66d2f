//! What LiveKit's `RoomService` (Twirp) and Sluice's own API do to rooms, as a trait the
//! SFU implements: the HTTP side turns requests into these calls and never touches a room's
//! state itself.

use crate::RoomsError;
use crate::proto;

/// The rooms of a server, as the room API sees them. Methods return at once: a change is
/// applied by the room's own task (participants see it within a moment).
pub trait RoomDirectory: Send + Sync + std::fmt::Debug {
    /// Rooms open now (all when `names` is empty).
    fn list_rooms(&self, names: &[String]) -> Vec<proto::Room>;
    /// Opens a room (or returns the one open under that name).
    fn create_room(&self, req: proto::CreateRoomRequest) -> Result<proto::Room, RoomsError>;
    /// Closes a room: every participant is disconnected.
    fn delete_room(&self, room: &str) -> Result<(), RoomsError>;
    /// The participants of a room.
    fn list_participants(&self, room: &str) -> Result<Vec<proto::ParticipantInfo>, RoomsError>;
    /// One participant.
    fn get_participant(
        &self,
        room: &str,
        identity: &str,
    ) -> Result<proto::ParticipantInfo, RoomsError>;
    /// Disconnects a participant.
    fn remove_participant(&self, room: &str, identity: &str) -> Result<(), RoomsError>;
    /// Mutes or unmutes a published track; returns it.
    fn mute_published_track(
        &self,
        room: &str,
        identity: &str,
        track_sid: &str,
        muted: bool,
    ) -> Result<proto::TrackInfo, RoomsError>;
    /// Changes a participant's metadata, name, attributes or permission.
    fn update_participant(
        &self,
        req: proto::UpdateParticipantRequest,
    ) -> Result<proto::ParticipantInfo, RoomsError>;
    /// Subscribes or unsubscribes a participant to tracks.
    fn update_subscriptions(
        &self,
        req: proto::UpdateSubscriptionsRequest,
    ) -> Result<(), RoomsError>;
    /// Sends a data packet to a room's participants (all, or those listed).
    fn send_data(&self, req: proto::SendDataRequest) -> Result<(), RoomsError>;
    /// Changes a room's metadata; returns the room.
    fn update_room_metadata(&self, room: &str, metadata: &str) -> Result<proto::Room, RoomsError>;
}
