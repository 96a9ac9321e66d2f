//! The cost floor for HTTP-FLV fan-out.
//!
//! A trivial program that does no protocol work: it answers every HTTP request with the same
//! FLV stream and, on a single thread, writes one shared buffer per batch to every player
//! with one non-blocking write each. Sluice's fan-out benchmark compares against it.
//!
//! - [`request`]: reading (and discarding) the request header, bounded.
//! - [`schedule`]: the looping real-time schedule and batching windows, as pure functions.
//! - [`server`]: the accept and fan-out loop.
#![forbid(unsafe_code)]

pub mod request;
pub mod schedule;
pub mod server;

pub use schedule::Clip;
pub use server::{FloorConfig, serve};
