#!/usr/bin/env bash
# Runs Sluice on its embedded defaults with the looping demo clip at live/demo (console at
# http://127.0.0.1:8080/). Installs cmake first when it is missing: the bundled libopus that
# the WebRTC audio transcoder links is built with it. Extra arguments go to sluice.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cmake >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing cmake (builds the bundled libopus)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends cmake >/dev/null
  else
    # No root: cmake from PyPI in a private venv.
    python3 -m venv .venv-tools
    .venv-tools/bin/pip install -q --disable-pip-version-check cmake
    export PATH="$PWD/.venv-tools/bin:$PATH"
  fi
fi
exec cargo run --release -- --demo "$@"
