//! Sluice's configuration: one TOML file with a section per component.
//!
//! Precedence, lowest first: compiled-in defaults, the TOML file, `SLUICE_<SECTION>_<KEY>`
//! environment variables, command-line flags (applied by the binary). Unknown sections and
//! keys are errors that name the key. The repository's `sluice.toml` equals the defaults
//! (a test checks it).
//!
//! The crate's rule: a leaf. It knows every key, its default with the reason for it, and
//! what values make sense; it depends on no other Sluice crate and does no IO, so every
//! crate may read its types and none of them re-validates a value.
#![forbid(unsafe_code)]

pub mod auth;
pub mod cidr;
pub mod cluster;
mod limits;
pub mod rooms;
pub mod srt;
pub mod transcode;
pub mod webhooks;
pub mod webrtc;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use auth::{AuthConfig, AuthMode, AuthRule};
pub use cidr::{BadCidr, Cidr};
pub use cluster::ClusterConfig;
pub use limits::{
    LimitsConfig, MAX_HTTP_HEADER_BYTES, MAX_HTTP_TIMEOUT_MS, MAX_LISTENER_RESERVE_PERCENT,
    MIN_HTTP_HEADER_BYTES,
};
pub use rooms::RoomsConfig;
pub use srt::{SrtConfig, SrtEncryption};
pub use transcode::{Rung, TranscodeConfig};
pub use webhooks::WebhooksConfig;
pub use webrtc::WebRtcConfig;

/// A configuration that does not parse or makes no sense; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Most segments an HLS playlist may list (`hls.window_segments`): a longer window only
/// grows every playlist fetch and the memory of every muxer. The `hls` crate enforces the
/// same bound (a test in the binary checks the two agree).
pub const MAX_HLS_WINDOW_SEGMENTS: usize = 100;

/// Keys still accepted (with a warning) but no longer printed among the defaults: a file or
/// an environment variable that sets one keeps loading.
pub const DEPRECATED_KEYS: [(&str, &str); 2] = [
    ("limits", "max_rtmp_connections"),
    ("limits", "max_http_viewers"),
];

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "SLUICE_";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// RTMP listener and session settings.
    pub rtmp: RtmpConfig,
    /// HTTP listener (HTTP-FLV, WebSocket-FLV).
    pub http: HttpConfig,
    /// Stream hub: GOP cache, fan-out ring, publisher grace.
    pub hub: HubSection,
    /// Protective limits.
    pub limits: LimitsConfig,
    /// HLS and LL-HLS.
    pub hls: HlsConfig,
    /// Recording streams to files.
    pub record: RecordConfig,
    /// Logging.
    pub log: LogConfig,
    /// Webhook events (off unless `urls` is set).
    pub webhooks: WebhooksConfig,
    /// Video on demand: files served over HTTP, uploads through the API.
    pub vod: VodConfig,
    /// TLS: RTMPS and HTTPS/WSS listeners (off unless a certificate is configured).
    pub tls: TlsConfig,
    /// Access control: publish/play rules, tokens, webhook, API token.
    pub auth: AuthConfig,
    /// WebRTC playback (WHEP) over one UDP port.
    pub webrtc: WebRtcConfig,
    /// SRT ingest and playback (MPEG-TS over SRT).
    pub srt: SrtConfig,
    /// The adaptive-bitrate ladder (off unless `apps` is set).
    pub transcode: TranscodeConfig,
    /// Clustering over Redis (off unless `redis_url` is set).
    pub cluster: ClusterConfig,
    /// Real-time rooms (LiveKit's client protocol at `/rtc`).
    pub rooms: RoomsConfig,
}

/// `[rtmp]`: the RTMP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpConfig {
    /// Address the RTMP listener binds. Port 1935 is what every encoder assumes.
    pub listen: SocketAddr,
    /// Outgoing chunk size. Large chunks mean fewer chunk headers and fewer bytes per frame;
    /// 4096 is understood by every client we know of.
    pub chunk_size: u32,
    /// Window Acknowledgement Size we announce: how many bytes a peer may send before it must
    /// hear an acknowledgement from us (and how often we expect one from players).
    pub window_ack_size: u32,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 1935)),
            chunk_size: 4096,
            window_ack_size: 2_500_000,
        }
    }
}

