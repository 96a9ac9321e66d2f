//! The demo fixture muxed and demuxed again, packet by packet, with `mpeg2ts-reader`.

use bytes::BytesMut;
use media::{Codec, Frame, FrameRole, MediaKind};
use mpeg2ts_reader::demultiplex::{
    self, DemuxContext, FilterChangeset, FilterRequest, NullPacketFilter, PatPacketFilter,
    PmtPacketFilter,
};
use mpeg2ts_reader::packet::Packet;
use mpeg2ts_reader::pes::{self, ElementaryStreamConsumer, PesContents, PesHeader, PtsDts};
use mpeg2ts_reader::{StreamType, packet_filter_switch};

use crate::{AUDIO_PID, PCR_DELAY_90K, TS_PACKET_LEN, TS_TIMESTAMP_OFFSET_90K, TsMuxer, VIDEO_PID};

const DEMO: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/demo.flv"
));

/// The demo fixture's frames (the demuxer's tests use them too).
pub(crate) fn demo_frames() -> Vec<Frame> {
    flv::read_all_tags(DEMO)
        .unwrap()
        .into_iter()
        .map(|tag| flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body).unwrap())
        .collect()
}

/// One PES packet as the reader reassembled it.
#[derive(Debug)]
pub struct DemuxedPes {
    pid: u16,
    pts: Option<u64>,
    dts: Option<u64>,
    payload: Vec<u8>,
}

packet_filter_switch! {
    Filters<Ctx> {
        Pes: pes::PesPacketFilter<Ctx, Collector>,
        Pat: PatPacketFilter<Ctx>,
        Pmt: PmtPacketFilter<Ctx>,
        Null: NullPacketFilter<Ctx>,
    }
}

/// The demux context: records the streams the PMT announced and the PES packets seen.
#[derive(Default)]
pub struct Ctx {
    changeset: FilterChangeset<Filters>,
    streams: Vec<(StreamType, u16)>,
    pes: Vec<DemuxedPes>,
    continuity_errors: usize,
}

impl DemuxContext for Ctx {
    type F = Filters;

    fn filter_changeset(&mut self) -> &mut FilterChangeset<Filters> {
        &mut self.changeset
    }

    fn construct(&mut self, req: FilterRequest<'_, '_>) -> Filters {
        match req {
            FilterRequest::ByPid(mpeg2ts_reader::psi::pat::PAT_PID) => {
                Filters::Pat(PatPacketFilter::default())
            }
            FilterRequest::ByStream {
                stream_type,
                stream_info,
                ..
            } => {
                let pid = u16::from(stream_info.elementary_pid());
                if !self.streams.contains(&(stream_type, pid)) {
                    self.streams.push((stream_type, pid));
                }
                Filters::Pes(pes::PesPacketFilter::new(Collector { pid, current: None }))
            }
            FilterRequest::Pmt {
                pid,
                program_number,
            } => Filters::Pmt(PmtPacketFilter::new(pid, program_number)),
            _ => Filters::Null(NullPacketFilter::default()),
        }
    }
}

/// Collects one elementary stream's PES packets into the context.
pub struct Collector {
    pid: u16,
    current: Option<DemuxedPes>,
}

impl ElementaryStreamConsumer<Ctx> for Collector {
    fn start_stream(&mut self, _ctx: &mut Ctx) {}

    fn begin_packet(&mut self, _ctx: &mut Ctx, header: PesHeader<'_>) {
        let PesContents::Parsed(Some(parsed)) = header.contents() else {
            panic!("PES without a parsed header on {:#x}", self.pid);
        };
        let (pts, dts) = match parsed.pts_dts() {
            Ok(PtsDts::PtsOnly(Ok(pts))) => (Some(pts.value()), None),
            Ok(PtsDts::Both {
                pts: Ok(pts),
                dts: Ok(dts),
            }) => (Some(pts.value()), Some(dts.value())),
            other => panic!("bad timestamps {other:?}"),
        };
        self.current = Some(DemuxedPes {
            pid: self.pid,
            pts,
            dts,
            payload: parsed.payload().to_vec(),
        });
    }

    fn continue_packet(&mut self, _ctx: &mut Ctx, data: &[u8]) {
        if let Some(current) = &mut self.current {
            current.payload.extend_from_slice(data);
        }
    }

    fn end_packet(&mut self, ctx: &mut Ctx) {
        ctx.pes.extend(self.current.take());
    }

    fn continuity_error(&mut self, ctx: &mut Ctx) {
        ctx.continuity_errors += 1;
    }
}

