#!/usr/bin/env bash
# Runs inside `unshare --net --pid --fork --kill-child` (a private network and PID namespace:
# everything started here dies with this script). Starts sluice on loopback, publishes the
# fixture over RTMP, then (LOSS > 0) drops LOSS% of the UDP packets on lo with netem (TCP,
# i.e. the RTMP ingest and the HTTP API, is left alone), plays the stream with the aiortc
# WHEP client for SECONDS and prints one JSON line: the client's summary, the session list
# read while the viewer was connected, and the server's WebRTC quality counters.
#
# Usage: loss.sh SLUICE_BIN FIXTURE PYTHON CLIENT_PY SECONDS LOSS_PERCENT
set -euo pipefail
sluice=$1 fixture=$2 python=$3 client=$4 seconds=$5 loss=$6
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

ip link set lo up
# netem drops LOSS% of the UDP packets on lo (TCP, i.e. the RTMP ingest and the HTTP API,
# is left alone): every packet goes to band 1:1 of a prio qdisc except UDP, which goes to
# 1:4 where netem sits. Kernels without sch_netem get a userspace lossy relay instead: the
# server announces 127.0.0.2:8189, where loss_proxy.py relays to 127.0.0.1:8189.
mode=none
if [ "$loss" != 0 ]; then
  if tc qdisc add dev lo root handle 1: prio bands 4 priomap 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 2>/dev/null &&
     tc qdisc add dev lo parent 1:4 handle 40: netem loss "${loss}%" 2>/dev/null; then
    mode=netem
  else
    tc qdisc del dev lo root 2>/dev/null || true
    mode=proxy
  fi
fi
export SLUICE_RTMP_LISTEN=127.0.0.1:1935 SLUICE_HTTP_LISTEN=127.0.0.1:8080 RUST_LOG=warn
announce='[]'
[ "$mode" = proxy ] && announce='["127.0.0.2"]'
printf '[webrtc]\nlisten = "127.0.0.1:8189"\nannounce = %s\n' "$announce" >"$work/sluice.toml"
api=http://127.0.0.1:8080
"$sluice" --config "$work/sluice.toml" >"$work/sluice.log" 2>&1 &
for _ in $(seq 100); do
  curl -sf -o /dev/null "$api/api/v1/server" && break
  sleep 0.1
done
curl -sf -o /dev/null "$api/api/v1/server" || { echo "sluice did not start" >&2; cat "$work/sluice.log" >&2; exit 1; }

timeout $((seconds + 60)) ffmpeg -hide_banner -loglevel error -re -stream_loop -1 -i "$fixture" \
  -c copy -f flv rtmp://127.0.0.1:1935/live/loss </dev/null >/dev/null 2>"$work/ffmpeg.log" &
for _ in $(seq 100); do
  curl -sf -o /dev/null "$api/api/v1/streams/live/loss" && break
  sleep 0.1
done
curl -sf -o /dev/null "$api/api/v1/streams/live/loss" || { echo "stream never live" >&2; cat "$work/ffmpeg.log" >&2; exit 1; }

# Loss starts only now, once the stream is live.
if [ "$mode" = netem ]; then
  tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip protocol 17 0xff flowid 1:4
elif [ "$mode" = proxy ]; then
  timeout $((seconds + 40)) "$python" "$(dirname "$0")/loss_proxy.py" 127.0.0.2:8189 \
    127.0.0.1:8189 "$loss" $((seconds + 30)) 2>"$work/proxy.err" &
  sleep 0.5
fi

timeout $((seconds + 30)) "$python" "$client" "$api/live/loss/whep" "$seconds" >"$work/client.json" 2>"$work/client.err" &
client_pid=$!
# The session list while the viewer plays (it is gone after the client's DELETE).
sleep $((seconds - 2))
curl -sf --max-time 5 "$api/api/v1/sessions" >"$work/sessions.json" || echo '{}' >"$work/sessions.json"
wait "$client_pid" || { echo "client failed" >&2; cat "$work/client.err" >&2; exit 1; }
curl -sf --max-time 5 "$api/metrics" >"$work/metrics.txt"
metric() { awk -v n="$1" '$1 == n { v = $2 } END { print (v == "" ? 0 : v) }' "$work/metrics.txt"; }
printf '{"mode": "%s", "client": %s, "sessions": %s, "nacks": %s, "retransmits": %s, "rtt_samples": %s}\n' \
  "$mode" "$(tail -n 1 "$work/client.json")" "$(cat "$work/sessions.json")" \
  "$(metric sluice_webrtc_nacks_total)" "$(metric sluice_webrtc_retransmits_total)" \
  "$(metric sluice_webrtc_rtt_seconds_count)"
