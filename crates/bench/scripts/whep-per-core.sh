#!/bin/bash
# One WHEP (or HTTP-FLV) per-core measurement, as in docs/benchmarks.md "WHEP load":
# a fresh server pinned to core 0, sluice-bench pinned to core 1 publishing the 232 kb/s
# SRS-shaped clip that bench/run.py makes (bench/out/bench-232k.flv) and playing it with N
# viewers; prints one line (server CPU, viewers per core, per-viewer kbit/s, the tool's UDP
# receive-buffer errors from /proc/net/snmp, which invalidate a run when not 0).
#
# usage: whep-per-core.sh SLUICE_BIN BENCH_BIN whep|flv N LABEL [SECONDS]
# env:   FIXTURE (default bench/out/bench-232k.flv), OUT (default /tmp/whep-per-core),
#        PERF=1 to record `perf record -g` of the server for 10 s inside the window,
#        SERVER_CPUS (default 0) the cores the server is pinned to (0,1 for a 2-core run:
#        the tool then shares core 1 with it).
# Compare builds back to back, alternating (A B A B), and report medians: the machine is
# usually shared.
set -u
SRV=$1; BENCH=$2; PROTO=$3; N=$4; LABEL=$5; DUR=${6:-15}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
FIXTURE=${FIXTURE:-$ROOT/bench/out/bench-232k.flv}
OUT=${OUT:-/tmp/whep-per-core}; mkdir -p "$OUT"
port() { python3 -c "import socket;s=socket.socket(socket.AF_INET,socket.$1);s.bind(('127.0.0.1',0));print(s.getsockname()[1])"; }
RTMP=$(port SOCK_STREAM); HTTP=$(port SOCK_STREAM); WR=$(port SOCK_DGRAM)
SLUICE_LIMITS_EXEMPT='["127.0.0.0/8"]' SLUICE_LIMITS_MAX_HTTP_VIEWERS=30000 \
  SLUICE_WEBRTC_MAX_PEERS=5000 SLUICE_WEBRTC_MAX_PEERS_PER_STREAM=5000 \
  taskset -c "${SERVER_CPUS:-0}" "$SRV" --rtmp-listen 127.0.0.1:$RTMP --http-listen 127.0.0.1:$HTTP \
  --webrtc-listen 127.0.0.1:$WR --log-level warn >"$OUT/$LABEL.server.log" 2>&1 &
SPID=$!
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$RTMP) 2>/dev/null && break; sleep 0.1; done
if [ "$PROTO" = whep ]; then URL=http://127.0.0.1:$HTTP/live/bench/whep; RAMP=50
else URL=http://127.0.0.1:$HTTP/live/bench.flv; RAMP=1000; fi
E0=$(awk '/^Udp:/{getline; print $6}' /proc/net/snmp)
taskset -c 1 "$BENCH" --publish rtmp://127.0.0.1:$RTMP/live/bench --file "$FIXTURE" \
  --play "$URL" --players "$N" --ramp $RAMP --duration "$DUR" --warmup 3 --server-pid $SPID \
  --json "$OUT/$LABEL.json" --label "$LABEL" --quiet >"$OUT/$LABEL.txt" 2>&1 &
BPID=$!
if [ -n "${PERF:-}" ]; then
  sleep $((N / RAMP + 6))
  perf record -F 999 -g -p $SPID -o "$OUT/$LABEL.perf.data" -- sleep 10 >/dev/null 2>&1
fi
wait $BPID
E1=$(awk '/^Udp:/{getline; print $6}' /proc/net/snmp)
kill $SPID; wait $SPID 2>/dev/null
python3 - "$OUT/$LABEL.json" $((E1 - E0)) "$LABEL" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
srv, pp = r.get("server") or {}, r.get("per_player") or {}
ppc = r.get("players_per_core")
print(f'{sys.argv[3]:20s} connected {r.get("players_connected")} without_stalls '
      f'{r.get("players_without_stalls")} server_cpu {srv.get("cpu_percent_of_one_core", 0):.1f}% '
      f'per_core {ppc if ppc is None else round(ppc)} kbit/s {pp.get("kbit_per_s_mean", 0):.1f}/'
      f'{pp.get("kbit_per_s_min") or 0:.1f} tool_cpu {(r.get("tool") or {}).get("cpu_percent_of_one_core", 0):.0f}% '
      f'rcvbuf_errors {sys.argv[2]} load {r.get("load_average")}')
PY
