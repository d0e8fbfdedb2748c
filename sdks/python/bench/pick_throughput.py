"""pick_throughput: how many Watcher.pick() calls per second, per strategy (local, no network call).

Usage: python pick_throughput.py [INSTANCES] [SECONDS_PER_STRATEGY]
Starts the built server on a free loopback port, registers INSTANCES (default
100) instances of one service, waits for a Watcher's view to hold them all,
then calls watcher.pick() in a tight loop for each strategy and prints picks/s
(steady state: the first pick, timed apart, builds the strategy's cache).
A different hash key per pick (precomputed) makes the hash strategies hash for real.
"""

from __future__ import annotations

import asyncio
import sys
import time

from _support import MaxineServer

from maxine import Client, Instance, Strategy, Watcher

STRATEGIES = [
    ("ROUND_ROBIN", Strategy.STRATEGY_ROUND_ROBIN),
    ("RANDOM", Strategy.STRATEGY_RANDOM),
    ("WEIGHTED", Strategy.STRATEGY_WEIGHTED),
    ("CONSISTENT_HASH", Strategy.STRATEGY_CONSISTENT_HASH),
    ("RENDEZVOUS", Strategy.STRATEGY_RENDEZVOUS),
]


async def main(n: int, seconds: float) -> None:
    srv = MaxineServer().start()
    try:
        async with Client(srv.target) as client:
            for i in range(n):
                await client.register(Instance(service="bench", instance_id=f"pod-{i:04d}", host="127.0.0.1", port=10000 + i, weight=1 + i % 10))
            async with Watcher(client, "bench") as watcher:
                assert len(watcher.instances()) == n
                keys = [f"user-{k}" for k in range(4096)]
                print(f"python {sys.version.split()[0]}, {n} SERVING instances, {seconds:g} s per strategy")
                for name, strategy in STRATEGIES:
                    pick = watcher.pick
                    t0 = time.perf_counter()
                    pick(strategy, "warm-up")  # the first pick builds the strategy's cache (the ring)
                    first = time.perf_counter() - t0
                    count = 0
                    start = time.perf_counter()
                    deadline = start + seconds
                    while True:
                        for key in keys:
                            pick(strategy, key)
                        count += len(keys)
                        now = time.perf_counter()
                        if now >= deadline:
                            break
                    print(f"{name:16} {count / (now - start):>12,.0f} picks/s   (first pick {first * 1000:.2f} ms)")
    finally:
        srv.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100, float(sys.argv[2]) if len(sys.argv) > 2 else 2.0))
