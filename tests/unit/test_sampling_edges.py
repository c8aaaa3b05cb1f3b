"""Edges of the rules and the keyed randomness that no token-level test pinned down.

Written for the survivors of ``scripts/mutation.py --generated`` (docs/mutation.md): each test
names the behaviour it fixes; the mutant it kills is listed there.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest

from dsi_core.errors import InvalidDistributionError
from dsi_core.sampling import (
    Decided,
    DecisionRule,
    KeyedNoise,
    Stream,
    argmax,
    check_row,
    greedy_logits_token,
    inverse_cdf,
    probs_from_logits,
    temper,
    to_probs,
)


class FixedNoise:
    def __init__(self, u: float) -> None:
        self.u = u

    def uniform(self, pos: int, stream: Stream) -> float:
        return self.u

    def gumbel(self, pos: int, size: int) -> np.ndarray:
        return np.zeros(size)


def test_the_key_is_seed_and_pos_times_16_plus_stream():
    """The documented key layout: a run is reproducible across versions, not only within one."""
    for seed in (0, 5, 2**64 - 1):
        noise = KeyedNoise(seed)
        for pos in (0, 1, 7, 2**59 + 3):
            for s in Stream:
                key = np.array([seed, (pos * 16 + int(s)) % 2**64], dtype=np.uint64)
                want = np.random.Generator(np.random.Philox(key=key)).random()
                assert noise.uniform(pos, s) == want


def test_streams_are_distinct_and_seeds_cover_the_whole_range():
    assert len({int(s) for s in Stream}) == len(Stream)
    assert all(1 <= int(s) < 16 for s in Stream)
    noise = KeyedNoise(2**64 - 1)  # the largest seed is valid
    assert len({noise.uniform(3, s) for s in Stream}) == len(Stream)


def test_gumbel_rows_are_cached_read_only_and_the_cache_is_lru():
    noise = KeyedNoise(1, gumbel_cache=4)
    g0 = noise.gumbel(0, 5)
    assert not g0.flags.writeable  # a cached row handed out twice must not be edited
    with pytest.raises(ValueError):
        g0[0] = 1.0
    assert noise.gumbel(0, 5) is g0  # a hit returns the cached row
    rows = {pos: noise.gumbel(pos, 5) for pos in range(1, 4)}  # the cache is full: 0..3
    assert noise.gumbel(0, 5) is g0  # 0 is now the most recently used
    g4 = noise.gumbel(4, 5)  # evicts the least recently used: 1
    assert noise.gumbel(4, 5) is g4 and noise.gumbel(0, 5) is g0
    assert noise.gumbel(1, 5) is not rows[1]
    assert np.array_equal(noise.gumbel(1, 5), rows[1])  # recomputed, the same numbers


def test_float_rows_as_lists_use_the_tolerance_and_it_is_inclusive():
    check_row([0.1] * 10)  # sums to 0.9999999999999999: float, not exact
    check_row(np.array([0.1] * 10))
    check_row([0.5, 0.75], tolerance=0.25)  # |1.25 - 1| = 0.25: allowed, the bound included
    check_row(np.array([0.5, 0.75]), tolerance=0.25)
    for row in ([0.5, 0.8125], np.array([0.5, 0.8125])):
        with pytest.raises(InvalidDistributionError):
            check_row(row, tolerance=0.25)


def test_logits_edges():
    assert np.array_equal(probs_from_logits([3.0]), [1.0])  # a one-token vocabulary
    assert np.allclose(probs_from_logits([1000.0, 1000.0, -1000.0]), [0.5, 0.5, 0.0])  # no overflow
    p = temper([0.0, 0.25, 0.75], 0.5)  # p ** 2 renormalised; a zero stays zero
    assert np.allclose(p, [0.0, 0.1, 0.9])
    with pytest.raises(InvalidDistributionError):
        to_probs(np.array([0.5, 0.6]), "probs")  # probability rows are checked


def test_compact():
    p = np.array([0.2, 0.5, 0.3])
    greedy = DecisionRule("greedy", KeyedNoise(0))
    assert greedy.compact(0, p) == Decided(1, 3)
    assert greedy.decide(0, greedy.compact(0, p), 1) == (1, True)
    rejection = DecisionRule("rejection", KeyedNoise(0))
    assert rejection.compact(0, p) is p  # rejection mode needs the whole row
    with pytest.raises(InvalidDistributionError):
        greedy.compact(0, np.array([0.5, 0.6]))
    assert greedy.compact_logits(0, np.log(p), 1.0, "row") == Decided(1, 3)
    assert np.allclose(rejection.compact_logits(0, np.log(p), 1.0, "row"), p)


def test_greedy_draft_is_the_argmax_of_q():
    q = np.array([0.1, 0.2, 0.6, 0.1])
    assert DecisionRule("greedy", KeyedNoise(0)).draft_token(0, q) == 2
    for seed in range(5):  # rejection mode samples from q instead
        tok = DecisionRule("rejection", KeyedNoise(seed)).draft_token(0, q)
        assert q[tok] > 0


def test_rejection_with_a_one_hot_draft():
    """``q = None`` is a one-hot at the draft: accept iff ``u < p(draft)``."""
    p = np.array([0.25, 0.75])
    assert DecisionRule("rejection", FixedNoise(0.2)).decide(0, p, 0) == (0, True)
    assert DecisionRule("rejection", FixedNoise(0.3)).decide(0, p, 0) == (1, False)


def test_the_empty_residual_falls_back_to_p_without_the_draft():
    # q exceeds p at the draft by one rounding step only: max(0, p - q) is all zeros; a
    # rejection then samples p with the draft's mass removed, never the rejected draft itself
    p = np.array([0.1, 0.2, 0.7])
    q = np.array([0.1, 0.2, np.nextafter(0.7, 1.0)])
    u = np.nextafter(1.0, 0.0)
    tok, accepted = DecisionRule("rejection", FixedNoise(u)).decide(0, p, 2, q)
    assert accepted is False and tok in (0, 1)


def test_inverse_cdf_top_end_never_returns_a_zero_weight_index():
    # u = 1 is outside the contract, but the guard must still pick the last positive weight
    assert inverse_cdf(np.array([0.25, 0.5, 0.25, 0.0]), 1.0) == 2


def test_coupled_mode_on_exact_rows_equals_float_rows():
    p = (Fraction(1, 8), Fraction(1, 2), Fraction(3, 8))
    q = (Fraction(1, 4), Fraction(1, 4), Fraction(1, 2))
    rule = DecisionRule("coupled", KeyedNoise(3))
    for pos in range(20):
        d = rule.draft_token(pos, q)
        assert d == rule.draft_token(pos, np.array([float(x) for x in q]))
        tok, acc = rule.decide(pos, p, d, q)
        assert (tok, acc) == rule.decide(pos, np.array([float(x) for x in p]), d)
        assert acc == (tok == d)


def test_decided_is_an_immutable_value():
    d = Decided(2, 5)
    assert d == Decided(2, 5) and hash(d) == hash(Decided(2, 5)) and len(d) == 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.token = 3  # type: ignore[misc]


def test_argmax_of_sequences():
    assert argmax((Fraction(1, 4), Fraction(1, 2), Fraction(1, 4))) == 1
    assert argmax([0.2, 0.4, 0.4]) == 1  # ties: the lowest index, as for arrays
    assert argmax([0.5, 0.1, 0.4]) == 0


def test_only_rejection_mode_decides_with_the_draft():
    assert DecisionRule("rejection", KeyedNoise(0)).needs_draft is True
    assert DecisionRule("greedy", KeyedNoise(0)).needs_draft is False
    assert DecisionRule("coupled", KeyedNoise(0)).needs_draft is False


def test_the_drafters_row_is_checked():
    p = np.array([0.5, 0.5])
    for mode in ("greedy", "coupled", "rejection"):
        with pytest.raises(InvalidDistributionError, match="drafter row q"):
            DecisionRule(mode, KeyedNoise(0)).decide(0, p, 0, np.array([0.6, 0.6]))


# ---- held-out sample of generated mutants (sampling.py, seed 1, mutants 61-120; docs/mutation.md)


def test_stream_numbers_are_part_of_the_key_layout():
    """A seed reproduces a run across versions only if the stream numbers never change: the
    Gumbel vector of position ``pos`` is Philox's on the key ``(seed, pos * 16 + 5)``."""
    assert {s.name: int(s) for s in Stream} == {
        "DRAFT": 1,
        "ACCEPT": 2,
        "RESIDUAL": 3,
        "PLAIN": 4,
        "GUMBEL": 5,
    }
    for seed, pos in ((0, 0), (9, 3), (2**64 - 1, 70)):
        key = np.array([seed, pos * 16 + 5], dtype=np.uint64)
        want = np.random.Generator(np.random.Philox(key=key)).gumbel(size=6)
        assert np.array_equal(KeyedNoise(seed).gumbel(pos, 6), want)


