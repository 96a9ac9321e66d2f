//! The crate's one error type.

/// Everything that can go wrong in the load tool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A `--publish` / `--play` URL the tool cannot use.
    #[error("bad URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Command-line options that do not fit together.
    #[error("bad options: {0}")]
    BadOptions(String),
    /// The file to publish could not be read.
    #[error("reading {path}: {source}")]
    ReadFile {
        /// The path given with `--file`.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file to publish is not a usable FLV.
    #[error("FLV file: {0}")]
    Flv(#[from] flv::FlvError),
    /// The file to publish has no video frames to match latency on, or is empty.
    #[error(
        "file {path} has {video_frames} video frames and lasts {duration_ms} ms: need both > 0"
    )]
    EmptyFile {
        /// The path given with `--file`.
        path: String,
        /// Video frames found (sequence headers excluded).
        video_frames: usize,
        /// Duration from the first to the last tag timestamp.
        duration_ms: u32,
    },
    /// A publisher could not start or stopped.
    #[error("publish {stream}: {reason}")]
    Publish {
        /// The stream name.
        stream: String,
        /// What happened.
        reason: String,
    },
    /// The server sent an HTTP response head the tool cannot use.
    #[error("HTTP response: {reason} (at {len} bytes)")]
    HttpHead {
        /// What is wrong.
        reason: &'static str,
        /// Head bytes seen so far.
        len: usize,
    },
    /// The server answered the HTTP request with a status other than 200.
    #[error("HTTP status {status}")]
    HttpStatus {
        /// The status code (0 if unparsable).
        status: u16,
    },
    /// Malformed chunked transfer coding.
    #[error("chunked body: {reason} (byte {byte:#04x})")]
    Chunked {
        /// What is wrong.
        reason: &'static str,
        /// The offending byte.
        byte: u8,
    },
    /// Malformed FLV stream from the server.
    #[error("FLV stream: {reason} (value {value})")]
    FlvStream {
        /// What is wrong.
        reason: &'static str,
        /// The offending value (a length, a signature byte...).
        value: u64,
    },
    /// An RTMP protocol error.
    #[error("RTMP: {0}")]
    Rtmp(#[from] rtmp::RtmpError),
    /// RTMP connect or play was refused.
    #[error("RTMP refused: {code}")]
    RtmpRefused {
        /// The onStatus / _error code.
        code: String,
    },
    /// A WebSocket error.
    #[error("WebSocket: {0}")]
    WebSocket(String),
    /// Socket or file IO.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Not one player connected.
    #[error("no player connected ({requested} requested, first error: {first_error})")]
    NoPlayerConnected {
        /// Players asked for.
        requested: usize,
        /// The first error seen.
        first_error: String,
    },
    /// The report could not be written.
    #[error("writing report {path}: {reason}")]
    Report {
        /// The `--json` path.
        path: String,
        /// What happened.
        reason: String,
    },
}

/// Result with [`BenchError`].
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
