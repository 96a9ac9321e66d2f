//! AMF0 and AMF3 encoding and decoding for RTMP commands and FLV script data (sans-IO).
//!
//! ```
//! use amf::{Value, decode_all, encode};
//! let mut out = bytes::BytesMut::new();
//! encode(&Value::from("onStatus"), &mut out);
//! assert_eq!(decode_all(&out).unwrap(), vec![Value::from("onStatus")]);
//! ```
//!
//! Decoding never panics and every allocation is bounded by the limits below
//! and by the input length.
#![forbid(unsafe_code)]

pub mod amf0;
pub mod amf3;
mod error;
mod reader;
mod refs;
mod value;

pub use amf0::{Decoder, decode, decode_all, encode, encode_all};
pub use error::AmfError;
pub use value::Value;

/// Maximum nesting of containers (objects, arrays) inside one value.
pub const MAX_DEPTH: usize = 32;

/// Maximum number of elements in one container (and values in one `decode_all`).
pub const MAX_ELEMENTS: usize = 1 << 20;

/// Maximum entries in each reference table (objects, strings, traits).
pub const MAX_REFERENCES: usize = 1 << 16;

/// Maximum value nodes kept in reference tables plus copied out of them by
/// references, per decoder. Bounds "reference bombs" (each level referencing
/// the previous twice).
pub const MAX_REFERENCE_NODES: usize = 1 << 16;
