"""The rejection family's z3 terms are the Fraction evaluators, and its witnesses re-evaluate."""

from __future__ import annotations

import itertools
from fractions import Fraction as F

import z3

from proofs.latency_model import (
    dsi_latency,
    dsi_rejection_latency,
    si_latency,
    si_rejection_latency,
)
from proofs.rejection import (
    N_ANY_K,
    THEOREMS,
    _any_k_pairs,
    _step,
    dsi_rejection_term,
    si_rejection_term,
)
from proofs.theorem import check


def _value(term: z3.ArithRef, c: z3.ArithRef, cv: F) -> F:
    v = z3.simplify(z3.substitute(term, (c, z3.RealVal(str(cv)))))
    return F(v.as_fraction())


def test_terms_equal_evaluators():
    c = z3.Real("c")
    one = z3.RealVal(1)
    cs = [F(1, 12), F(1, 2), F(1), F(3, 2), F(5, 2)]  # both sides of c = t, where SI branches
    for n in range(1, 6):
        for a, k in itertools.product(itertools.product((0, 1), repeat=n), (1, 2, 3)):
            dsi, si = dsi_rejection_term(a, one, c, k), si_rejection_term(a, one, c, k)
            for cv in cs:
                assert _value(dsi, c, cv) == dsi_rejection_latency(a, 1, cv, k), (a, k, cv)
                assert _value(si, c, cv) == si_rejection_latency(a, 1, cv, k), (a, k, cv)


def test_counterexample_witnesses_reevaluate():
    for th in THEOREMS:
        if th.expected == "counterexample":
            res = check(th)
            assert res.ok and "mismatch" not in res.witness, (th.name, res.witness)
            assert "DSI" in res.witness, res.witness


def test_reduction_to_greedy_on_evaluators():
    """What the two reduction lemmas say, on every pattern N <= 7: for c <= t the
    rejection-mode DSI is the greedy model, for every c rejection-mode SI >= greedy SI (and for
    c > t DSI differs from greedy, which the lemma's mutant c > t reflects)."""
    cs = [F(1, 12), F(1, 3), F(2, 3), F(1), F(5, 4), F(2)]
    for n in range(1, 8):
        for a, k, c in itertools.product(itertools.product((0, 1), repeat=n), (1, 2, 3), cs):
            dsi = dsi_rejection_latency(a, 1, c, k)
            if c <= 1:
                assert dsi == dsi_latency(a, 1, c, k), (a, k, c)
            else:
                assert dsi > dsi_latency(a, 1, c, k) == n, (a, k, c)
            assert si_rejection_latency(a, 1, c, k) >= si_latency(a, 1, c, k), (a, k, c)


def test_step_hypotheses_admit_every_case_of_the_step():
    """Vacuity beyond the global check: the step's hypotheses admit each row case (stored,
    live task, chain) at the first position, at a segment's first position after a restart
    (n0 >= 1, i = 0) and inside a later segment with a restart delay (i >= 1, delta > 0)."""
    n0, i, case = z3.Int("n0"), z3.Int("i"), z3.Int("case")
    d, delta, c, t = z3.Reals("d delta c t")
    shapes = [[n0 == 0, i == 0], [n0 >= 1, i == 0], [n0 >= 1, i >= 1, delta > 0, d > 0]]
    for build in (_step, lambda: _step("bound")):
        hyps = build().hypotheses
        for k, shape in itertools.product((1, 2, 3), shapes):
            solver = z3.Solver()
            solver.add(*hyps, case == k, *shape)
            assert solver.check() == z3.sat, (k, shape)
    bound = _step("bound").hypotheses  # the bound's hypotheses also admit c > t with delta > 0
    solver = z3.Solver()
    solver.add(*bound, c > t, delta > 0, n0 >= 1, case == 3)
    assert solver.check() == z3.sat


def test_any_k_theorem_covers_every_lookahead():
    """`rejection_dsi12_le_si_any_k_N6` checks k' up to N_ANY_K, which stands for every larger
    k' at N <= N_ANY_K (on the evaluator); k' = N - 1 alone would not (a = 1^6, c = 3t/2)."""
    assert {k2 for _, k2 in _any_k_pairs((1,))} == set(range(1, N_ANY_K + 1))
    for n in range(1, N_ANY_K + 1):
        for a, c in itertools.product(itertools.product((0, 1), repeat=n), [F(1, 3), F(3, 2)]):
            top = si_rejection_latency(a, 1, c, N_ANY_K)
            assert all(si_rejection_latency(a, 1, c, k) == top for k in (7, 9, 50)), (a, c)
    a = (1,) * 6
    assert si_rejection_latency(a, 1, F(3, 2), 5) == 10 > si_rejection_latency(a, 1, F(3, 2), 6)
