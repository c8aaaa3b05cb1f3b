"""The conformance kit (dsi_core.testing.conformance) certifies correct rules and flags broken ones.

Exact checks compare rational laws: no tolerance, no false failures. Every "passes" test below
is paired with mutants the same check must flag, so each can fail. The statistical tests run
at a stated false-failure rate (``ALPHA``) on fixed seeds (deterministic), and are shown to
catch a broken sampler.
"""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from dsi_core.errors import InvalidInputError
from dsi_core.testing import conformance as cf
from dsi_core.testing.conformance import (
    FAMILIES,
    MUTANTS,
    Case,
    check_rule_exact,
    check_sampler_statistical,
    reference_rule,
    rule_sampler,
    standard_cases,
)

# every family, V = 2..3, chains of 1..3 drafts (V = 3: up to 2): about 1 s per rule
SMALL = standard_cases(vocabs=(2, 3), max_drafts=3, max_chain=lambda v: 3 if v == 2 else 2)
ALPHA = 1e-3  # total false-failure rate of each statistical check below


def test_reference_rule_is_exactly_lossless():
    rep = check_rule_exact(reference_rule, SMALL)
    assert rep.passed and rep.max_tv == 0 and rep.counterexample is None
    assert {r.case.name for r in rep.results} == set(FAMILIES)
    assert {r.case.k for r in rep.results} == {1, 2, 3}
    assert all(r.paths > 0 for r in rep.results)


def test_reference_rule_vocab_4_and_5_chains_1_to_3():
    cases = [c for c in standard_cases(vocabs=(4, 5), max_drafts=3) if c.name == "random"]
    assert check_rule_exact(reference_rule, cases).passed


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutants_are_flagged(name):
    rep = check_rule_exact(MUTANTS[name], SMALL)
    assert not rep.passed
    ce = rep.counterexample
    assert ce is not None and ce.got != ce.want
    # the counterexample is the first failing case in sweep order and is reproducible
    first = rep.failures[0]
    again = check_rule_exact(MUTANTS[name], [first.case])
    assert again.counterexample.prefix == ce.prefix and again.counterexample.got == ce.got


def test_leq_mutant_deviation_is_one_grid_step():
    """``u <= p/q`` accepts with probability ``p/q + 1/M``: a draft with ``p = 0`` leaks
    ``q(x)/M`` onto tokens the target never emits."""
    v2 = Case("disjoint", *FAMILIES["disjoint"](2, 0), k=1)  # p = [1, 0], q = [1/4, 3/4]
    for mult in (1, 2, 1024):
        r = check_rule_exact(MUTANTS["leq"], [v2], grid_multiple=mult).results[0]
        assert r.out_of_support == Fraction(3, 4) / r.resolution
        assert r.tv == r.out_of_support
    assert check_rule_exact(reference_rule, [v2], grid_multiple=1024).results[0].out_of_support == 0


def test_counterexample_is_minimal_prefix():
    rep = check_rule_exact(MUTANTS["bonus_from_q"], SMALL)
    ce = rep.counterexample
    # the bonus token is the second token of a k = 1 chain: the first token's law is right
    assert ce.k == 1 and len(ce.prefix) == 2
    d = ce.to_dict()
    assert d["difference"] == str(ce.got - ce.want) and "p =" in str(ce)


def test_rule_contract_is_enforced():
    def too_many(p_rows, q_rows, drafts, uniform):
        return [0] * (len(drafts) + 2)

    def out_of_vocab(p_rows, q_rows, drafts, uniform):
        return [len(p_rows[0])]

    for bad in (too_many, out_of_vocab):
        with pytest.raises(InvalidInputError):
            check_rule_exact(bad, SMALL[:1])


def test_uniform_keys_are_shared_within_a_call():
    """A rule that reuses one key for two decisions makes them dependent; the check sees it."""

    def shared(p_rows, q_rows, drafts, uniform):
        from dsi_core.sampling import inverse_cdf

        u = uniform("same")
        if u < p_rows[0][drafts[0]] / q_rows[0][drafts[0]]:
            return [drafts[0], inverse_cdf(p_rows[1], uniform("same"))]
        w = [max(Fraction(0), a - b) for a, b in zip(p_rows[0], q_rows[0], strict=True)]
        return [inverse_cdf(w, uniform("same"))]

    cases = [c for c in SMALL if c.name == "random" and c.k == 1]
    assert not check_rule_exact(shared, cases).passed


