//! The init segment: `ftyp` + `moov` (ISO/IEC 14496-12 8.2-8.8, sample entries from
//! ISO/IEC 14496-15 5.4 / 8.4 (avc1, hvc1), ISO/IEC 14496-14 5.6 (mp4a + esds) and the
//! Opus-in-ISOBMFF mapping 4.3 (Opus + dOps)).

use bytes::{BufMut, BytesMut};
use media::{Codec, MediaKind};

use crate::TrackConfig;
use crate::boxes::{begin_box, begin_full_box, end_box, put_unity_matrix};

/// Movie header timescale (the movie has no duration in a fragmented file).
const MOVIE_TIMESCALE: u32 = 1_000;

/// ISO-639-2/T "und" packed as three 5-bit letters (each minus 0x60).
const LANGUAGE_UND: u16 =
    ((b'u' as u16 - 0x60) << 10) | ((b'n' as u16 - 0x60) << 5) | (b'd' as u16 - 0x60);

/// tkhd flags: track_enabled | track_in_movie.
const TKHD_FLAGS: u32 = 0x3;

/// Writes an init segment: `ftyp` (major `iso6`, compatible `iso6 cmfc isom mp41 dash`) and
/// `moov` (mvhd, one trak per track, mvex with one trex per track). Track ids are index + 1.
pub fn write_init_segment(tracks: &[TrackConfig], out: &mut BytesMut) {
    let ftyp = begin_box(out, b"ftyp");
    out.put_slice(b"iso6");
    out.put_u32(0); // minor version
    for brand in [b"iso6", b"cmfc", b"isom", b"mp41", b"dash"] {
        out.put_slice(brand);
    }
    end_box(out, ftyp);

    let moov = begin_box(out, b"moov");
    write_mvhd(out, tracks.len());
    for (index, track) in tracks.iter().enumerate() {
        write_trak(out, track_id(index), track);
    }
    let mvex = begin_box(out, b"mvex");
    for index in 0..tracks.len() {
        let trex = begin_full_box(out, b"trex", 0, 0);
        out.put_u32(track_id(index));
        out.put_u32(1); // default_sample_description_index
        out.put_u32(0); // default_sample_duration
        out.put_u32(0); // default_sample_size
        out.put_u32(0); // default_sample_flags
        end_box(out, trex);
    }
    end_box(out, mvex);
    end_box(out, moov);
}

/// Track id of the track at `index` (1-based, saturating).
pub(crate) fn track_id(index: usize) -> u32 {
    u32::try_from(index)
        .unwrap_or(u32::MAX - 1)
        .saturating_add(1)
}

fn write_mvhd(out: &mut BytesMut, track_count: usize) {
    let mvhd = begin_full_box(out, b"mvhd", 0, 0);
    out.put_u32(0); // creation_time
    out.put_u32(0); // modification_time
    out.put_u32(MOVIE_TIMESCALE);
    out.put_u32(0); // duration: unknown (fragmented)
    out.put_u32(0x0001_0000); // rate 1.0
    out.put_u16(0x0100); // volume 1.0
    out.put_u16(0);
    out.put_u64(0);
    put_unity_matrix(out);
    for _ in 0..6 {
        out.put_u32(0); // pre_defined
    }
    out.put_u32(track_id(track_count)); // next_track_ID
    end_box(out, mvhd);
}

