//! The RTMP publisher: an FLV file looped in real time with monotonic timestamps.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rtmp::{ClientConfig, ClientEvent, ClientSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::cli::Url;
use crate::error::{BenchError, Result};
use crate::fingerprint::FrameIndex;
use crate::stats::Shared;

/// How long a publisher may take from TCP connect to NetStream.Publish.Start.
pub const PUBLISH_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest file `--file` may name (it is held in memory).
pub const MAX_FILE_LEN: u64 = 512 * 1024 * 1024;
/// Publisher read buffer.
const READ_BUF: usize = 16 * 1024;

/// One tag of the file, ready to send.
#[derive(Debug, Clone)]
pub struct PlanTag {
    /// 8 audio, 9 video, 18 data.
    pub tag_type: u8,
    /// Timestamp relative to the file's first tag (ms).
    pub ts: u32,
    /// The payload.
    pub body: Bytes,
    /// Sent on the first loop only (metadata, sequence headers).
    pub once: bool,
    /// Position among the file's looping video frames (for latency matching).
    pub video_index: Option<u32>,
}

/// What a publisher sends: the file's tags and its loop length.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The tags in file order.
    pub tags: Vec<PlanTag>,
    /// Timestamp offset added per loop (ms): last timestamp plus one video frame interval.
    pub loop_ms: u32,
}

/// True for metadata and codec configuration (AVC/AAC sequence headers, Enhanced RTMP
/// SequenceStart): sent once, not per loop.
pub fn is_config_tag(tag_type: u8, body: &[u8]) -> bool {
    match (tag_type, body) {
        (flv::TAG_SCRIPT, _) => true,
        (flv::TAG_VIDEO, [b0, ..]) if b0 & 0x80 != 0 => b0 & 0x0F == 0, // ex header
        (flv::TAG_VIDEO, [b0, 0, ..]) => b0 & 0x0F == 7,                // AVC seq header
        (flv::TAG_AUDIO, [b0, 0, ..]) => b0 >> 4 == 10,                 // AAC seq header
        _ => false,
    }
}

impl Plan {
    /// Builds the plan from a whole FLV file (`name` is for errors).
    pub fn from_flv(file: &[u8], name: &str) -> Result<Self> {
        let raw = flv::read_all_tags(file)?;
        let first = raw.iter().map(|t| t.timestamp).min().unwrap_or(0);
        let mut tags = Vec::with_capacity(raw.len());
        let mut next_index = 0u32;
        let mut video_ts = Vec::new();
        for t in raw {
            if !matches!(
                t.tag_type,
                flv::TAG_AUDIO | flv::TAG_VIDEO | flv::TAG_SCRIPT
            ) {
                continue;
            }
            let once = is_config_tag(t.tag_type, &t.body);
            let ts = t.timestamp - first; // first is the minimum
            let video_index = (t.tag_type == flv::TAG_VIDEO && !once).then(|| {
                video_ts.push(ts);
                next_index += 1;
                next_index - 1
            });
            tags.push(PlanTag {
                tag_type: t.tag_type,
                ts,
                body: t.body,
                once,
                video_index,
            });
        }
        let last = tags.iter().map(|t| t.ts).max().unwrap_or(0);
        let frame_ms = match video_ts.as_slice() {
            [a, .., b] => (b - a) / (video_ts.len() as u32 - 1),
            _ => 0,
        };
        let loop_ms = last + frame_ms.max(1);
        if video_ts.is_empty() || last == 0 {
            return Err(BenchError::EmptyFile {
                path: name.to_owned(),
                video_frames: video_ts.len(),
                duration_ms: last,
            });
        }
        Ok(Self { tags, loop_ms })
    }

    /// Reads and plans `path`.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let name = path.display().to_string();
        let read_err = |source| BenchError::ReadFile {
            path: name.clone(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read_err)?.len();
        if len > MAX_FILE_LEN {
            return Err(BenchError::BadOptions(format!(
                "{name} is {len} bytes, over {MAX_FILE_LEN}"
            )));
        }
        let file = std::fs::read(path).map_err(read_err)?;
        Self::from_flv(&file, &name)
    }

    /// The fingerprint index of the looping video frames.
    pub fn frame_index(&self) -> FrameIndex {
        FrameIndex::new(
            self.tags
                .iter()
                .filter(|t| t.video_index.is_some())
                .map(|t| &t.body[..]),
        )
    }
}

/// Starts a publisher task; the returned receiver resolves once publishing started (or
/// failed). The task runs until `shared.stop`; its result says whether it ended cleanly.
pub fn spawn(
    url: Url,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    record: bool,
) -> (
    tokio::task::JoinHandle<Result<()>>,
    oneshot::Receiver<Result<()>>,
) {
    let (tx, rx) = oneshot::channel();
    let h = tokio::spawn(async move {
        let r = publish(&url, &plan, &shared, record, tx).await;
        if let Err(e) = &r
            && !shared.stop.is_cancelled()
        {
            eprintln!("publisher {}: {e}", url.raw);
        }
        r
    });
    (h, rx)
}