# ----------------------------------------------------------------------------- statistical


def test_statistical_passes_reference_and_states_power():
    rep = check_sampler_statistical(rule_sampler(reference_rule, seed=1), n=3000, alpha=ALPHA)
    assert rep.passed, rep.to_dict()
    for r in rep.results:
        assert r.alpha == pytest.approx(ALPHA / (2 * len(rep.results)))
        assert 0 < r.detectable_tv_chi2 < 0.2 and 0 < r.detectable_tv < 0.2
    # four times the samples: about half the detectable deviation (df grows a little)
    bigger = check_sampler_statistical(
        rule_sampler(reference_rule, seed=1), [rep.results[0].case], n=12000
    )
    assert bigger.results[0].detectable_tv_chi2 < 0.6 * rep.results[0].detectable_tv_chi2


@pytest.mark.parametrize("name", ["wrong_residual", "bonus_from_q", "wrong_q"])
def test_statistical_catches_broken_samplers(name):
    rep = check_sampler_statistical(rule_sampler(MUTANTS[name], seed=1), n=3000, alpha=ALPHA)
    assert not rep.passed


def test_statistical_out_of_support_fails_outright():
    def leaky(p_rows, q_rows, drafts):  # emits the draft with p = 0 now and then
        return [drafts[0]]

    case = Case("disjoint", *FAMILIES["disjoint"](2, 0), k=1)
    rep = check_sampler_statistical(leaky, [case], n=200, alpha=ALPHA)
    assert rep.results[0].out_of_support > 0 and not rep.passed


# ----------------------------------------------------------------------------- transformers


@pytest.fixture(scope="module")
def hf_fn():
    utils = pytest.importorskip("transformers.generation.utils")
    with cf.torch_threads(1):  # tiny tensors: torch's thread pool only adds contention
        yield utils._speculative_sampling


def test_transformers_rule_is_the_inclusive_mutant(hf_fn):
    """Exact: transformers' rule has exactly the law of our rule with ``u <= p/q``: correct
    residual and bonus, and one grid step of extra acceptance."""
    cases = standard_cases(vocabs=(2, 3), max_drafts=2)
    hf = check_rule_exact(cf.hf_rule(hf_fn), cases)
    leq = check_rule_exact(MUTANTS["leq"], cases)
    assert not hf.passed
    assert all(a.law == b.law for a, b in zip(hf.results, leq.results, strict=True))
    disjoint = [r for r in hf.results if r.case.name == "disjoint" and r.case.vocab == 2]
    assert disjoint[0].out_of_support == Fraction(3, 4) / disjoint[0].resolution


def test_transformers_float32_resolution(hf_fn):
    """At float32 ``torch.rand``'s resolution ``2**-24``: the strict rule never leaves the
    support; transformers' rule puts ``q(x) * 2**-24`` on a draft with ``p(x) = 0``."""
    case = Case("disjoint", *FAMILIES["disjoint"](2, 0), k=1)
    hf = check_rule_exact(cf.hf_rule(hf_fn), [case], resolution=2**24).results[0]
    ref = check_rule_exact(reference_rule, [case], resolution=2**24).results[0]
    assert hf.out_of_support == Fraction(3, 4) * Fraction(1, 2**24)
    assert ref.out_of_support == 0 and ref.passed
    # the same with the computation in float32, as in generate (no snapping of its numbers)
    hf32 = check_rule_exact(cf.hf_rule(hf_fn, "float32"), [case], resolution=2**24).results[0]
    assert hf32.out_of_support == Fraction(3, 4) * Fraction(1, 2**24)
    with pytest.raises(InvalidInputError):
        cf.hf_rule(hf_fn, "bfloat16")


