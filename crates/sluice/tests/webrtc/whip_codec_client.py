#!/usr/bin/env python3
"""A WHIP publisher on aiortc that picks its video codec, for Sluice's codec e2e tests.

Usage: whip_codec_client.py URL SECONDS MEDIA CODEC

Like whip_client.py (same loopback set-up and JSON summary line) but the offer's only video
codec is CODEC (a mime subtype aiortc encodes: "vp8" or "h264"), with Opus audio. Publishes
MEDIA (looped) for SECONDS, then DELETEs the session resource.
"""

import asyncio
import json
import sys
import time
import urllib.parse

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer

# The loopback patch and the HTTP helper are whip_client.py's.
from whip_client import http


async def main():
    url, seconds, media, codec = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
    player = MediaPlayer(media, loop=True)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    video = pc.addTransceiver(player.video, direction="sendonly")
    wanted = [c for c in RTCRtpSender.getCapabilities("video").codecs
              if c.mimeType.lower() == "video/" + codec.lower()]
    if not wanted:
        print(json.dumps({"status": 0, "error": "aiortc cannot encode " + codec}), flush=True)
        return
    video.setCodecPreferences(wanted)
    pc.addTransceiver(player.audio, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    t0 = time.monotonic()
    status, rheaders, body = http("POST", url, pc.localDescription.sdp.encode(),
                                  {"Content-Type": "application/sdp"})
    result = {"status": status}
    if status != 201:
        result["error"] = body.decode(errors="replace")
        print(json.dumps(result), flush=True)
        await pc.close()
        return
    location = rheaders.get("Location") or rheaders.get("location")
    answer = body.decode()
    result["answer_video"] = [line for line in answer.splitlines()
                              if line.startswith("a=rtpmap:") and "/90000" in line]
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    deadline = t0 + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        if pc.connectionState == "connected" and "connected_s" not in result:
            result["connected_s"] = round(time.monotonic() - t0, 3)
    result["connection_state"] = pc.connectionState
    if location:
        result["delete_status"] = http("DELETE", urllib.parse.urljoin(url, location))[0]
    await pc.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
