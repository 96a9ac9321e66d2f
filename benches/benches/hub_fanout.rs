//! Hub fan-out: one frame to N subscribers through the shared ring.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hub::{Hub, HubConfig, PublisherInfo, Subscriber, TryRecv};
use sluice_microbench::video_frame;

/// Stream key used by every bench.
const KEY: &str = "live/bench";
/// Body size of the pushed video frames.
const FRAME_LEN: usize = 1024;
/// A keyframe every this many frames (2 s at 25 fps).
const GOP: u64 = 50;
/// Subscriber tasks in the multi-thread variant.
const TASKS: usize = 1_000;
/// Frames each task receives in the multi-thread variant.
const FRAMES: u64 = 100;

fn info() -> PublisherInfo {
    PublisherInfo {
        protocol: "bench",
        remote: "127.0.0.1:1".to_owned(),
    }
}

fn drain(sub: &mut Subscriber) -> usize {
    let mut n = 0;
    while let TryRecv::Frame(f) = sub.try_recv() {
        black_box(&f);
        n += 1;
    }
    n
}

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("hub_fanout_try_recv");
    for n in [1usize, 100, 1000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let hub = Hub::new(HubConfig::default());
            let mut publisher = hub
                .publish(KEY, info())
                .expect("fresh hub accepts a publisher");
            publisher.push(video_frame(0, true, FRAME_LEN));
            let mut subs: Vec<Subscriber> = (0..n)
                .map(|_| hub.subscribe(KEY).expect("the stream is live"))
                .collect();
            for s in &mut subs {
                drain(s);
            }
            let key = video_frame(0, true, FRAME_LEN);
            let inter = video_frame(0, false, FRAME_LEN);
            let mut i = 1u64;
            b.iter(|| {
                // A clone shares the body: no per-frame allocation outside the hub.
                let mut f = if i.is_multiple_of(GOP) {
                    key.clone()
                } else {
                    inter.clone()
                };
                f.dts = i * 40;
                publisher.push(f);
                i += 1;
                let mut got = 0;
                for s in &mut subs {
                    got += drain(s);
                }
                debug_assert_eq!(got, n);
                got
            });
        });
    }
    g.finish();
}

/// One run: `TASKS` subscriber tasks wait on `recv`; the clock runs from the first push until
/// every task has received `FRAMES` frames.
fn fanout_run(rt: &tokio::runtime::Runtime) -> Duration {
    let hub = Hub::new(HubConfig::default());
    let mut publisher = hub
        .publish(KEY, info())
        .expect("fresh hub accepts a publisher");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let handles: Vec<_> = (0..TASKS)
        .map(|_| {
            let mut sub = hub.subscribe(KEY).expect("the stream is live");
            let ready = ready_tx.clone();
            rt.spawn(async move {
                let _ = ready.send(());
                let mut n = 0;
                while n < FRAMES {
                    match sub.recv().await {
                        Some(f) => {
                            black_box(&f);
                            n += 1;
                        }
                        None => break,
                    }
                }
                n
            })
        })
        .collect();
    for _ in 0..TASKS {
        let _ = ready_rx.recv();
    }
    let frames: Vec<_> = (0..FRAMES)
        .map(|i| video_frame(i * 40, i.is_multiple_of(GOP), FRAME_LEN))
        .collect();
    let start = Instant::now();
    for f in frames {
        publisher.push(f);
    }
    let total: u64 = rt.block_on(async {
        let mut total = 0;
        for h in handles {
            total += h.await.unwrap_or(0);
        }
        total
    });
    let elapsed = start.elapsed();
    assert_eq!(total, FRAMES * TASKS as u64, "every task got every frame");
    drop(publisher);
    elapsed
}

fn multi_thread(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime builds");
    let mut g = c.benchmark_group("hub_fanout_tasks");
    g.sample_size(10);
    g.throughput(Throughput::Elements(FRAMES));
    g.bench_function("1000_tasks_100_frames_2_workers", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| fanout_run(&rt)).sum());
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = single_thread, multi_thread
}
criterion_main!(benches);
