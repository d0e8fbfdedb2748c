"""Conversions between seconds (what this SDK's API takes) and protobuf Durations."""

from __future__ import annotations

import math

from google.protobuf.duration_pb2 import Duration


def duration_from_seconds(seconds: float, field: str) -> Duration:
    """duration_from_seconds converts a positive, finite number of seconds; ValueError names field otherwise."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{field}: must be a finite number of seconds > 0, got {seconds!r}")
    total = round(seconds * 1_000_000_000)
    return Duration(seconds=total // 1_000_000_000, nanos=total % 1_000_000_000)


def seconds_of(d: Duration) -> float:
    """seconds_of converts a Duration to seconds."""
    return d.seconds + d.nanos / 1e9