def test_torch_patch_is_restored(hf_fn):
    import torch

    before = (torch.rand_like, torch.multinomial)
    rule = cf.hf_rule(hf_fn)
    check_rule_exact(rule, SMALL[:1])

    def boom(*a, **k):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        check_rule_exact(cf.hf_rule(boom), SMALL[:1])
    assert (torch.rand_like, torch.multinomial) == before


def test_transformers_statistical_unpatched(hf_fn):
    rep = check_sampler_statistical(cf.hf_sampler(hf_fn, seed=0), n=2000, alpha=ALPHA)
    assert rep.passed, rep.to_dict()


# ----------------------------------------------------------------------------- front end


def test_interface_detection(hf_fn):
    assert cf.interface_of(hf_fn) == "hf"
    assert cf.interface_of(reference_rule) == "rule"
    assert cf.interface_of(lambda p, q, d: [0]) == "sampler"
    with pytest.raises(InvalidInputError):
        cf.interface_of(lambda p: p)
    with pytest.raises(InvalidInputError):
        cf.load_function("no_colon")
    with pytest.raises(InvalidInputError):
        cf.load_function("dsi_core.testing.conformance:nope")
    assert cf.load_function("dsi_core.testing.conformance:MUTANTS.get") is not None


def test_cli_conform(capsys):
    from dsi_core.cli import main

    base = ["--vocab", "2", "--max-drafts", "2", "--samples", "500", "--json"]
    rc = main(["conform", "dsi_core.testing.conformance:reference_rule", *base])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["passed"] and out["exact"]["failed_cases"] == 0
    rc = main(["conform", "dsi_core.testing.conformance:_mutant_wrong_residual", *base[:-1]])
    text = capsys.readouterr().out
    assert rc == 1 and "minimal counterexample" in text and text.rstrip().endswith("FAIL")
    assert main(["conform", "not_a_module_xyz:f"]) == 2
    # at a given resolution: judged against the strict rule on the same grid, and the support
    grid = ["--vocab", "2", "--max-drafts", "1", "--no-statistical", "--resolution", "16777216"]
    assert main(["conform", "dsi_core.testing.conformance:reference_rule", *grid]) == 0
    capsys.readouterr()
    assert main(["conform", "dsi_core.testing.conformance:_mutant_leq", *grid, "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    bad = [r for r in out["exact"]["results"] if not r["passed"]]
    assert bad and all(Fraction(r["out_of_support"]) > 0 for r in bad)
    assert out["exact"]["counterexample"]["want"] == "0"  # a token the target never emits


def test_float_rows_for_statistical():
    rows = cf._float_rows([(Fraction(1, 3), Fraction(2, 3))])
    assert rows[0].dtype == np.float64 and rows[0][0] == pytest.approx(1 / 3)


def test_reference_rule_survives_a_float_degenerate_residual():
    """Float rounding can leave ``p <= q`` everywhere with ``p != q``: a rejection then finds an
    empty residual ``max(0, p - q)`` (transformers' rule divides 0 by 0 there and
    ``torch.multinomial`` raises; see docs/conformance.md). Ours must still emit a token."""
    from dsi_core.sampling import DecisionRule, Stream

    class Noise:
        def uniform(self, pos, stream):
            return 1 - 2**-53 if stream == Stream.ACCEPT else 0.5

    q = np.full(4, 0.25)
    p = q.copy()
    p[2] -= 1e-9  # sums to 1 within tolerance; p <= q everywhere
    assert (np.maximum(p - q, 0) == 0).all()
    tok, accepted = DecisionRule("rejection", Noise()).decide(0, p, draft=2, q=q)
    assert accepted is False and tok != 2 and 0 <= tok < 4


def test_conform_runs_a_black_box_sampler_statistically():
    sampler = rule_sampler(reference_rule, seed=2)
    rep = cf.conform(sampler, samples=300)
    assert rep["interface"] == "sampler" and "exact" not in rep
    assert rep["passed"] and rep["statistical"]["false_failure_rate"] == 1e-3
    broken = cf.conform(rule_sampler(MUTANTS["bonus_from_q"], seed=2), samples=3000)
    assert not broken["passed"]
    assert "statistical: FAIL" in cf.format_report(broken)
