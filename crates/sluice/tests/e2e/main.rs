//! Sluice's end-to-end tests, in one test binary: each file of `tests/` would be a binary of
//! its own, and every one of them links the whole server (str0m, aws-lc, libopus, FDK AAC),
//! which cost CI more than running the tests. Add new end-to-end tests as a module here, not
//! as a new file in `tests/`.
//!
//! The tests run in parallel threads of one process. What used to rely on a process of its
//! own does not any more: servers bind port 0, scratch files go to `common::temp_dir`, and the
//! tests that measure the whole process (descriptors, resident memory, CPU time) run in a
//! child process of their own through `common::own_process`. The scripts and pages the tests
//! drive (Chromium, aiortc, the metrics parser) stay in `tests/console`, `tests/webrtc` and
//! `tests/metrics`.

mod common;
mod webrtc_support;

mod auth;
mod auth_tokens;
mod bench;
mod cli;
mod cluster;
mod console;
mod faults;
mod hls;
mod interop;
mod ladder;
mod limits;
mod live;
mod observability;
mod record;
mod rooms;
mod rtmp_memory;
mod security_http;
mod srt;
mod tls;
mod vod;
mod webhooks;
mod webrtc;
mod webrtc_audio;
mod webrtc_codecs;
mod webrtc_loss;
mod webrtc_pending;
mod webrtc_publish_page;
mod webrtc_restart;
mod webrtc_tcp;
mod whip;
