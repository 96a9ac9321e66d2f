//! Starts the floor on an ephemeral port, attaches two HTTP players and checks they receive
//! the same valid FLV stream, starting on a video keyframe.

use std::time::Duration;

use flv::{FlvReader, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO, Tag};
use sluice_floor::server::RESPONSE_HEAD;
use sluice_floor::{Clip, FloorConfig, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const FIXTURE: &[u8] = include_bytes!("../../../fixtures/demo.flv");
/// Media tags each player reads (a little over one second of the clip).
const MEDIA_TAGS: usize = 80;

struct Received {
    has_audio: bool,
    has_video: bool,
    preamble: Vec<Tag>,
    media: Vec<Tag>,
}

/// Sends a request, checks the response head, then reads FLV until `MEDIA_TAGS` media tags.
async fn play(mut sock: TcpStream) -> Received {
    sock.write_all(b"GET /live/demo.flv HTTP/1.1\r\nHost: floor\r\nAccept: */*\r\n\r\n")
        .await
        .expect("request sent");
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while buf.len() < RESPONSE_HEAD.len() {
        let n = sock.read(&mut chunk).await.expect("read head");
        assert!(n > 0, "closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(&buf[..RESPONSE_HEAD.len()], RESPONSE_HEAD);
    let mut reader = FlvReader::new();
    reader.push(&buf[RESPONSE_HEAD.len()..]);
    let mut preamble = Vec::new();
    let mut media = Vec::new();
    loop {
        while let Some(tag) = reader.next_tag().expect("valid FLV") {
            if media.is_empty() && tag.timestamp == 0 && preamble.len() < 3 {
                preamble.push(tag);
            } else {
                media.push(tag);
            }
        }
        if media.len() >= MEDIA_TAGS {
            break;
        }
        let n = sock.read(&mut chunk).await.expect("read body");
        assert!(n > 0, "closed mid-stream");
        reader.push(&chunk[..n]);
    }
    let header = reader.header().expect("file header parsed");
    media.truncate(MEDIA_TAGS);
    Received {
        has_audio: header.has_audio,
        has_video: header.has_video,
        preamble,
        media,
    }
}

fn is_video_keyframe(tag: &Tag) -> bool {
    tag.tag_type == TAG_VIDEO && tag.body.first().is_some_and(|b| b >> 4 == 1)
}

async fn two_players(batch_ms: u64) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let clip = Clip::from_flv(FIXTURE).expect("fixture parses");
    let cfg = FloorConfig {
        batch_ms,
        ..FloorConfig::default()
    };
    let server = tokio::spawn(serve(listener, clip, cfg));
    let a = TcpStream::connect(addr).await.expect("connect a");
    let b = TcpStream::connect(addr).await.expect("connect b");
    let (a, b) = tokio::time::timeout(Duration::from_secs(15), async {
        tokio::join!(play(a), play(b))
    })
    .await
    .expect("both players got enough media in time");
    server.abort();

    for p in [&a, &b] {
        assert!(p.has_audio && p.has_video);
        let kinds: Vec<u8> = p.preamble.iter().map(|t| t.tag_type).collect();
        assert_eq!(kinds, [TAG_SCRIPT, TAG_VIDEO, TAG_AUDIO]);
        assert!(
            p.preamble[1].body.starts_with(&[0x17, 0]),
            "AVC sequence header"
        );
        assert!(is_video_keyframe(&p.media[0]), "media starts on a keyframe");
        assert!(
            p.media.windows(2).all(|w| w[0].timestamp <= w[1].timestamp),
            "timestamps never go back"
        );
    }
    // Both joined within a millisecond or so, so both start at the same keyframe; should a
    // keyframe fall between their joins, compare from the later start.
    let start = a.media[0].timestamp.max(b.media[0].timestamp);
    let from =
        |m: &[Tag]| -> Vec<Tag> { m.iter().filter(|t| t.timestamp >= start).cloned().collect() };
    let (ma, mb) = (from(&a.media), from(&b.media));
    let common = ma.len().min(mb.len());
    assert!(common >= MEDIA_TAGS / 2, "overlap of {common} tags");
    assert_eq!(ma[..common], mb[..common], "identical media");
    assert_eq!(a.preamble, b.preamble);
}

#[tokio::test]
async fn two_players_unbatched() {
    two_players(0).await;
}

#[tokio::test]
async fn two_players_batched_20ms() {
    two_players(20).await;
}