/// `[http]`: the HTTP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address the HTTP listener binds (HTTP-FLV and WebSocket-FLV on `/{app}/{stream}.flv`).
    pub listen: SocketAddr,
    /// Value of `Access-Control-Allow-Origin` on media responses, so browser players
    /// (flv.js, mpegts.js) on another origin can fetch them. Empty disables the header.
    pub cors_allow_origin: String,
    /// A separate listener for `/metrics` only (e.g. on a private interface); when set,
    /// the main listener no longer serves `/metrics`. Unset: `/metrics` is on `listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Host names the REST API answers to when it trusts the client by its address (no
    /// `auth.api_token`), besides `localhost`, `*.localhost` and IP addresses, which are
    /// always accepted. A browser page on another site can make the browser of someone on
    /// this host send requests here with its own name in `Host` (DNS rebinding); the API
    /// refuses names not listed. Entries are names (`media.example.com`) or `*.suffix`;
    /// `["*"]` accepts any name. With an API token the token decides and this is not checked.
    pub allowed_hosts: Vec<String>,
}

/// Most `http.allowed_hosts` entries (each request is checked against every one).
pub const MAX_ALLOWED_HOSTS: usize = 256;

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            cors_allow_origin: "*".to_owned(),
            metrics_listen: None,
            allowed_hosts: Vec::new(),
        }
    }
}

impl HttpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.allowed_hosts.len() > MAX_ALLOWED_HOSTS {
            return Err(ConfigError(format!(
                "http.allowed_hosts: at most {MAX_ALLOWED_HOSTS} entries"
            )));
        }
        for h in &self.allowed_hosts {
            let name = h.strip_prefix("*.").unwrap_or(h);
            let ok = h == "*"
                || (!name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
            if !ok {
                return Err(ConfigError(format!(
                    "http.allowed_hosts: {h:?} is not a host name, \"*.suffix\" or \"*\" \
                     (no scheme, port or path)"
                )));
            }
        }
        Ok(())
    }
}

/// `[hub]`: per-stream buffering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubSection {
    /// Most frames kept in a stream's GOP cache (instant start for late joiners).
    pub gop_max_frames: usize,
    /// Most payload bytes kept in a stream's GOP cache.
    pub gop_max_bytes: usize,
    /// Longest GOP (ms) kept; a stream with rarer keyframes makes late joiners wait instead.
    pub gop_max_duration_ms: u64,
    /// Frames in each stream's shared fan-out ring: how far a viewer may fall behind before
    /// it is moved on to the next keyframe (about 15 s at 68 frames/s).
    pub ring_capacity: usize,
    /// How long (ms) a stream survives its publisher's disconnect so a reconnecting
    /// publisher keeps the viewers.
    pub publisher_grace_ms: u64,
    /// Bytes a viewer may have queued for its socket before it stops taking frames from the
    /// ring (after which it lags and skips to a keyframe).
    pub viewer_max_queued_bytes: usize,
    /// Batching window (ms) for viewers' writes: 0 writes every frame as it arrives (lowest
    /// latency); 20-50 gathers a window's frames into one wake-up and one write per viewer,
    /// which cuts CPU per viewer several-fold for large audiences (the cost is per write).
    pub viewer_batch_ms: u64,
    /// Longest time (ms) a viewer's audio waits for the next video frame so both go out in
    /// one write. Video is never delayed; players buffer audio against video anyway. At
    /// 25 fps with AAC this halves the writes per viewer. 0 writes audio at once.
    pub audio_coalesce_ms: u64,
}

impl Default for HubSection {
    fn default() -> Self {
        Self {
            gop_max_frames: 1024,
            gop_max_bytes: 16 * 1024 * 1024,
            gop_max_duration_ms: 10_000,
            ring_capacity: 1024,
            publisher_grace_ms: 5_000,
            viewer_max_queued_bytes: 1024 * 1024,
            viewer_batch_ms: 0,
            audio_coalesce_ms: 50,
        }
    }
}

/// HLS segment container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HlsFormat {
    /// fMP4/CMAF segments with LL-HLS parts (H.264, H.265, AAC, Opus).
    Fmp4,
    /// MPEG-TS segments for legacy players (H.264, H.265, AAC), no parts.
    Ts,
}

