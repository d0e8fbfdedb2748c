"""InstanceView: the state machine behind a Watcher, with no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .instance_digest import instance_digest
from .messages import (
    EventType,
    HeldInstance,
    HeldService,
    Instance,
    InstanceKey,
    RemovalReason,
    ResetReason,
    WatchEvent,
    WatchHoldings,
    WatchServicesResponse,
)

ChangeType = Literal["added", "updated", "removed"]
"""ChangeType is how one instance of a watched view changed."""


@dataclass(frozen=True)
class WatchChange:
    """WatchChange is one change of a Watcher's view, from an event or from a snapshot that replaced the view."""

    type: ChangeType
    instance: Instance
    """instance after the change; for "removed", its last state."""
    previous: Instance | None
    """previous is what the view held before ("updated" and "removed"), else None."""
    revision: int
    """revision is the event's revision, or the snapshot's for changes a snapshot revealed."""
    removal_reason: RemovalReason
    """removal_reason says why a "removed" instance went; UNSPECIFIED when a snapshot no longer held it."""


@dataclass(frozen=True)
class SyncInfo:
    """SyncInfo describes a snapshot that the view now equals."""

    revision: int
    registry_id: str
    reset: bool
    """reset is set when the server replaced state the view may have held (see reason)."""
    reason: ResetReason


@dataclass(frozen=True)
class ApplyResult:
    """ApplyResult is what one WatchServicesResponse did to the view."""

    changes: list[WatchChange]
    synced: SyncInfo | None = None
    """synced is set when the message ended a snapshot."""


_NONE = RemovalReason.REMOVAL_REASON_UNSPECIFIED

MAX_HELD_INSTANCES = 100_000
"""MAX_HELD_INSTANCES bounds the holdings a view names on a resume: the server's default limit (MAXINE_WATCH_MAX_HELD)."""
MAX_HELD_BYTES = 3 * 1024 * 1024
"""MAX_HELD_BYTES keeps the named holdings well under the server's default message size (4 MiB)."""


