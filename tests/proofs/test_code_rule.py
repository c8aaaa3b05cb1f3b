"""The symbolic execution of dsi_core/sampling.py (`proofs/code_rule.py`): the executor itself,
the coverage of the edge cases, the float64 witnesses and the planted bugs it must catch.

The theorems themselves (with their mutants) run in tests/proofs/test_proofs.py; the
enumerations are cached per process, so the checks here reuse them.
"""

from __future__ import annotations

import decimal
from fractions import Fraction

import numpy as np
import pytest
import z3

from dsi_core import sampling
from dsi_core.errors import DrafterError, InvalidDistributionError
from dsi_core.sampling import DecisionRule, check_row
from proofs import code_rule as cr
from proofs.theorem import Problem, _decide, check

VOCABS = cr.VOCABS
LIST_MUTANTS = sorted(set(cr.MUTANTS) - cr.NUMPY_ONLY)


def _counterexample(hyps: list, claim: z3.BoolRef) -> z3.ModelRef | None:
    solver = z3.Solver()
    solver.set("rlimit", 50_000_000)
    solver.add(*hyps, z3.Not(claim))
    res = solver.check()
    assert res != z3.unknown
    return solver.model() if res == z3.sat else None


# ---------------------------------------------------------------- the executor


def test_explore_takes_every_feasible_branch_and_prunes_the_rest():
    x, y = z3.Reals("x y")
    sx, sy = cr.Sym(x), cr.Sym(y)

    def f():
        return 1 if sx < sy else (2 if sx == sy else 3)

    assert sorted(p.outcome[1] for p in cr.explore(f, [])) == [1, 2, 3]
    assert sorted(p.outcome[1] for p in cr.explore(f, [x <= y])) == [1, 2]
    (only,) = cr.explore(f, [x < y])
    assert only.outcome == ("return", 1) and only.pc == []  # forced: no branch
    with pytest.raises(ValueError, match="unsatisfiable"):
        cr.explore(f, [x < 0, x > 0])


def test_truthiness_of_a_sym_is_a_branch_point():
    """`if x:` / `x and ..` / `not x` on a Sym branch on `x != 0` like Python numbers; without
    `Sym.__bool__` the object would be truthy on every path and the `x = 0` path lost."""
    x = z3.Real("x")
    sx = cr.Sym(x)
    assert sorted(p.outcome[1] for p in cr.explore(lambda: 1 if sx else 0, [x >= 0])) == [0, 1]
    (zero,) = [p for p in cr.explore(lambda: not sx, [x >= 0]) if p.outcome[1]]
    assert _counterexample([x >= 0], z3.Implies(z3.And(*zero.pc), x == 0)) is None
    assert [p.outcome[1] for p in cr.explore(lambda: sx and 5, [x > 0])] == [5]  # forced
    # comparing two comparisons compares their truth values, each a branch point
    same_sign = sorted(p.outcome[1] for p in cr.explore(lambda: (sx > 0) == (sx > 1), []))
    assert same_sign == [False, True, True]  # x > 1, 0 < x <= 1, x <= 0


def test_typed_errors_end_a_path_other_errors_propagate():
    x = z3.Real("x")

    def f():
        if cr.Sym(x) > 0:
            raise DrafterError("positive")
        return 0

    outcomes = sorted(str(p.outcome) for p in cr.explore(f, []))
    assert outcomes == ["('raise', <class 'dsi_core.errors.DrafterError'>)", "('return', 0)"]
    with pytest.raises(KeyError):
        cr.explore(lambda: {}[0], [])
    (crash,) = cr.explore(lambda: 1 / cr.Sym(x), [x == 0])
    assert crash.outcome == ("raise", ZeroDivisionError)  # like Fraction(1) / 0


def test_z3_unknown_is_a_failure(monkeypatch):
    x = z3.Real("x")
    monkeypatch.setattr(cr, "SOLVER_RLIMIT", 1)
    with pytest.raises(cr.UnknownError):
        cr._sat([x * x * x - 3 * x == 1, x > 0])


def test_sym_is_exact_and_only_branches_inside_an_exploration():
    x = z3.Real("x")
    s = cr.Sym(x) + 0.1 - Fraction(1, 3) + np.float64(0.5)
    want = x + z3.RealVal(str(Fraction(0.1))) - z3.RealVal("1/3") + z3.RealVal("1/2")
    assert z3.simplify(s.e == want)  # floats enter as their exact dyadic value
    assert (cr.Sym(x) < float("inf")) is True and (cr.Sym(x) == float("nan")) is False
    with pytest.raises(TypeError, match="outside a path exploration"):
        bool(cr.Sym(x) < 0)
    with pytest.raises(TypeError):
        float(cr.Sym(x))


