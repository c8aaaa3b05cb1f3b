"""The one replay helper: run the real coordinator on the simulated backend for a pattern.

A synthetic target (:class:`~dsi_core.testing.synthetic.PatternTarget`) and drafter
(:class:`~dsi_core.testing.synthetic.PatternDrafter`) realise an acceptance pattern ``a``
exactly, so the virtual end time is the latency of the chosen algorithm on ``a`` under the
given target and drafter latencies (the speed model: docs/design.md, "Speed model").
Used by the experiments (Figure 1, emulation, estimate), by ``proofs/`` to re-check witnesses
on the code, and by the differential tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsi_core.backends.simulated import SimulatedBackend
from dsi_core.config import Config
from dsi_core.coordinator import Coordinator
from dsi_core.sampling import DecisionRule, KeyedNoise
from dsi_core.testing.synthetic import PatternDrafter, PatternTarget, y

PROMPT = (0,)


def replay_pattern(
    algorithm: str,
    pattern: Sequence[int],
    k: int,
    servers: int,
    target_latency: Any,
    draft_latency: Any,
    cancellation: Any = "instant",
    order: Any = None,
    check: bool = True,
) -> tuple[Any, Coordinator]:
    """Run ``algorithm`` on ``pattern``; returns ``(virtual end time, coordinator)``.

    Latencies are numbers (ideally Fractions) or callables of the action, as for
    :class:`~dsi_core.backends.simulated.SimulatedBackend`; ``cancellation`` is one of its
    preemption models (``"instant"``, ``"fails"`` or a delay ``d``). With ``check`` the
    committed tokens must be the target's (greedy).
    """
    cfg = Config(algorithm, k, servers, len(pattern))
    coord = Coordinator(cfg, DecisionRule("greedy", KeyedNoise(0)))
    drafter = PatternDrafter(pattern, len(PROMPT)) if algorithm != "nonsi" else None
    backend = SimulatedBackend(
        target_latency, draft_latency, order=order, cancellation=cancellation
    )
    end = backend.run(coord, PatternTarget(len(PROMPT)), drafter, list(PROMPT))
    if check and coord.committed != [y(i) for i in range(len(pattern))]:
        raise AssertionError("the replay committed tokens other than the target's")
    return end, coord