class InstanceView:
    """InstanceView folds a watch stream into a local copy of the watched instances.

    It collects snapshot chunks and at snapshot_end replaces its content with
    them, reporting the differences as changes so that consumers stay
    consistent across resets; it applies events in revision order (an event
    at or below the current revision is a duplicate and ignored); and it
    tracks the revision and registry_id to resume from.
    """

    def __init__(self) -> None:
        self._services: dict[str, dict[str, Instance]] = {}
        self._sorted: dict[str, list[Instance]] = {}
        self._versions: dict[str, int] = {}
        self._pending: list[Instance] | None = None
        self._removed: list[InstanceKey] = []
        self._digests: dict[tuple[str, str], tuple[Instance, int]] = {}
        self._revision = 0
        self._registry_id = ""
        self._synced = False

    @property
    def revision(self) -> int:
        """revision is the last revision the view is known to be up to date at."""
        return self._revision

    @property
    def registry_id(self) -> str:
        """registry_id names the registry revision comes from ("" before the first snapshot)."""
        return self._registry_id

    @property
    def synced(self) -> bool:
        """synced is True once a snapshot was applied: from then on the view can resume."""
        return self._synced

    def __len__(self) -> int:
        return sum(len(m) for m in self._services.values())

    def service_names(self) -> list[str]:
        """service_names lists the services that hold instances, in name order."""
        return sorted(self._services)

    def sorted(self, service: str) -> list[Instance]:
        """sorted returns one service's instances in instance_id order (cached until the service changes; do not mutate)."""
        cached = self._sorted.get(service)
        if cached is None:
            m = self._services.get(service, {})
            cached = [m[k] for k in sorted(m, key=lambda s: s.encode())]
            self._sorted[service] = cached
        return cached

    def version(self, service: str) -> int:
        """version counts the changes of one service, so that derived caches know when to rebuild."""
        return self._versions.get(service, 0)

    def get(self, service: str, instance_id: str) -> Instance | None:
        """get returns one instance, or None."""
        return self._services.get(service, {}).get(instance_id)

    def abandon_snapshot(self) -> None:
        """abandon_snapshot drops a partly received snapshot (its stream failed before snapshot_end)."""
        self._pending = None
        self._removed = []

    def holdings(self) -> WatchHoldings | None:
        """holdings names every instance of the view with its content digest, for a resume.

        A server that cannot replay then sends only the differences. None when
        the view is empty or holds more than MAX_HELD_INSTANCES or
        MAX_HELD_BYTES (a whole snapshot then).
        """
        count = len(self)
        if count == 0 or count > MAX_HELD_INSTANCES:
            return None
        size = 0
        services: list[HeldService] = []
        for service, m in self._services.items():
            size += len(service) + 4
            held: list[HeldInstance] = []
            for instance_id, inst in m.items():
                size += len(instance_id) + 13
                held.append(HeldInstance(instance_id=instance_id, digest=self._digest(inst)))
            services.append(HeldService(service=service, instances=held))
        return None if size > MAX_HELD_BYTES else WatchHoldings(services=services)

    def _digest(self, inst: Instance) -> int:
        key = (inst.service, inst.instance_id)
        kept = self._digests.get(key)
        if kept is not None and kept[0] is inst:
            return kept[1]
        d = instance_digest(inst)
        self._digests[key] = (inst, d)
        return d

    def apply(self, msg: WatchServicesResponse) -> ApplyResult:
        """apply folds one message of a watch stream into the view."""
        kind = msg.WhichOneof("message")
        if kind == "snapshot":
            if self._pending is None:
                self._pending = []
            self._pending.extend(msg.snapshot.instances)
            self._removed.extend(msg.snapshot.removed)
            return ApplyResult([])
        if kind == "snapshot_end":
            end = msg.snapshot_end
            if end.differential:
                changes = self._patch(self._pending or [], self._removed, end.revision)
            else:
                changes = self._replace(self._pending or [], end.revision)
            self._pending = None
            self._removed = []
            self._revision = end.revision
            self._registry_id = end.registry_id
            self._synced = True
            return ApplyResult(changes, SyncInfo(end.revision, end.registry_id, end.reset, end.reason))
        if kind == "event":
            return ApplyResult(self._event(msg.event))
        if kind == "progress":
            if msg.progress.revision > self._revision:
                self._revision = msg.progress.revision
            if msg.progress.registry_id:
                self._registry_id = msg.progress.registry_id
        return ApplyResult([])  # progress, or a message kind newer than this SDK

    def _event(self, e: WatchEvent) -> list[WatchChange]:
        if not e.HasField("instance") or (self._synced and e.revision <= self._revision):
            return []
        self._revision = e.revision
        inst = e.instance
        previous = self.get(inst.service, inst.instance_id)
        if e.type == EventType.EVENT_TYPE_REMOVED:
            if previous is None:
                return []
            self._delete(inst)
            return [WatchChange("removed", inst, previous, e.revision, e.removal_reason)]
        if e.type not in (EventType.EVENT_TYPE_ADDED, EventType.EVENT_TYPE_UPDATED):
            return []
        self._set(inst)
        return [WatchChange("added" if previous is None else "updated", inst, previous, e.revision, _NONE)]

    def _replace(self, instances: list[Instance], revision: int) -> list[WatchChange]:
        changes: list[WatchChange] = []
        seen: set[tuple[str, str]] = set()
        for inst in instances:
            seen.add((inst.service, inst.instance_id))
            previous = self.get(inst.service, inst.instance_id)
            if previous is not None and previous == inst:
                continue
            self._set(inst)
            changes.append(WatchChange("added" if previous is None else "updated", inst, previous, revision, _NONE))
        for service, m in list(self._services.items()):
            for previous in list(m.values()):
                if (service, previous.instance_id) not in seen:
                    self._delete(previous)
                    changes.append(WatchChange("removed", previous, previous, revision, _NONE))
        return changes

    def _patch(self, instances: list[Instance], removed: list[InstanceKey], revision: int) -> list[WatchChange]:
        """_patch applies a differential snapshot: drop the removed instances, take the sent ones.

        The view named its holdings when the stream opened and has not changed since.
        """
        changes: list[WatchChange] = []
        for k in removed:
            previous = self.get(k.service, k.instance_id)
            if previous is None:
                continue
            self._delete(previous)
            changes.append(WatchChange("removed", previous, previous, revision, _NONE))
        for inst in instances:
            previous = self.get(inst.service, inst.instance_id)
            if previous is not None and previous == inst:
                continue
            self._set(inst)
            changes.append(WatchChange("added" if previous is None else "updated", inst, previous, revision, _NONE))
        return changes

    def _set(self, inst: Instance) -> None:
        self._services.setdefault(inst.service, {})[inst.instance_id] = inst
        self._touch(inst.service)

    def _delete(self, inst: Instance) -> None:
        m = self._services.get(inst.service)
        if m is None:
            return
        m.pop(inst.instance_id, None)
        self._digests.pop((inst.service, inst.instance_id), None)
        if not m:
            del self._services[inst.service]
        self._touch(inst.service)

    def _touch(self, service: str) -> None:
        self._sorted.pop(service, None)
        self._versions[service] = self.version(service) + 1
