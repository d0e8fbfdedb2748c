import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVING_STATUS_UNSPECIFIED: _ClassVar[ServingStatus]
    SERVING_STATUS_SERVING: _ClassVar[ServingStatus]
    SERVING_STATUS_NOT_SERVING: _ClassVar[ServingStatus]
    SERVING_STATUS_DRAINING: _ClassVar[ServingStatus]

class CheckStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHECK_STATUS_UNSPECIFIED: _ClassVar[CheckStatus]
    CHECK_STATUS_PENDING: _ClassVar[CheckStatus]
    CHECK_STATUS_PASSING: _ClassVar[CheckStatus]
    CHECK_STATUS_FAILING: _ClassVar[CheckStatus]

class OperatorStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATOR_STATUS_UNSPECIFIED: _ClassVar[OperatorStatus]
    OPERATOR_STATUS_DRAINING: _ClassVar[OperatorStatus]
    OPERATOR_STATUS_DISABLED: _ClassVar[OperatorStatus]

class BeatResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BEAT_RESULT_UNSPECIFIED: _ClassVar[BeatResult]
    BEAT_RESULT_RENEWED: _ClassVar[BeatResult]
    BEAT_RESULT_UNKNOWN: _ClassVar[BeatResult]
    BEAT_RESULT_INVALID: _ClassVar[BeatResult]
    BEAT_RESULT_REGISTERED: _ClassVar[BeatResult]
    BEAT_RESULT_PERMISSION_DENIED: _ClassVar[BeatResult]

class Strategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STRATEGY_UNSPECIFIED: _ClassVar[Strategy]
    STRATEGY_ROUND_ROBIN: _ClassVar[Strategy]
    STRATEGY_RANDOM: _ClassVar[Strategy]
    STRATEGY_WEIGHTED: _ClassVar[Strategy]
    STRATEGY_LEAST_LOADED: _ClassVar[Strategy]
    STRATEGY_CONSISTENT_HASH: _ClassVar[Strategy]
    STRATEGY_RENDEZVOUS: _ClassVar[Strategy]

class ResetReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESET_REASON_UNSPECIFIED: _ClassVar[ResetReason]
    RESET_REASON_COMPACTED: _ClassVar[ResetReason]
    RESET_REASON_REGISTRY_CHANGED: _ClassVar[ResetReason]
    RESET_REASON_OVERFLOW: _ClassVar[ResetReason]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_ADDED: _ClassVar[EventType]
    EVENT_TYPE_UPDATED: _ClassVar[EventType]
    EVENT_TYPE_REMOVED: _ClassVar[EventType]

class RemovalReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REMOVAL_REASON_UNSPECIFIED: _ClassVar[RemovalReason]
    REMOVAL_REASON_DEREGISTERED: _ClassVar[RemovalReason]
    REMOVAL_REASON_LEASE_EXPIRED: _ClassVar[RemovalReason]
    REMOVAL_REASON_STREAM_CLOSED: _ClassVar[RemovalReason]
    REMOVAL_REASON_FILTERED: _ClassVar[RemovalReason]
    REMOVAL_REASON_CHECK_FAILED: _ClassVar[RemovalReason]
SERVING_STATUS_UNSPECIFIED: ServingStatus
SERVING_STATUS_SERVING: ServingStatus
SERVING_STATUS_NOT_SERVING: ServingStatus
SERVING_STATUS_DRAINING: ServingStatus
CHECK_STATUS_UNSPECIFIED: CheckStatus
CHECK_STATUS_PENDING: CheckStatus
CHECK_STATUS_PASSING: CheckStatus
CHECK_STATUS_FAILING: CheckStatus
OPERATOR_STATUS_UNSPECIFIED: OperatorStatus
OPERATOR_STATUS_DRAINING: OperatorStatus
OPERATOR_STATUS_DISABLED: OperatorStatus
BEAT_RESULT_UNSPECIFIED: BeatResult
BEAT_RESULT_RENEWED: BeatResult
BEAT_RESULT_UNKNOWN: BeatResult
BEAT_RESULT_INVALID: BeatResult
BEAT_RESULT_REGISTERED: BeatResult
BEAT_RESULT_PERMISSION_DENIED: BeatResult
STRATEGY_UNSPECIFIED: Strategy
STRATEGY_ROUND_ROBIN: Strategy
STRATEGY_RANDOM: Strategy
STRATEGY_WEIGHTED: Strategy
STRATEGY_LEAST_LOADED: Strategy
STRATEGY_CONSISTENT_HASH: Strategy
STRATEGY_RENDEZVOUS: Strategy
RESET_REASON_UNSPECIFIED: ResetReason
RESET_REASON_COMPACTED: ResetReason
RESET_REASON_REGISTRY_CHANGED: ResetReason
RESET_REASON_OVERFLOW: ResetReason
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_ADDED: EventType
EVENT_TYPE_UPDATED: EventType
EVENT_TYPE_REMOVED: EventType
REMOVAL_REASON_UNSPECIFIED: RemovalReason
REMOVAL_REASON_DEREGISTERED: RemovalReason
REMOVAL_REASON_LEASE_EXPIRED: RemovalReason
REMOVAL_REASON_STREAM_CLOSED: RemovalReason
REMOVAL_REASON_FILTERED: RemovalReason
REMOVAL_REASON_CHECK_FAILED: RemovalReason