/// `[hls]`: HLS and Low-Latency HLS on `http://host:8080/{app}/{stream}/index.m3u8`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HlsConfig {
    /// Serve HLS for every stream.
    pub enabled: bool,
    /// Segment container for apps not named in `app_formats`. fMP4 is the default: it carries
    /// LL-HLS parts, and classic players simply ignore the part tags.
    pub format: HlsFormat,
    /// Target segment duration. Segments are cut on the first keyframe after about this
    /// long, so a longer GOP gives longer segments (and a larger EXT-X-TARGETDURATION).
    pub target_duration_ms: u64,
    /// LL-HLS part target (fMP4 only); 0 turns LL-HLS off. About 200 ms keeps a player
    /// about one second behind live with three parts of hold-back.
    pub part_target_ms: u64,
    /// Segments listed in the media playlist (the sliding window).
    pub window_segments: usize,
    /// A muxer with no playlist or media request for this long is stopped (its memory
    /// freed); the next request starts it again from the GOP cache.
    pub idle_timeout_ms: u64,
    /// Mux every stream from the moment it is published, requested or not (instant start
    /// for the first viewer, at the cost of memory and CPU for unwatched streams).
    pub always_on: bool,
    /// Longest a blocking request (`_HLS_msn`, a preload hint, the first playlist of a
    /// starting muxer) waits before it gets 503.
    pub block_timeout_ms: u64,
    /// Also write every playlist, segment, part and init segment to
    /// `{disk_dir}/{app}/{stream}/` as they are made (expired ones are deleted), for
    /// people who serve HLS with nginx or a CDN origin. Empty: memory only. Implies
    /// `always_on`, since nobody asks Sluice for the playlist then.
    pub disk_dir: String,
    /// Per-app segment container, e.g. `legacy = "ts"`.
    pub app_formats: std::collections::BTreeMap<String, HlsFormat>,
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            format: HlsFormat::Fmp4,
            target_duration_ms: 2000,
            part_target_ms: 200,
            window_segments: 8,
            idle_timeout_ms: 30_000,
            always_on: false,
            block_timeout_ms: 10_000,
            disk_dir: String::new(),
            app_formats: std::collections::BTreeMap::new(),
        }
    }
}

impl HlsConfig {
    /// True when every stream is muxed from publish on (`always_on`, or disk mirroring).
    pub fn mux_always(&self) -> bool {
        self.always_on || !self.disk_dir.is_empty()
    }

    /// The segment container for `app`.
    pub fn format_for(&self, app: &str) -> HlsFormat {
        self.app_formats.get(app).copied().unwrap_or(self.format)
    }
}

/// Container of recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordFormat {
    /// Fragmented MP4 (plays everywhere; an HLS VOD playlist is written beside it).
    Mp4,
    /// FLV, the tags as published.
    Flv,
}

/// What a recording does when its publisher reconnects (within the hub's grace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconnectPolicy {
    /// Keep writing the same file (the hub keeps timestamps continuous).
    Continue,
    /// Start a new file at the reconnect.
    NewFile,
}

/// Who may fetch a recording over `/vod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordAccess {
    /// The recorded stream's play rule (`[auth]` for `app/name`): a protected stream's
    /// recordings need the same token as the stream.
    Stream,
    /// The rules of app `vod`, as any other file of `vod.dir`.
    Vod,
}

/// `[record]`: recording streams to files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordConfig {
    /// Directory of recordings (files go to `{dir}/{app}/`). Inside `vod.dir` by default, so
    /// recordings are served by `/vod/recordings/...`.
    pub dir: String,
    /// Streams recorded automatically when published: `app/name` patterns where `*` matches
    /// anything (`["*"]` records everything). Empty: only API-started recordings.
    pub streams: Vec<String>,
    /// Container: "mp4" (fragmented MP4 + HLS VOD playlist) or "flv".
    pub format: RecordFormat,
    /// A file is rotated at the first keyframe after this much media time.
    pub max_duration_ms: u64,
    /// A file is rotated at the first keyframe after this many bytes.
    pub max_bytes: u64,
    /// "continue" the file or start a "new_file" when the publisher reconnects.
    pub on_reconnect: ReconnectPolicy,
    /// Who may fetch recordings over `/vod`: "stream" (default: the recorded stream's play
    /// rule, so recording a protected stream does not publish it) or "vod" (the rules of
    /// app `vod`, as any other file).
    pub access: RecordAccess,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            dir: "vod/recordings".to_owned(),
            streams: Vec::new(),
            format: RecordFormat::Mp4,
            max_duration_ms: 3_600_000,
            max_bytes: 2 * 1024 * 1024 * 1024,
            on_reconnect: ReconnectPolicy::Continue,
            access: RecordAccess::Stream,
        }
    }
}

