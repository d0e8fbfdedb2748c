"""The SDK's parts that need no server: backoff, view, picker, validation, error mapping."""

from __future__ import annotations

import grpc
import pytest

from maxine import (
    BackoffOptions,
    Client,
    InvalidArgumentError,
    MaxineError,
    NotFoundError,
    RpcCancelledError,
    UnavailableError,
)
from maxine.backoff import Backoff, backoff_delay, beat_delay
from maxine.client import parse_target
from maxine.errors import error_for
from maxine.instance_view import InstanceView
from maxine.messages import (
    EventType,
    Instance,
    RemovalReason,
    ResetReason,
    ServingStatus,
    SnapshotChunk,
    SnapshotEnd,
    Strategy,
    WatchEvent,
    WatchServicesResponse,
)
from maxine.picker import Picker
from maxine.ttl import duration_from_seconds

SERVING = ServingStatus.SERVING_STATUS_SERVING


def inst(iid: str, *, service: str = "svc", weight: int = 100, status: ServingStatus = SERVING, port: int = 80) -> Instance:
    return Instance(service=service, instance_id=iid, host="127.0.0.1", port=port, weight=weight, status=status)


def snapshot(view: InstanceView, instances: list[Instance], revision: int, registry: str = "r1", reset: bool = False):  # type: ignore[no-untyped-def]
    view.apply(WatchServicesResponse(snapshot=SnapshotChunk(instances=instances)))
    return view.apply(
        WatchServicesResponse(
            snapshot_end=SnapshotEnd(
                revision=revision,
                registry_id=registry,
                reset=reset,
                reason=ResetReason.RESET_REASON_REGISTRY_CHANGED if reset else ResetReason.RESET_REASON_UNSPECIFIED,
            )
        )
    )


def event(kind: EventType, instance: Instance, revision: int) -> WatchServicesResponse:
    return WatchServicesResponse(event=WatchEvent(type=kind, instance=instance, revision=revision))


def test_backoff_is_full_jitter_doubling_to_the_cap() -> None:
    assert [backoff_delay(a, 0.1, 5.0, lambda: 0.999999) for a in range(8)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0], rel=1e-5
    )
    assert backoff_delay(3, 0.1, 5.0, lambda: 0.0) == 0.0
    b = Backoff(BackoffOptions(base=0.1, max=1.0), random=lambda: 0.5)
    assert [b.next(), b.next(), b.next()] == pytest.approx([0.05, 0.1, 0.2])
    assert b.attempts == 3
    b.reset()
    assert b.next() == pytest.approx(0.05)
    with pytest.raises(ValueError, match="base"):
        BackoffOptions(base=0, max=1)


def test_beat_delay_is_the_interval_within_ten_percent() -> None:
    assert beat_delay(3.0, lambda: 0.0) == pytest.approx(2.7)
    assert beat_delay(3.0, lambda: 0.5) == pytest.approx(3.0)
    assert beat_delay(3.0, lambda: 0.999999) == pytest.approx(3.3, rel=1e-5)
    draws = [beat_delay(3.0) for _ in range(1000)]
    assert 2.7 <= min(draws) and max(draws) < 3.3
    assert max(draws) - min(draws) > 0.4  # spread, not one value


def test_view_applies_snapshots_events_and_resets_as_changes() -> None:
    view = InstanceView()
    first = snapshot(view, [inst("b"), inst("a")], 5)
    assert [(c.type, c.instance.instance_id, c.revision) for c in first.changes] == [("added", "b", 5), ("added", "a", 5)]
    assert first.synced is not None and first.synced.revision == 5 and view.registry_id == "r1"
    assert [i.instance_id for i in view.sorted("svc")] == ["a", "b"]

    up = view.apply(event(EventType.EVENT_TYPE_UPDATED, inst("a", port=81), 6))
    assert [(c.type, c.previous is not None and c.previous.port) for c in up.changes] == [("updated", 80)]
    assert view.apply(event(EventType.EVENT_TYPE_ADDED, inst("z"), 6)).changes == []  # a duplicate revision
    removed = WatchServicesResponse(
        event=WatchEvent(
            type=EventType.EVENT_TYPE_REMOVED,
            instance=inst("b"),
            revision=7,
            removal_reason=RemovalReason.REMOVAL_REASON_STREAM_CLOSED,
        )
    )
    rm = view.apply(removed)
    assert [(c.type, c.removal_reason) for c in rm.changes] == [("removed", RemovalReason.REMOVAL_REASON_STREAM_CLOSED)]
    assert view.revision == 7

    # A reset snapshot replaces the view; its differences arrive as changes.
    reset = snapshot(view, [inst("a", port=81), inst("c")], 3, registry="r2", reset=True)
    assert [(c.type, c.instance.instance_id) for c in reset.changes] == [("added", "c")]
    assert reset.synced is not None and reset.synced.reset and view.registry_id == "r2" and view.revision == 3
    gone = snapshot(view, [inst("c")], 4, registry="r2", reset=True)
    assert [(c.type, c.instance.instance_id) for c in gone.changes] == [("removed", "a")]


