"""The speed-ups of the proof runner against the slow paths they replace.

- `proofs.expectation.pattern_latencies` (memoised segment costs) against the Fraction evaluators
  on every pattern, and `latency_polynomial` against the brute-force sum it replaced;
- the simulator warm-up of `proofs.expectation_servers` (`prepare` in a worker, `install` in the
  family's worker) against on-demand runs;
- `python -m proofs -j 2` against `-j 1`: same theorems, order, outcomes and exit status;
  the warm-up family's theorems split across the workers after the warm-up, each with all of it;
- `Problem.lemmas` (the cut rule): a lemma that does not follow never decides an outcome.
"""

from __future__ import annotations

import itertools
import json
from concurrent.futures import Future
from fractions import Fraction as F

import pytest
import z3

import proofs.expectation as expectation
import proofs.expectation_servers as es
from proofs import runner
from proofs.expectation import (
    latency_polynomial,
    monomial_coefficients,
    pattern_latencies,
    poly_value,
)
from proofs.latency_model import dsi_latency, si_latency
from proofs.theorem import Mutant, Problem, Theorem, check

_CS = (F(1, 20), F(1, 10), F(1, 4), F(1, 3), F(1, 2), F(1), F(3, 2))


@pytest.mark.parametrize("n", range(1, 10))
def test_pattern_latencies_equal_the_evaluators(n: int) -> None:
    pats = list(itertools.product((0, 1), repeat=n))
    for c in _CS:
        for k in range(1, 6):
            assert pattern_latencies("SI", n, c, k) == tuple(si_latency(x, 1, c, k) for x in pats)
            assert pattern_latencies("DSI", n, c, k) == tuple(dsi_latency(x, 1, c, k) for x in pats)
            assert pattern_latencies("DSI", n, c, k, True) == tuple(
                dsi_latency(x, 1, c, k, old_final_block=True) for x in pats
            )


def test_latency_polynomial_equals_brute_force_sum() -> None:
    n = 9
    for alg, c, k in (("SI", F(1, 20), 3), ("DSI", F(1, 10), 2), ("DSI", F(1, 2), 5)):
        ev = si_latency if alg == "SI" else dsi_latency
        sums = [F(0)] * (n + 1)
        for x in itertools.product((0, 1), repeat=n):
            sums[sum(x)] += ev(x, 1, c, k)
        assert latency_polynomial(alg, n, c, k) == tuple(sums)
        for rate in (F(0), F(2, 7), F(1)):
            assert poly_value(sums, rate) == sum(
                s * rate**j * (1 - rate) ** (n - j) for j, s in enumerate(sums)
            )


def test_prepared_runs_equal_on_demand_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """`install(prepare(chunk))` gives the same latencies as simulating on demand, and then
    no simulation is needed."""
    n, c = 5, F(1, 10)
    chunk = (n, c, tuple((k, s) for k in (1, 2) for s in (7, 3, 2)) + ((1, 1),))
    monkeypatch.setattr(es, "_RUNS", {})
    monkeypatch.setattr(es, "_LAT", {})
    fresh = {(k, s): es.dsi_sim_latencies(n, c, k, s) for k, s in chunk[2]}
    data = es.prepare(chunk)
    monkeypatch.setattr(es, "_RUNS", {})
    monkeypatch.setattr(es, "_LAT", {})
    es.install(data)

    def no_simulation(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"simulated again: {args}")

    monkeypatch.setattr(es, "simulate", no_simulation)
    for (k, s), lats in fresh.items():
        assert es.dsi_sim_latencies(n, c, k, s) == lats


