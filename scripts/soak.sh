#!/usr/bin/env bash
# Soak test (not in CI): runs the release server and, for --hours H, churns publishers and
# viewers (ffmpeg over RTMP, HTTP-FLV and HLS; WHEP through the aiortc client when
# .venv-test exists), writing the server's RSS, open descriptors and live sessions once a
# minute to a CSV. A leak shows as a rising RSS or fd column while sessions stay flat.
#
# Usage: scripts/soak.sh [--hours H] [--csv FILE] [--streams N] [--viewers N]
#   --hours    how long to run (default 1; fractions allowed, e.g. 0.1)
#   --csv      where the samples go (default soak-<date>.csv)
#   --streams  concurrent publishers (default 2)
#   --viewers  concurrent viewers per protocol (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
hours=1; csv="soak-$(date +%Y%m%d-%H%M%S).csv"; streams=2; viewers=3
while [ $# -gt 0 ]; do
  case "$1" in
    --hours) hours="$2"; shift 2 ;;
    --csv) csv="$2"; shift 2 ;;
    --streams) streams="$2"; shift 2 ;;
    --viewers) viewers="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
for tool in ffmpeg curl python3; do
  command -v "$tool" >/dev/null || { echo "soak needs $tool" >&2; exit 1; }
done

cargo build --release -p sluice
work=$(mktemp -d)
rtmp_port=19350; http_port=18080; webrtc_port=18189
./target/release/sluice --rtmp-listen "127.0.0.1:$rtmp_port" --http-listen "127.0.0.1:$http_port" \
  --webrtc-listen "127.0.0.1:$webrtc_port" --log-level warn 2>"$work/server.log" &
server=$!
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 50); do
  curl -fsS "http://127.0.0.1:$http_port/api/v1/streams" >/dev/null 2>&1 && break
  sleep 0.2
done

python=""
[ -x .venv-test/bin/python3 ] && .venv-test/bin/python3 -c 'import aiortc' 2>/dev/null \
  && python=.venv-test/bin/python3

# One publisher loop per stream: publish the fixture for 30-90 s, stop, start again.
publisher() {
  local name="$1"
  while true; do
    timeout $(( 30 + RANDOM % 60 )) ffmpeg -nostdin -loglevel quiet -re -stream_loop -1 \
      -i fixtures/demo.flv -c copy -f flv "rtmp://127.0.0.1:$rtmp_port/soak/$name" || true
    sleep 1
  done
}

# One viewer loop: watch for 5-60 s over a random protocol, leave, come back.
viewer() {
  while true; do
    local s=$(( RANDOM % streams )) secs=$(( 5 + RANDOM % 55 ))
    local base="127.0.0.1:$http_port/soak/s$s"
    case $(( RANDOM % 4 )) in
      0) url="rtmp://127.0.0.1:$rtmp_port/soak/s$s" ;;
      1) url="http://$base.flv" ;;
      2) url="http://$base/index.m3u8" ;;
      3) url="whep" ;;
    esac
    if [ "$url" = whep ]; then
      if [ -n "$python" ]; then
        timeout $(( secs + 30 )) "$python" crates/sluice/tests/webrtc/whep_client.py \
          "http://$base/whep" "$secs" >/dev/null 2>&1 || true
      fi
    else
      timeout $(( secs + 10 )) ffmpeg -nostdin -loglevel quiet -i "$url" -t "$secs" \
        -c copy -f null - || true
    fi
    sleep 0.$(( RANDOM % 10 ))
  done
}

for i in $(seq 0 $(( streams - 1 ))); do publisher "s$i" & pids+=($!); done
for _ in $(seq $(( viewers * 4 ))); do viewer & pids+=($!); done

echo "unix_s,elapsed_s,rss_kb,fds,live_sessions,live_streams" > "$csv"
start=$(date +%s)
end=$(python3 -c "print(int($start + float('$hours') * 3600))")
echo "soak: ${hours} h, CSV in $csv (server pid $server)"
while [ "$(date +%s)" -lt "$end" ]; do
  kill -0 "$server" 2>/dev/null || { echo "the server died: see $work/server.log" >&2; exit 1; }
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server/status")
  fds=$(ls "/proc/$server/fd" | wc -l)
  sessions=$(curl -fsS "http://127.0.0.1:$http_port/api/v1/sessions?limit=1" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])' 2>/dev/null || echo "")
  live=$(curl -fsS "http://127.0.0.1:$http_port/api/v1/streams?limit=1" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])' 2>/dev/null || echo "")
  now=$(date +%s)
  echo "$now,$(( now - start )),$rss,$fds,$sessions,$live" | tee -a "$csv"
  sleep 60
done
echo "soak done: $csv"
