"""Hypothesis strategies for speculative-sampling tests: rows, target/drafter pairs, schedules.

Import them in your own property tests (``hypothesis`` must be installed)::

    from hypothesis import given, settings
    from dsi_core.testing.conformance import check_rule_exact
    from dsi_core.testing.strategies import cases

    @settings(max_examples=50, deadline=None)
    @given(cases())
    def test_my_rule_is_lossless(case):
        assert check_rule_exact(my_rule, [case]).passed

* :func:`rows`: exact rational probability rows, biased towards the hard ones: zeros,
  one-hots, ties, uniform rows.
* :func:`row_pairs`: ``(p, q)`` pairs including ``p == q``, disjoint supports and ``q`` putting
  mass where ``p`` is zero.
* :func:`table_models` / :func:`cases`: context-dependent toy models and conformance
  :class:`~dsi_core.testing.conformance.Case` objects (target, drafter, chain length ``k``).
* :func:`schedules`: keyword arguments for
  :class:`~dsi_core.backends.simulated.SimulatedBackend` (latencies, adversarial completion
  orders, failed cancellations).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from hypothesis import strategies as st

from dsi_core.testing.conformance import Case
from dsi_core.testing.toy import ToyModel, _hash_ints

__all__ = ["cases", "row_pairs", "rows", "schedules", "table_models"]


def _normalise(weights: list[int]) -> tuple[Fraction, ...]:
    total = sum(weights)
    return tuple(Fraction(w, total) for w in weights)


@st.composite
def rows(draw: Any, vocab: int | None = None, max_weight: int = 6) -> tuple[Fraction, ...]:
    """One exact probability row (a tuple of Fractions summing to exactly 1).

    Shapes: random weights in ``0..max_weight`` (zeros likely), one-hot, uniform, and ties
    between two tokens. ``vocab``: fixed size, or drawn from 2..5.
    """
    v = vocab if vocab is not None else draw(st.integers(2, 5))
    shape = draw(st.sampled_from(["random", "onehot", "uniform", "tie"]))
    if shape == "onehot":
        j = draw(st.integers(0, v - 1))
        return tuple(Fraction(int(i == j)) for i in range(v))
    if shape == "uniform":
        return _normalise([1] * v)
    if shape == "tie":
        a = draw(st.integers(0, v - 1))
        b = draw(st.integers(0, v - 1).filter(lambda x: x != a))
        rest = draw(st.lists(st.integers(0, 1), min_size=v, max_size=v))
        return _normalise([2 if i in (a, b) else rest[i] for i in range(v)])
    w = draw(st.lists(st.integers(0, max_weight), min_size=v, max_size=v))
    if sum(w) == 0:
        w[draw(st.integers(0, v - 1))] = 1
    return _normalise(w)


@st.composite
def row_pairs(draw: Any, vocab: int | None = None) -> tuple[tuple[Fraction, ...], ...]:
    """A target row ``p`` and a drafter row ``q`` of the same size, hard cases likely.

    Relations: independent, ``p == q``, ``q`` concentrated where ``p`` is zero (when ``p`` has
    a zero), and ``q`` one-hot on ``p``'s least likely token.
    """
    v = vocab if vocab is not None else draw(st.integers(2, 5))
    p = draw(rows(v))
    rel = draw(st.sampled_from(["independent", "equal", "off-support", "worst"]))
    if rel == "equal":
        return p, p
    zeros = [i for i, x in enumerate(p) if x == 0]
    if rel == "off-support" and zeros:
        w = [3 if i in zeros else draw(st.integers(0, 1)) for i in range(v)]
        return p, _normalise(w)
    if rel == "worst":
        j = min(range(v), key=lambda i: (p[i], i))
        return p, tuple(Fraction(int(i == j)) for i in range(v))
    return p, draw(rows(v))


@st.composite
def table_models(draw: Any, vocab: int | None = None) -> tuple[ToyModel, ToyModel]:
    """A context-dependent target and drafter: each context picks one of a few drawn row pairs
    (by a hash of the context), so rows change along a chain as real models' rows do."""
    v = vocab if vocab is not None else draw(st.integers(2, 5))
    pairs = draw(st.lists(row_pairs(v), min_size=1, max_size=3))
    salt = draw(st.integers(0, 2**16))

    def pick(ctx: tuple[int, ...]) -> int:
        return _hash_ints(salt, ctx, 1, len(pairs))[0]

    target = ToyModel(v, lambda ctx: pairs[pick(ctx)][0], name="drawn-target")
    drafter = ToyModel(v, lambda ctx: pairs[pick(ctx)][1], name="drawn-drafter")
    return target, drafter


@st.composite
def cases(draw: Any, vocabs: tuple[int, ...] = (2, 3, 4, 5), max_drafts: int = 3) -> Case:
    """A conformance case: drawn target/drafter tables and a chain of ``1..max_drafts`` drafts
    (kept to ``vocab**k <= 64`` draft tuples so that one exact check stays well under a
    second)."""
    v = draw(st.sampled_from(list(vocabs)))
    k = draw(st.integers(1, max_drafts).filter(lambda k: v**k <= 64))
    target, drafter = draw(table_models(v))
    return Case(f"drawn(V={v},k={k})", target, drafter, k)


def schedules() -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments for ``SimulatedBackend``: a drafter latency (as a fraction of the
    target's), an optional forced completion order and the cancellation behaviour."""
    orders = st.one_of(
        st.none(),
        st.sampled_from(["fifo", "lifo", "drafts_last", "targets_last"]),
        st.integers(0, 999).map(lambda s: f"random:{s}"),
    )
    return st.fixed_dictionaries(
        {
            "draft_latency": st.fractions(Fraction(1, 20), Fraction(3), max_denominator=20),
            "order": orders,
            "cancellation": st.sampled_from(["instant", "fails"]),
        }
    )