class _ArrayLike:
    """Not numpy, not torch: a row that has a ``dtype`` and ``__array__`` but no ``detach``."""

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.dtype = np.dtype("float64")

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.values, dtype=dtype)


def test_array_like_rows_without_detach_are_read_through_numpy():
    row = to_probs(_ArrayLike([0.25, 0.75]), "probs")
    assert isinstance(row, np.ndarray) and row.tolist() == [0.25, 0.75]
    assert argmax(to_probs(_ArrayLike([0.0, 2.0, 1.0]), "logits")) == 1


def test_row_short_of_one_within_tolerance_with_nothing_left_accepts_the_draft():
    """p sums to 1 - 5e-7 (allowed) with all of it on the draft, q one-hot there, and u above
    p[draft]: both residuals are empty, so the draft is kept (the only token p allows)."""
    rule = DecisionRule("rejection", FixedNoise(0.9999999))
    for p in ([0.9999995, 0.0, 0.0], np.array([0.9999995, 0.0, 0.0])):
        assert rule.decide(0, p, 0, [1.0, 0.0, 0.0]) == (0, True)
        assert rule.decide(0, p, 0, None) == (0, True)


# ---- the rest of sampling.py's generated mutants (all 214 now run; docs/mutation.md)


def test_numpy_float32_rows_use_their_dtype_tolerance_and_come_back_float64():
    p = np.array([0.25, 0.25, 0.5 + 5e-5], dtype=np.float32)  # off by 5e-5: float32 drift
    check_row(p)  # float32's tolerance (1e-4), not float64's (1e-6)
    with pytest.raises(InvalidDistributionError, match="tolerance 1e-06"):
        check_row(p.astype(np.float64))
    row = to_probs(p, "probs")
    assert row.dtype == np.float64 and abs(float(row.sum()) - 1) < 1e-12
    exact64 = np.array([0.25, 0.25, 0.5])
    assert to_probs(exact64, "probs") is exact64  # a float64 row passes through untouched


