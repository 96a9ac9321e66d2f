//! `sluice`: the media server binary. Parses flags, loads the configuration, starts the
//! servers, and stops them cleanly on SIGINT/SIGTERM.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sluice::Config;
use sluice::configuration::LogFormat;

/// How long shutdown waits for connections to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Sluice: a real-time audio/video media server.
///
/// Publish with RTMP to rtmp://HOST/{app}/{stream}; play it over RTMP at the same URL, or over
/// HTTP-FLV and WebSocket-FLV at http://HOST:8080/{app}/{stream}.flv.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Configuration file (TOML). Without it the compiled-in defaults apply.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// RTMP listen address (overrides [rtmp] listen).
    #[arg(long, value_name = "ADDR")]
    rtmp_listen: Option<SocketAddr>,
    /// HTTP listen address (overrides [http] listen).
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
    /// RTMPS listen address (overrides [tls] rtmps_listen; used when a certificate is set).
    #[arg(long, value_name = "ADDR")]
    rtmps_listen: Option<SocketAddr>,
    /// HTTPS/WSS listen address (overrides [tls] https_listen; used when a certificate is set).
    #[arg(long, value_name = "ADDR")]
    https_listen: Option<SocketAddr>,
    /// WebRTC (WHEP) listen address (overrides [webrtc] listen, and tcp_listen unless ICE-TCP
    /// is disabled: UDP and ICE-TCP then share this address).
    #[arg(long, value_name = "ADDR")]
    webrtc_listen: Option<SocketAddr>,
    /// SRT listen address (overrides [srt] listen).
    #[arg(long, value_name = "ADDR")]
    srt_listen: Option<SocketAddr>,
    /// Log filter such as info, debug or sluice_server=debug (overrides [log] level).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Publish a built-in looping test clip at live/demo.
    #[arg(long)]
    demo: bool,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let text = match &cli.config {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?,
        ),
        None => None,
    };
    let mut cfg = Config::load(text.as_deref(), std::env::vars())?;
    if let Some(a) = cli.rtmp_listen {
        cfg.rtmp.listen = a;
    }
    if let Some(a) = cli.http_listen {
        cfg.http.listen = a;
    }
    if let Some(a) = cli.rtmps_listen {
        cfg.tls.rtmps_listen = a;
    }
    if let Some(a) = cli.https_listen {
        cfg.tls.https_listen = a;
    }
    if let Some(a) = cli.webrtc_listen {
        cfg.webrtc.listen = a;
        if !cfg.webrtc.tcp_listen.trim().is_empty() {
            cfg.webrtc.tcp_listen = a.to_string();
        }
    }
    if let Some(a) = cli.srt_listen {
        cfg.srt.listen = a;
    }
    if let Some(l) = &cli.log_level {
        cfg.log.level = l.clone();
    }
    cfg.validate()?;
    Ok(cfg)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg = load_config(&cli)?;
    if cli.print_config {
        print!("{}", cfg.to_toml());
        return Ok(());
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
        .with_context(|| format!("log level {:?}", cfg.log.level))?;
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    match cfg.log.format {
        LogFormat::Text => {
            // Control characters in a record (a client's text) are written escaped.
            let ansi = std::io::stderr().is_terminal();
            fmt.with_ansi(ansi)
                .with_writer(move || sluice::log::EscapedStderr { ansi })
                .init()
        }
        LogFormat::Json => fmt
            .with_writer(std::io::stderr)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    raise_descriptor_limit(&cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(cfg, cli.demo))
}

/// Descriptors the server may need besides its TCP connections: listeners, the WebRTC UDP
/// sockets, some ICE-TCP connections, files (recordings, VOD), and the runtime's own.
const DESCRIPTOR_HEADROOM: u64 = 1024;

/// Raises the soft limit of open descriptors (often 1,024) towards the hard limit, so
/// `limits.max_connections` connections can actually be open; warns when the hard limit is
/// too low for it.
fn raise_descriptor_limit(cfg: &Config) {
    let want = cfg.limits.max_connections as u64 + DESCRIPTOR_HEADROOM;
    match rlimit::increase_nofile_limit(want) {
        Ok(got) if got < want => tracing::warn!(
            got,
            want,
            "the descriptor limit (ulimit -n) is below what limits.max_connections needs: \
             connections beyond it fail at accept"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the descriptor limit: {e}"),
    }
}

async fn run(cfg: Config, demo: bool) -> anyhow::Result<()> {
    let server = sluice::start(cfg).await?;
    if demo {
        server.start_demo()?;
        let (r, h) = (server.rtmp_addr(), server.http_addr());
        tracing::info!(
            "demo: ffplay rtmp://{}:{}/live/demo  or  ffplay http://{}:{}/live/demo.flv",
            display_host(r),
            r.port(),
            display_host(h),
            h.port()
        );
    }
    wait_for_signal().await?;
    tracing::info!("shutting down");
    if !server.shutdown(SHUTDOWN_GRACE).await {
        tracing::warn!("some connections did not close within {SHUTDOWN_GRACE:?}");
    }
    tracing::info!("stopped");
    Ok(())
}

fn display_host(a: SocketAddr) -> String {
    if a.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        a.ip().to_string()
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
