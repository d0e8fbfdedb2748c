"""InstanceHandle: one instance a Session keeps alive."""

from __future__ import annotations

import math
from typing import Protocol

from .messages import Instance, InstanceKey, OperatorStatus, ServingStatus

_SETTABLE = (
    ServingStatus.SERVING_STATUS_SERVING,
    ServingStatus.SERVING_STATUS_NOT_SERVING,
    ServingStatus.SERVING_STATUS_DRAINING,
)


def key_of(k: Instance | InstanceKey) -> tuple[str, str, str]:
    """key_of is the dictionary key of an instance: (namespace, service, instance_id)."""
    return (k.namespace, k.service, k.instance_id)


class HandleOwner(Protocol):
    """HandleOwner is what an InstanceHandle asks of its Session."""

    async def beat_now(self, handle: InstanceHandle) -> None:
        """beat_now sends a beat for handle and returns when the server renewed it."""
        ...

    async def release(self, handle: InstanceHandle) -> None:
        """release stops heartbeating handle and deregisters it."""
        ...


class InstanceHandle:
    """InstanceHandle is one instance kept alive by a Session, returned by Session.register.

    It stays valid until deregister() or the session's close; its status and
    load ride on the session's heartbeats.
    """

    def __init__(
        self,
        owner: HandleOwner,
        instance: Instance,
        ttl: float,
        requested_ttl: float | None,
        requested_status: ServingStatus = ServingStatus.SERVING_STATUS_UNSPECIFIED,
    ) -> None:
        self._owner = owner
        self.key = InstanceKey(namespace=instance.namespace, service=instance.service, instance_id=instance.instance_id)
        """key names the instance as the server stored it (a server-assigned instance_id included)."""
        self._instance = instance
        self.ttl = ttl
        """ttl is the lease TTL in seconds the server granted."""
        self.requested_ttl = requested_ttl
        """requested_ttl is what register asked for (None: the server's default), reused on re-registration."""
        # Under an operator's override (maxine drain) the answer's status is the override's: beats report what register asked for.
        status = requested_status if instance.operator_status != OperatorStatus.OPERATOR_STATUS_UNSPECIFIED else instance.status
        self._status = ServingStatus.SERVING_STATUS_SERVING if status == ServingStatus.SERVING_STATUS_UNSPECIFIED else status
        self._load: float | None = None
        self._live = True

    @property
    def instance(self) -> Instance:
        """instance is the instance as the server last returned it from Register."""
        return self._instance

    @property
    def status(self) -> ServingStatus:
        """status is the status this handle asks for; every heartbeat carries it."""
        return self._status

    @property
    def load(self) -> float | None:
        """load is the load reported with each heartbeat, or None when never set."""
        return self._load

    @property
    def registered(self) -> bool:
        """registered is False once the handle was deregistered or its session closed."""
        return self._live

    async def set_status(self, status: ServingStatus) -> None:
        """set_status changes the status with a heartbeat sent at once and returns when the server applied it."""
        self._assert_live()
        if status not in _SETTABLE:
            raise ValueError(f"set_status: status must be SERVING, NOT_SERVING or DRAINING, got {status!r}")
        self._status = status
        await self._owner.beat_now(self)

    async def drain(self) -> None:
        """drain sets status DRAINING: the instance stays registered but is no longer picked."""
        await self.set_status(ServingStatus.SERVING_STATUS_DRAINING)

    def set_load(self, load: float) -> None:
        """set_load reports the instance's load (finite, >= 0, lower is less loaded) with the next heartbeat."""
        self._assert_live()
        if isinstance(load, bool) or not isinstance(load, (int, float)) or not math.isfinite(load) or load < 0:
            raise ValueError(f"set_load: load must be a finite number >= 0, got {load!r}")
        self._load = float(load)

    async def deregister(self) -> None:
        """deregister removes the instance from the registry at once and stops its heartbeats."""
        if self._live:
            await self._owner.release(self)

    def _update(self, instance: Instance, ttl: float) -> None:
        self._instance = instance
        self.ttl = ttl

    def _retire(self) -> None:
        self._live = False

    def _assert_live(self) -> None:
        if not self._live:
            k = self.key
            raise RuntimeError(f"instance {k.namespace}/{k.service}/{k.instance_id}: deregistered")