def test_check_row_accepts_symbolic_rows_and_nothing_else_new():
    """The one change to sampling.py: the ExactScalar marker. Other types behave as before."""
    with pytest.raises(InvalidDistributionError, match="non-numeric"):
        check_row([decimal.Decimal("0.5"), decimal.Decimal("0.5")])
    with pytest.raises(InvalidDistributionError, match="non-numeric"):
        check_row([True, False])
    with pytest.raises(InvalidDistributionError, match="tolerance"):  # numpy ints: float check
        check_row([np.int64(1), np.int64(1)])
    with pytest.raises(InvalidDistributionError, match="not exactly 1"):
        check_row([Fraction(1, 3), Fraction(1, 3)])
    check_row([np.int64(1)])
    check_row([Fraction(1, 3), Fraction(2, 3)])
    sympy = pytest.importorskip("sympy")  # a Rational elsewhere: still not a row entry
    with pytest.raises(InvalidDistributionError, match="non-numeric"):
        check_row([sympy.Rational(1, 2), sympy.Rational(1, 2)])
    assert isinstance(cr.Sym(z3.Real("x")), sampling.ExactScalar)


# ---------------------------------------------------------------- what is enumerated


@pytest.mark.parametrize("n", VOCABS)
def test_rejection_raises_drafter_error_exactly_when_q_x_is_zero(n):
    sc = cr.scenario("rejection", n)
    raising = 0
    for cp in cr.enumerate_paths("rejection", n):
        for path in cp.paths:
            pc = z3.And(*path.pc)
            if path.outcome == ("raise", DrafterError):
                raising += 1
                assert cp.case.with_q and cp.case.draft is not None
                q_x = sc.variables[f"q{cp.case.draft}"]
                assert _counterexample(sc.hyps, z3.Implies(pc, q_x == 0)) is None
            else:
                assert path.outcome[0] == "return"
    assert raising == n  # one path per draft x whose row q is passed


def test_path_counts():
    counts = {
        (name, n): sum(len(cp.paths) for cp in cr.enumerate_paths(name, n))
        for name in ("greedy", "rejection")
        for n in VOCABS
    }
    assert counts == {
        ("greedy", 2): 10,
        ("greedy", 3): 28,
        ("greedy", 4): 72,
        ("rejection", 2): 12,
        ("rejection", 3): 30,
        ("rejection", 4): 76,
    }


@pytest.mark.parametrize("name", cr.SCENARIOS)
def test_hypotheses_are_satisfiable(name):
    for n in (1, *VOCABS) if name == "check_row" else VOCABS:
        assert cr._sat(cr.scenario(name, n).hyps) is not None


# ---------------------------------------------------------------- coverage (the item)


@pytest.mark.parametrize("n", VOCABS)
def test_every_edge_case_is_reached(n):
    reached = cr.coverage(n)
    # with two tokens, p_j = q_j at the other token forces p(x) = q(x): the draft is accepted
    want = {goal: not (n == 2 and goal == "p_eq_q") for goal in cr.GOALS}
    assert reached == want, reached


@pytest.mark.parametrize("n", VOCABS)
def test_hypotheses_p_q_positive_lose_the_zero_edge_cases(n):
    """The audit's planted bug: tightening the hypotheses to 0 < p, q. Coverage must fail."""
    reached = cr.coverage(n, strict=True)
    assert not reached["p_x_zero"] and not reached["q_zero"] and not reached["q_x_zero"]
    assert reached["argmax_tie"] and reached["p_eq_q"] == (n > 2)  # not zeros: still reached


# ---------------------------------------------------------------- float64 witnesses


@pytest.mark.parametrize("name", cr.SCENARIOS)
def test_every_path_has_a_float_exact_grid_witness_with_margins(name):
    for n in (1, *VOCABS) if name == "check_row" else VOCABS:
        for per_path in cr.witnesses(name, n):
            for ws in per_path:
                assert ws and ws[0].margin
                for w in ws:
                    for k, v in w.values.items():
                        grid = cr.U_GRID if k.startswith("u_") else cr.P_GRID
                        assert (v * grid).denominator == 1 and Fraction(float(v)) == v


@pytest.mark.parametrize("n", [2, 3, 4])
def test_check_row_has_witnesses_one_grid_step_from_valid(n):
    """An entry -2**-10 in a row summing to 1, and a row of non-negative entries summing to
    1 +- 2**-10: where a tolerance in check_row's numpy branch would accept an invalid row."""
    step = Fraction(1, cr.P_GRID)
    rows = [
        [w.values[f"w{i}"] for i in range(n)]
        for per_path in cr.witnesses("check_row", n)
        for ws in per_path
        for w in ws
        if w.boundary.startswith("near ")
    ]
    assert any(min(r) == -step and sum(r) == 1 for r in rows)
    assert any(min(r) >= 0 and abs(sum(r) - 1) == step for r in rows)


