#!/usr/bin/env python3
"""A lossy UDP relay for the WebRTC and SRT loss tests (this kernel has no netem).

Usage: loss_proxy.py LISTEN_HOST:PORT TARGET_HOST:PORT LOSS_PERCENT MAX_SECONDS [DELAY_MS]

Each client address gets its own upstream socket (like a NAT); LOSS_PERCENT of the
datagrams in each direction are dropped (seeded, so runs are comparable). Exits after
MAX_SECONDS. Clients (at most MAX_CLIENTS) beyond the limit are ignored. DELAY_MS (default
0) delays every datagram kept, in each direction.
"""

import asyncio
import random
import sys

MAX_CLIENTS = 16
DELAY_S = 0.0


def later(send, data, dest):
    """Sends now, or after DELAY_S."""
    if DELAY_S > 0:
        asyncio.get_running_loop().call_later(DELAY_S, send, data, dest)
    else:
        send(data, dest)


def addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


class Upstream(asyncio.DatagramProtocol):
    def __init__(self, front, client, rng, loss):
        self.front, self.client, self.rng, self.loss = front, client, rng, loss

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, _src):
        if self.rng.random() * 100 >= self.loss:
            later(self.front.transport.sendto, data, self.client)


class Front(asyncio.DatagramProtocol):
    def __init__(self, target, loss):
        self.target, self.loss, self.rng, self.clients = target, loss, random.Random(7), {}

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, src):
        up = self.clients.get(src)
        if up is None:
            if len(self.clients) >= MAX_CLIENTS:
                return
            up = Upstream(self, src, self.rng, self.loss)
            self.clients[src] = up
            loop = asyncio.get_running_loop()
            loop.create_task(loop.create_datagram_endpoint(lambda: up, local_addr=("127.0.0.1", 0)))
            up.pending = [data]
            return
        if not hasattr(up, "transport"):
            up.pending.append(data)
            return
        for d in getattr(up, "pending", []):
            up.transport.sendto(d, self.target)
        up.pending = []
        if self.rng.random() * 100 >= self.loss:
            later(up.transport.sendto, data, self.target)


async def main():
    listen, target = addr(sys.argv[1]), addr(sys.argv[2])
    loss, seconds = float(sys.argv[3]), float(sys.argv[4])
    global DELAY_S
    DELAY_S = float(sys.argv[5]) / 1000 if len(sys.argv) > 5 else 0.0
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Front(target, loss), local_addr=listen)
    await asyncio.sleep(seconds)


if __name__ == "__main__":
    asyncio.run(main())
