//! The ffmpeg command line of one source's ladder (pure: tested without ffmpeg).

use std::net::SocketAddr;

use config::{Rung, TranscodeConfig};

/// The rungs of `ladder` strictly below `source_height`: a ladder never upscales, and a rung
/// as high as the source would only re-encode it.
pub fn rungs_below(ladder: &[Rung], source_height: u32) -> Vec<Rung> {
    ladder
        .iter()
        .filter(|r| r.height < source_height)
        .cloned()
        .collect()
}

/// ffmpeg's arguments: FLV from stdin, decoded once, split and scaled per rung, each rung
/// encoded with keyframes where the source has them (so every rung switches at the same
/// points) and the source's audio copied, sent as FLV to its `outputs` address.
pub fn args(cfg: &TranscodeConfig, rungs: &[Rung], outputs: &[SocketAddr]) -> Vec<String> {
    let mut a: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "flv",
        "-i",
        "pipe:0",
    ]
    .map(str::to_owned)
    .to_vec();
    let n = rungs.len();
    let mut graph = if n > 1 {
        let splits: String = (0..n).map(|i| format!("[s{i}]")).collect();
        format!("[0:v]split={n}{splits};")
    } else {
        String::new()
    };
    for (i, r) in rungs.iter().enumerate() {
        let input = if n > 1 {
            format!("[s{i}]")
        } else {
            "[0:v]".to_owned()
        };
        graph.push_str(&format!("{input}scale=-2:{}[v{i}]", r.height));
        if i + 1 < n {
            graph.push(';');
        }
    }
    a.extend(["-filter_complex".to_owned(), graph]);
    let x264 = cfg.encoder == "libx264";
    for (i, (r, out)) in rungs.iter().zip(outputs).enumerate() {
        let kbps = r.video_kbps;
        a.extend(
            [
                "-map",
                &format!("[v{i}]"),
                "-map",
                "0:a?",
                "-c:v",
                &cfg.encoder,
                "-preset",
                &cfg.preset,
                "-b:v",
                &format!("{kbps}k"),
                "-maxrate",
                &format!("{kbps}k"),
                "-bufsize",
                &format!("{}k", 2 * kbps),
                "-force_key_frames",
                "source",
                "-pix_fmt",
                "yuv420p",
            ]
            .map(str::to_owned),
        );
        if x264 {
            a.extend(["-tune", "zerolatency", "-sc_threshold", "0"].map(str::to_owned));
        }
        a.extend(r.encoder_options.iter().cloned());
        a.extend(["-c:a", "copy", "-f", "flv"].map(str::to_owned));
        a.push(format!("tcp://{out}"));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_upscales() {
        let l = TranscodeConfig::default().ladder;
        let names = |h| {
            rungs_below(&l, h)
                .into_iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(1080), ["720p", "480p", "360p", "240p"]);
        assert_eq!(names(720), ["480p", "360p", "240p"]);
        assert_eq!(names(360), ["240p"]);
        assert!(names(240).is_empty());
    }

    #[test]
    fn one_decode_one_split_one_output_per_rung() {
        let cfg = TranscodeConfig::default();
        let rungs = rungs_below(&cfg.ladder, 720);
        let outs: Vec<SocketAddr> = (0..3)
            .map(|i| format!("127.0.0.1:{}", 4000 + i).parse().unwrap())
            .collect();
        let a = args(&cfg, &rungs, &outs);
        assert_eq!(a.iter().filter(|x| *x == "-i").count(), 1, "decoded once");
        let graph = &a[a.iter().position(|x| x == "-filter_complex").unwrap() + 1];
        assert_eq!(
            graph,
            "[0:v]split=3[s0][s1][s2];[s0]scale=-2:480[v0];[s1]scale=-2:360[v1];[s2]scale=-2:240[v2]"
        );
        assert_eq!(
            a.iter().filter(|x| *x == "source").count(),
            3,
            "aligned keyframes"
        );
        assert!(a.contains(&"tcp://127.0.0.1:4002".to_owned()));
        assert!(a.contains(&"1200k".to_owned()));
        let single = args(&cfg, &rungs[2..], &outs[..1]);
        let graph = &single[single.iter().position(|x| x == "-filter_complex").unwrap() + 1];
        assert_eq!(graph, "[0:v]scale=-2:240[v0]");
    }
}
