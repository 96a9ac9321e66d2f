//! [`TsMuxer`] on hand-built frames: tables, PES layout, timestamps, errors.

use bytes::{Bytes, BytesMut};
use media::aac::MAX_AAC_FRAME_LEN;
use media::{Codec, Frame, FrameRole, MediaError, MediaKind, WireCache};

use crate::packet::TIMESTAMP_MASK;
use crate::pes::decode_timestamp;
use crate::psi::pat_section;
use crate::{
    AUDIO_PID, PCR_DELAY_90K, PMT_PID, TS_PACKET_LEN, TS_TIMESTAMP_OFFSET_90K, TsError, TsMuxer,
    VIDEO_PID,
};

/// avcC: Main@3.0, 4-byte lengths, SPS 67 4D 00 1E, PPS 68 EE 3C 80.
const AVCC: &[u8] = &[
    0x01, 0x4D, 0x00, 0x1E, 0xFF, 0xE1, 0x00, 0x04, 0x67, 0x4D, 0x00, 0x1E, 0x01, 0x00, 0x04, 0x68,
    0xEE, 0x3C, 0x80,
];
/// AudioSpecificConfig: AAC LC, 48 kHz, stereo.
const ASC: &[u8] = &[0x11, 0x90];

fn frame(
    kind: MediaKind,
    codec: Codec,
    role: FrameRole,
    dts: u64,
    cts: i32,
    key: bool,
    payload: &[u8],
) -> Frame {
    Frame {
        kind,
        codec,
        role,
        dts,
        cts,
        keyframe: key,
        body: Bytes::copy_from_slice(payload),
        payload_offset: 0,
        wire: WireCache::default(),
        arrival: None,
    }
}

fn avc_header() -> Frame {
    frame(
        MediaKind::Video,
        Codec::H264,
        FrameRole::SequenceHeader,
        0,
        0,
        true,
        AVCC,
    )
}

fn aac_header() -> Frame {
    frame(
        MediaKind::Audio,
        Codec::Aac,
        FrameRole::SequenceHeader,
        0,
        0,
        true,
        ASC,
    )
}

fn video(dts: u64, cts: i32, key: bool, payload: &[u8]) -> Frame {
    frame(
        MediaKind::Video,
        Codec::H264,
        FrameRole::Coded,
        dts,
        cts,
        key,
        payload,
    )
}

fn audio(dts: u64, payload: &[u8]) -> Frame {
    frame(
        MediaKind::Audio,
        Codec::Aac,
        FrameRole::Coded,
        dts,
        0,
        true,
        payload,
    )
}

fn configured() -> TsMuxer {
    let mut m = TsMuxer::new();
    let mut out = BytesMut::new();
    assert!(!m.push(&avc_header(), &mut out).unwrap());
    assert!(!m.push(&aac_header(), &mut out).unwrap());
    assert!(out.is_empty(), "sequence headers write nothing");
    assert!(m.has_video() && m.has_audio());
    m
}

fn pid(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[1] & 0x1F, p[2]])
}

/// The payload of one packet (after the adaptation field).
fn payload(p: &[u8]) -> &[u8] {
    if p[3] & 0x20 != 0 {
        &p[5 + usize::from(p[4])..]
    } else {
        &p[4..]
    }
}

fn ts5(b: &[u8]) -> u64 {
    decode_timestamp([b[0], b[1], b[2], b[3], b[4]])
}

#[test]
fn tables_bytes_and_counters() {
    let mut m = configured();
    let mut out = BytesMut::new();
    m.write_tables(&mut out);
    assert_eq!(out.len(), 2 * TS_PACKET_LEN);
    let pat = &out[..TS_PACKET_LEN];
    assert_eq!(&pat[..5], &[0x47, 0x40, 0x00, 0x10, 0x00]);
    assert_eq!(&pat[5..21], &pat_section(PMT_PID)[..]);
    assert!(pat[21..].iter().all(|&b| b == 0xFF));
    let pmt = &out[TS_PACKET_LEN..];
    assert_eq!(&pmt[..5], &[0x47, 0x50, 0x00, 0x10, 0x00]);
    // H.264 on 0x100 (PCR PID), AAC on 0x101, CRC computed by hand from the spec layout.
    assert_eq!(
        &pmt[5..31],
        &[
            0x02, 0xB0, 0x17, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1,
            0x00, 0xF0, 0x00, 0x0F, 0xE1, 0x01, 0xF0, 0x00, 0x2F, 0x44, 0xB9, 0x9B
        ]
    );
    assert!(pmt[31..].iter().all(|&b| b == 0xFF));
    // 40 more times: both counters wrap mod 16.
    for i in 1..=40u8 {
        let mut out = BytesMut::new();
        m.write_tables(&mut out);
        assert_eq!(out[3], 0x10 | (i % 16), "PAT cc");
        assert_eq!(out[TS_PACKET_LEN + 3], 0x10 | (i % 16), "PMT cc");
    }
}

