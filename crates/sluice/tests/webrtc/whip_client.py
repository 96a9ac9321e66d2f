#!/usr/bin/env python3
"""A WHIP publisher built on aiortc (an independent WebRTC stack) for Sluice's e2e tests.

Usage: whip_client.py URL SECONDS MEDIA [--token T] [--keep] [--opus-digests]

Plays the MEDIA file (looped) through aiortc's encoders (H.264 forced by codec preferences,
Opus) and POSTs a sendonly offer to URL (the WHIP endpoint), publishes for SECONDS, DELETEs
the session resource (unless --keep) and prints one JSON summary line.

--opus-digests adds "opus_digests" to the summary: a short SHA-256 of every Opus packet sent,
in order (what the server must pass to WHEP viewers unchanged).

Traffic stays on loopback: no ICE servers and the host address list is patched to
127.0.0.1 (aioice skips loopback).
"""

import asyncio
import hashlib
import json
import sys
import time
import urllib.parse
import urllib.request

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

OPUS_SENT = []


def record_opus_sent():
    """Wraps aiortc's sender so every encoded audio payload (one Opus packet) is noted."""
    inner = RTCRtpSender._next_encoded_frame

    async def wrapped(self, codec):
        frame = await inner(self, codec)
        if frame is not None and self.kind == "audio":
            OPUS_SENT.extend(hashlib.sha256(p).hexdigest()[:16] for p in frame.payloads)
        return frame

    RTCRtpSender._next_encoded_frame = wrapped


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


async def main():
    url, seconds, media = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    keep = "--keep" in sys.argv
    if "--opus-digests" in sys.argv:
        record_opus_sent()
    token = None
    if "--token" in sys.argv:
        token = sys.argv[sys.argv.index("--token") + 1]
    player = MediaPlayer(media, loop=True)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    video = pc.addTransceiver(player.video, direction="sendonly")
    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType.lower() == "video/h264"]
    video.setCodecPreferences(h264)
    pc.addTransceiver(player.audio, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = "Bearer " + token
    t0 = time.monotonic()
    status, rheaders, body = http("POST", url, pc.localDescription.sdp.encode(), headers)
    result = {"status": status}
    if status != 201:
        result["error"] = body.decode(errors="replace")
        print(json.dumps(result), flush=True)
        await pc.close()
        return
    location = rheaders.get("Location") or rheaders.get("location")
    result["location"] = location
    result["etag"] = rheaders.get("ETag") or rheaders.get("etag")
    await pc.setRemoteDescription(RTCSessionDescription(body.decode(), "answer"))
    deadline = t0 + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        if pc.connectionState == "connected" and "connected_s" not in result:
            result["connected_s"] = round(time.monotonic() - t0, 3)
    result["connection_state"] = pc.connectionState
    if "--opus-digests" in sys.argv:
        result["opus_digests"] = OPUS_SENT
    if not keep and location:
        resource = urllib.parse.urljoin(url, location)
        result["delete_status"] = http("DELETE", resource)[0]
    await pc.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
