#!/usr/bin/env python3
"""Fails when a crate depends on one it must not (docs/architecture.md, "Layout").

Reads `cargo metadata --locked` and checks each workspace crate's
dependencies, normal and build (what ships), and for the binary rule dev-dependencies too:
- sans-IO crates (codecs, media, rtp, access, config, transcode) reach no async runtime,
  HTTP stack or WebRTC stack, not even through another crate;
- `config` depends on no other Sluice crate;
- a protocol server never depends on another server, and nothing but the binary depends on
  a server;
- nothing depends on the binary crate `sluice`;
- only the binary depends on `cluster` and `ladder` (wired in, never called by a server).
Prints every violation and exits 1 when there is one.
"""

import json
import subprocess
import sys

SANS_IO = {
    "media", "amf", "flv", "rtmp", "mpegts", "fmp4", "hls", "rtp", "access", "config",
    "transcode", "relay", "rooms",
}
# Crates a sans-IO crate must not reach, directly or through its dependencies.
IO_STACKS = {"tokio", "axum", "hyper", "hyper-util", "str0m", "mio", "tower"}
SERVERS = {"server-http", "server-rtmp", "server-webrtc", "server-srt"}
BINARY = "sluice"
# Wired in by the binary only: servers meet it through control (RemoteStreams, StatusSource).
BINARY_ONLY = {"cluster", "ladder"}


def main() -> int:
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    members = set(meta["workspace_members"])
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    names = {p["id"]: p["name"] for p in meta["packages"]}
    ours = {names[m] for m in members}

    def deps(pkg_id, kinds):
        for d in nodes[pkg_id]["deps"]:
            if any(k["kind"] in kinds for k in d["dep_kinds"]):
                yield d["pkg"]

    def reaches(pkg_id):
        """Every package reachable through normal and build dependencies."""
        seen, todo = set(), [pkg_id]
        while todo:
            for d in deps(todo.pop(), {None, "build"}):
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return {names[s] for s in seen}

    errors = []
    for m in sorted(members, key=lambda i: names[i]):
        name = names[m]
        direct = {names[d] for d in deps(m, {None, "build"})}
        with_dev = {names[d] for d in deps(m, {None, "build", "dev"})}
        if name in SANS_IO:
            for bad in sorted(reaches(m) & IO_STACKS):
                errors.append(f"{name} is sans-IO but reaches {bad}")
        if name == "config":
            for bad in sorted(direct & ours):
                errors.append(f"config is a leaf but depends on {bad}")
        if name != BINARY:
            for bad in sorted(direct & SERVERS):
                errors.append(f"{name} depends on the server {bad}")
            for bad in sorted(direct & BINARY_ONLY):
                errors.append(f"{name} depends on {bad}, which only the binary may")
            if BINARY in with_dev:
                errors.append(f"{name} depends on the binary crate {BINARY}")
    for e in errors:
        print(f"check-deps: {e}", file=sys.stderr)
    if not errors:
        print(f"check-deps: {len(members)} crates follow the layout rules")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
