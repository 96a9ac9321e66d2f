#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 10 s each) on the stable toolchain.
# Usage: scripts/fuzz.sh [seconds-per-target]
# Installs cargo-fuzz when missing. Crashes are left in fuzz/artifacts/<target>/ and fail
# the run; add each one as a regression test beside the parser it broke.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-10}"
export RUSTC_BOOTSTRAP=1   # cargo fuzz needs -Z flags; stable accepts them this way
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --version 0.13.2 --locked
cargo fuzz build -O
for t in $(cargo fuzz list); do
  mkdir -p "corpus/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  echo "fuzz $t for ${secs}s"
  # A unit slower than 25 s is a timeout (a crash: it fails the run); slower than 10 s is
  # reported as a slow unit (a performance finding to fix, listed below, not a failure).
  cargo fuzz run -O "$t" "corpus/$t" "${seeds[@]}" -- -max_total_time="$secs" -timeout=25 \
    -print_final_stats=1 2>&1 \
    | grep -E "stat::number_of_executed_runs|ERROR|SUMMARY|panicked|Done" || true
  for f in "artifacts/$t"/slow-unit-*; do
    if [ -e "$f" ]; then echo "fuzz target $t: slow unit (over 10 s) kept in fuzz/$f"; fi
  done
  if ls "artifacts/$t" 2>/dev/null | grep -qv '^slow-unit-'; then
    echo "fuzz target $t found a crash: fuzz/artifacts/$t"; exit 1
  fi
done
