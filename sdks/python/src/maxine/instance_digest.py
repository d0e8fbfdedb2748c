"""instance_digest: the content digest a resuming Watcher names its holdings with."""

from __future__ import annotations

import hashlib
import struct

from .messages import Instance


def instance_digest(inst: Instance) -> int:
    """instance_digest is the content digest of an instance, as defined on WatchHoldings in registry.proto.

    It is the first 8 bytes (big-endian) of the SHA-256 of the fields a
    client acts on, each length-prefixed; the times and revisions a registry
    sets are left out, so an instance re-registered unchanged on a restarted
    registry keeps its digest. The server and every SDK compute it alike
    (testdata/instance-digest.json holds shared vectors).
    """
    h = hashlib.sha256()

    def add(s: str) -> None:
        b = s.encode("utf-8")
        h.update(struct.pack(">I", len(b)))
        h.update(b)

    add(inst.service)
    add(inst.instance_id)
    add(inst.host)
    add(str(inst.port))
    add(inst.version)
    add(inst.zone)
    add(str(len(inst.tags)))
    for t in inst.tags:
        add(t)
    keys = sorted(inst.metadata, key=lambda k: k.encode("utf-8"))
    add(str(len(keys)))
    for k in keys:
        add(k)
        add(inst.metadata[k])
    add(str(inst.weight))
    add(str(int(inst.status)))
    add(inst.owner)
    add(str(int(inst.operator_status)))
    return int.from_bytes(h.digest()[:8], "big")