fn write_trak(out: &mut BytesMut, id: u32, track: &TrackConfig) {
    let video = track.kind == MediaKind::Video;
    let trak = begin_box(out, b"trak");

    let tkhd = begin_full_box(out, b"tkhd", 0, TKHD_FLAGS);
    out.put_u32(0); // creation_time
    out.put_u32(0); // modification_time
    out.put_u32(id);
    out.put_u32(0); // reserved
    out.put_u32(0); // duration
    out.put_u64(0); // reserved
    out.put_u16(0); // layer
    out.put_u16(0); // alternate_group
    out.put_u16(if video { 0 } else { 0x0100 }); // volume
    out.put_u16(0); // reserved
    put_unity_matrix(out);
    out.put_u32(fixed_16_16(track.width));
    out.put_u32(fixed_16_16(track.height));
    end_box(out, tkhd);

    let mdia = begin_box(out, b"mdia");
    let mdhd = begin_full_box(out, b"mdhd", 0, 0);
    out.put_u32(0); // creation_time
    out.put_u32(0); // modification_time
    out.put_u32(track.timescale);
    out.put_u32(0); // duration
    out.put_u16(LANGUAGE_UND);
    out.put_u16(0); // pre_defined
    end_box(out, mdhd);

    let hdlr = begin_full_box(out, b"hdlr", 0, 0);
    out.put_u32(0); // pre_defined
    out.put_slice(if video { b"vide" } else { b"soun" });
    out.put_slice(&[0; 12]); // reserved
    out.put_slice(if video {
        b"VideoHandler\0".as_slice()
    } else {
        b"SoundHandler\0".as_slice()
    });
    end_box(out, hdlr);

    let minf = begin_box(out, b"minf");
    if video {
        let vmhd = begin_full_box(out, b"vmhd", 0, 1);
        out.put_u16(0); // graphicsmode
        out.put_slice(&[0; 6]); // opcolor
        end_box(out, vmhd);
    } else {
        let smhd = begin_full_box(out, b"smhd", 0, 0);
        out.put_u16(0); // balance
        out.put_u16(0); // reserved
        end_box(out, smhd);
    }
    let dinf = begin_box(out, b"dinf");
    let dref = begin_full_box(out, b"dref", 0, 0);
    out.put_u32(1); // entry_count
    let url = begin_full_box(out, b"url ", 0, 1); // flag 1: media data is in this file
    end_box(out, url);
    end_box(out, dref);
    end_box(out, dinf);

    let stbl = begin_box(out, b"stbl");
    let stsd = begin_full_box(out, b"stsd", 0, 0);
    out.put_u32(1); // entry_count
    write_sample_entry(out, track);
    end_box(out, stsd);
    for empty in [b"stts", b"stsc", b"stco"] {
        let b = begin_full_box(out, empty, 0, 0);
        out.put_u32(0); // entry_count
        end_box(out, b);
    }
    let stsz = begin_full_box(out, b"stsz", 0, 0);
    out.put_u32(0); // sample_size
    out.put_u32(0); // sample_count
    end_box(out, stsz);
    end_box(out, stbl);
    end_box(out, minf);
    end_box(out, mdia);
    end_box(out, trak);
}

/// A pixel count as 16.16 fixed point (saturating for absurd sizes).
fn fixed_16_16(v: u32) -> u32 {
    v.min(0xFFFF) << 16
}

fn write_sample_entry(out: &mut BytesMut, track: &TrackConfig) {
    match track.codec {
        Codec::H264 => write_visual_entry(out, track, b"avc1", b"avcC"),
        Codec::H265 => write_visual_entry(out, track, b"hvc1", b"hvcC"),
        Codec::Opus => {
            let entry = begin_audio_entry(out, track, b"Opus");
            let dops = begin_box(out, b"dOps");
            out.put_slice(&track.config);
            end_box(out, dops);
            end_box(out, entry);
        }
        // TrackConfig only exists for the four supported codecs; AAC is the remaining one.
        _ => {
            let entry = begin_audio_entry(out, track, b"mp4a");
            write_esds(out, &track.config);
            end_box(out, entry);
        }
    }
}

fn write_visual_entry(out: &mut BytesMut, track: &TrackConfig, kind: &[u8; 4], config: &[u8; 4]) {
    let entry = begin_box(out, kind);
    out.put_slice(&[0; 6]); // reserved
    out.put_u16(1); // data_reference_index
    out.put_u16(0); // pre_defined
    out.put_u16(0); // reserved
    out.put_slice(&[0; 12]); // pre_defined
    out.put_u16(u16::try_from(track.width).unwrap_or(u16::MAX));
    out.put_u16(u16::try_from(track.height).unwrap_or(u16::MAX));
    out.put_u32(0x0048_0000); // horizresolution 72 dpi
    out.put_u32(0x0048_0000); // vertresolution 72 dpi
    out.put_u32(0); // reserved
    out.put_u16(1); // frame_count
    out.put_slice(&[0; 32]); // compressorname (empty Pascal string)
    out.put_u16(0x0018); // depth
    out.put_i16(-1); // pre_defined
    let cfg = begin_box(out, config);
    out.put_slice(&track.config);
    end_box(out, cfg);
    end_box(out, entry);
}

/// Writes an AudioSampleEntry header and returns its start (the caller adds the codec box).
fn begin_audio_entry(out: &mut BytesMut, track: &TrackConfig, kind: &[u8; 4]) -> usize {
    let entry = begin_box(out, kind);
    out.put_slice(&[0; 6]); // reserved
    out.put_u16(1); // data_reference_index
    out.put_u64(0); // reserved
    out.put_u16(track.channels);
    out.put_u16(16); // samplesize
    out.put_u16(0); // pre_defined
    out.put_u16(0); // reserved
    // 16.16 fixed point; rates above 65535 Hz do not fit and are written as 0 (the decoder
    // reads the real rate from the AudioSpecificConfig).
    let rate = if track.sample_rate > 0xFFFF {
        0
    } else {
        track.sample_rate << 16
    };
    out.put_u32(rate);
    entry
}