def test_list_rows_one_entry_empty_exact_and_non_finite():
    check_row([1.0])
    check_row([Fraction(1)])
    with pytest.raises(InvalidDistributionError, match="is empty"):
        check_row([])
    with pytest.raises(InvalidDistributionError, match="not exactly 1"):
        check_row([Fraction(1, 2), Fraction(1, 2) + Fraction(1, 10**9)])  # within float slack
    for bad in (float("nan"), float("inf")):
        with pytest.raises(InvalidDistributionError, match="NaN or inf"):
            check_row([bad, 1.0])


def test_temper_at_a_small_temperature_does_not_underflow():
    assert temper([0.5, 0.5], 0.001).tolist() == [0.5, 0.5]
    assert argmax(temper([0.3, 0.7], 0.001)) == 1


def test_greedy_logits_token_edges():
    import torch

    class OnlyDetach:  # tensor-like without topk: not for the fast path
        ndim = 1

        def detach(self):
            return self

    assert greedy_logits_token(OnlyDetach()) is None
    assert greedy_logits_token(torch.empty(0)) is None  # the exact path raises its error
    assert greedy_logits_token(torch.tensor([3.0])) == 0
    # at a huge temperature the top two differ by 1e-18 after scaling: the exact path ties
    # them and takes the lower index, so the fast path must not answer
    z = torch.tensor([0.0, 1e-3], dtype=torch.float64)
    assert greedy_logits_token(z, 1e15) is None
    assert argmax(to_probs(z, "logits", 1e15)) == 0
    assert greedy_logits_token(z, 1.0) == 1  # unscaled, a gap of 1e-3 is far above the margin
    assert greedy_logits_token(torch.tensor([0.0, 1.0], dtype=torch.float64), 1e6) == 1


def test_the_drafters_row_is_checked_in_every_mode():
    for mode in ("greedy", "coupled", "rejection"):
        rule = DecisionRule(mode, KeyedNoise(1))
        with pytest.raises(InvalidDistributionError, match="drafter row q at position 4"):
            rule.draft_token(4, [0.5, -0.1, 0.6])
