"""Synthetic models with a controlled acceptance pattern (label results as synthetic).

The target's greedy token at new position ``i`` is a fixed ``y(i)``; the drafter proposes
``y(i)`` iff ``a[i] == 1``, whatever its context. With these, every algorithm's latency is a
function of ``(a, t, c, k, S)`` alone (the speed model of docs/design.md), so the simulated backend
can evaluate DSI, SI and non-SI on the same pattern, and ``proofs.latency_model`` can be checked
against it exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from dsi_core.models.base import Proposal

VOCAB = 3


def y(pos: int) -> int:
    """The target's token at new position ``pos``."""
    return (pos * 7 + 1) % VOCAB


class PatternTarget:
    """Greedy token at new position ``i`` is ``y(i)``; one-hot rows."""

    vocab_size = VOCAB
    max_context = None

    def __init__(self, prompt_len: int = 1) -> None:
        self.prompt_len = prompt_len
        self._rows = [tuple(float(j == v) for j in range(VOCAB)) for v in range(VOCAB)]

    def new_state(self) -> Any:
        return None

    def rows(self, state: Any, tokens: Sequence[int], start: int) -> list[Any]:
        return [self._rows[y(pos - self.prompt_len)] for pos in range(start, len(tokens) + 1)]


class PatternDrafter:
    """Proposes the target's token at new position ``i`` iff ``a[i] == 1``."""

    vocab_size = VOCAB

    def __init__(self, a: Sequence[int], prompt_len: int = 1) -> None:
        self.a = list(a)
        self.prompt_len = prompt_len

    def new_state(self) -> Any:
        return None

    def propose(self, state: Any, tokens: Sequence[int]) -> Proposal:
        i = len(tokens) - self.prompt_len
        return Proposal(token=y(i) if self.a[i] else (y(i) + 1) % VOCAB)


def iid_pattern(n: int, rate: float, seed: int) -> list[int]:
    """``n`` i.i.d. acceptance indicators with probability ``rate`` (seeded)."""
    rng = random.Random(seed)
    return [int(rng.random() < rate) for _ in range(n)]