/// `[log]`: logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Log filter, as `RUST_LOG` takes it (`info`, `debug`, `sluice_server=debug,info`).
    pub level: String,
    /// Line format: "text" for people, "json" (one object per line, with the session's span
    /// fields) for log pipelines.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// Who may upload and delete VOD files through the API.
///
/// Until the API has authentication, the default lets only clients on the loopback
/// interface (the host itself, or a reverse proxy on it) change the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UploadFrom {
    /// Only clients connecting from a loopback address (127.0.0.0/8, ::1).
    #[default]
    Loopback,
    /// Any client (only behind an authenticating proxy).
    Any,
    /// Nobody: uploads and deletes are refused.
    Off,
}

/// `[vod]`: files served on `/vod/{path}` and managed under `/api/v1/vod`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VodConfig {
    /// Directory served (relative paths are relative to the working directory); created at
    /// start when missing.
    pub dir: PathBuf,
    /// Largest upload accepted, in bytes: protects the disk from one request filling it.
    pub max_upload_bytes: u64,
    /// Who may upload and delete: `loopback` (default, until the API has authentication),
    /// `any` or `off`.
    pub upload_from: UploadFrom,
    /// `Cache-Control: max-age` (seconds) on served files.
    pub cache_max_age_s: u64,
}

/// Longest `vod.cache_max_age_s` accepted: one year, the most RFC 9111 suggests.
pub const MAX_CACHE_MAX_AGE_S: u64 = 365 * 24 * 3600;

impl Default for VodConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("vod"),
            max_upload_bytes: 1 << 30,
            upload_from: UploadFrom::Loopback,
            cache_max_age_s: 3600,
        }
    }
}

/// `[tls]`: RTMPS and HTTPS/WSS (with HTTP/2 by ALPN). Off while `cert_file` is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first). Empty: TLS off, no TLS listener is bound.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the certificate.
    pub key_file: PathBuf,
    /// Address of the RTMPS listener (1936 is the customary RTMPS port).
    pub rtmps_listen: SocketAddr,
    /// Address of the HTTPS/WSS listener: the same routes as `[http]`, over HTTP/1.1 or
    /// HTTP/2.
    pub https_listen: SocketAddr,
    /// Answer plain-HTTP requests with 308 to the same path on the HTTPS listener. `/metrics`
    /// stays on plain HTTP (scrapers on the local network rarely do TLS).
    pub redirect_http: bool,
    /// How often (ms) the certificate files are checked for changes (modification time and
    /// length); a change is loaded for new connections without touching existing ones. 0 never
    /// checks.
    pub reload_check_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            rtmps_listen: SocketAddr::from(([0, 0, 0, 0], 1936)),
            https_listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            redirect_http: false,
            reload_check_ms: 2000,
        }
    }
}

impl TlsConfig {
    /// Whether TLS listeners run (a certificate is configured).
    pub fn enabled(&self) -> bool {
        !self.cert_file.as_os_str().is_empty()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        let key_set = !self.key_file.as_os_str().is_empty();
        if self.enabled() != key_set {
            return bad(
                "tls.key_file",
                "tls.cert_file and tls.key_file must be set together",
            );
        }
        if self.redirect_http && !self.enabled() {
            return bad("tls.redirect_http", "needs tls.cert_file and tls.key_file");
        }
        if self.reload_check_ms != 0 && !(100..=3_600_000).contains(&self.reload_check_ms) {
            return bad(
                "tls.reload_check_ms",
                "must be 0 (never) or between 100 and 3600000",
            );
        }
        Ok(())
    }
}

