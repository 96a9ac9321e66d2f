//! The rooms as LiveKit's `RoomService` (Twirp, `rooms::twirp`) and Sluice's API see them:
//! [`RoomDirectory`] over the registry. Changes reach a participant as a [`Notice`] its task
//! applies (and tells its client), as its own requests would.

use prost::Message as _;
use rooms::directory::RoomDirectory;
use rooms::{RoomsError, proto};

use super::{Notice, Rooms, broadcast, is_hidden, notify};

fn no_room(room: &str) -> RoomsError {
    RoomsError::NotFound(format!("room {room:?}"))
}

fn no_participant(identity: &str) -> RoomsError {
    RoomsError::NotFound(format!("participant {identity:?}"))
}

/// The member of `r` with `identity`.
fn member<'a>(r: &'a super::Room, identity: &str) -> Result<&'a super::Member, RoomsError> {
    r.members
        .values()
        .find(|m| m.info.identity == identity)
        .ok_or_else(|| no_participant(identity))
}

impl RoomDirectory for Rooms {
    fn list_rooms(&self, names: &[String]) -> Vec<proto::Room> {
        let rooms = self.lock();
        let mut out: Vec<proto::Room> = rooms
            .values()
            .filter(|r| names.is_empty() || names.contains(&r.info.name))
            .map(|r| r.info.clone())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn create_room(&self, req: proto::CreateRoomRequest) -> Result<proto::Room, RoomsError> {
        rooms::names::check("room", &req.name)?;
        let mut rooms = self.lock();
        let r = self
            .open(&mut rooms, &req.name, |info| {
                if req.empty_timeout > 0 {
                    info.empty_timeout = req.empty_timeout;
                }
                if req.departure_timeout > 0 {
                    info.departure_timeout = req.departure_timeout;
                }
                if req.max_participants > 0 {
                    info.max_participants = req.max_participants;
                }
                info.metadata = req.metadata.clone();
            })
            .ok_or_else(|| RoomsError::Limit("rooms.max_rooms".into()))?;
        Ok(r.info.clone())
    }

    fn delete_room(&self, room: &str) -> Result<(), RoomsError> {
        let mut rooms = self.lock();
        if self.close_locked(&mut rooms, room, proto::DisconnectReason::RoomDeleted) {
            Ok(())
        } else {
            Err(no_room(room))
        }
    }

    fn list_participants(&self, room: &str) -> Result<Vec<proto::ParticipantInfo>, RoomsError> {
        let rooms = self.lock();
        let r = rooms.get(room).ok_or_else(|| no_room(room))?;
        Ok(r.members.values().map(|m| m.info.clone()).collect())
    }

    fn get_participant(
        &self,
        room: &str,
        identity: &str,
    ) -> Result<proto::ParticipantInfo, RoomsError> {
        let rooms = self.lock();
        let r = rooms.get(room).ok_or_else(|| no_room(room))?;
        member(r, identity).map(|m| m.info.clone())
    }

    fn remove_participant(&self, room: &str, identity: &str) -> Result<(), RoomsError> {
        let rooms = self.lock();
        let r = rooms.get(room).ok_or_else(|| no_room(room))?;
        let m = member(r, identity)?;
        // The task says why and leaves (the room hears of it as for any leave).
        let _ =
            m.tx.try_send(Notice::Leave(proto::DisconnectReason::ParticipantRemoved));
        m.kick.cancel();
        Ok(())
    }

    fn mute_published_track(
        &self,
        room: &str,
        identity: &str,
        track_sid: &str,
        muted: bool,
    ) -> Result<proto::TrackInfo, RoomsError> {
        let rooms = self.lock();
        let r = rooms.get(room).ok_or_else(|| no_room(room))?;
        let m = member(r, identity)?;
        let mut t = m
            .info
            .tracks
            .iter()
            .find(|t| t.sid == track_sid)
            .cloned()
            .ok_or_else(|| RoomsError::NotFound(format!("track {track_sid:?}")))?;
        notify(
            m,
            Notice::Mute {
                track_sid: track_sid.to_owned(),
                muted,
            },
        );
        t.muted = muted;
        Ok(t)
    }

    fn update_participant(
        &self,
        req: proto::UpdateParticipantRequest,
    ) -> Result<proto::ParticipantInfo, RoomsError> {
        let mut rooms = self.lock();
        let r = rooms.get_mut(&req.room).ok_or_else(|| no_room(&req.room))?;
        let m = r
            .members
            .values_mut()
            .find(|m| m.info.identity == req.identity)
            .ok_or_else(|| no_participant(&req.identity))?;
        if !req.metadata.is_empty() {
            m.info.metadata = req.metadata;
        }
        if !req.name.is_empty() {
            m.info.name = req.name;
        }
        for (k, v) in req.attributes {
            // LiveKit's rule: an empty value deletes the attribute.
            if v.is_empty() {
                m.info.attributes.remove(&k);
            } else {
                m.info.attributes.insert(k, v);
            }
        }
        if let Some(p) = req.permission {
            m.info.permission = Some(p);
        }
        m.info.version += 1;
        let info = m.info.clone();
        if !is_hidden(&info) {
            broadcast(r, "", Notice::Participants(vec![info.clone()]));
        }
        Ok(info)
    }

    fn update_subscriptions(
        &self,
        req: proto::UpdateSubscriptionsRequest,
    ) -> Result<(), RoomsError> {
        let rooms = self.lock();
        let r = rooms.get(&req.room).ok_or_else(|| no_room(&req.room))?;
        let m = member(r, &req.identity)?;
        let mut sids = req.track_sids;
        sids.extend(
            req.participant_tracks
                .into_iter()
                .flat_map(|p| p.track_sids),
        );
        notify(
            m,
            Notice::Subscribe {
                track_sids: sids,
                subscribe: req.subscribe,
            },
        );
        Ok(())
    }

    fn send_data(&self, req: proto::SendDataRequest) -> Result<(), RoomsError> {
        if req.data.len() > super::MAX_DATA_PACKET {
            return Err(RoomsError::BadRequest(format!(
                "data longer than {} bytes",
                super::MAX_DATA_PACKET
            )));
        }
        let reliable = req.kind != proto::data_packet::Kind::Lossy as i32;
        #[allow(deprecated)]
        let packet = proto::DataPacket {
            kind: req.kind,
            destination_identities: req.destination_identities.clone(),
            value: Some(proto::data_packet::Value::User(proto::UserPacket {
                payload: req.data,
                topic: req.topic,
                destination_identities: req.destination_identities.clone(),
                nonce: req.nonce,
                ..Default::default()
            })),
            ..Default::default()
        };
        let rooms = self.lock();
        let r = rooms.get(&req.room).ok_or_else(|| no_room(&req.room))?;
        let bytes = std::sync::Arc::new(packet.encode_to_vec());
        for m in r.members.values() {
            // `destination_sids` is deprecated for identities; older SDKs still send it.
            #[allow(deprecated)]
            let listed = req.destination_identities.contains(&m.info.identity)
                || req.destination_sids.contains(&m.info.sid);
            #[allow(deprecated)]
            let all = req.destination_identities.is_empty() && req.destination_sids.is_empty();
            if all || listed {
                notify(
                    m,
                    Notice::Data {
                        bytes: std::sync::Arc::clone(&bytes),
                        reliable,
                    },
                );
            }
        }
        Ok(())
    }

    fn update_room_metadata(&self, room: &str, metadata: &str) -> Result<proto::Room, RoomsError> {
        let mut rooms = self.lock();
        let r = rooms.get_mut(room).ok_or_else(|| no_room(room))?;
        r.info.metadata = metadata.to_owned();
        let info = r.info.clone();
        broadcast(r, "", Notice::Room(info.clone()));
        Ok(info)
    }
}
