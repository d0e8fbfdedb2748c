"""_registrar registers instances on request, from its own process and connection (watch_latency's "elsewhere").

Reads "SERVICE INSTANCE_ID" lines on stdin; for each, prints the CLOCK_MONOTONIC
time just before the Register was sent, then registers it (SyncClient).
"""

from __future__ import annotations

import sys
import time

from maxine import Instance, SyncClient

with SyncClient(sys.argv[1]) as client:
    client.list_services()  # connect before the first timed call
    print("ready", flush=True)
    for line in sys.stdin:
        service, iid = line.split()
        sent = time.monotonic()
        client.register(Instance(service=service, instance_id=iid, host="127.0.0.1", port=9000), ttl=60)
        print(f"{sent:.9f}", flush=True)
