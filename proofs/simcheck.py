"""Re-checks witnesses on the code itself: the simulated backend driving the real coordinator.

The target's greedy token at new position `i` is `y(i)` whatever the context, and the drafter
proposes `y(i)` iff `a[i] = 1`, so the run realises acceptance pattern `a` exactly (the same
construction as tests/property/test_latency_differential.py). Unlike the evaluators of
`latency_model`, the simulator enforces the server limit `S`: a due task waits (FIFO) while all
`S` servers are busy.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from numbers import Rational

from dsi_core.backends.simulated import SimulatedBackend
from dsi_core.coordinator import Config, Coordinator, TraceEvent
from dsi_core.models.base import Proposal
from dsi_core.sampling import DecisionRule, KeyedNoise

__all__ = ["SimRun", "simulate"]

_V = 3
_PROMPT = [0]


def _y(pos: int) -> int:
    return (pos * 7 + 1) % _V


class _Target:
    vocab_size = _V
    max_context = None

    def new_state(self) -> None:
        return None

    def rows(self, state, tokens, start, temperature=1.0):  # noqa: ANN001
        return [
            tuple(float(j == _y(pos - len(_PROMPT))) for j in range(_V))
            for pos in range(start, len(tokens) + 1)
        ]


class _Drafter:
    vocab_size = _V

    def __init__(self, a: Sequence[int]) -> None:
        self.a = list(a)

    def new_state(self) -> None:
        return None

    def propose(self, state, tokens, temperature=1.0):  # noqa: ANN001
        i = len(tokens) - len(_PROMPT)
        return Proposal(token=_y(i) if self.a[i] else (_y(i) + 1) % _V)


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
    coord = Coordinator(
        Config(algorithm, k, servers, len(a)), DecisionRule("greedy", KeyedNoise(0))
    )
    end = SimulatedBackend(Fraction(t), Fraction(c)).run(coord, _Target(), _Drafter(a), _PROMPT)
    if coord.committed != [_y(i) for i in range(len(a))]:
        raise AssertionError("the simulated run committed the wrong tokens")
    return SimRun(end, coord)