/// MPEG-4 descriptor tags (ISO/IEC 14496-1 7.2.2.1).
const ES_DESCR_TAG: u8 = 0x03;
const DECODER_CONFIG_DESCR_TAG: u8 = 0x04;
const DEC_SPECIFIC_INFO_TAG: u8 = 0x05;
const SL_CONFIG_DESCR_TAG: u8 = 0x06;
/// objectTypeIndication for MPEG-4 Audio (ISO/IEC 14496-3).
const OBJECT_TYPE_MPEG4_AUDIO: u8 = 0x40;
/// streamType 5 (audio) << 2 | upStream 0 | reserved 1.
const STREAM_TYPE_AUDIO: u8 = (0x05 << 2) | 1;

/// The esds box: ES_Descriptor > DecoderConfigDescriptor > DecoderSpecificInfo (the ASC),
/// then an SLConfigDescriptor with the predefined MP4 value 2.
fn write_esds(out: &mut BytesMut, asc: &[u8]) {
    let esds = begin_full_box(out, b"esds", 0, 0);
    let dsi_len = asc.len();
    let dcd_len = 13 + descriptor_len(dsi_len);
    let es_len = 3 + descriptor_len(dcd_len) + descriptor_len(1);
    put_descriptor_header(out, ES_DESCR_TAG, es_len);
    out.put_u16(0); // ES_ID
    out.put_u8(0); // no dependency, URL or OCR stream
    put_descriptor_header(out, DECODER_CONFIG_DESCR_TAG, dcd_len);
    out.put_u8(OBJECT_TYPE_MPEG4_AUDIO);
    out.put_u8(STREAM_TYPE_AUDIO);
    out.put_slice(&[0; 3]); // bufferSizeDB
    out.put_u32(0); // maxBitrate
    out.put_u32(0); // avgBitrate
    put_descriptor_header(out, DEC_SPECIFIC_INFO_TAG, dsi_len);
    out.put_slice(asc);
    put_descriptor_header(out, SL_CONFIG_DESCR_TAG, 1);
    out.put_u8(2); // predefined: MP4 file
    end_box(out, esds);
}

/// Total length of a descriptor with a `payload`-byte body (tag + size bytes + body).
fn descriptor_len(payload: usize) -> usize {
    1 + size_field_len(payload) + payload
}

/// Bytes needed for the 7-bits-per-byte expandable size field (at most 4: 2^28 - 1).
fn size_field_len(size: usize) -> usize {
    match size {
        0..=0x7F => 1,
        0x80..=0x3FFF => 2,
        0x4000..=0x1F_FFFF => 3,
        _ => 4,
    }
}

