"""Re-checks witnesses on the code itself: the simulated backend driving the real coordinator.

The target's greedy token at new position `i` is `y(i)` whatever the context, and the drafter
proposes `y(i)` iff `a[i] = 1`, so the run realises acceptance pattern `a` exactly (the same
construction as tests/property/test_latency_differential.py: both use
`dsi_core.testing.replay.replay_pattern`, the one replay helper). Unlike the evaluators of
`latency_model`, the simulator enforces the server limit `S`: a due task waits (FIFO) while all
`S` servers are busy.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from numbers import Rational

from dsi_core.coordinator import Coordinator, TraceEvent
from dsi_core.testing.replay import replay_pattern

__all__ = ["SimRun", "simulate"]


class SimRun:
    """End time, counters and trace of one simulated run."""

    def __init__(self, end: Fraction, coord: Coordinator) -> None:
        self.end = end
        self.stats = coord.stats
        self.trace: list[TraceEvent] = coord.trace
        self.committed = coord.committed


def simulate(
    algorithm: str, a: Sequence[int], t: Rational, c: Rational, k: int, servers: int = 64
) -> SimRun:
    """Runs `algorithm` ("dsi", "si", "nonsi") on pattern `a` with `servers` target servers."""
    end, coord = replay_pattern(algorithm, a, k, servers, Fraction(t), Fraction(c))
    return SimRun(end, coord)