class Instance(_message.Message):
    __slots__ = ("namespace", "service", "instance_id", "host", "port", "version", "zone", "tags", "metadata", "weight", "status", "registered_at", "updated_at", "create_revision", "mod_revision", "owner", "operator_status", "reported_load", "lease_expires_at", "health_check", "check_result")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATE_REVISION_FIELD_NUMBER: _ClassVar[int]
    MOD_REVISION_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_STATUS_FIELD_NUMBER: _ClassVar[int]
    REPORTED_LOAD_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    HEALTH_CHECK_FIELD_NUMBER: _ClassVar[int]
    CHECK_RESULT_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    service: str
    instance_id: str
    host: str
    port: int
    version: str
    zone: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    weight: int
    status: ServingStatus
    registered_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    create_revision: int
    mod_revision: int
    owner: str
    operator_status: OperatorStatus
    reported_load: float
    lease_expires_at: _timestamp_pb2.Timestamp
    health_check: HealthCheck
    check_result: CheckResult
    def __init__(self, namespace: _Optional[str] = ..., service: _Optional[str] = ..., instance_id: _Optional[str] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., version: _Optional[str] = ..., zone: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., weight: _Optional[int] = ..., status: _Optional[_Union[ServingStatus, str]] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_revision: _Optional[int] = ..., mod_revision: _Optional[int] = ..., owner: _Optional[str] = ..., operator_status: _Optional[_Union[OperatorStatus, str]] = ..., reported_load: _Optional[float] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., health_check: _Optional[_Union[HealthCheck, _Mapping]] = ..., check_result: _Optional[_Union[CheckResult, _Mapping]] = ...) -> None: ...

