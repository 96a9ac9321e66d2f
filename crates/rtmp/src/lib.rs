//! RTMP handshake, chunk stream and server session as a sans-IO state machine.
//!
//! Layers: [`handshake`] (C0/C1/C2), [`chunk`] (chunk stream decoder and
//! encoder helpers), [`message`] (control messages, user control events,
//! aggregates), [`command`] (AMF commands), [`session`] (the server
//! NetConnection/NetStream state machine) and [`client`] (the client one).
//! Nothing here touches sockets or clocks; media payloads (including
//! Enhanced RTMP) pass through untouched.
#![forbid(unsafe_code)]

pub mod chunk;
pub mod client;
pub mod command;
mod error;
pub mod handshake;
pub mod incoming;
pub mod message;
pub mod session;

pub use client::{ClientConfig, ClientEvent, ClientSession, ClientState};
pub use error::RtmpError;
pub use session::{ServerConfig, ServerEvent, ServerSession};
