use super::*;
use crate::chunk::encode_message;

fn decode_all(dec: &mut ChunkDecoder, input: &[u8]) -> Result<Vec<Message>, RtmpError> {
    dec.push(input);
    let mut out = Vec::new();
    while let Some(m) = dec.poll()? {
        out.push(m);
    }
    Ok(out)
}

fn dec() -> ChunkDecoder {
    ChunkDecoder::new(8 * 1024 * 1024, 64)
}

fn msg(csid: u32, timestamp: u32, msg_type: u8, stream_id: u32, payload: &[u8]) -> Message {
    Message {
        csid,
        timestamp,
        msg_type,
        stream_id,
        payload: Bytes::copy_from_slice(payload),
    }
}

#[test]
fn fmt0_single_chunk() {
    let wire = [
        0x03, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x04, 0x14, 0x01, 0x00, 0x00, 0x00, 1, 2, 3, 4,
    ];
    let got = decode_all(&mut dec(), &wire).unwrap();
    assert_eq!(got, vec![msg(3, 1000, 20, 1, &[1, 2, 3, 4])]);
}

#[test]
fn all_header_types_and_deltas() {
    let mut wire = vec![
        0x04, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x02, 0x08, 0x01, 0, 0, 0, 0xA, 0xB,
    ];
    wire.extend([0x84, 0x00, 0x00, 0x14, 0xC, 0xD]); // fmt 2: delta 20
    wire.extend([0xC4, 0xE, 0xF]); // fmt 3: same delta
    wire.extend([0x44, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x01, 0x09, 0x77]); // fmt 1: delta 10, len 1, video
    let got = decode_all(&mut dec(), &wire).unwrap();
    assert_eq!(
        got,
        vec![
            msg(4, 1000, 8, 1, &[0xA, 0xB]),
            msg(4, 1020, 8, 1, &[0xC, 0xD]),
            msg(4, 1040, 8, 1, &[0xE, 0xF]),
            msg(4, 1050, 9, 1, &[0x77]),
        ]
    );
}

#[test]
fn fmt3_after_fmt0_uses_absolute_as_delta() {
    // Spec 5.3.1.2.4: a type 3 following a type 0 uses the type 0 timestamp as delta.
    let mut wire = vec![0x05, 0x00, 0x00, 0x64, 0, 0, 1, 18, 0, 0, 0, 0, 0xAA];
    wire.extend([0xC5, 0xBB]);
    let got = decode_all(&mut dec(), &wire).unwrap();
    assert_eq!(got[1].timestamp, 200);
}

#[test]
fn multi_byte_basic_headers() {
    let mut wire = vec![0x00, 0x00]; // csid 64
    wire.extend([0, 0, 0, 0, 0, 1, 8, 0, 0, 0, 0, 0x11]);
    wire.extend([0x01, 0xFF, 0xFF]); // csid 65599
    wire.extend([0, 0, 0, 0, 0, 1, 9, 0, 0, 0, 0, 0x22]);
    let got = decode_all(&mut dec(), &wire).unwrap();
    assert_eq!(got[0].csid, 64);
    assert_eq!(got[1].csid, 65599);
    assert_eq!(&got[1].payload[..], &[0x22]);
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 + 1).collect()
}

#[test]
fn multi_chunk_message_byte_by_byte() {
    let p = payload(300);
    let mut wire = BytesMut::new();
    encode_message(&mut wire, 6, 5, 9, 1, &p, 128);
    assert_eq!(wire.len(), 12 + 300 + 2);
    let mut d = dec();
    let mut got = Vec::new();
    for b in wire.iter() {
        got.extend(decode_all(&mut d, &[*b]).unwrap());
        assert!(d.buffered() <= 12);
    }
    assert_eq!(got, vec![msg(6, 5, 9, 1, &p)]);
}

#[test]
fn extended_timestamp_repeated_on_type3() {
    let p = payload(200);
    let mut wire = vec![0x04, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0xC8, 0x08, 1, 0, 0, 0];
    wire.extend([0x01, 0x00, 0x00, 0x00]);
    wire.extend(&p[..128]);
    wire.extend([0xC4, 0x01, 0x00, 0x00, 0x00]);
    wire.extend(&p[128..]);
    let got = decode_all(&mut dec(), &wire).unwrap();
    assert_eq!(got, vec![msg(4, 0x0100_0000, 8, 1, &p)]);
    // Matches our own encoder's output.
    let mut ours = BytesMut::new();
    encode_message(&mut ours, 4, 0x0100_0000, 8, 1, &p, 128);
    assert_eq!(&ours[..], &wire[..]);
}

