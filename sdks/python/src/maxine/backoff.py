"""Jittered exponential backoff, shared by Session (heartbeat stream) and Watcher (watch stream)."""

from __future__ import annotations

import random as _random
from dataclasses import dataclass

from .balancer import Random


@dataclass(frozen=True)
class BackoffOptions:
    """BackoffOptions shape reconnect delays: the first retry waits up to base seconds, each later cap doubles up to max."""

    base: float = 0.1
    """base caps the first retry's delay, in seconds (default 0.1)."""
    max: float = 5.0
    """max is the largest cap, in seconds, reached after a few failures (default 5)."""

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.max >= self.base):
            raise ValueError(f"backoff: need 0 < base <= max, got base {self.base}, max {self.max}")


def backoff_delay(attempt: int, base: float, max_delay: float, random: Random = _random.random) -> float:
    """backoff_delay is "full jitter" backoff: uniform in [0, min(max, base * 2**attempt)).

    Full jitter spreads the reconnects of many clients that lost the same
    server instead of having them come back in waves. attempt counts from 0.
    """
    cap = min(max_delay, base * (1 << min(attempt, 52)))
    return random() * cap


def beat_delay(interval: float, random: Random = _random.random) -> float:
    """beat_delay is the wait before a session's next beat: interval within ±10 %, drawn anew each time.

    Sessions started together (a fleet deploy, a reconnect storm) then drift
    apart instead of beating in step.
    """
    return interval * (0.9 + 0.2 * random())


@dataclass(frozen=True)
class ReconnectInfo:
    """ReconnectInfo describes a stream (heartbeat or watch) that came back after a failure."""

    attempts: int
    """attempts counts the failed attempts before this one succeeded."""
    down: float
    """down is how many seconds the stream was down."""


class Backoff:
    """Backoff counts consecutive failures and hands out the next delay.

    Call reset once a connection proved healthy (it delivered a message), so
    that the next failure starts again from base.
    """

    def __init__(self, opts: BackoffOptions | None = None, random: Random = _random.random) -> None:
        self._opts = opts or BackoffOptions()
        self._random = random
        self._failures = 0

    @property
    def attempts(self) -> int:
        """attempts counts the failures since the last reset."""
        return self._failures

    def next(self) -> float:
        """next records a failure and returns how many seconds to wait before retrying."""
        delay = backoff_delay(self._failures, self._opts.base, self._opts.max, self._random)
        self._failures += 1
        return delay

    def reset(self) -> None:
        """reset forgets past failures."""
        self._failures = 0
