//! The registry's unit tests: joins, leaves, limits, the room API, timeouts, speakers.
use super::*;
use rooms::directory::RoomDirectory;
use rooms::token::VideoGrant;

fn rooms(max_participants: usize) -> Rooms {
    let cfg = config::RoomsConfig {
        max_participants,
        max_rooms: 2,
        ..Default::default()
    };
    Rooms::new(&cfg, None)
}

fn claims(room: &str, who: &str) -> Claims {
    Claims {
        sub: who.into(),
        video: VideoGrant {
            room_join: true,
            room: room.into(),
            ..VideoGrant::default()
        },
        ..Claims::default()
    }
}

fn participants(n: Notice) -> Vec<proto::ParticipantInfo> {
    match n {
        Notice::Participants(p) => p,
        other => panic!("not a participant update: {other:?}"),
    }
}

#[test]
fn joins_and_leaves_are_told_to_the_others() {
    let r = rooms(10);
    let mut a = r.join(&claims("demo", "alice"), 16).unwrap();
    assert!(a.me.sid.starts_with("PA_") && a.room.sid.starts_with("RM_"));
    assert!(a.others.is_empty());
    let b = r.join(&claims("demo", "bob"), 16).unwrap();
    assert_eq!(b.others.len(), 1);
    assert_eq!(b.others[0].identity, "alice");
    let seen = participants(a.inbox.try_recv().unwrap());
    assert_eq!(seen[0].identity, "bob");
    // A track published by bob: everyone (bob too) hears of it, with a newer version.
    let v = b.me.version;
    r.update("demo", &b.me.sid, |p| {
        p.tracks.push(proto::TrackInfo::default())
    })
    .unwrap();
    let seen = participants(a.inbox.try_recv().unwrap());
    assert!(seen[0].version > v && seen[0].tracks.len() == 1);
    r.leave("demo", &b.me.sid);
    let seen = participants(a.inbox.try_recv().unwrap());
    assert_eq!(
        seen[0].state,
        proto::participant_info::State::Disconnected as i32
    );
    assert_eq!(r.list_participants("demo").unwrap().len(), 1);
    assert_eq!(r.participants(), 1);
}

#[test]
fn a_second_join_with_one_identity_replaces_the_first() {
    let r = rooms(10);
    let mut first = r.join(&claims("demo", "alice"), 16).unwrap();
    let second = r.join(&claims("demo", "alice"), 16).unwrap();
    assert!(first.kick.is_cancelled());
    assert!(matches!(
        first.inbox.try_recv().unwrap(),
        Notice::Leave(proto::DisconnectReason::DuplicateIdentity)
    ));
    assert!(second.others.is_empty());
    assert_eq!(r.participants(), 1);
}

#[test]
fn limits_refuse_joins() {
    let r = rooms(1);
    let _a = r.join(&claims("one", "a"), 16).unwrap();
    assert!(matches!(
        r.join(&claims("one", "b"), 16),
        Err(RoomsError::Limit(_))
    ));
    let _b = r.join(&claims("two", "b"), 16).unwrap();
    assert!(matches!(
        r.join(&claims("three", "c"), 16),
        Err(RoomsError::Limit(_))
    ));
}

#[test]
fn a_participant_not_reading_is_disconnected_not_waited_for() {
    let r = rooms(10);
    let a = r.join(&claims("demo", "alice"), 16).unwrap();
    let b = r.join(&claims("demo", "bob"), 16).unwrap();
    let c = r.join(&claims("demo", "carol"), 16).unwrap();
    // A data flood from bob: dropped for alice beyond half her queue, never a reason to
    // cut her off.
    for _ in 0..=NOTICE_QUEUE {
        r.data("demo", &b.me.sid, &[], vec![1, 2, 3], true);
    }
    assert!(![&a, &b, &c].iter().any(|p| p.kick.is_cancelled()));
    assert!(a.inbox.len() <= NOTICE_QUEUE / 2 + 2, "{}", a.inbox.len());
    // Signalling alice does not read: once her queue is full, she is disconnected (bob
    // and carol read nothing either here).
    for i in 0..NOTICE_QUEUE {
        r.update("demo", &c.me.sid, |p| p.metadata = i.to_string());
    }
    assert!(a.kick.is_cancelled());
}

#[test]
fn the_room_api_changes_what_participants_see() {
    let r = rooms(10);
    let mut a = r.join(&claims("demo", "alice"), 16).unwrap();
    let b = r.join(&claims("demo", "bob"), 16).unwrap();
    let _ = a.inbox.try_recv();
    r.update("demo", &b.me.sid, |p| {
        p.tracks.push(proto::TrackInfo {
            sid: "TR_x".into(),
            ..Default::default()
        });
    });
    let _ = a.inbox.try_recv();
    let t = r.mute_published_track("demo", "bob", "TR_x", true).unwrap();
    assert!(t.muted);
    assert!(
        r.mute_published_track("demo", "bob", "TR_none", true)
            .is_err()
    );
    let room = r.update_room_metadata("demo", "hello").unwrap();
    assert_eq!(room.metadata, "hello");
    assert!(matches!(a.inbox.try_recv().unwrap(), Notice::Room(x) if x.metadata == "hello"));
    r.remove_participant("demo", "bob").unwrap();
    assert!(b.kick.is_cancelled());
    assert!(matches!(
        r.get_participant("demo", "nobody"),
        Err(RoomsError::NotFound(_))
    ));
    assert_eq!(r.list_rooms(&[]).len(), 1);
    r.delete_room("demo").unwrap();
    assert!(a.kick.is_cancelled());
    assert!(r.list_rooms(&[]).is_empty());
}

#[test]
fn empty_rooms_close_after_their_timeout() {
    let cfg = config::RoomsConfig {
        departure_timeout_s: 0,
        empty_timeout_s: 3600,
        ..Default::default()
    };
    let r = Rooms::new(&cfg, None);
    r.create_room(proto::CreateRoomRequest {
        name: "made".into(),
        ..Default::default()
    })
    .unwrap();
    let a = r.join(&claims("joined", "alice"), 16).unwrap();
    r.leave("joined", &a.me.sid);
    r.reap();
    let names: Vec<_> = r.list_rooms(&[]).into_iter().map(|x| x.name).collect();
    // The joined room closed at once (departure timeout 0); the made one waits.
    assert_eq!(names, vec!["made".to_owned()]);
}

#[test]
fn speakers_are_announced_on_change() {
    let r = rooms(10);
    let mut a = r.join(&claims("demo", "alice"), 16).unwrap();
    let b = r.join(&claims("demo", "bob"), 16).unwrap();
    let _ = a.inbox.try_recv();
    r.speaking("demo", &b.me.sid, 0.0);
    assert!(
        a.inbox.try_recv().is_err(),
        "silence of a non-speaker is no news"
    );
    r.speaking("demo", &b.me.sid, 0.5);
    assert!(matches!(a.inbox.try_recv().unwrap(), Notice::Speakers(s) if s[0].active));
    r.speaking("demo", &b.me.sid, 0.51);
    assert!(
        a.inbox.try_recv().is_err(),
        "a small change is not announced"
    );
    r.speaking("demo", &b.me.sid, 0.0);
    assert!(matches!(a.inbox.try_recv().unwrap(), Notice::Speakers(s) if !s[0].active));
}
