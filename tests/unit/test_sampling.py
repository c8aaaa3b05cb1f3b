"""Unit tests of the verification rules and the keyed randomness."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsi_core.errors import DrafterError, InvalidDistributionError, InvalidInputError
from dsi_core.sampling import (
    DecisionRule,
    KeyedNoise,
    Stream,
    argmax,
    check_row,
    inverse_cdf,
    probs_from_logits,
)


class FixedNoise:
    def __init__(self, u):
        self.u = u

    def uniform(self, pos, stream):
        return self.u

    def gumbel(self, pos, size):
        return np.zeros(size)


def test_keyed_noise_is_a_function_of_the_key():
    a, b = KeyedNoise(7), KeyedNoise(7)
    assert a.uniform(3, Stream.ACCEPT) == b.uniform(3, Stream.ACCEPT)
    # order of calls does not matter
    xs = [a.uniform(i, Stream.DRAFT) for i in range(5)]
    ys = [b.uniform(i, Stream.DRAFT) for i in reversed(range(5))][::-1]
    assert xs == ys
    assert a.uniform(3, Stream.ACCEPT) != a.uniform(3, Stream.RESIDUAL)
    assert a.uniform(3, Stream.ACCEPT) != KeyedNoise(8).uniform(3, Stream.ACCEPT)
    assert np.array_equal(a.gumbel(2, 10), b.gumbel(2, 10))
    assert 0 <= a.uniform(0, Stream.PLAIN) < 1


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "1", True])
def test_bad_seed(seed):
    with pytest.raises(InvalidInputError):
        KeyedNoise(seed)


def test_strict_acceptance_never_accepts_zero_probability_token():
    rule = DecisionRule("rejection", FixedNoise(0.0))
    p = np.array([0.0, 1.0])
    q = np.array([0.5, 0.5])
    tok, accepted = rule.decide(0, p, draft=0, q=q)
    assert (tok, accepted) == (1, False)
    # the exact path too
    tok, accepted = rule.decide(0, (Fraction(0), Fraction(1)), 0, (Fraction(1, 2),) * 2)
    assert (tok, accepted) == (1, False)


def test_rejection_accepts_when_q_equals_p():
    rule = DecisionRule("rejection", FixedNoise(0.999999))
    p = np.array([0.2, 0.3, 0.5])
    for x in range(3):
        assert rule.decide(0, p, draft=x, q=p) == (x, True)


def test_q_must_contain_the_draft():
    rule = DecisionRule("rejection", KeyedNoise(0))
    with pytest.raises(DrafterError, match="probability 0"):
        rule.decide(0, np.array([0.5, 0.5]), draft=1, q=np.array([1.0, 0.0]))


def test_draft_outside_vocabulary():
    rule = DecisionRule("greedy", KeyedNoise(0))
    with pytest.raises(DrafterError):
        rule.decide(0, np.array([0.5, 0.5]), draft=2)


@pytest.mark.parametrize("bad", [[np.nan, 1.0], [np.inf, 0.0], [-0.1, 1.1], [0.0, 0.0], []])
def test_bad_rows_are_rejected(bad):
    with pytest.raises(InvalidDistributionError):
        check_row(np.array(bad, dtype=float))
    with pytest.raises(InvalidDistributionError):
        DecisionRule("greedy", KeyedNoise(0)).decide(0, np.array(bad, dtype=float))


def test_probs_from_logits():
    p = probs_from_logits([0.0, -np.inf, np.log(3.0)])
    assert np.allclose(p, [0.25, 0.0, 0.75])
    assert np.allclose(probs_from_logits([0.0, 1.0], temperature=0.5), probs_from_logits([0, 2]))
    for bad in ([np.nan, 0.0], [np.inf, 0.0], [-np.inf, -np.inf]):
        with pytest.raises(InvalidDistributionError):
            probs_from_logits(bad)
    with pytest.raises(InvalidInputError):
        probs_from_logits([0.0, 1.0], temperature=0.0)


def test_argmax_ties_lowest_index():
    assert argmax(np.array([0.2, 0.4, 0.4])) == 1
    assert argmax((Fraction(1, 3),) * 3) == 0


@given(
    weights=st.lists(st.integers(0, 5), min_size=1, max_size=12).filter(lambda w: sum(w) > 0),
    u=st.floats(0, 1, exclude_max=True),
)
def test_inverse_cdf_never_returns_zero_weight(weights, u):
    j = inverse_cdf(np.array(weights, dtype=float), u)
    assert weights[j] > 0
    cum = np.cumsum(weights) / sum(weights)
    assert u < cum[j] or j == max(i for i, w in enumerate(weights) if w > 0)
    assert j == 0 or u >= cum[j - 1] or weights[j - 1] == 0


def test_coupled_perfect_drafter_always_accepted():
    rule = DecisionRule("coupled", KeyedNoise(3))
    rng = np.random.default_rng(0)
    for pos in range(50):
        p = rng.dirichlet(np.ones(20))
        d = rule.draft_token(pos, p)
        assert rule.decide(pos, p, d, p) == (d, True)


def test_modes_validated():
    with pytest.raises(InvalidInputError):
        DecisionRule("beam", KeyedNoise(0))
