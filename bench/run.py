#!/usr/bin/env python3
"""Side-by-side fan-out benchmark: Sluice against nginx-rtmp, Node-Media-Server and the
bare socket-write floor, measured in one run with the same load tool (sluice-bench).

Method (the SRS method): one ~232 kbps H.264 + AAC stream (200 kbps video, 32 kbps audio,
25 fps), published by the load tool; N players over RTMP or HTTP-FLV; each server pinned to
core 0 with taskset, the load tool on core 1; then Sluice again with both cores. Server CPU
and RSS are read from /proc by the tool over the measured window.

Usage: python3 bench/run.py [--sizes 1000,2000,5000,10000] [--duration 20] [--servers ...]
Writes bench/out/<run>/*.json and regenerates docs/benchmarks.md (+ docs/bench-cpu.svg).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
RELEASE = ROOT / "target" / "release"
FIXTURE = OUT / "bench-232k.flv"
STREAM = "live/bench"

SERVERS = ["sluice", "nginx", "nms", "floor", "sluice-b20", "floor-b20", "sluice-2core"]
PROTOCOLS = {
    "sluice": ["rtmp", "http-flv"],
    "sluice-b20": ["rtmp", "http-flv"],  # Sluice with a 20 ms batching window
    "floor-b20": ["http-flv"],  # the floor with the same window
    "sluice-2core": ["rtmp", "http-flv"],
    "nginx": ["rtmp"],  # nginx-rtmp has no HTTP-FLV
    "nms": ["rtmp", "http-flv"],
    "floor": ["http-flv"],
}


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(map(str, cmd)))
    return subprocess.run(cmd, check=True, **kw)


def prepare():
    """Installs the peers and builds what the benchmark runs."""
    OUT.mkdir(parents=True, exist_ok=True)
    if not Path("/usr/lib/nginx/modules/ngx_rtmp_module.so").exists() or not shutil.which("ffmpeg"):
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", "nginx", "libnginx-mod-rtmp", "ffmpeg"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not (BENCH / "nms" / "node_modules" / "node-media-server").exists():
        run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BENCH / "nms")
    run(["cargo", "build", "--release", "-p", "sluice", "-p", "sluice-bench", "-p", "sluice-floor"], cwd=ROOT)
    if not FIXTURE.exists():
        # 10 s of 640x360 at 25 fps: 200 kbps H.264 (2 s GOP, no B-frames) + 32 kbps AAC.
        run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
             "-t", "10", "-c:v", "libx264", "-preset", "medium", "-profile:v", "main",
             "-b:v", "200k", "-maxrate", "200k", "-bufsize", "400k", "-g", "50",
             "-keyint_min", "50", "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-b:a", "32k", "-ac", "1", "-f", "flv", str(FIXTURE)])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


class Server:
    """One peer server process, pinned to its cores."""

    def __init__(self, name, workdir):
        self.name = name
        self.workdir = workdir
        self.rtmp = free_port()
        self.http = free_port()
        self.proc = None

    def start(self):
        cores = "0,1" if self.name == "sluice-2core" else "0"
        pin = ["taskset", "-c", cores]
        out = open(self.workdir / f"{self.name}.log", "ab")
        env = dict(os.environ)
        if self.name.startswith("sluice"):
            cmd = [str(RELEASE / "sluice"), "--rtmp-listen", f"127.0.0.1:{self.rtmp}",
                   "--http-listen", f"127.0.0.1:{self.http}", "--log-level", "warn"]
            # 10,000 players plus the publisher exceed the default connection limit.
            env["SLUICE_LIMITS_MAX_RTMP_CONNECTIONS"] = "30000"
            env["SLUICE_LIMITS_MAX_HTTP_VIEWERS"] = "30000"
            if self.name == "sluice-b20":
                env["SLUICE_HUB_VIEWER_BATCH_MS"] = "20"
        elif self.name == "nginx":
            d = self.workdir / "nginx"
            d.mkdir(exist_ok=True)
            conf = (BENCH / "nginx-rtmp.conf").read_text()
            conf = conf.replace("__PORT__", str(self.rtmp)).replace("__DIR__", str(d))
            (d / "nginx.conf").write_text(conf)
            cmd = ["nginx", "-c", str(d / "nginx.conf"), "-p", str(d)]
        elif self.name == "nms":
            cmd = ["node", "node_modules/node-media-server/bin/app.js", "-c", "config.json",
                   "--rtmp-port", str(self.rtmp), "--http-port", str(self.http), "--no-admin"]
        elif self.name.startswith("floor"):
            cmd = [str(RELEASE / "sluice-floor"), "--listen", f"127.0.0.1:{self.http}",
                   "--file", str(FIXTURE), "--batch-ms", "20" if self.name == "floor-b20" else "0"]
        else:
            raise ValueError(self.name)
        cwd = BENCH / "nms" if self.name == "nms" else ROOT
        self.proc = subprocess.Popen(pin + cmd, cwd=cwd, env=env, stdout=out, stderr=out,
                                     stdin=subprocess.DEVNULL)
        wait_port(self.http if self.name.startswith("floor") else self.rtmp)
        return self

    def urls(self, protocol):
        if protocol == "rtmp":
            return f"rtmp://127.0.0.1:{self.rtmp}/{STREAM}"
        return f"http://127.0.0.1:{self.http}/{STREAM}.flv"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bench_once(server, protocol, players, duration, workdir, extra=()):
    label = f"{server.name}/{protocol}/{players}" + ("/" + "-".join(extra).strip("-") if extra else "")
    out = workdir / (label.replace("/", "_") + ".json")
    cmd = ["taskset", "-c", "1", str(RELEASE / "sluice-bench"),
           "--play", server.urls(protocol), "--players", str(players),
           "--ramp", "1000", "--duration", str(duration), "--warmup", "3",
           "--server-pid", str(server.proc.pid), "--json", str(out), "--label", label]
    if not server.name.startswith("floor"):
        cmd += ["--publish", f"rtmp://127.0.0.1:{server.rtmp}/{STREAM}", "--file", str(FIXTURE)]
    cmd += list(extra)
    try:
        run(cmd, timeout=duration + players / 500 + 120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        log(f"{label}: load tool failed: {e}")
        return None
    report = json.loads(out.read_text())
    report["server_name"] = server.name
    report["protocol_name"] = protocol
    out.write_text(json.dumps(report, indent=2))
    return report


def held(report, players):
    """A size is held when at least 99% of the players got the stream without a stall."""
    return report is not None and report.get("players_without_stalls", 0) >= 0.99 * players


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,2000,5000,10000")
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--idle", type=int, default=2000, help="idle connections for the memory scenario (0 skips)")
    ap.add_argument("--publishers", type=int, default=100, help="publishers for the publisher scenario (0 skips)")
    ap.add_argument("--skip-prepare", action="store_true")
    args = ap.parse_args()
    if not args.skip_prepare:
        prepare()
    workdir = OUT / time.strftime("%Y%m%d-%H%M%S")
    workdir.mkdir(parents=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    for name in args.servers.split(","):
        for protocol in PROTOCOLS[name]:
            for n in sizes:
                server = Server(name, workdir).start()
                try:
                    r = bench_once(server, protocol, n, args.duration, workdir)
                finally:
                    server.stop()
                if r:
                    results.append(r)
                if not held(r, n):
                    log(f"{name}/{protocol} did not hold {n} players; not trying more")
                    break
        if args.idle and name in ("sluice", "nginx", "nms"):
            server = Server(name, workdir).start()
            try:
                r = bench_once(server, "rtmp", args.idle, 5, workdir, extra=("--idle",))
            finally:
                server.stop()
            if r:
                r["scenario"] = "idle"
                results.append(r)
        if args.publishers and name in ("sluice", "nginx", "nms"):
            server = Server(name, workdir).start()
            try:
                r = bench_once(server, "rtmp", 0, args.duration, workdir,
                               extra=("--publishers", str(args.publishers)))
            finally:
                server.stop()
            if r:
                r["scenario"] = "publishers"
                results.append(r)
    (workdir / "all.json").write_text(json.dumps(results, indent=2))
    log(f"results in {workdir}")
    # Keep the raw figures beside the tables they make.
    kept = ROOT / "docs" / "bench-results" / (time.strftime("%Y-%m-%d") + ".json")
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(workdir / "all.json", kept)
    subprocess.run([sys.executable, str(BENCH / "report.py"), str(kept)], check=True)


if __name__ == "__main__":
    main()