#[test]
fn extended_timestamp_not_repeated_on_type3() {
    let p = payload(200);
    let mut wire = vec![0x04, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0xC8, 0x08, 1, 0, 0, 0];
    wire.extend([0x01, 0x00, 0x00, 0x00]);
    wire.extend(&p[..128]);
    wire.push(0xC4);
    wire.extend(&p[128..]);
    let got = decode_all(&mut dec(), &wire).unwrap();
    assert_eq!(got, vec![msg(4, 0x0100_0000, 8, 1, &p)]);
}

#[test]
fn extended_timestamp_on_new_type3_message_and_wrap() {
    // fmt 0 at 0xFFFFFFF0 (extended), then fmt 2 delta 0x20 wraps to 0x10,
    // then a new type-3 message repeats the extended delta? No: fmt 2 had no
    // extended field, so the type-3 header is bare.
    let mut wire = vec![
        0x04, 0xFF, 0xFF, 0xFF, 0, 0, 1, 8, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xF0, 0xA,
    ];
    wire.extend([0x84, 0x00, 0x00, 0x20, 0xB]);
    wire.extend([0xC4, 0xC]);
    // fmt 2 with an extended delta 0x01000000, then a type 3 new message carrying it.
    wire.extend([0x84, 0xFF, 0xFF, 0xFF, 0x01, 0x00, 0x00, 0x00, 0xD]);
    wire.extend([0xC4, 0x01, 0x00, 0x00, 0x00, 0xE]);
    let got = decode_all(&mut dec(), &wire).unwrap();
    let ts: Vec<u32> = got.iter().map(|m| m.timestamp).collect();
    assert_eq!(ts, vec![0xFFFF_FFF0, 0x10, 0x30, 0x0100_0030, 0x0200_0030]);
    assert_eq!(&got[4].payload[..], &[0xE]);
}

#[test]
fn chunk_size_change_mid_stream() {
    let p = payload(200);
    let mut wire = vec![
        0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0, 0x00, 0x00, 0x01, 0x00,
    ];
    wire.extend([0x06, 0, 0, 0, 0, 0, 0xC8, 9, 1, 0, 0, 0]);
    wire.extend(&p);
    let mut d = dec();
    let got = decode_all(&mut d, &wire).unwrap();
    assert_eq!(d.chunk_size(), 256);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1], msg(6, 0, 9, 1, &p));
}

#[test]
fn bad_chunk_sizes() {
    for size in [0u32, 0x8000_0000] {
        let mut wire = vec![0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0];
        wire.extend(size.to_be_bytes());
        assert_eq!(
            decode_all(&mut dec(), &wire),
            Err(RtmpError::BadChunkSize { size })
        );
    }
}

#[test]
fn interleaved_chunk_streams() {
    let a = payload(200);
    let mut wire = vec![0x04, 0, 0, 10, 0, 0, 0xC8, 8, 1, 0, 0, 0];
    wire.extend(&a[..128]);
    wire.extend([0x06, 0, 0, 20, 0, 0, 2, 9, 1, 0, 0, 0, 0x55, 0x66]);
    wire.push(0xC4);
    wire.extend(&a[128..]);
    let got = decode_all(&mut dec(), &wire).unwrap();
    assert_eq!(
        got,
        vec![msg(6, 20, 9, 1, &[0x55, 0x66]), msg(4, 10, 8, 1, &a)]
    );
}

#[test]
fn abort_drops_partial_message() {
    let a = payload(200);
    let mut wire = vec![0x04, 0, 0, 10, 0, 0, 0xC8, 8, 1, 0, 0, 0];
    wire.extend(&a[..128]);
    wire.extend([0x02, 0, 0, 0, 0, 0, 4, 0x02, 0, 0, 0, 0, 0, 0, 0, 4]);
    wire.extend([0x04, 0, 0, 30, 0, 0, 1, 8, 1, 0, 0, 0, 0x99]);
    let got = decode_all(&mut dec(), &wire).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].msg_type, MSG_ABORT);
    assert_eq!(got[1], msg(4, 30, 8, 1, &[0x99]));
}

#[test]
fn oversized_message_rejected_from_header() {
    let wire = [0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, 8, 1, 0, 0, 0];
    assert_eq!(
        decode_all(&mut dec(), &wire),
        Err(RtmpError::MessageTooLarge {
            len: 0xFF_FFFF,
            max: 8 * 1024 * 1024
        })
    );
}