def test_prepare_chunks_cover_the_theorems() -> None:
    """Every (c, k, S) the theorems simulate is in some chunk (a miss would only be slower)."""
    pairs = {(c, k, s) for n, c, ks in es.prepare_chunks() for k, s in ks if n == es.N}
    for s in (*es._SERVERS, 1):
        for k in es._KS:
            assert (F(1, 20), k, s) in pairs
    assert (F(1, 20), 1, es.ENOUGH) in pairs
    assert {c for c, _, _ in pairs} == set(es._CS)


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = runner.main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_parallel_runner_matches_sequential(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("--only", "sp_degree")
    code1, seq = _run_json(capsys, *argv, "-j", "1")
    code2, par = _run_json(capsys, *argv, "-j", "2")
    assert code1 == code2 == 0
    # outcomes, not witnesses: z3's model may depend on what the process built before (a
    # worker starts fresh), and any counterexample is re-checked when it is rendered
    keys = ("name", "claim", "hypotheses", "expected", "result", "ok")
    assert [[th[k] for k in keys] for th in seq["theorems"]] == [
        [th[k] for k in keys] for th in par["theorems"]
    ]
    assert (
        par["total"]
        == seq["total"]
        == sum(th.family == "sp_degree" for th in runner.all_theorems())
    )


def test_runner_exit_status_follows_the_results(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever path produced them (workers or not), one result not as expected exits 1."""
    real = runner._results

    def one_wrong(*args: object):  # noqa: ANN202
        for i, done in enumerate(real(*args)):
            yield runner._Done(**{**done.__dict__, "ok": False}) if i == 0 else done

    monkeypatch.setattr(runner, "_results", one_wrong)
    for jobs in ("1", "2"):
        code, out = _run_json(capsys, "--only", "fixed_servers", "-j", jobs)
        assert code == 1 and out["passed"] == out["total"] - 1
        assert runner.main(["--only", "fixed_servers", "-j", jobs]) == 1
        assert "NO" in capsys.readouterr().out


def _lemma_theorem(lemmas: list, claim_bound: int) -> Theorem:
    x = z3.Real("x")
    return Theorem(
        "lemmas",
        "test",
        "x > 0",
        f"x > {claim_bound}",
        "proved",
        1_000_000,
        lambda: Problem([x > 0], x > claim_bound - 1, lemmas=[f(x) for f in lemmas]),
        (Mutant("m", lambda: Problem([x > 0], x > 5)),),
    )


def test_lemmas_never_decide_an_outcome() -> None:
    """A lemma that does not follow is dropped (not assumed); a proved one only helps."""
    # false lemma x > 5, false claim x > 3: still a counterexample (assuming it would "prove")
    assert check(_lemma_theorem([lambda x: x > 5], 4)).status == "counterexample"
    # false lemma, true claim x > -1: proved all the same
    assert check(_lemma_theorem([lambda x: x > 5], 0)).status == "proved"
    # a true lemma before a false one: the later false one is dropped too, claim still checked
    res = check(_lemma_theorem([lambda x: x > -2, lambda x: x > 7], 2))
    assert res.status == "counterexample"
    # true lemmas, true claim: proved, and the lemmas' solver calls are counted
    res = check(_lemma_theorem([lambda x: x > -3, lambda x: x >= 0], 0))
    assert res.status == "proved" and res.ok


def test_monomial_form_is_the_bernstein_polynomial() -> None:
    """The z3 polynomials use the monomial basis: same values at points other than the N + 1
    the expansion is checked at inside `monomial_coefficients`."""
    sums = latency_polynomial("DSI", 7, F(1, 10), 2)
    coef = monomial_coefficients(sums)
    for x in (F(1, 3), F(5, 7), F(2), F(-1, 2)):
        assert poly_value(sums, x) == sum(b * x**i for i, b in enumerate(coef))
    with pytest.raises(AssertionError):  # a wrong expansion is caught by the built-in check
        real = expectation.math.comb
        try:
            expectation.math.comb = lambda n, m: real(n, m) + (m == 1)  # type: ignore[assignment]
            expectation.monomial_coefficients.cache_clear()
            expectation.monomial_coefficients((F(1), F(2), F(3)))
        finally:
            expectation.math.comb = real  # type: ignore[assignment]


def test_prepare_only_for_the_grid_theorems() -> None:
    names = [th.name for th in es.THEOREMS]
    assert len(es.prepare_chunks(names)) == len(es._CS) * len(es._KS)
    assert es.prepare_chunks(names[:1]) == es.prepare_chunks()
    assert es.prepare_chunks([n for n in names if "slower" in n]) == []


class _InlinePool:
    """Stands in for the runner's process pool: runs each task at once, records the order."""

    def __init__(self, log: list, **_kwargs: object) -> None:
        self.log = log

    def __enter__(self) -> _InlinePool:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn, *args):  # noqa: ANN001, ANN201
        self.log.append((fn.__name__, args))
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut


@pytest.mark.parametrize("jobs", [2, 3, 8])
def test_warm_up_family_is_split_across_workers(monkeypatch: pytest.MonkeyPatch, jobs: int) -> None:
    """With workers, every warm-up chunk goes first; once they are done the family's theorems
    go out next (after the tasks that filled the other free workers meanwhile) as min(jobs, 5)
    disjoint tasks in registry order, each installing every chunk's data; the results still
    come back in registry order."""
    theorems = runner.all_theorems()
    fam = [i for i, th in enumerate(theorems) if th.family == "expect_servers"]
    other = [i for i, th in enumerate(theorems) if th.family == "sp_degree"]
    indices = sorted(fam + other)
    log: list = []
    monkeypatch.setattr(runner, "ProcessPoolExecutor", lambda **kw: _InlinePool(log, **kw))
    monkeypatch.setattr(es, "prepare", lambda chunk: ("data", chunk))

    def fake_check(indices: list[int], installs=()) -> list:  # noqa: ANN001
        return [
            runner._Done(i, theorems[i].name, "", "", "", "proved", True, 0.0, "", "")
            for i in indices
        ]

    monkeypatch.setattr(runner, "_check_indices", fake_check)
    assert [d.index for d in runner._results(theorems, indices, jobs)] == indices
    chunks = es.prepare_chunks()
    assert [args for name, args in log[: len(chunks)]] == [
        ("proofs.expectation_servers", c) for c in chunks
    ]
    assert all(name == "fake_check" for name, _ in log[len(chunks) :])
    tasks = [args[0] for _, args in log[len(chunks) :]]
    at = [n for n, task in enumerate(tasks) if set(task) & set(fam)]
    # the inline pool finishes each batch of `jobs` tasks together: the last chunk's batch
    # is filled up with other tasks, the family's go first after it
    assert at == list(range(at[0], at[0] + min(jobs, len(fam))))
    assert at[0] == -len(chunks) % jobs
    assert sorted(i for n in at for i in tasks[n]) == fam
    assert all(tasks[n] == sorted(tasks[n]) for n in at)
    installed = sorted([("proofs.expectation_servers", ("data", c)) for c in chunks], key=repr)
    assert all(sorted(log[len(chunks) + n][1][1], key=repr) == installed for n in at)
    assert sorted(i for n, task in enumerate(tasks) if n not in at for i in task) == other


def test_cost_hints_name_existing_theorems() -> None:
    """A renamed or removed theorem leaves no stale scheduling hint behind."""
    names = {f"{th.family}/{th.name}" for th in runner.all_theorems()}
    assert set(runner._COST) <= names, sorted(set(runner._COST) - names)