#[test]
fn empty_program_and_version_bump() {
    let mut m = TsMuxer::new();
    let mut out = BytesMut::new();
    m.write_tables(&mut out);
    // section_length 13, PCR_PID 0x1FFF, no streams.
    assert_eq!(
        &out[TS_PACKET_LEN + 5..TS_PACKET_LEN + 17],
        &[
            0x02, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xFF, 0xFF, 0xF0, 0x00
        ]
    );
    assert_eq!(
        crate::crc32_mpeg2(&out[TS_PACKET_LEN + 5..TS_PACKET_LEN + 21]),
        0
    );
    // Audio appears: the next PMT has version 1 and PCR on the audio PID.
    m.push(&aac_header(), &mut out).unwrap();
    let mut out = BytesMut::new();
    m.write_tables(&mut out);
    let pmt = &out[TS_PACKET_LEN + 5..];
    assert_eq!((pmt[5], pmt[8], pmt[9], pmt[12]), (0xC3, 0xE1, 0x01, 0x0F));
    assert_eq!(m.pmt_version(), 1);
    // Same streams again: version unchanged.
    m.push(&aac_header(), &mut out).unwrap();
    m.write_tables(&mut BytesMut::new());
    assert_eq!(m.pmt_version(), 1);
}

#[test]
fn video_pes_layout() {
    let mut m = configured();
    let mut out = BytesMut::new();
    // IDR slice of 400 bytes: spans three packets.
    let mut nal = vec![0x65];
    nal.extend((0..399).map(|i| i as u8));
    let mut avcc = (nal.len() as u32).to_be_bytes().to_vec();
    avcc.extend_from_slice(&nal);
    assert!(m.push(&video(1000, 80, true, &avcc), &mut out).unwrap());
    assert_eq!(out.len() % TS_PACKET_LEN, 0);
    let packets: Vec<&[u8]> = out.chunks(TS_PACKET_LEN).collect();
    assert!(packets.iter().all(|p| pid(p) == VIDEO_PID));
    let first = packets[0];
    assert_eq!(first[1] & 0x40, 0x40, "PUSI");
    assert_eq!(
        (first[3] & 0x30, first[4], first[5]),
        (0x30, 7, 0x50),
        "AF with RAI + PCR"
    );
    let pcr_base = (u64::from(u32::from_be_bytes([first[6], first[7], first[8], first[9]])) << 1)
        | u64::from(first[10] >> 7);
    let dts = 90_000 + TS_TIMESTAMP_OFFSET_90K;
    assert_eq!(pcr_base, dts - PCR_DELAY_90K);
    let pes = payload(first);
    assert_eq!(&pes[..9], &[0, 0, 1, 0xE0, 0, 0, 0x84, 0xC0, 10]);
    assert_eq!(pes[9] >> 4, 0b0011);
    assert_eq!(pes[14] >> 4, 0b0001);
    assert_eq!(ts5(&pes[9..]), dts + 80 * 90, "pts = dts + cts");
    assert_eq!(ts5(&pes[14..]), dts);
    // Reassembled payload: AUD, SPS, PPS, the IDR.
    let es: Vec<u8> = packets
        .iter()
        .flat_map(|p| payload(p).to_vec())
        .skip(19)
        .collect();
    let mut expected = vec![0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67, 0x4D, 0x00, 0x1E];
    expected.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xEE, 0x3C, 0x80, 0, 0, 0, 1]);
    expected.extend_from_slice(&nal);
    assert_eq!(es, expected);

    // An inter frame: no random access, PCR only; CC continues.
    let start = out.len();
    assert!(
        m.push(&video(1040, 0, false, &[0, 0, 0, 2, 0x41, 0x9A]), &mut out)
            .unwrap()
    );
    let p = &out[start..];
    assert_eq!(p.len(), TS_PACKET_LEN);
    assert_eq!(p[3], 0x30 | 3, "cc 3 after three packets");
    assert_eq!(p[5], 0x10, "PCR without RAI");
}