#[test]
fn chunk_stream_storm() {
    let mut d = ChunkDecoder::new(1024, 4);
    let mut wire = Vec::new();
    for csid in 3..8u8 {
        wire.extend([csid, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 0]);
    }
    assert_eq!(
        decode_all(&mut d, &wire),
        Err(RtmpError::TooManyChunkStreams { csid: 7, max: 4 })
    );
}

#[test]
fn unknown_chunk_stream() {
    assert_eq!(
        decode_all(&mut dec(), &[0xC9, 0x00]),
        Err(RtmpError::UnknownChunkStream { csid: 9, fmt: 3 })
    );
}

#[test]
fn zero_length_message() {
    let got = decode_all(&mut dec(), &[0x03, 0, 0, 1, 0, 0, 0, 20, 0, 0, 0, 0]).unwrap();
    assert_eq!(got, vec![msg(3, 1, 20, 0, &[])]);
}

// --- Bytes held in incomplete messages ---

/// Set Chunk Size as sent on the wire (chunk stream 2, at the default chunk size).
fn set_chunk_size_wire(size: u32) -> BytesMut {
    let mut w = BytesMut::new();
    encode_message(
        &mut w,
        2,
        0,
        MSG_SET_CHUNK_SIZE,
        0,
        &size.to_be_bytes(),
        128,
    );
    w
}

/// A type-0 header announcing a `len`-byte video message on `csid`.
fn header(csid: u32, len: u32) -> BytesMut {
    let mut w = BytesMut::new();
    crate::chunk::write_message_header(&mut w, csid, 0, len, 9, 1);
    w
}

/// Feeds `bytes` in 64 KiB reads, counting them in `fed`; asserts the budget holds after
/// every read.
fn feed(d: &mut ChunkDecoder, bytes: &[u8], fed: &mut usize) -> Result<(), RtmpError> {
    for piece in bytes.chunks(64 * 1024) {
        *fed += piece.len();
        d.push(piece);
        while d.poll()?.is_some() {}
        assert!(d.partial_bytes() <= d.max_partial_bytes());
    }
    Ok(())
}

/// The reported attack: chunk size one byte short of 8 MiB, then on chunk streams 3..=64 a
/// header of an 8 MiB message and its first chunk (all but its last byte). Returns the error
/// and the bytes fed until it.
fn run_attack(d: &mut ChunkDecoder) -> (RtmpError, usize) {
    const LEN: u32 = 8 * 1024 * 1024;
    let body = vec![0x17u8; LEN as usize - 1];
    let mut fed = 0;
    let mut run = || -> Result<(), RtmpError> {
        feed(d, &set_chunk_size_wire(LEN - 1), &mut fed)?;
        for csid in 3..=64 {
            feed(d, &header(csid, LEN), &mut fed)?;
            feed(d, &body, &mut fed)?;
        }
        Ok(())
    };
    let err = run().expect_err("the attack is refused");
    (err, fed)
}

#[test]
fn attack_refused_at_the_command_budget() {
    let mut d = dec();
    d.set_max_partial_bytes(crate::chunk::COMMAND_PARTIAL_BUDGET);
    let (err, fed) = run_attack(&mut d);
    assert_eq!(
        err,
        RtmpError::PartialBudgetExceeded {
            csid: 3,
            needed: 128 * 1024,
            budget: 64 * 1024
        }
    );
    // Refused at the second 64 KiB read of the first message: nothing like 8 MiB was taken.
    assert_eq!(fed, 16 + 12 + 2 * 64 * 1024);
}