async fn publish(
    url: &Url,
    plan: &Plan,
    shared: &Shared,
    record: bool,
    started: oneshot::Sender<Result<()>>,
) -> Result<()> {
    let (app, stream, tc_url) = url.rtmp_parts()?;
    let fail = |reason: String| BenchError::Publish {
        stream: stream.clone(),
        reason,
    };
    let setup = async {
        let mut sock = TcpStream::connect(url.authority()).await?;
        sock.set_nodelay(true)?;
        let mut s = ClientSession::new(ClientConfig::default());
        s.connect(&app, &tc_url);
        s.publish(&stream);
        let mut buf = vec![0u8; READ_BUF];
        loop {
            while let Some(out) = s.take_output() {
                sock.write_all(&out).await?;
            }
            let n = sock.read(&mut buf).await?;
            if n == 0 {
                return Err(fail("server closed the connection".into()));
            }
            s.handle_input(buf.get(..n).unwrap_or_default())?;
            while let Some(ev) = s.poll_event() {
                match ev {
                    ClientEvent::PublishStarted { .. } => return Ok((sock, s, buf)),
                    ClientEvent::ConnectFailed { code, .. } => {
                        return Err(BenchError::RtmpRefused { code });
                    }
                    ClientEvent::Status { level, code, .. } if level == "error" => {
                        return Err(BenchError::RtmpRefused { code });
                    }
                    _ => {}
                }
            }
        }
    };
    let r = match tokio::time::timeout(PUBLISH_START_TIMEOUT, setup).await {
        Err(_) => Err(fail("no NetStream.Publish.Start in time".into())),
        Ok(r) => r,
    };
    let (mut sock, mut s, mut buf) = match r {
        Ok(v) => {
            let _ = started.send(Ok(()));
            v
        }
        Err(e) => {
            let msg = e.to_string();
            let _ = started.send(Err(e));
            return Err(fail(msg));
        }
    };
    let t0 = Instant::now();
    let stop = shared.stop.cancelled();
    tokio::pin!(stop);
    for k in 0u64.. {
        let base_ms = k * u64::from(plan.loop_ms);
        for t in &plan.tags {
            if t.once && k > 0 {
                continue;
            }
            let at_ms = base_ms + u64::from(t.ts);
            let due = t0 + Duration::from_millis(at_ms);
            // Wait for the tag's time, answering the server meanwhile.
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stop => return Ok(()),
                    _ = tokio::time::sleep_until(due) => break,
                    r = sock.read(&mut buf) => {
                        let n = r?;
                        if n == 0 {
                            return Err(fail("server closed the connection".into()));
                        }
                        s.handle_input(buf.get(..n).unwrap_or_default())?;
                        while let Some(ev) = s.poll_event() {
                            if let ClientEvent::Status { level, code, .. } = ev
                                && level == "error"
                            {
                                return Err(fail(code));
                            }
                        }
                        while let Some(out) = s.take_output() {
                            sock.write_all(&out).await?;
                        }
                    }
                }
            }
            // Timestamps wrap at 32 bits by definition.
            s.send_media(t.tag_type, at_ms as u32, &t.body)?;
            if record && let (Some(i), Some(index)) = (t.video_index, &shared.index) {
                index.record_send(i, shared.now_ns());
            }
            while let Some(out) = s.take_output() {
                sock.write_all(&out).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_tags() {
        assert!(is_config_tag(18, b"\x02\x00\x0aonMetaData"));
        assert!(is_config_tag(9, &[0x17, 0x00, 0, 0, 0]));
        assert!(!is_config_tag(9, &[0x17, 0x01, 0, 0, 0]));
        assert!(is_config_tag(9, &[0x90, b'h', b'v', b'c', b'1'])); // ex SequenceStart
        assert!(!is_config_tag(9, &[0x91, b'h', b'v', b'c', b'1'])); // ex CodedFrames
        assert!(is_config_tag(8, &[0xAF, 0x00, 0x12, 0x10]));
        assert!(!is_config_tag(8, &[0xAF, 0x01, 0x21]));
        assert!(!is_config_tag(9, &[]));
    }

    #[test]
    fn plans_the_fixture() {
        let file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/demo.flv"
        ))
        .unwrap();
        let plan = Plan::from_flv(&file, "demo").unwrap();
        // 4 s at 25 fps: loop = last timestamp + 40 ms, about 4 s.
        assert!(
            (3900..=4100).contains(&plan.loop_ms),
            "loop {}",
            plan.loop_ms
        );
        let once: Vec<u8> = plan
            .tags
            .iter()
            .filter(|t| t.once)
            .map(|t| t.tag_type)
            .collect();
        assert_eq!(
            once.iter().filter(|&&t| t == 9).count(),
            1,
            "one AVC sequence header"
        );
        assert_eq!(
            once.iter().filter(|&&t| t == 8).count(),
            1,
            "one AAC sequence header"
        );
        let n = plan.tags.iter().filter(|t| t.video_index.is_some()).count();
        assert!((100..=101).contains(&n), "25 fps for 4 s: {n}");
        assert!(plan.tags.iter().all(|t| t.ts < plan.loop_ms));
    }

    #[test]
    fn rejects_non_flv() {
        assert!(Plan::from_flv(b"not an flv", "x").is_err());
        let header_only = flv::file_header(true, true);
        assert!(matches!(
            Plan::from_flv(&header_only, "x"),
            Err(BenchError::EmptyFile { .. })
        ));
    }
}