#[test]
fn negative_cts_is_clamped_and_timestamps_wrap() {
    let mut m = configured();
    let mut out = BytesMut::new();
    m.push(&video(0, -40, false, &[0, 0, 0, 1, 0x41]), &mut out)
        .unwrap();
    let pes = payload(&out);
    assert_eq!(
        ts5(&pes[9..]),
        TS_TIMESTAMP_OFFSET_90K,
        "pts clamped to dts"
    );
    assert_eq!(ts5(&pes[14..]), TS_TIMESTAMP_OFFSET_90K);
    // A dts past 2^33 / 90 ms wraps to 33 bits.
    let mut out = BytesMut::new();
    m.push(&video(95_443_718, 0, false, &[0, 0, 0, 1, 0x41]), &mut out)
        .unwrap();
    let pes = payload(&out);
    assert_eq!(
        ts5(&pes[14..]),
        (95_443_718u64 * 90 + TS_TIMESTAMP_OFFSET_90K) & TIMESTAMP_MASK
    );
}

#[test]
fn audio_pes_layout() {
    let mut m = configured();
    let mut out = BytesMut::new();
    let aac = [0x21u8; 300];
    assert!(m.push(&audio(2000, &aac), &mut out).unwrap());
    assert_eq!(out.len(), 2 * TS_PACKET_LEN);
    let first = &out[..TS_PACKET_LEN];
    assert_eq!(pid(first), AUDIO_PID);
    assert_eq!(
        first[3], 0x10,
        "no adaptation field when video carries the PCR"
    );
    let pes = payload(first);
    let len = u16::from_be_bytes([pes[4], pes[5]]);
    assert_eq!(usize::from(len), 3 + 5 + 7 + 300, "exact PES_packet_length");
    assert_eq!(&pes[..4], &[0, 0, 1, 0xC0]);
    assert_eq!((pes[7], pes[8], pes[9] >> 4), (0x80, 5, 0b0010));
    assert_eq!(ts5(&pes[9..]), 180_000 + TS_TIMESTAMP_OFFSET_90K);
    assert_eq!(&pes[14..21], &[0xFF, 0xF1, 0x4C, 0x80, 0x26, 0x7F, 0xFC]);
    let es: Vec<u8> = out
        .chunks(TS_PACKET_LEN)
        .flat_map(|p| payload(p).to_vec())
        .collect();
    assert_eq!(es.len(), 6 + usize::from(len));
    assert_eq!(&es[21..], &aac[..]);
}

#[test]
fn audio_only_carries_pcr() {
    let mut m = TsMuxer::new();
    let mut out = BytesMut::new();
    m.push(&aac_header(), &mut out).unwrap();
    assert!(m.push(&audio(0, &[1, 2, 3]), &mut out).unwrap());
    assert_eq!(out.len(), TS_PACKET_LEN);
    assert_eq!(
        (out[3] & 0x30, out[5]),
        (0x30, 0x50),
        "PCR + RAI on the audio PID"
    );
}