def test_numpy_check_row_tolerance_is_caught_by_the_near_witnesses_only():
    mutant = "check_row tolerates entries above -1e-3 (numpy path)"
    problem = cr.build("check_row", (1, 2, 3, 4), mutant=mutant)
    *symbolic, floats = problem.claim
    assert _decide(Problem(problem.hypotheses, symbolic), 50_000_000)[0] == "proved"
    status, witness, _ = _decide(Problem(problem.hypotheses, [floats], problem.render), 50_000_000)
    assert status == "counterexample" and "-1/1024" in witness, witness


def test_numpy_residual_mutant_is_caught_by_the_float_witnesses_only():
    problem = cr.build("residual", VOCABS, mutant="residual np.maximum(q - p, 0) (numpy path)")
    *symbolic, floats = problem.claim
    assert _decide(Problem(problem.hypotheses, symbolic), 50_000_000)[0] == "proved"
    status, witness, _ = _decide(Problem(problem.hypotheses, [floats], problem.render), 50_000_000)
    assert status == "counterexample" and "float64 residual" in witness


# ---------------------------------------------------------------- the mutants


def test_every_mutant_edits_the_current_source_once():
    for name in cr.MUTANTS:
        with cr.installed(name):
            pass


def test_mutants_and_spies_are_removed_afterwards():
    before = (sampling.residual, sampling.argmax, sampling.inverse_cdf, DecisionRule.decide)
    for name in ("residual max(0, q - p) (list path)", "accept iff u <= p(x)/q(x)"):
        with cr.installed(name):
            assert sampling.residual is not before[0]
    assert (sampling.residual, sampling.argmax, sampling.inverse_cdf, DecisionRule.decide) == before


def test_u_le_mutant_differs_exactly_on_the_threshold():
    """`u <= p(x)/q(x)` is refuted, and only at u = p(x)/q(x): z3 puts u on the threshold."""
    mutant = "accept iff u <= p(x)/q(x)"
    n = 3
    sc = cr.scenario("rejection", n)
    found = 0
    for cp in cr.enumerate_paths("rejection", n, mutant=mutant):
        spec = cp.case.spec(sc.variables)
        for path in cp.paths:
            claim = cr.path_claim(cp.case, path, spec)
            if _counterexample(sc.hyps, claim) is None:
                continue
            found += 1
            x = cp.case.draft
            q_x = sc.variables[f"q{x}"] if cp.case.with_q else z3.RealVal(1)
            off_threshold = sc.variables["u_accept"] * q_x != sc.variables[f"p{x}"]
            assert _counterexample([*sc.hyps, off_threshold], claim) is None
    assert found > 0


@pytest.mark.parametrize("mutant", LIST_MUTANTS)
def test_list_mutant_counterexamples_replay_on_fractions(mutant):
    """Each counterexample is a real input on which the mutated code, run on Fractions,
    disagrees with the spec, while the real code agrees."""
    name = {
        "residual": "residual",
        "argmax": "argmax",
        "inverse_cdf": "inverse_cdf",
        "check_row": "check_row",
        "DecisionRule.decide": "rejection",
        "DecisionRule._target_token": "coupled",
        "DecisionRule.draft_token": "coupled",
    }[cr.MUTANTS[mutant][0]]
    n = 2 if name == "check_row" else 3
    sc = cr.scenario(name, n)
    for cp in cr.enumerate_paths(name, n, mutant=mutant):
        spec = cp.case.spec(sc.variables)
        for path in cp.paths:
            model = _counterexample(sc.hyps, cr.path_claim(cp.case, path, spec))
            if model is None:
                continue
            values = {}
            for k, e in sc.variables.items():
                v = model.eval(e, model_completion=True)
                values[k] = Fraction(v.numerator_as_long(), v.denominator_as_long())
            want = [model.eval(t, model_completion=True) for t in spec]

            width = len(spec)

            def run(values=values, case=cp.case, width=width):
                try:
                    return cr._outcome(("return", case.call(values, False)), case.encode, width)
                except cr._ERRORS as exc:
                    return cr._outcome(("raise", type(exc)), case.encode, width)

            def same(code, want=want):
                return z3.is_true(z3.simplify(cr._equal(code, want)))

            with cr.installed(mutant):
                assert not same(run())
            assert same(run())
            return
    pytest.fail(f"no counterexample for {mutant}")


def test_reach_theorems_and_their_controls():
    for th in cr.THEOREMS:
        if th.name.startswith("reach_"):
            result = check(th)
            assert result.ok and result.status == "counterexample", (th.name, result.mutants)


def test_coupled_log_stand_in_is_removed_and_counts_paths():
    """The coupled scenario replaces sampling._log only during each call; its path counts."""
    before = sampling._log
    counts = [sum(len(cp.paths) for cp in cr.enumerate_paths("coupled", n)) for n in VOCABS]
    assert sampling._log is before
    assert counts == [16, 65, 240]
