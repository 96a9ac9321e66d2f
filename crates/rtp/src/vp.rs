//! VP8 and VP9 for WHIP ingest: keyframe detection from the frame headers str0m
//! depacketizes, and the VPCodecConfigurationRecord (`vpcC`) Enhanced RTMP carries in a
//! `vp08`/`vp09` SequenceStart. The header parsers and the record live in [`media::vp`]
//! and are re-exported here for the callers of this module.

pub use media::vp::{VPCC_LEN, VpInfo, vp8_keyframe, vp9_keyframe};
