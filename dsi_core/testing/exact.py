"""Exact output distributions by enumerating every outcome of the keyed uniforms.

The rules in :mod:`dsi_core.sampling` only ever *compare* a uniform ``u`` with a threshold.
Here ``u`` is a :class:`GridUniform`: a uniform on the grid ``{0, 1/M, ..., (M-1)/M}`` that
tracks the set of grid points still possible (an interval of integers). When a comparison can
go either way, the :class:`Enumerator` forks: it re-runs the whole deterministic program with a
recorded script of branch choices (depth-first, replay based), so every path of a real run --
coordinator, simulated backend, interleaving and all -- is visited once, with its exact
probability ``prod (interval size / M)``.

With ``M`` a common multiple of every threshold's denominator (see :func:`grid_size`) the
correct rejection sampler is exactly lossless on this grid, while ``u <= p/q`` puts an extra
``1/M`` on the wrong side: the mutant is caught by an exact comparison, not a statistical one.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from typing import Any


class GridUniform:
    """A symbolic uniform on ``{j/M}``; comparisons fork through the enumerator."""

    def __init__(self, enum: Enumerator, M: int) -> None:
        self.enum = enum
        self.M = M
        self.lo = 0
        self.hi = M  # possible j in [lo, hi)

    def _split(self, t: int) -> bool:
        """True iff j < t, forking when both sides are possible."""
        t = min(max(t, 0), self.M)
        if self.hi <= t:
            return True
        if self.lo >= t:
            return False
        if self.enum.choose() == 0:
            self.hi = t
            return True
        self.lo = t
        return False

    def _frac(self, r: Any) -> Fraction:
        if isinstance(r, GridUniform):
            raise TypeError("cannot compare two symbolic uniforms")
        return Fraction(r)

    def __lt__(self, r: Any) -> bool:  # j/M < r  <=>  j < ceil(rM)
        return self._split(math.ceil(self._frac(r) * self.M))

    def __le__(self, r: Any) -> bool:  # j/M <= r  <=>  j < floor(rM) + 1
        return self._split(math.floor(self._frac(r) * self.M) + 1)

    def __gt__(self, r: Any) -> bool:
        return not self.__le__(r)

    def __ge__(self, r: Any) -> bool:
        return not self.__lt__(r)

    def __float__(self) -> float:
        raise TypeError("a symbolic uniform can only be compared")

    @property
    def probability(self) -> Fraction:
        return Fraction(self.hi - self.lo, self.M)


class ExactNoise:
    """Drop-in for :class:`~dsi_core.sampling.KeyedNoise`: one GridUniform per key."""

    def __init__(self, enum: Enumerator, M: int) -> None:
        self.enum = enum
        self.M = M
        self.vars: dict[tuple[int, int], GridUniform] = {}

    def uniform(self, pos: int, stream: Any) -> GridUniform:
        key = (pos, int(stream))
        if key not in self.vars:
            self.vars[key] = GridUniform(self.enum, self.M)
        return self.vars[key]

    def gumbel(self, pos: int, size: int) -> Any:
        raise NotImplementedError("exact enumeration covers the rejection rule only")

    @property
    def probability(self) -> Fraction:
        p = Fraction(1)
        for v in self.vars.values():
            p *= v.probability
        return p


class Enumerator:
    """Depth-first enumeration of a deterministic program's branch choices."""

    def __init__(self, M: int, max_paths: int = 1_000_000) -> None:
        self.M = M
        self.max_paths = max_paths
        self._script: list[int] = []
        self._i = 0
        self.paths = 0

    def choose(self) -> int:
        if self._i < len(self._script):
            c = self._script[self._i]
        else:
            c = 0
            self._script.append(0)
        self._i += 1
        return c

    def distribution(self, program: Callable[[ExactNoise], Any]) -> dict[Any, Fraction]:
        """``{outcome: probability}`` of ``program(noise)`` over every uniform outcome."""
        out: dict[Any, Fraction] = defaultdict(Fraction)
        self._script = []
        while True:
            self._i = 0
            noise = ExactNoise(self, self.M)
            result = program(noise)
            del self._script[self._i :]
            out[result] += noise.probability
            self.paths += 1
            if self.paths > self.max_paths:
                raise RuntimeError("too many paths")
            while self._script and self._script[-1] == 1:
                self._script.pop()
            if not self._script:
                break
            self._script[-1] = 1
        total = sum(out.values())
        if total != 1:
            raise AssertionError(f"path probabilities sum to {total}, not 1")
        return dict(out)


def _thresholds(p: Sequence[Fraction], q: Sequence[Fraction]) -> Iterable[Fraction]:
    yield from itertools.accumulate(p)
    yield from itertools.accumulate(q)
    for x in range(len(p)):
        if q[x] > 0:
            yield p[x] / q[x]
    w = [max(Fraction(0), a - b) for a, b in zip(p, q, strict=True)]
    z = sum(w)
    if z > 0:
        yield from (c / z for c in itertools.accumulate(w))


def grid_size(target: Any, drafter: Any, prompt: Sequence[int], n_new: int) -> int:
    """Least common multiple of the denominators of every threshold the rules can meet."""
    v = target.vocab_size
    m = 1
    for length in range(n_new):
        for suffix in itertools.product(range(v), repeat=length):
            ctx = tuple(prompt) + suffix
            p = target.row(ctx)
            q = drafter.row(ctx) if drafter is not None else p
            for th in _thresholds(p, q):
                m = math.lcm(m, Fraction(th).denominator)
    return m


def target_distribution(target: Any, prompt: Sequence[int], n_new: int) -> dict:
    """Exact law of ``n_new`` tokens sampled autoregressively from ``target``."""
    out: dict[tuple[int, ...], Fraction] = {}
    for seq in itertools.product(range(target.vocab_size), repeat=n_new):
        pr = Fraction(1)
        for i, x in enumerate(seq):
            pr *= target.row(tuple(prompt) + seq[:i])[x]
            if pr == 0:
                break
        if pr:
            out[seq] = pr
    return out
