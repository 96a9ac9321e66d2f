//! WebRTC media without the WebRTC stack: what crosses between the hub and RTP.
//!
//! The crate's rule: sans-IO and independent of the WebRTC engine (str0m lives in
//! `server-webrtc`). It converts hub frames (FLV tag bodies) to the payloads an RTP
//! packetizer takes for each codec ([`video_out`]: H.264 and H.265 as Annex B with their
//! parameter sets, AV1 OBUs, VP8/VP9 frames) and depacketized access units back to hub
//! frames ([`video_in`]); Opus goes both ways as it came ([`audio`]); and it reads what clients send in SDP ([`sdp`]: offers;
//! [`sdpfrag`]: trickle and ICE-restart fragments). The bitstream parsers and record formats
//! it needs (avcC, hvcC, SPS, OBUs, `av1C`, VP8/VP9 headers, `vpcC`, NAL framing) are
//! `media`'s; the hub frames it makes are FLV tag bodies, built with `flv`'s Enhanced RTMP
//! writer (the frame model's canonical bytes, not a codec helper).
//! All input is hostile: bounded, never panicking, fuzzed (`webrtc_video`, `whep_sdp`,
//! `whep_sdpfrag`).
#![forbid(unsafe_code)]

pub mod audio;
pub mod av1;
pub mod h264;
pub mod hevc;
pub mod sdp;
pub mod sdpfrag;
pub mod stun;
pub mod video_in;
pub mod video_out;
pub mod vp;