fn put_descriptor_header(out: &mut BytesMut, tag: u8, size: usize) {
    out.put_u8(tag);
    let size = size.min(0x0FFF_FFFF);
    let n = size_field_len(size);
    for i in (0..n).rev() {
        let more = if i > 0 { 0x80 } else { 0 };
        out.put_u8(((size >> (7 * i)) & 0x7F) as u8 | more);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::walk::{Bx, all, boxes, names, one, u16_at, u32_at};
    use crate::config::tests::{demo_headers, header};

    fn demo_tracks() -> Vec<TrackConfig> {
        let (avcc, asc) = demo_headers();
        vec![
            TrackConfig::from_sequence_header(&header(MediaKind::Video, Codec::H264, &avcc))
                .unwrap(),
            TrackConfig::from_sequence_header(&header(MediaKind::Audio, Codec::Aac, &asc)).unwrap(),
        ]
    }

    /// stsd's single sample entry of a trak.
    fn sample_entry<'a>(trak: &Bx<'a>) -> Bx<'a> {
        let stsd = trak.child("mdia").child("minf").child("stbl").child("stsd");
        assert_eq!(u32_at(stsd.body, 4), 1);
        let entries = stsd.children(8);
        assert_eq!(entries.len(), 1);
        entries[0]
    }

    #[test]
    fn init_structure() {
        let tracks = demo_tracks();
        let mut out = BytesMut::new();
        write_init_segment(&tracks, &mut out);
        let top = boxes(&out);
        assert_eq!(names(&top), ["ftyp", "moov"]);
        assert_eq!(&top[0].body[..8], b"iso6\0\0\0\0");
        assert!(top[0].body[8..].chunks(4).any(|b| b == b"cmfc"));
        let moov = top[1].children(0);
        assert_eq!(names(&moov), ["mvhd", "trak", "trak", "mvex"]);
        let mvhd = one(&moov, "mvhd");
        assert_eq!(mvhd.body.len(), 100);
        assert_eq!(u32_at(mvhd.body, 96), 3); // next_track_ID

        let traks = all(&moov, "trak");
        for (i, trak) in traks.iter().enumerate() {
            let tkhd = trak.child("tkhd");
            assert_eq!(tkhd.body.len(), 84);
            assert_eq!(u32_at(tkhd.body, 12), i as u32 + 1);
            let mdia = trak.child("mdia");
            assert_eq!(names(&mdia.children(0)), ["mdhd", "hdlr", "minf"]);
            let stbl = mdia.child("minf").child("stbl");
            assert_eq!(
                names(&stbl.children(0)),
                ["stsd", "stts", "stsc", "stco", "stsz"]
            );
            assert_eq!(
                names(&mdia.child("minf").child("dinf").child("dref").children(8)),
                ["url "]
            );
        }
        // Video: 640x360, 90 kHz, avc1 with the fixture's avcC verbatim.
        let tkhd = traks[0].child("tkhd");
        assert_eq!(
            (u32_at(tkhd.body, 76), u32_at(tkhd.body, 80)),
            (640 << 16, 360 << 16)
        );
        let mdhd = traks[0].child("mdia").child("mdhd");
        assert_eq!(u32_at(mdhd.body, 12), 90_000);
        assert_eq!(u16_at(mdhd.body, 20), LANGUAGE_UND);
        assert_eq!(&traks[0].child("mdia").child("hdlr").body[8..12], b"vide");
        let avc1 = sample_entry(&traks[0]);
        assert_eq!(avc1.name(), "avc1");
        assert_eq!((u16_at(avc1.body, 24), u16_at(avc1.body, 26)), (640, 360));
        let avcc = one(&avc1.children(78), "avcC");
        assert_eq!(avcc.body, &tracks[0].config[..]);

        // Audio: 48 kHz, mp4a with esds carrying the ASC.
        let mdhd = traks[1].child("mdia").child("mdhd");
        assert_eq!(u32_at(mdhd.body, 12), 48_000);
        assert_eq!(&traks[1].child("mdia").child("hdlr").body[8..12], b"soun");
        let mp4a = sample_entry(&traks[1]);
        assert_eq!(mp4a.name(), "mp4a");
        assert_eq!(u16_at(mp4a.body, 16), 2); // channelcount
        assert_eq!(u32_at(mp4a.body, 24), 48_000 << 16);
        let esds = one(&mp4a.children(28), "esds");
        let asc = &tracks[1].config[..];
        let mut expect = vec![0, 0, 0, 0, 0x03, 23 + asc.len() as u8, 0, 0, 0];
        expect.extend_from_slice(&[0x04, 15 + asc.len() as u8, 0x40, 0x15, 0, 0, 0]);
        expect.extend_from_slice(&[0; 8]);
        expect.extend_from_slice(&[0x05, asc.len() as u8]);
        expect.extend_from_slice(asc);
        expect.extend_from_slice(&[0x06, 1, 2]);
        assert_eq!(esds.body, &expect[..]);

        let mvex = one(&moov, "mvex").children(0);
        assert_eq!(names(&mvex), ["trex", "trex"]);
        assert_eq!(u32_at(mvex[1].body, 4), 2);
        assert_eq!(u32_at(mvex[1].body, 8), 1);
    }

    #[test]
    fn hevc_and_opus_entries() {
        let hvcc = media::fixtures::hevc_record(1280, 720);
        let tracks = vec![
            TrackConfig::from_sequence_header(&header(MediaKind::Video, Codec::H265, &hvcc))
                .unwrap(),
            TrackConfig::from_sequence_header(&header(MediaKind::Audio, Codec::Opus, &[])).unwrap(),
        ];
        let mut out = BytesMut::new();
        write_init_segment(&tracks, &mut out);
        let top = boxes(&out);
        let traks = all(&top[1].children(0), "trak");
        let hvc1 = sample_entry(&traks[0]);
        assert_eq!(hvc1.name(), "hvc1");
        assert_eq!((u16_at(hvc1.body, 24), u16_at(hvc1.body, 26)), (1280, 720));
        assert_eq!(one(&hvc1.children(78), "hvcC").body, &hvcc[..]);
        let opus = sample_entry(&traks[1]);
        assert_eq!(opus.name(), "Opus");
        assert_eq!(u32_at(opus.body, 24), 48_000 << 16);
        assert_eq!(
            one(&opus.children(28), "dOps").body,
            &[0, 2, 0, 0, 0, 0, 0xBB, 0x80, 0, 0, 0]
        );
    }

    #[test]
    fn descriptor_sizes() {
        let mut out = BytesMut::new();
        put_descriptor_header(&mut out, 5, 0x7F);
        put_descriptor_header(&mut out, 5, 0x80);
        put_descriptor_header(&mut out, 5, 0x4000);
        assert_eq!(&out[..], &[5, 0x7F, 5, 0x81, 0x00, 5, 0x81, 0x80, 0x00]);
        assert_eq!(descriptor_len(0x80), 0x83);
    }
}
