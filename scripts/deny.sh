#!/usr/bin/env bash
# cargo-deny over the workspace (policy in deny.toml): licences, bans and sources always;
# advisories only when the RustSec database can be fetched (it lives on GitHub, which some
# machines cannot reach), else a note says they were skipped.
# Installs cargo-deny when missing, as a debug build: about 100 s on a 2-core machine against
# 6-12 min for a release build, and a check of this tree still takes about 3 s.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DENY_VERSION=0.20.2
if ! command -v cargo-deny >/dev/null 2>&1; then
  t=$(date +%s)
  cargo install --debug --locked cargo-deny --version "$CARGO_DENY_VERSION"
  echo "cargo-deny $CARGO_DENY_VERSION installed in $(( $(date +%s) - t )) s"
fi
cargo deny --log-level warn check licenses bans sources
if timeout 120 cargo deny fetch db >/dev/null 2>&1; then
  cargo deny --log-level warn check advisories
else
  echo "note: the RustSec advisory database could not be fetched; advisories not checked"
fi
