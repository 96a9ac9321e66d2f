//! Small codec-parameter parsers for stream info and metrics.
//!
//! * [`parse_avc_decoder_config`]: AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3),
//!   the body of an AVC sequence header after the 5-byte FLV video header.
//! * [`parse_sps`]: H.264 seq_parameter_set_data (ITU-T H.264 7.3.2.1.1) up to the frame
//!   cropping fields: profile, level, chroma format, bit depth, width and height.
//! * [`parse_audio_specific_config`]: AAC AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1),
//!   the body of an AAC sequence header after the 2-byte FLV audio header.
//!
//! All are bounded (see [`MAX_SPS_LEN`]) and return [`crate::FlvError::InvalidCodecConfig`]
//! on malformed input.

mod aac;
mod avc;
mod bits;

pub use aac::{AudioSpecificConfig, SAMPLE_RATES, parse_audio_specific_config};
pub use avc::{AvcDecoderConfig, MAX_SPS_LEN, Sps, parse_avc_decoder_config, parse_sps};
pub use bits::unescape_rbsp;