def test_picker_round_robin_weighted_and_hash_need_no_network() -> None:
    view = InstanceView()
    snapshot(view, [inst("c", weight=1), inst("a", weight=1), inst("b", weight=98), inst("d", status=ServingStatus.SERVING_STATUS_DRAINING)], 1)
    picker = Picker(view, random=lambda: 0.5)
    rr = [picker.pick("svc").instance_id for _ in range(4)]  # type: ignore[union-attr]
    assert rr == ["a", "b", "c", "a"]
    weighted = picker.pick("svc", Strategy.STRATEGY_WEIGHTED)
    assert weighted is not None and weighted.instance_id == "b"  # 0.5 of 100 falls in b's 98
    assert picker.pick("other") is None
    with pytest.raises(ValueError, match="hash_key is required by STRATEGY_CONSISTENT_HASH"):
        picker.pick("svc", Strategy.STRATEGY_CONSISTENT_HASH)
    with pytest.raises(ValueError, match="LEAST_LOADED"):
        picker.pick("svc", Strategy.STRATEGY_LEAST_LOADED)
    key_pick = picker.pick("svc", Strategy.STRATEGY_CONSISTENT_HASH, "user-42")
    assert key_pick is not None and key_pick.instance_id in {"a", "b", "c"}
    assert all(picker.pick("svc", Strategy.STRATEGY_CONSISTENT_HASH, "user-42") is key_pick for _ in range(5))


def test_bad_input_names_the_field_and_the_rule() -> None:
    with pytest.raises(ValueError, match=r"ttl: must be a finite number of seconds > 0, got 0"):
        duration_from_seconds(0, "ttl")
    d = duration_from_seconds(1.25, "ttl")
    assert (d.seconds, d.nanos) == (1, 250_000_000)
    with pytest.raises(ValueError, match="target: scheme must be http or https"):
        parse_target("ftp://x:1")
    assert parse_target("http://127.0.0.1:7400") == ("127.0.0.1:7400", False)
    assert parse_target("127.0.0.1:7400") == ("127.0.0.1:7400", False)
    with pytest.raises(ValueError, match="timeout: must be > 0"):
        Client("127.0.0.1:1", timeout=0)


def test_every_status_code_maps_to_a_typed_error() -> None:
    assert isinstance(error_for(grpc.StatusCode.NOT_FOUND, "x"), NotFoundError)
    assert isinstance(error_for(grpc.StatusCode.INVALID_ARGUMENT, "x"), InvalidArgumentError)
    assert isinstance(error_for(grpc.StatusCode.CANCELLED, "x"), RpcCancelledError)
    assert error_for(grpc.StatusCode.UNAVAILABLE, "x").retryable
    for code in grpc.StatusCode:
        if code is grpc.StatusCode.OK:
            continue
        err = error_for(code, "message")
        assert isinstance(err, MaxineError) and err.code is code
        mapped = type(err) is not MaxineError
        assert mapped or code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.ABORTED, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.DATA_LOSS), code
    assert str(UnavailableError("server down")) == "unavailable: server down"


def test_cached_weighted_and_rendezvous_picks_equal_the_reference_functions() -> None:
    from maxine.balancer import cumulative_weights, hash32, pick_cumulative, pick_weighted, rendezvous_encoded

    cands = [inst(f"i{k}", weight=w) for k, w in enumerate([0, 1, 5, 100, 3])]
    cum = cumulative_weights(cands)
    for step in range(1000):
        r = step / 1000
        assert pick_cumulative(cum, lambda: r) == pick_weighted(cands, lambda: r), r
    ids = [f"pod-{k}" for k in range(9)]
    for key in ("user-1", "ключ", "x"):
        best = max(range(len(ids)), key=lambda k: (hash32(f"{key}#{ids[k]}"), ids[k]))  # docs/hashing.md, literally
        assert rendezvous_encoded([i.encode() for i in ids], key) == best