#[test]
fn attack_refused_at_the_media_budget() {
    // A publisher's budget fits one 8 MiB message; the second stream's first chunk exceeds it.
    let mut d = dec();
    assert_eq!(
        d.max_partial_bytes(),
        crate::chunk::media_partial_budget(8 * 1024 * 1024)
    );
    let (err, fed) = run_attack(&mut d);
    match err {
        RtmpError::PartialBudgetExceeded {
            csid: 4,
            needed,
            budget,
        } => {
            assert_eq!(budget, 8 * 1024 * 1024 + 64 * 1024);
            assert!(needed > budget);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(fed < 9 * 1024 * 1024, "{fed} bytes fed");
}

#[test]
fn capacity_follows_bytes_not_the_announced_length() {
    // 8 MiB messages announced on 16 chunk streams, one 128-byte chunk each: 128 bytes held
    // per stream, nothing reserved from the announced length.
    let mut d = dec();
    let mut wire = Vec::new();
    for csid in 3..19 {
        wire.extend_from_slice(&header(csid, 8 * 1024 * 1024));
        wire.extend_from_slice(&[5; 128]);
    }
    assert_eq!(decode_all(&mut d, &wire).unwrap(), vec![]);
    assert_eq!(d.partial_messages(), 16);
    assert_eq!(d.partial_bytes(), 16 * 128);
}

#[test]
fn too_many_partial_messages() {
    // The first 128-byte chunk of a 1000-byte message on each of 16 chunk streams.
    let mut d = dec();
    let mut wire = Vec::new();
    for csid in 3..3 + MAX_PARTIAL_MESSAGES as u32 {
        wire.extend_from_slice(&header(csid, 1000));
        wire.extend_from_slice(&[1; 128]);
    }
    assert!(decode_all(&mut d, &wire).unwrap().is_empty());
    assert_eq!(d.partial_messages(), MAX_PARTIAL_MESSAGES);
    // Completing one leaves room for a new one; a further stream is refused.
    let mut wire = Vec::new();
    for left in [128, 128, 128, 128, 128, 128, 104] {
        wire.push(0xC3);
        wire.extend_from_slice(&vec![2; left]);
    }
    let got = decode_all(&mut d, &wire).unwrap();
    assert_eq!((got.len(), got[0].payload.len()), (1, 1000));
    assert_eq!(d.partial_messages(), MAX_PARTIAL_MESSAGES - 1);
    let mut wire = header(40, 1000).to_vec();
    wire.extend_from_slice(&[3; 128]);
    assert!(decode_all(&mut d, &wire).unwrap().is_empty());
    assert_eq!(
        decode_all(&mut d, &header(41, 1000)),
        Err(RtmpError::TooManyPartialMessages {
            csid: 41,
            max: MAX_PARTIAL_MESSAGES
        })
    );
}

#[test]
fn held_bytes_are_accounted_and_released() {
    let mut d = dec();
    d.push(&set_chunk_size_wire(4096));
    assert!(d.poll().unwrap().is_some());
    // Chunk stream 6: the first 4096 of 10000 bytes.
    let mut wire = header(6, 10_000).to_vec();
    wire.extend_from_slice(&payload(4096));
    // Chunk stream 4: the first 4096 of 5000 bytes.
    wire.extend_from_slice(&header(4, 5000));
    wire.extend_from_slice(&[1; 4096]);
    // Fed in pieces: the capacity follows the bytes (doubling), never the announced length.
    for piece in wire.chunks(1000) {
        assert!(decode_all(&mut d, piece).unwrap().is_empty());
    }
    assert_eq!(d.partial_messages(), 2);
    let held = d.partial_bytes();
    assert!((2 * 4096..=4 * 4096).contains(&held), "{held}");
    // Abort on stream 4 releases its bytes.
    let mut abort = BytesMut::new();
    encode_message(&mut abort, 2, 0, MSG_ABORT, 0, &4u32.to_be_bytes(), 4096);
    assert_eq!(decode_all(&mut d, &abort).unwrap().len(), 1);
    assert_eq!(d.partial_messages(), 1);
    assert!(d.partial_bytes() <= 2 * 4096, "{}", d.partial_bytes());
    // A new type-0 header on stream 6 abandons its message and releases it.
    let mut wire = header(6, 3).to_vec();
    wire.extend_from_slice(&[7, 8, 9]);
    let got = decode_all(&mut d, &wire).unwrap();
    assert_eq!(got, vec![msg(6, 0, 9, 1, &[7, 8, 9])]);
    assert_eq!((d.partial_messages(), d.partial_bytes()), (0, 0));
}

#[test]
fn capacity_never_exceeds_the_message() {
    // 100000 bytes in 4096-byte chunks, fed chunk by chunk: the buffer doubles at most up to
    // the message's length, so the completed message carries no spare capacity.
    let p = payload(100_000);
    let mut d = dec();
    d.push(&set_chunk_size_wire(4096));
    assert!(d.poll().unwrap().is_some());
    let mut wire = BytesMut::new();
    encode_message(&mut wire, 6, 40, 9, 1, &p, 4096);
    let mut got = Vec::new();
    let mut peak = 0;
    for piece in wire.chunks(4097) {
        got.extend(decode_all(&mut d, piece).unwrap());
        peak = peak.max(d.partial_bytes());
    }
    assert_eq!(got, vec![msg(6, 40, 9, 1, &p)]);
    assert!((65_536..=100_000).contains(&peak), "{peak}");
    assert_eq!(d.partial_bytes(), 0);
}

#[test]
fn growth_uses_the_room_left_exactly() {
    // 10000 bytes in 128-byte chunks: incomplete, the message holds at most 78 chunks (9984
    // bytes); the last chunk completes it. A budget of exactly 9984: doubling is clamped to
    // the room left, so the message passes with no spurious refusal; one byte less is refused.
    let p = payload(10_000);
    let mut wire = BytesMut::new();
    encode_message(&mut wire, 6, 0, 9, 1, &p, 128);
    let mut d = dec();
    d.set_max_partial_bytes(9_984);
    let got = decode_all(&mut d, &wire).unwrap();
    assert_eq!(got, vec![msg(6, 0, 9, 1, &p)]);
    assert_eq!(d.partial_bytes(), 0);
    let mut d = dec();
    d.set_max_partial_bytes(9_983);
    assert_eq!(
        decode_all(&mut d, &wire),
        Err(RtmpError::PartialBudgetExceeded {
            csid: 6,
            needed: 9_984,
            budget: 9_983
        })
    );
}

#[test]
fn messages_that_arrive_whole_pass_a_full_budget() {
    // One stream holds the whole budget; acknowledgements, a command and a single-chunk audio
    // message still pass (they complete at once and are never held), while the next chunk
    // of an incomplete message is refused.
    let mut d = dec();
    d.set_max_partial_bytes(4096);
    let mut wire = set_chunk_size_wire(4096).to_vec();
    wire.extend_from_slice(&header(6, 100_000));
    wire.extend_from_slice(&[9; 4096]);
    assert_eq!(decode_all(&mut d, &wire).unwrap().len(), 1);
    assert_eq!(d.partial_bytes(), 4096);
    let mut whole = BytesMut::new();
    encode_message(&mut whole, 2, 0, 3, 0, &7u32.to_be_bytes(), 4096);
    encode_message(&mut whole, 3, 0, 20, 0, &[0x02; 300], 4096);
    encode_message(&mut whole, 4, 0, 8, 1, &[0xAF; 4000], 4096);
    let got = decode_all(&mut d, &whole).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].payload.len(), 4000);
    assert_eq!(d.partial_bytes(), 4096);
    // The first 100 bytes of a 5000-byte message would be held: refused.
    let mut part = header(5, 5000).to_vec();
    part.extend_from_slice(&[1; 100]);
    assert_eq!(
        decode_all(&mut d, &part),
        Err(RtmpError::PartialBudgetExceeded {
            csid: 5,
            needed: 4196,
            budget: 4096
        })
    );
}