#[test]
fn errors_and_ignored_frames() {
    let mut m = TsMuxer::new();
    let mut out = BytesMut::new();
    assert_eq!(
        m.push(&video(0, 0, true, &[0, 0, 0, 1, 0x65]), &mut out),
        Err(TsError::MissingSequenceHeader { codec: Codec::H264 })
    );
    assert_eq!(
        m.push(&audio(0, &[1]), &mut out),
        Err(TsError::MissingSequenceHeader { codec: Codec::Aac })
    );
    let mut m = configured();
    // H.265 coded frame after an H.264 header.
    let hevc = frame(
        MediaKind::Video,
        Codec::H265,
        FrameRole::Coded,
        0,
        0,
        true,
        &[0, 0, 0, 1, 0x26],
    );
    assert_eq!(
        m.push(&hevc, &mut out),
        Err(TsError::MissingSequenceHeader { codec: Codec::H265 })
    );
    // Truncated AVCC: error, nothing written, counters untouched.
    assert!(matches!(
        m.push(&video(0, 0, true, &[0, 0, 0, 9, 0x65, 1]), &mut out),
        Err(TsError::Codec(MediaError::BadNalLength {
            offset: 0,
            len: 9,
            payload_len: 6
        }))
    ));
    assert!(matches!(
        m.push(&audio(0, &vec![0; MAX_AAC_FRAME_LEN + 1]), &mut out),
        Err(TsError::Codec(MediaError::AacFrameTooLarge { .. }))
    ));
    // A bad sequence header is an error and keeps the old configuration.
    let bad = frame(
        MediaKind::Video,
        Codec::H264,
        FrameRole::SequenceHeader,
        0,
        0,
        true,
        &[1, 2],
    );
    assert!(matches!(
        m.push(&bad, &mut out),
        Err(TsError::Codec(MediaError::InvalidCodecConfig { .. }))
    ));
    assert!(m.has_video());
    // Frames that produce nothing.
    let ignored = [
        frame(
            MediaKind::Data,
            Codec::Script,
            FrameRole::Metadata,
            0,
            0,
            false,
            b"\x02\x00\x0AonMetaData",
        ),
        frame(
            MediaKind::Video,
            Codec::H264,
            FrameRole::SequenceEnd,
            0,
            0,
            false,
            &[],
        ),
        frame(
            MediaKind::Audio,
            Codec::Opus,
            FrameRole::Coded,
            0,
            0,
            true,
            &[1, 2],
        ),
        frame(
            MediaKind::Video,
            Codec::Av1,
            FrameRole::Coded,
            0,
            0,
            true,
            &[1, 2],
        ),
        video(0, 0, false, &[]),
        audio(0, &[]),
    ];
    for f in &ignored {
        assert_eq!(m.push(f, &mut out), Ok(false), "{f:?}");
    }
    assert!(out.is_empty());
    // The video counter did not move: the next packet has cc 0.
    m.push(&video(0, 0, false, &[0, 0, 0, 1, 0x41]), &mut out)
        .unwrap();
    assert_eq!(out[3] & 0x0F, 0);
}

#[test]
fn hevc_stream_type_and_keyframe() {
    // hvcC: 21 bytes, lengthSizeMinusOne 3, arrays VPS, SPS, PPS with one NAL unit each.
    let mut hvcc = vec![1u8; 21];
    hvcc.extend_from_slice(&[0xFF, 3]);
    for nal in [[0x40u8, 0x01, 0x0C], [0x42, 0x01, 0x01], [0x44, 0x01, 0xC1]] {
        hvcc.extend_from_slice(&[0x80 | (nal[0] >> 1), 0, 1, 0, 3]);
        hvcc.extend_from_slice(&nal);
    }
    let mut m = TsMuxer::new();
    let mut out = BytesMut::new();
    let header = frame(
        MediaKind::Video,
        Codec::H265,
        FrameRole::SequenceHeader,
        0,
        0,
        true,
        &hvcc,
    );
    assert!(!m.push(&header, &mut out).unwrap());
    assert_eq!(m.video_codec(), Some(Codec::H265));
    m.write_tables(&mut out);
    let pmt = &out[TS_PACKET_LEN + 5..];
    assert_eq!(
        (pmt[8], pmt[9], pmt[12], pmt[13], pmt[14]),
        (0xE1, 0x00, 0x24, 0xE1, 0x00)
    );
    let mut out = BytesMut::new();
    // CRA_NUT (21) with the keyframe flag.
    let coded = frame(
        MediaKind::Video,
        Codec::H265,
        FrameRole::Coded,
        0,
        0,
        true,
        &[0, 0, 0, 3, 0x2A, 0x01, 0xAB],
    );
    assert!(m.push(&coded, &mut out).unwrap());
    assert_eq!(out[5], 0x50, "random access + PCR");
    let es = &payload(&out)[19..];
    assert_eq!(
        es,
        [
            0, 0, 0, 1, 0x46, 0x01, 0x50, 0, 0, 0, 1, 0x40, 0x01, 0x0C, 0, 0, 0, 1, 0x42, 0x01,
            0x01, 0, 0, 0, 1, 0x44, 0x01, 0xC1, 0, 0, 0, 1, 0x2A, 0x01, 0xAB
        ]
    );
}