class HealthCheck(_message.Message):
    __slots__ = ("http", "tcp", "grpc", "port", "interval", "timeout", "healthy_threshold", "unhealthy_threshold", "deregister_after")
    HTTP_FIELD_NUMBER: _ClassVar[int]
    TCP_FIELD_NUMBER: _ClassVar[int]
    GRPC_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    UNHEALTHY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DEREGISTER_AFTER_FIELD_NUMBER: _ClassVar[int]
    http: HttpCheck
    tcp: TcpCheck
    grpc: GrpcCheck
    port: int
    interval: _duration_pb2.Duration
    timeout: _duration_pb2.Duration
    healthy_threshold: int
    unhealthy_threshold: int
    deregister_after: _duration_pb2.Duration
    def __init__(self, http: _Optional[_Union[HttpCheck, _Mapping]] = ..., tcp: _Optional[_Union[TcpCheck, _Mapping]] = ..., grpc: _Optional[_Union[GrpcCheck, _Mapping]] = ..., port: _Optional[int] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., healthy_threshold: _Optional[int] = ..., unhealthy_threshold: _Optional[int] = ..., deregister_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class HttpCheck(_message.Message):
    __slots__ = ("path", "method", "expected_status_min", "expected_status_max")
    PATH_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_STATUS_MIN_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_STATUS_MAX_FIELD_NUMBER: _ClassVar[int]
    path: str
    method: str
    expected_status_min: int
    expected_status_max: int
    def __init__(self, path: _Optional[str] = ..., method: _Optional[str] = ..., expected_status_min: _Optional[int] = ..., expected_status_max: _Optional[int] = ...) -> None: ...

class TcpCheck(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GrpcCheck(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: str
    def __init__(self, service: _Optional[str] = ...) -> None: ...

class CheckResult(_message.Message):
    __slots__ = ("status", "message", "changed_at")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    status: CheckStatus
    message: str
    changed_at: _timestamp_pb2.Timestamp
    def __init__(self, status: _Optional[_Union[CheckStatus, str]] = ..., message: _Optional[str] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetOperatorStatusRequest(_message.Message):
    __slots__ = ("key", "status")
    KEY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    key: InstanceKey
    status: OperatorStatus
    def __init__(self, key: _Optional[_Union[InstanceKey, _Mapping]] = ..., status: _Optional[_Union[OperatorStatus, str]] = ...) -> None: ...

class SetOperatorStatusResponse(_message.Message):
    __slots__ = ("instance", "revision", "registry_id")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_ID_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    revision: int
    registry_id: str
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ..., revision: _Optional[int] = ..., registry_id: _Optional[str] = ...) -> None: ...

class InstanceKey(_message.Message):
    __slots__ = ("namespace", "service", "instance_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    service: str
    instance_id: str
    def __init__(self, namespace: _Optional[str] = ..., service: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("instance", "lease_ttl")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    lease_ttl: _duration_pb2.Duration
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ..., lease_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("instance", "lease_ttl", "lease_expires_at", "revision", "registry_id")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_ID_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    lease_ttl: _duration_pb2.Duration
    lease_expires_at: _timestamp_pb2.Timestamp
    revision: int
    registry_id: str
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ..., lease_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ..., registry_id: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("sequence", "beats")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    BEATS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    beats: _containers.RepeatedCompositeFieldContainer[Beat]
    def __init__(self, sequence: _Optional[int] = ..., beats: _Optional[_Iterable[_Union[Beat, _Mapping]]] = ...) -> None: ...

class Beat(_message.Message):
    __slots__ = ("key", "status", "load", "instance", "lease_ttl")
    KEY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_FIELD_NUMBER: _ClassVar[int]
    key: InstanceKey
    status: ServingStatus
    load: float
    instance: Instance
    lease_ttl: _duration_pb2.Duration
    def __init__(self, key: _Optional[_Union[InstanceKey, _Mapping]] = ..., status: _Optional[_Union[ServingStatus, str]] = ..., load: _Optional[float] = ..., instance: _Optional[_Union[Instance, _Mapping]] = ..., lease_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("sequence", "acks")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACKS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    acks: _containers.RepeatedCompositeFieldContainer[BeatAck]
    def __init__(self, sequence: _Optional[int] = ..., acks: _Optional[_Iterable[_Union[BeatAck, _Mapping]]] = ...) -> None: ...

class BeatAck(_message.Message):
    __slots__ = ("key", "result", "lease_expires_at", "message")
    KEY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    key: InstanceKey
    result: BeatResult
    lease_expires_at: _timestamp_pb2.Timestamp
    message: str
    def __init__(self, key: _Optional[_Union[InstanceKey, _Mapping]] = ..., result: _Optional[_Union[BeatResult, str]] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class DeregisterRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: InstanceKey
    def __init__(self, key: _Optional[_Union[InstanceKey, _Mapping]] = ...) -> None: ...

class DeregisterResponse(_message.Message):
    __slots__ = ("revision", "registry_id")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_ID_FIELD_NUMBER: _ClassVar[int]
    revision: int
    registry_id: str
    def __init__(self, revision: _Optional[int] = ..., registry_id: _Optional[str] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("tags", "version", "zone", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TAGS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    version: str
    zone: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, tags: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ..., zone: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DiscoverRequest(_message.Message):
    __slots__ = ("namespace", "service", "filter", "strategy", "hash_key", "preferred_zone", "include_all")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    PREFERRED_ZONE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ALL_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    service: str
    filter: Filter
    strategy: Strategy
    hash_key: str
    preferred_zone: str
    include_all: bool
    def __init__(self, namespace: _Optional[str] = ..., service: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., strategy: _Optional[_Union[Strategy, str]] = ..., hash_key: _Optional[str] = ..., preferred_zone: _Optional[str] = ..., include_all: _Optional[bool] = ...) -> None: ...

class DiscoverResponse(_message.Message):
    __slots__ = ("instance", "instances", "revision", "registry_id")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_ID_FIELD_NUMBER: _ClassVar[int]
    instance: Instance
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    revision: int
    registry_id: str
    def __init__(self, instance: _Optional[_Union[Instance, _Mapping]] = ..., instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ..., revision: _Optional[int] = ..., registry_id: _Optional[str] = ...) -> None: ...

class ListServicesRequest(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: _Optional[str] = ...) -> None: ...

class ListServicesResponse(_message.Message):
    __slots__ = ("services", "revision", "registry_id")
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_ID_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[ServiceSummary]
    revision: int
    registry_id: str
    def __init__(self, services: _Optional[_Iterable[_Union[ServiceSummary, _Mapping]]] = ..., revision: _Optional[int] = ..., registry_id: _Optional[str] = ...) -> None: ...

class ServiceSummary(_message.Message):
    __slots__ = ("service", "instance_count", "serving_count")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SERVING_COUNT_FIELD_NUMBER: _ClassVar[int]
    service: str
    instance_count: int
    serving_count: int
    def __init__(self, service: _Optional[str] = ..., instance_count: _Optional[int] = ..., serving_count: _Optional[int] = ...) -> None: ...

class WatchServicesRequest(_message.Message):
    __slots__ = ("namespace", "services", "filter", "resume_revision", "registry_id", "held")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    RESUME_REVISION_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_ID_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    services: _containers.RepeatedScalarFieldContainer[str]
    filter: Filter
    resume_revision: int
    registry_id: str
    held: WatchHoldings
    def __init__(self, namespace: _Optional[str] = ..., services: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., resume_revision: _Optional[int] = ..., registry_id: _Optional[str] = ..., held: _Optional[_Union[WatchHoldings, _Mapping]] = ...) -> None: ...

class WatchHoldings(_message.Message):
    __slots__ = ("services",)
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[HeldService]
    def __init__(self, services: _Optional[_Iterable[_Union[HeldService, _Mapping]]] = ...) -> None: ...

class HeldService(_message.Message):
    __slots__ = ("service", "instances")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    service: str
    instances: _containers.RepeatedCompositeFieldContainer[HeldInstance]
    def __init__(self, service: _Optional[str] = ..., instances: _Optional[_Iterable[_Union[HeldInstance, _Mapping]]] = ...) -> None: ...

class HeldInstance(_message.Message):
    __slots__ = ("instance_id", "digest")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    digest: int
    def __init__(self, instance_id: _Optional[str] = ..., digest: _Optional[int] = ...) -> None: ...

class WatchServicesResponse(_message.Message):
    __slots__ = ("snapshot", "snapshot_end", "event", "progress")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_END_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    snapshot: SnapshotChunk
    snapshot_end: SnapshotEnd
    event: WatchEvent
    progress: Progress
    def __init__(self, snapshot: _Optional[_Union[SnapshotChunk, _Mapping]] = ..., snapshot_end: _Optional[_Union[SnapshotEnd, _Mapping]] = ..., event: _Optional[_Union[WatchEvent, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("instances", "removed")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    removed: _containers.RepeatedCompositeFieldContainer[InstanceKey]
    def __init__(self, instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ..., removed: _Optional[_Iterable[_Union[InstanceKey, _Mapping]]] = ...) -> None: ...

class SnapshotEnd(_message.Message):
    __slots__ = ("revision", "registry_id", "reset", "reason", "differential")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_ID_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DIFFERENTIAL_FIELD_NUMBER: _ClassVar[int]
    revision: int
    registry_id: str
    reset: bool
    reason: ResetReason
    differential: bool
    def __init__(self, revision: _Optional[int] = ..., registry_id: _Optional[str] = ..., reset: _Optional[bool] = ..., reason: _Optional[_Union[ResetReason, str]] = ..., differential: _Optional[bool] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("type", "instance", "revision", "removal_reason")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    REMOVAL_REASON_FIELD_NUMBER: _ClassVar[int]
    type: EventType
    instance: Instance
    revision: int
    removal_reason: RemovalReason
    def __init__(self, type: _Optional[_Union[EventType, str]] = ..., instance: _Optional[_Union[Instance, _Mapping]] = ..., revision: _Optional[int] = ..., removal_reason: _Optional[_Union[RemovalReason, str]] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("revision", "registry_id")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_ID_FIELD_NUMBER: _ClassVar[int]
    revision: int
    registry_id: str
    def __init__(self, revision: _Optional[int] = ..., registry_id: _Optional[str] = ...) -> None: ...
