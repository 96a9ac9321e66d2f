//! `sluice-floor`: the HTTP-FLV fan-out cost floor (see the library docs).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sluice_floor::{Clip, FloorConfig, serve, server::DEFAULT_MAX_BACKLOG};

/// Writes one looping FLV clip to every HTTP client, as cheaply as possible.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// The FLV clip to loop.
    #[arg(long, default_value = "fixtures/demo.flv")]
    file: PathBuf,
    /// Batching window in ms: 0 writes each tag as it is due, N gathers N ms of tags.
    #[arg(long, default_value_t = 0)]
    batch_ms: u64,
    /// Unwritten bytes kept per player before it is dropped to the next keyframe.
    #[arg(long, default_value_t = DEFAULT_MAX_BACKLOG)]
    max_backlog: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let file =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let clip = Clip::from_flv(&file)?;
    let cfg = FloorConfig {
        batch_ms: args.batch_ms,
        max_backlog: args.max_backlog,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        eprintln!(
            "sluice-floor: http://{}/ (batch {} ms)",
            listener.local_addr()?,
            cfg.batch_ms
        );
        serve(listener, clip, cfg).await
    })
}
