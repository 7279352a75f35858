"""The floor for benchmarks/events_fanout.py: a bare Trio server writing pre-framed bytes.

No HTTP server, no hub features (no filter, no replay, no slow-consumer bound): accept, answer
the WebSocket handshake, and for each event append one pre-built frame to every connection's
list and wake its writer, which sends everything queued with one ``send_all``. Whatever
loop-server does beyond this costs time; this is what the machine does without it.

Same control protocol as the other servers: ``PUB <n>`` and ``STATS`` lines on --control-port.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import resource
import time
from functools import partial

import trio

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Connection:
    def __init__(self) -> None:
        self.queue: list[bytes] = []
        self.wakeup = trio.Event()


class Floor:
    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.seq = 0

    def publish(self, count: int) -> None:
        for _ in range(count):
            self.seq += 1
            payload = json.dumps(
                {
                    "type": "message.created",
                    "channel_id": "bench",
                    "data": {
                        "msg_id": f"m-{self.seq}",
                        "author_id": "bench",
                        "author_name": "bench",
                        "content": str(time.monotonic_ns()),
                        "is_bot": True,
                    },
                    "timestamp": time.time_ns() // 1_000_000,
                    "seq": self.seq,
                },
                separators=(",", ":"),
            ).encode()
            length = len(payload)
            if length < 126:
                header = bytes((0x81, length))
            elif length < 65536:
                header = bytes((0x81, 126)) + length.to_bytes(2, "big")
            else:
                header = bytes((0x81, 127)) + length.to_bytes(8, "big")
            frame = header + payload
            for connection in self.connections:
                connection.queue.append(frame)
                connection.wakeup.set()

    async def handle(self, stream: trio.SocketStream) -> None:
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            data = await stream.receive_some(65536)
            if not data:
                return
            buffer += data
        key = b""
        for line in buffer.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        await stream.send_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        connection = Connection()
        self.connections.add(connection)
        try:
            async with trio.open_nursery() as nursery:

                async def reader() -> None:
                    while await stream.receive_some(65536):
                        pass
                    nursery.cancel_scope.cancel()

                nursery.start_soon(reader)
                while True:
                    await connection.wakeup.wait()
                    connection.wakeup = trio.Event()
                    batch, connection.queue = connection.queue, []
                    await stream.send_all(b"".join(batch))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.connections.discard(connection)

    async def control(self, stream: trio.SocketStream) -> None:
        buffer = b""
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.startswith(b"PUB "):
                    self.publish(int(line[4:]))
                elif line.strip() == b"STATS":
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                    stats = {
                        "cpu_s": usage.ru_utime + usage.ru_stime,
                        "subscribers": len(self.connections),
                        "rss_kb": _rss_kb(),
                        "max_queue_depth": max((len(c.queue) for c in self.connections), default=0),
                    }
                    await stream.send_all(json.dumps(stats).encode() + b"\n")


async def main() -> None:
    floor = Floor()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, floor.handle, 0, host="127.0.0.1"))
        controls = await nursery.start(partial(trio.serve_tcp, floor.control, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        control_port = controls[0].socket.getsockname()[1]
        # The benchmark reads the ports from this line.
        print(f"READY {port} {control_port}", flush=True)


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__).parse_args()
    trio.run(main)