impl Config {
    /// Parses a TOML document (keys not given keep their defaults).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        Self::from_table(table)
    }

    /// Loads from an optional TOML document, then applies `SLUICE_*` overrides from `vars`.
    pub fn load(
        text: Option<&str>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = match text {
            Some(t) => toml::from_str(t).map_err(|e| ConfigError(e.to_string()))?,
            None => toml::Table::new(),
        };
        apply_env(&mut table, vars)?;
        Self::from_table(table)
    }

    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        let cfg: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that parse but make no sense, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if !(128..=0x00FF_FFFF).contains(&self.rtmp.chunk_size) {
            return bad("rtmp.chunk_size", "must be between 128 and 16777215");
        }
        if self.rtmp.window_ack_size == 0 {
            return bad("rtmp.window_ack_size", "must be positive");
        }
        if self.hub.ring_capacity < 16 {
            return bad("hub.ring_capacity", "must be at least 16");
        }
        if self.hub.gop_max_frames == 0 {
            return bad("hub.gop_max_frames", "must be positive");
        }
        if self.limits.max_message_len < 1024 {
            return bad("limits.max_message_len", "must be at least 1024");
        }
        if self.limits.max_chunk_streams < 4 {
            return bad("limits.max_chunk_streams", "must be at least 4");
        }
        if self.limits.max_rtmp_partial_bytes < self.limits.max_message_len as usize {
            return bad(
                "limits.max_rtmp_partial_bytes",
                "must be at least limits.max_message_len",
            );
        }
        self.limits.validate()?;
        self.http.validate()?;
        if self.hub.audio_coalesce_ms > 1000 {
            return bad("hub.audio_coalesce_ms", "must be at most 1000");
        }
        if self.hub.viewer_batch_ms > 1000 {
            return bad("hub.viewer_batch_ms", "must be at most 1000");
        }
        if !(500..=30_000).contains(&self.hls.target_duration_ms) {
            return bad("hls.target_duration_ms", "must be between 500 and 30000");
        }
        if self.hls.part_target_ms != 0
            && !(50..=self.hls.target_duration_ms / 2).contains(&self.hls.part_target_ms)
        {
            return bad(
                "hls.part_target_ms",
                "must be 0 or between 50 and half of hls.target_duration_ms",
            );
        }
        if !(3..=MAX_HLS_WINDOW_SEGMENTS).contains(&self.hls.window_segments) {
            return bad("hls.window_segments", "must be between 3 and 100");
        }
        if self.hls.idle_timeout_ms < 1000 {
            return bad("hls.idle_timeout_ms", "must be at least 1000");
        }
        if !(100..=60_000).contains(&self.hls.block_timeout_ms) {
            return bad("hls.block_timeout_ms", "must be between 100 and 60000");
        }
        if self.record.max_duration_ms < 1000 {
            return bad("record.max_duration_ms", "must be at least 1000");
        }
        if self.record.max_bytes < 1024 * 1024 {
            return bad("record.max_bytes", "must be at least 1048576");
        }
        if self.record.dir.is_empty() {
            return bad("record.dir", "must not be empty");
        }
        if self.hub.viewer_max_queued_bytes < 64 * 1024 {
            return bad("hub.viewer_max_queued_bytes", "must be at least 65536");
        }
        self.webhooks.validate()?;
        self.auth.validate()?;
        self.webrtc.validate()?;
        self.srt.validate()?;
        self.rooms.validate()?;
        self.transcode.validate()?;
        if self.vod.dir.as_os_str().is_empty() {
            return bad("vod.dir", "must not be empty");
        }
        if self.vod.max_upload_bytes == 0 {
            return bad("vod.max_upload_bytes", "must be positive");
        }
        if self.vod.cache_max_age_s > MAX_CACHE_MAX_AGE_S {
            return bad("vod.cache_max_age_s", "must be at most 31536000 (one year)");
        }
        self.tls.validate()?;
        self.cluster.validate()?;
        Ok(())
    }

    /// The effective configuration as TOML (what `--print-config` shows).
    pub fn to_toml(&self) -> String {
        // Serialising plain structs of strings and numbers cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// Applies `SLUICE_<SECTION>_<KEY>=value` overrides. The value is read as a TOML value
/// (number, boolean, ...) and otherwise as a string.
fn apply_env(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let defaults =
        toml::Table::try_from(Config::default()).map_err(|e| ConfigError(e.to_string()))?;
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let Some((section, key)) = rest.split_once('_') else {
            return Err(ConfigError(format!("unknown environment variable {name}")));
        };
        let known = defaults
            .get(section)
            .and_then(|s| s.as_table())
            .is_some_and(|s| s.contains_key(key))
            || DEPRECATED_KEYS.contains(&(section, key));
        if !known {
            return Err(ConfigError(format!(
                "unknown key {section}.{key} (from environment variable {name})"
            )));
        }
        let value = parse_env_value(&raw);
        let entry = table
            .entry(section.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry.as_table_mut() {
            Some(t) => {
                t.insert(key.to_owned(), value);
            }
            None => return Err(ConfigError(format!("{section}: not a table"))),
        }
    }
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests;
