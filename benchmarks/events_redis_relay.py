"""The Redis hop of the events hub: one hub in relay mode against a private redis-server.

    .venv/bin/python benchmarks/events_redis_relay.py [--events 100000] [--latency 2000]

Prints, for one instance (publisher and reader in one process, as every instance is):

1. throughput: ``--events`` broadcasts issued in bursts of 1000 (a checkpoint between bursts,
   as a busy server's request handlers would give; at most 5000 in flight), timed from the
   first broadcast until a subscriber of the same hub has the last one: events/s through
   relay + Redis + reader;
2. latency: ``--latency`` broadcasts one at a time, the next when the previous has come back:
   broadcast → local delivery p50/p99 (the round trip every event now makes).

Redis is started here on a free loopback port, without persistence (tests/services/servers.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loop_server.events import EventsHub, open_redis_relay
from tests.services.servers import RedisServer

BURST = 1000
WINDOW = 5000


async def run(url: str, events: int, latency_rounds: int) -> None:
    hub = EventsHub(queue_size=events + 10)
    async with open_redis_relay(url) as relay, trio.open_nursery() as nursery:
        await nursery.start(relay.run, hub)
        subscription = hub.register(queue_size=events + 10)

        started = time.perf_counter()
        received = 0
        progress = trio.Event()

        async def drain() -> None:
            nonlocal received, progress
            while received < events:
                received += len(await subscription.receive_batch())
                progress.set()
                progress = trio.Event()

        async with trio.open_nursery() as inner:
            inner.start_soon(drain)
            for start in range(0, events, BURST):
                for i in range(start, min(start + BURST, events)):
                    hub.broadcast("message.created", "bench", {"i": i, "content": "x" * 64})
                # Closed loop: at most WINDOW events between broadcast and delivery, so the
                # outbound queue (10,000) never overflows and nothing is dropped.
                while start + BURST - received > WINDOW:
                    await progress.wait()
                await trio.lowlevel.checkpoint()
        elapsed = time.perf_counter() - started
        print(f"throughput: {events} events in {elapsed:.2f} s = {events / elapsed:,.0f} events/s")

        samples: list[float] = []
        for i in range(latency_rounds):
            sent = time.perf_counter()
            hub.broadcast("message.created", "bench", {"i": i, "content": "x" * 64})
            await subscription.receive_batch()
            samples.append((time.perf_counter() - sent) * 1000)
        samples.sort()
        p50 = statistics.median(samples)
        p99 = samples[int(len(samples) * 0.99) - 1]
        print(f"latency (broadcast -> local delivery): p50 {p50:.3f} ms, p99 {p99:.3f} ms")
        print(f"relay: {relay.statistics()}, batches {relay._batch_no}")
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--latency", type=int, default=2000)
    args = parser.parse_args()
    server = RedisServer.start()
    try:
        trio.run(run, server.url, args.events, args.latency)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
