"""The float (numpy) and exact (Fraction) paths of the rejection rule agree.

The exact tests and proofs check the Fraction path; real models use numpy rows. Random rows
with zeros (p(x) = 0 and q(x) = 0 entries) must give the same residual ``max(0, p - q)``, up
to float rounding, and the same decision for every keyed uniform.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from dsi_core.sampling import DecisionRule, KeyedNoise, residual


@st.composite
def rows(draw, size):
    w = draw(st.lists(st.integers(0, 6), min_size=size, max_size=size).filter(any))
    total = sum(w)
    return tuple(Fraction(x, total) for x in w)


@st.composite
def cases(draw):
    v = draw(st.integers(2, 5))
    p, q = draw(rows(v)), draw(rows(v))
    draft = draw(st.sampled_from([i for i in range(v) if q[i] > 0]))
    return p, q, draft


@given(case=cases())
def test_numpy_residual_equals_exact(case):
    p, q, draft = case
    exact = residual(p, q, draft)
    assert exact == [max(Fraction(0), a - b) for a, b in zip(p, q, strict=True)]
    fp, fq = np.array([float(x) for x in p]), np.array([float(x) for x in q])
    np.testing.assert_allclose(residual(fp, fq, draft), [float(x) for x in exact], atol=1e-12)


@given(case=cases(), seed=st.integers(0, 50), pos=st.integers(0, 20))
def test_numpy_decision_equals_exact(case, seed, pos):
    p, q, draft = case
    rule = DecisionRule("rejection", KeyedNoise(seed))
    exact = rule.decide(pos, p, draft, q)
    fp, fq = np.array([float(x) for x in p]), np.array([float(x) for x in q])
    # a float threshold differs from the exact one by ~1e-16: a u between them is negligible
    assert rule.decide(pos, fp, draft, fq) == exact, (case, seed, pos)