#[test]
fn demo_fixture_demuxes() {
    let frames = demo_frames();
    let mut muxer = TsMuxer::new();
    let mut out = BytesMut::new();
    let mut fed_video = Vec::new();
    let mut fed_audio = Vec::new();
    let mut keyframes = 0;
    // The fixture's first AAC frame precedes the first keyframe (and so the first PAT/PMT);
    // a demuxer cannot see it.
    let mut audio_before_tables = 0;
    for f in &frames {
        if f.is_video_keyframe() {
            muxer.write_tables(&mut out);
            keyframes += 1;
        }
        let wrote = muxer.push(f, &mut out).unwrap();
        assert_eq!(
            wrote,
            f.role == FrameRole::Coded && f.kind != MediaKind::Data
        );
        if wrote {
            match f.kind {
                MediaKind::Video => fed_video.push(f),
                _ if keyframes == 0 => audio_before_tables += 1,
                _ => fed_audio.push(f),
            }
        }
    }
    assert!(keyframes >= 4 && fed_video.len() > 90 && fed_audio.len() > 150);
    assert_eq!(out.len() % TS_PACKET_LEN, 0);

    // Packet level: sync bytes, PIDs, PCR and random access on video PES starts.
    let mut pcrs = Vec::new();
    let mut random_access = 0;
    for chunk in out.chunks(TS_PACKET_LEN) {
        let p = Packet::new(chunk);
        let pid = u16::from(p.pid());
        assert!(
            [0, 0x1000, VIDEO_PID, AUDIO_PID].contains(&pid),
            "pid {pid:#x}"
        );
        if let Some(af) = p.adaptation_field() {
            if let Ok(pcr) = af.pcr() {
                assert_eq!(pid, VIDEO_PID, "PCR on the video PID");
                assert!(p.payload_unit_start_indicator());
                pcrs.push(pcr.base());
            }
            random_access += usize::from(af.random_access_indicator());
        }
    }
    assert_eq!(pcrs.len(), fed_video.len(), "one PCR per video PES");
    assert!(pcrs.windows(2).all(|w| w[0] < w[1]), "PCR increases");
    assert_eq!(random_access, keyframes);

    // Feed the demuxer one packet at a time.
    let mut ctx = Ctx::default();
    let mut demux = demultiplex::Demultiplex::new(&mut ctx);
    for chunk in out.chunks(TS_PACKET_LEN) {
        demux.push(&mut ctx, chunk);
    }
    assert_eq!(
        ctx.streams,
        [(StreamType::H264, VIDEO_PID), (StreamType::ADTS, AUDIO_PID)]
    );
    assert_eq!(ctx.continuity_errors, 0);

    let video: Vec<&DemuxedPes> = ctx.pes.iter().filter(|p| p.pid == VIDEO_PID).collect();
    let audio: Vec<&DemuxedPes> = ctx.pes.iter().filter(|p| p.pid == AUDIO_PID).collect();
    // An unbounded video PES ends when the next one starts, so the last is never closed.
    assert_eq!(video.len(), fed_video.len() - 1);
    // Bounded audio PES packets are also only closed by the next one.
    assert_eq!(audio.len(), fed_audio.len() - 1);
    assert_eq!(audio_before_tables, 1);
    for (pes, f) in video.iter().zip(&fed_video) {
        let dts = f.dts * 90 + TS_TIMESTAMP_OFFSET_90K;
        assert_eq!(pes.dts, Some(dts));
        assert_eq!(pes.pts, Some(dts + f.cts as u64 * 90));
        assert!(
            pes.payload.starts_with(&[0, 0, 0, 1, 0x09, 0xF0]),
            "AUD first"
        );
        if f.keyframe {
            assert_eq!(pes.payload[10] & 0x1F, 7, "SPS after the AUD on keyframes");
        }
        assert_eq!(f.codec, Codec::H264);
    }
    for (pes, f) in audio.iter().zip(&fed_audio) {
        assert_eq!(pes.pts, Some(f.dts * 90 + TS_TIMESTAMP_OFFSET_90K));
        assert_eq!(pes.dts, None);
        assert_eq!(&pes.payload[..2], &[0xFF, 0xF1], "ADTS sync");
        assert_eq!(&pes.payload[7..], &f.payload()[..]);
    }
    assert!(pcrs[0] + PCR_DELAY_90K == fed_video[0].dts * 90 + TS_TIMESTAMP_OFFSET_90K);
}