#[test]
fn largest_message_interleaved_with_audio_fits_the_media_budget() {
    // An 8 MiB keyframe (the default limit) in 4096-byte chunks, with an audio message
    // between every 64 chunks, as an encoder interleaves them.
    const LEN: usize = 8 * 1024 * 1024;
    let video = payload(LEN);
    let mut vwire = BytesMut::new();
    encode_message(&mut vwire, 6, 0, 9, 1, &video, 4096);
    let mut d = dec();
    let mut wire = set_chunk_size_wire(4096).to_vec();
    let mut audio = 0u32;
    // 64 chunks at a time: the first has a 12-byte header, the others a 1-byte one.
    let mut take = 12 + 4096 + 63 * (1 + 4096);
    let mut rest = &vwire[..];
    while !rest.is_empty() {
        let n = take.min(rest.len());
        wire.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        take = 64 * (1 + 4096);
        let mut a = BytesMut::new();
        encode_message(&mut a, 4, audio, 8, 1, &[0xAF, 1, 2, 3], 4096);
        wire.extend_from_slice(&a);
        audio += 21;
    }
    let mut got = Vec::new();
    let mut peak = 0;
    for piece in wire.chunks(64 * 1024) {
        got.extend(decode_all(&mut d, piece).unwrap());
        peak = peak.max(d.partial_bytes());
    }
    let videos: Vec<&Message> = got.iter().filter(|m| m.msg_type == 9).collect();
    assert_eq!(videos.len(), 1);
    assert_eq!(videos[0].payload.len(), LEN);
    assert!(videos[0].payload == video);
    assert_eq!(
        got.iter().filter(|m| m.msg_type == 8).count(),
        audio as usize / 21
    );
    assert!(peak <= LEN + 64, "{peak}");
    assert_eq!(d.partial_bytes(), 0);
}
