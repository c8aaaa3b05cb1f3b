"""Exact toy models: probability tables keyed by context, for tests and the exact harness.

Rows are tuples of :class:`fractions.Fraction` (exact) or float numpy arrays. A
:class:`ToyModel` is both a target and a model drafter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from dsi_core.models.base import Proposal


class ToyModel:
    """A model whose next-token row is ``fn(tokens)`` (probabilities); counts its forwards."""

    row_kind = "probs"
    max_context: int | None = None

    def __init__(self, vocab_size: int, fn: Callable[[tuple[int, ...]], Any], name: str = "toy"):
        self.vocab_size = vocab_size
        self.fn = fn
        self.name = name
        self.calls = 0

    def new_state(self) -> Any:
        return None

    def row(self, tokens: Sequence[int]) -> Any:
        return self.fn(tuple(tokens))

    def rows(self, state: Any, tokens: Sequence[int], start: int) -> list[Any]:
        self.calls += 1
        if start < 1:
            raise ValueError("start must be >= 1")
        return [self.row(tokens[:j]) for j in range(start, len(tokens) + 1)]

    def propose(self, state: Any, tokens: Sequence[int]) -> Proposal:
        self.calls += 1
        return Proposal(q=self.row(tokens))


def _hash_ints(seed: int, tokens: tuple[int, ...], n: int, modulus: int) -> list[int]:
    h = hashlib.blake2b(repr((seed, tokens)).encode(), digest_size=8 * n).digest()
    return [int.from_bytes(h[8 * i : 8 * i + 8], "little") % modulus for i in range(n)]


def random_table_model(
    vocab_size: int, seed: int, denominator: int = 12, zeros: bool = True, exact: bool = True
) -> ToyModel:
    """A deterministic pseudo-random model: each context gets its own row.

    Rows are multiples of ``1/denominator`` (exact Fractions) and may contain zeros when
    ``zeros`` is set, which exercises ``p(x) = 0`` and ``q(x) = 0`` cases.
    """

    def fn(tokens: tuple[int, ...]) -> Any:
        weights = _hash_ints(seed, tokens, vocab_size, denominator)
        if not zeros:
            weights = [w + 1 for w in weights]
        if sum(weights) == 0:
            weights[len(tokens) % vocab_size] = 1
        total = sum(weights)
        row = tuple(Fraction(w, total) for w in weights)
        return row if exact else np.asarray([float(x) for x in row])

    return ToyModel(vocab_size, fn, name=f"table(v={vocab_size},seed={seed})")


def constant_model(row: Sequence[Any]) -> ToyModel:
    """A model whose row ignores the context."""
    r = tuple(row)
    return ToyModel(len(r), lambda tokens: r, name="constant")


def adversarial_drafter(target: ToyModel) -> ToyModel:
    """A drafter that always puts all its mass on a token the target likes least."""

    def fn(tokens: tuple[int, ...]) -> Any:
        p = target.row(tokens)
        worst = min(range(len(p)), key=lambda j: (p[j], j))
        return tuple(Fraction(int(j == worst)) for j in range(len(p)))

    return ToyModel(target.vocab_size, fn, name="adversarial")
