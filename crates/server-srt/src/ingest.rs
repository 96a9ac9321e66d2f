//! An SRT publisher: datagrams of MPEG-TS, demuxed ([`mpegts::TsDemuxer`]) and converted
//! ([`crate::frames`]) into the hub. A caller that sends no usable media (no program with
//! H.264, H.265, AAC or Opus) within [`START_TIMEOUT`] is closed with a log line that says
//! so; damage on the link (packets SRT could not recover) is counted, not fatal.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use control::{Control, Publishing};
use futures_util::StreamExt;
use mpegts::{DemuxStats, EsCodec, TsDemuxer};
use srt_tokio::SrtSocket;
use tokio_util::sync::CancellationToken;

use crate::frames::TsToFrames;
use crate::listener::{OpenGuard, close};
use crate::stats::SrtStats;

/// How long a publisher may send before its first usable frame.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs one publisher until it leaves, is kicked, or the server stops.
pub(crate) async fn run(
    ctl: &Arc<Control>,
    stats: &SrtStats,
    mut socket: SrtSocket,
    mut admitted: Publishing,
    kick: CancellationToken,
) {
    let _open = OpenGuard::new(stats);
    let key = admitted.name.key().to_owned();
    let mut demux = TsDemuxer::new();
    let mut conv = TsToFrames::new();
    let (mut units, mut frames) = (Vec::new(), Vec::new());
    let start_deadline = tokio::time::Instant::now() + START_TIMEOUT;
    let mut reported = DemuxStats::default();
    let mut link = socket.statistics().clone();
    let mut link_seen = LinkCounts::default();
    loop {
        let item = tokio::select! {
            _ = kick.cancelled() => break,
            _ = ctl.shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(start_deadline), if conv.frames() == 0 => {
                stats.no_media.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    stream = %key,
                    "srt publisher sent no MPEG-TS program with H.264, H.265, AAC or Opus within {} s: closed",
                    START_TIMEOUT.as_secs()
                );
                break;
            }
            Some(now) = link.next() => {
                link_seen.add_to(stats, &now);
                continue;
            }
            item = socket.next() => item,
        };
        let data = match item {
            Some(Ok((_, data))) => data,
            Some(Err(e)) => {
                tracing::info!(stream = %key, "srt publisher: {e}");
                break;
            }
            None => break,
        };
        admitted.session.bytes(data.len());
        demux.push(&data, &mut units);
        let (video, audio) = tracks(&demux);
        conv.set_tracks(video, audio);
        for u in units.drain(..) {
            conv.convert(&u, &mut frames);
        }
        for f in frames.drain(..) {
            admitted.counters.observe(&f);
            admitted.publisher.push(f);
        }
        report(stats, &mut reported, demux.stats(), &key);
    }
    tracing::info!(stream = %key, "srt publisher left");
    conv.flush(&mut frames);
    for f in frames.drain(..) {
        admitted.counters.observe(&f);
        admitted.publisher.push(f);
    }
    drop(admitted);
    close(socket).await;
}

/// The SRT link counters last added to the server's ([`SrtStats`] sums every publisher's).
#[derive(Debug, Default)]
struct LinkCounts {
    lost: u64,
    retransmitted: u64,
    dropped: u64,
}

impl LinkCounts {
    fn add_to(&mut self, stats: &SrtStats, now: &srt_tokio::SocketStatistics) {
        let step = |seen: &mut u64, total: u64, into: &AtomicU64| {
            into.fetch_add(total.saturating_sub(*seen), Ordering::Relaxed);
            *seen = total.max(*seen);
        };
        step(&mut self.lost, now.rx_loss_data, &stats.packets_lost);
        step(
            &mut self.retransmitted,
            now.rx_retransmit_data,
            &stats.packets_retransmitted,
        );
        step(
            &mut self.dropped,
            now.rx_dropped_data,
            &stats.packets_dropped,
        );
    }
}

/// Whether the program has a video and an audio stream (so the converter knows what to
/// wait for).
fn tracks(demux: &TsDemuxer) -> (bool, bool) {
    demux
        .streams()
        .fold((false, false), |(v, a), (_, c)| match c {
            EsCodec::H264 | EsCodec::H265 => (true, a),
            EsCodec::Aac | EsCodec::Opus => (v, true),
        })
}

/// Adds what the demuxer counted since the last call to the server's counters, logging
/// continuity errors (SRT could not recover those packets in time).
fn report(stats: &SrtStats, last: &mut DemuxStats, now: DemuxStats, key: &str) {
    let lost = now.continuity_errors - last.continuity_errors;
    if lost > 0 {
        tracing::debug!(stream = %key, lost, "srt publisher: MPEG-TS packets lost");
    }
    stats.continuity_errors.fetch_add(lost, Ordering::Relaxed);
    stats
        .pes_dropped
        .fetch_add(now.pes_dropped - last.pes_dropped, Ordering::Relaxed);
    stats
        .sync_losses
        .fetch_add(now.sync_losses - last.sync_losses, Ordering::Relaxed);
    *last = now;
}
