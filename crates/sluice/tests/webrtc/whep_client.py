#!/usr/bin/env python3
"""A WHEP player built on aiortc (an independent WebRTC stack) for Sluice's e2e tests.

Usage: whep_client.py URL SECONDS [--keep] [--opus-digests]

POSTs a recvonly audio+video offer to URL (the WHEP endpoint), applies the answer, decodes
every frame it receives for SECONDS, DELETEs the session resource (unless --keep, which
leaves the session for the server's timeout to clean up) and prints one JSON summary line.

--opus-digests adds "opus_digests" to the summary: a short SHA-256 of every audio RTP payload
(one Opus packet each) received, in order.

Traffic stays on loopback: no ICE servers (aiortc would otherwise ask a public STUN
server) and the host address list is patched to 127.0.0.1 (aioice skips loopback).
"""

import asyncio
import hashlib
import json
import sys
import time
import urllib.parse
import urllib.request

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

OPUS_RECEIVED = []


def record_opus_received():
    """Wraps aiortc's receiver so every audio RTP payload (one Opus packet) is noted."""
    inner = RTCRtpReceiver._handle_rtp_packet

    async def wrapped(self, packet, arrival_time_ms):
        if self._RTCRtpReceiver__kind == "audio" and packet.payload:
            OPUS_RECEIVED.append(hashlib.sha256(packet.payload).hexdigest()[:16])
        return await inner(self, packet, arrival_time_ms)

    RTCRtpReceiver._handle_rtp_packet = wrapped


def http(method, url, body=None, content_type=None):
    req = urllib.request.Request(url, data=body, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


async def consume(track, stats, deadline):
    kind = track.kind
    while time.monotonic() < deadline:
        try:
            frame = await asyncio.wait_for(track.recv(), max(0.05, deadline - time.monotonic()))
        except (asyncio.TimeoutError, MediaStreamError):
            break
        s = stats[kind]
        s["frames"] += 1
        if s["first_pts"] is None:
            s["first_pts"] = frame.pts
        if frame.pts is not None and s["last_pts"] is not None and frame.pts <= s["last_pts"]:
            s["non_increasing"] += 1
        s["last_pts"] = frame.pts
        if kind == "video":
            s["width"], s["height"] = frame.width, frame.height
        else:
            s["sample_rate"] = frame.sample_rate
            s["samples"] += frame.samples


async def main():
    url, seconds = sys.argv[1], float(sys.argv[2])
    keep = "--keep" in sys.argv
    if "--opus-digests" in sys.argv:
        record_opus_received()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    stats = {
        "video": {"frames": 0, "width": 0, "height": 0, "first_pts": None, "last_pts": None,
                  "non_increasing": 0},
        "audio": {"frames": 0, "sample_rate": 0, "samples": 0, "first_pts": None,
                  "last_pts": None, "non_increasing": 0},
    }
    tasks = []
    deadline = [None]

    @pc.on("track")
    def on_track(track):
        tasks.append(asyncio.ensure_future(consume(track, stats, deadline[0])))

    await pc.setLocalDescription(await pc.createOffer())
    t0 = time.monotonic()
    deadline[0] = t0 + seconds
    status, headers, body = http("POST", url, pc.localDescription.sdp.encode(), "application/sdp")
    result = {"status": status}
    if status != 201:
        result["error"] = body.decode(errors="replace")
        print(json.dumps(result), flush=True)
        await pc.close()
        return
    location = headers.get("Location") or headers.get("location")
    result["location"] = location
    result["etag"] = headers.get("ETag") or headers.get("etag")
    await pc.setRemoteDescription(RTCSessionDescription(body.decode(), "answer"))
    # Video frames decoded so far, sampled once a second (shows playback keeps going).
    timeline, next_sample = [], time.monotonic() + 1.0
    while time.monotonic() < deadline[0]:
        await asyncio.sleep(0.1)
        if time.monotonic() >= next_sample:
            timeline.append(stats["video"]["frames"])
            next_sample += 1.0
        if pc.connectionState == "connected" and "connected_s" not in result:
            result["connected_s"] = round(time.monotonic() - t0, 3)
    if tasks:
        await asyncio.wait(tasks, timeout=2)
    result["video"] = stats["video"]
    result["audio"] = stats["audio"]
    result["video_timeline"] = timeline
    result["connection_state"] = pc.connectionState
    if "--opus-digests" in sys.argv:
        result["opus_digests"] = OPUS_RECEIVED
    if not keep and location:
        resource = urllib.parse.urljoin(url, location)
        result["delete_status"] = http("DELETE", resource)[0]
        await pc.close()
        print(json.dumps(result), flush=True)
    else:
        # Leave without a DELETE and without closing (no DTLS close_notify): the server must
        # notice the silence and time the session out.
        print(json.dumps(result), flush=True)
        sys.stdout.flush()
        import os
        os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
