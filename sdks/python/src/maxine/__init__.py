"""maxine: the Python SDK of Maxine, a gRPC-first service registry and discovery control plane.

- Client: asyncio client of the unary RPCs, typed errors (errors.py).
- Session: keeps instances alive over one heartbeat stream.
- Watcher: a live local view of services, iterable as changes, with pick().
- SyncClient: blocking Register / Discover for scripts.
- ConfigWatcher, get_config: a service configuration key, decoded and kept up to date.

Messages and enums (Instance, Strategy, ServingStatus...) come from the
code generated from proto/maxine/registry/v1/registry.proto (maxine.gen).
"""

from .backoff import BackoffOptions, ReconnectInfo
from .balancer import HashRing, fmix32, fnv1a32, hash32, rendezvous
from .client import Client
from .config_watcher import ConfigValue, ConfigWatcher, config_stub, get_config, json_decoder
from .credentials import TokenSource, tls_credentials
from .errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    MaxineError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    RpcCancelledError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from .instance_handle import InstanceHandle
from .instance_digest import instance_digest
from .instance_view import ChangeType, SyncInfo, WatchChange
from .messages import (
    EventType,
    Filter,
    Instance,
    InstanceKey,
    RemovalReason,
    ResetReason,
    ServingStatus,
    Strategy,
)
from .call_outcome import FAILURE_CODES, OutcomeInterceptor, outcome_of
from .outlier_ejector import EjectionCounters, EjectionEvent, EjectionOptions, EjectionReason, OutlierEjector
from .session import Session, SessionClosedError, SessionState
from .sync import SyncClient
from .watcher import Watcher, WatcherState, WatchOverflowError

__all__ = [
    "ConfigValue",
    "ConfigWatcher",
    "config_stub",
    "get_config",
    "json_decoder",
    "AlreadyExistsError",
    "BackoffOptions",
    "ChangeType",
    "Client",
    "DeadlineExceededError",
    "EjectionCounters",
    "EjectionEvent",
    "EjectionOptions",
    "EjectionReason",
    "EventType",
    "FAILURE_CODES",
    "FailedPreconditionError",
    "Filter",
    "HashRing",
    "Instance",
    "InstanceHandle",
    "InstanceKey",
    "InternalError",
    "InvalidArgumentError",
    "MaxineError",
    "NotFoundError",
    "OutcomeInterceptor",
    "OutlierEjector",
    "PermissionDeniedError",
    "ReconnectInfo",
    "RemovalReason",
    "ResetReason",
    "ResourceExhaustedError",
    "RpcCancelledError",
    "ServingStatus",
    "Session",
    "SessionClosedError",
    "SessionState",
    "Strategy",
    "SyncClient",
    "SyncInfo",
    "TokenSource",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "WatchChange",
    "WatchOverflowError",
    "Watcher",
    "WatcherState",
    "fmix32",
    "fnv1a32",
    "hash32",
    "instance_digest",
    "outcome_of",
    "rendezvous",
    "tls_credentials",
]
