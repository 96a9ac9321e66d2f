#!/bin/bash
# Instruction counts of the WHEP send path, repeatable on a shared machine (docs/benchmarks.md
# "WHEP forwarding cost"): the server runs under callgrind with instrumentation off,
# sluice-bench publishes the 232 kb/s clip and plays it with N viewers (default 10), and
# instrumentation is switched on for WINDOW seconds (default 8) once every viewer plays.
# Prints the server's instructions in the window, those of the stream's AAC -> Opus
# transcoder (the same for any number of viewers) and the rest per viewer-second.
#
# usage: whep-callgrind.sh SLUICE_BIN BENCH_BIN LABEL [N] [WINDOW]
# env:   FIXTURE (default bench/out/bench-232k.flv), OUT (default /tmp/whep-callgrind)
# Needs valgrind (callgrind_control, callgrind_annotate).
set -u
SRV=$1; BENCH=$2; LABEL=$3; N=${4:-10}; WIN=${5:-8}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
FIXTURE=${FIXTURE:-$ROOT/bench/out/bench-232k.flv}
OUT=${OUT:-/tmp/whep-callgrind}; mkdir -p "$OUT"
port() { python3 -c "import socket;s=socket.socket(socket.AF_INET,socket.$1);s.bind(('127.0.0.1',0));print(s.getsockname()[1])"; }
RTMP=$(port SOCK_STREAM); HTTP=$(port SOCK_STREAM); WR=$(port SOCK_DGRAM)
SLUICE_LIMITS_EXEMPT='["127.0.0.0/8"]' SLUICE_WEBRTC_ICE_TIMEOUT_MS=30000 \
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/$LABEL.out" \
  "$SRV" --rtmp-listen 127.0.0.1:$RTMP --http-listen 127.0.0.1:$HTTP \
  --webrtc-listen 127.0.0.1:$WR --log-level warn >"$OUT/$LABEL.log" 2>&1 &
VPID=$!
for _ in $(seq 300); do (echo >/dev/tcp/127.0.0.1/$RTMP) 2>/dev/null && break; sleep 0.1; done
# Viewers connect (uninstrumented, so at native speed) within the 8 s warm-up.
"$BENCH" --publish rtmp://127.0.0.1:$RTMP/live/bench --file "$FIXTURE" \
  --play http://127.0.0.1:$HTTP/live/bench/whep --players "$N" --ramp 5 \
  --duration $((WIN + 6)) --warmup 8 --json "$OUT/$LABEL.json" --quiet >"$OUT/$LABEL.txt" 2>&1 &
BPID=$!
sleep 12
callgrind_control -i on $VPID >/dev/null 2>&1
sleep "$WIN"
callgrind_control -i off $VPID >/dev/null 2>&1
callgrind_control -d $VPID >/dev/null 2>&1
wait $BPID
kill $VPID; wait $VPID 2>/dev/null
DUMP="$OUT/$LABEL.out.1"
TOTAL=$(awk '/^totals:/{print $2}' "$DUMP")
TRANS=$(callgrind_annotate --inclusive=yes "$DUMP" 2>/dev/null \
  | awk '/hub::derived::run::\{\{closure\}\}/{gsub(",","",$1); print $1; exit}')
python3 - "$OUT/$LABEL.json" "$LABEL" "$N" "$WIN" "${TOTAL:-0}" "${TRANS:-0}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
label, n, win, total, trans = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
rest = total - trans
print(f'{label:20s} viewers {r.get("players_connected")} stalls {r.get("stalls_total")} '
      f'Ir {total/1e6:.1f}M transcoder {trans/1e6:.1f}M rest {rest/1e6:.1f}M '
      f'per viewer-second {rest/(n*win)/1e6:.2f}M')
PY
