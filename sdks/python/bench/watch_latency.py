"""watch_latency: time from a Register made elsewhere to the Python Watcher's ADDED event.

Usage: python watch_latency.py [TRIALS]
Starts the built server on a free loopback port and a registrar process (its
own Python process and connection). For each trial the registrar registers a
new instance; the time runs from just before its Register is sent to the
moment the watcher's change iterator yields the ADDED change. Both sides read
CLOCK_MONOTONIC (time.monotonic), which processes of one machine share.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _support import MaxineServer

from maxine import Client, Watcher


async def main(trials: int) -> None:
    srv = MaxineServer().start()
    registrar = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "_registrar.py"), srv.target],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert registrar.stdin is not None and registrar.stdout is not None
    try:
        assert registrar.stdout.readline().strip() == "ready"
        async with Client(srv.target) as client, Watcher(client, "latency") as watcher:
            changes = watcher.changes()
            samples = []
            for i in range(trials):
                registrar.stdin.write(f"latency inst-{i}\n")
                registrar.stdin.flush()
                change = await asyncio.wait_for(anext(changes), 10)
                seen = time.monotonic()
                sent = float(await asyncio.to_thread(registrar.stdout.readline))
                assert change.type == "added" and change.instance.instance_id == f"inst-{i}"
                samples.append((seen - sent) * 1000)
                await asyncio.sleep(0.05)
            await changes.aclose()  # type: ignore[attr-defined]
        print("samples (ms):", " ".join(f"{s:.2f}" for s in samples))
        print(f"Register elsewhere -> Python watcher ADDED: median {statistics.median(samples):.2f} ms, "
              f"min {min(samples):.2f} ms, max {max(samples):.2f} ms over {trials}")
    finally:
        registrar.stdin.close()
        registrar.wait(10)
        srv.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
