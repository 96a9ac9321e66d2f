#!/usr/bin/env bash
# Runs Sluice's whole test suite: clippy on every target (warnings are errors), then unit
# tests, wire-level fixtures, and end-to-end tests that drive the server with real clients
# (ffmpeg, ffprobe, GStreamer's two RTMP stacks). Installs missing system packages first, so
# it passes on a brand-new Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)   # HTTP/2 client for HLS
command -v cmake >/dev/null 2>&1 || need+=(cmake)   # builds the bundled libopus (transcode)
command -v ip >/dev/null 2>&1 || need+=(iproute2)   # ip and tc in the WebRTC loss test's namespace
command -v unshare >/dev/null 2>&1 || need+=(util-linux)   # its private network namespace
command -v srt-live-transmit >/dev/null 2>&1 || need+=(srt-tools)   # libsrt's own SRT peer
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)   # the cluster tests' Redis
for element in rtmpsrc rtmp2src rtmpsink rtmp2sink flvdemux flvmux h264parse aacparse \
    avdec_h264 avdec_aac fakesink filesrc; do
  if ! gst-inspect-1.0 "$element" >/dev/null 2>&1; then
    need+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
           gstreamer1.0-plugins-bad gstreamer1.0-libav)
    break
  fi
done
# The web console's browser test: Debian's Chromium, driven by playwright-core from npm.
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# The WebRTC tests' independent peer: aiortc (its PyPI wheels bundle FFmpeg and libopus)
# in a private venv that crates/sluice/tests/e2e/webrtc*.rs use.
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

console_test=crates/sluice/tests/console
if [ ! -d "$console_test/node_modules/playwright-core" ]; then
  npm ci --prefix "$console_test" --no-audit --no-fund
fi
# The rooms test's clients: LiveKit's own JS SDK (livekit-client, loaded into Chromium) and
# livekit-server-sdk (tokens, RoomService), pinned in crates/sluice/tests/rooms.
rooms_test=crates/sluice/tests/rooms
if [ ! -d "$rooms_test/node_modules/livekit-client" ]; then
  npm ci --prefix "$rooms_test" --no-audit --no-fund
fi

# Python test clients in a private venv: prometheus_client's exposition parser, and aiortc
# (an independent WebRTC peer; its wheels bundle FFmpeg and libopus).
venv=.venv-test
if ! "$venv/bin/python" -c "import prometheus_client, aiortc" >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check prometheus_client==0.21.1 aiortc==1.16.0
fi

# The layout's dependency rules (docs/architecture.md): a crate that depends on one it must
# not fails here, in seconds.
python3 scripts/check-deps.py

# Lints first (every crate and target, warnings are errors): a lint fails the run in minutes
# rather than after the whole suite. Here rather than in .ci/run because clippy runs the
# build scripts (bundled libopus needs cmake), which need the packages installed above.
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo clippy --workspace --all-targets --locked -- -D warnings

cargo test --workspace --locked "$@"
