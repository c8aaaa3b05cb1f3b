"""A conformance kit for any speculative sampler: exact and statistical certification.

Two interfaces, two checks.

**Rules** (checked exactly, :func:`check_rule_exact`). A verification rule is a function::

    rule(p_rows, q_rows, drafts, uniform) -> emitted tokens

* ``drafts``: the ``k`` drafted tokens, ``drafts[i]`` sampled from ``q_rows[i]``;
* ``p_rows``: ``k + 1`` target rows; ``p_rows[i]`` is the target's row at draft position ``i``
  (computed on the prefix plus ``drafts[:i]``), ``p_rows[k]`` the bonus position's row;
* ``q_rows``: ``k + 1`` drafter rows on the same prefixes (``q_rows[k]`` is the drafter's row
  at the bonus position, which a correct rule never needs);
* ``uniform(key)``: a uniform on ``[0, 1)`` for any hashable ``key``; the same key within one
  call gives the same uniform, different keys independent ones. The rule may only *compare*
  a uniform with a number (``<``, ``<=``, ``>``, ``>=``), e.g. through
  :func:`dsi_core.sampling.inverse_cdf`;
* returns the emitted tokens: the accepted drafts plus one token (correction or bonus), so
  between 1 and ``k + 1`` tokens.

Rows are tuples of :class:`fractions.Fraction` in the exact check. ``uniform`` returns a
:class:`~dsi_core.testing.exact.GridUniform` on the grid ``{j/M}``: every comparison that can
go both ways forks the :class:`~dsi_core.testing.exact.Enumerator`, so every outcome is visited
with its exact rational probability. ``M`` defaults to the least common multiple of every
threshold a correct rule meets (:func:`~dsi_core.testing.exact.grid_size`), on which the strict
rule ``u < p/q`` is exactly lossless and the inclusive ``u <= p/q`` is not.

The check generates ``k + 1`` tokens per case: one rule call with ``k`` drafts sampled from the
drafter (their probabilities are enumerated exactly, not through uniforms), then, from each
resulting prefix, calls with as many drafts as still fit before the last position
(``min(k, remaining - 1)``); a last single position is taken from the target's row. The law of
the ``k + 1`` tokens is compared with the target's in exact arithmetic.

**Samplers** (checked statistically, :func:`check_sampler_statistical`): black boxes with their
own randomness, ``sampler(p_rows, q_rows, drafts) -> emitted tokens`` with the same rows as
float64 numpy arrays. Chi-square and total-variation tests at a stated false-failure rate, and
the smallest deviation each detects at the chosen sample size.

**Adapters**: :func:`reference_rule` (our :class:`~dsi_core.sampling.DecisionRule`),
:data:`MUTANTS` (four broken variants of it the kit must flag), :func:`hf_rule` /
:func:`hf_sampler` for functions with the signature of transformers'
``transformers.generation.utils._speculative_sampling`` (the exact adapter feeds it symbolic
uniforms through a patched ``torch.rand_like`` / ``torch.multinomial``), and
:func:`rule_sampler` (a rule with real random numbers, for the statistical check).
See docs/conformance.md.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from dsi_core import sampling
from dsi_core.errors import InvalidInputError
from dsi_core.sampling import DecisionRule, inverse_cdf
from dsi_core.testing.exact import Enumerator, GridUniform, grid_size, target_distribution
from dsi_core.testing.toy import ToyModel, _hash_ints, adversarial_drafter, random_table_model

__all__ = [
    "FAMILIES",
    "MUTANTS",
    "Case",
    "CaseResult",
    "Counterexample",
    "ExactReport",
    "StatReport",
    "StatResult",
    "check_rule_exact",
    "check_sampler_statistical",
    "conform",
    "default_statistical_cases",
    "format_report",
    "hf_rule",
    "hf_sampler",
    "interface_of",
    "load_function",
    "reference_rule",
    "rule_sampler",
    "standard_cases",
    "torch_threads",
]

Uniform = Callable[[Hashable], Any]  # uniform(key) -> a uniform on [0, 1) (compare it only)
Rule = Callable[[Sequence[Any], Sequence[Any], Sequence[int], Uniform], Any]
Sampler = Callable[[Sequence[np.ndarray], Sequence[np.ndarray], Sequence[int]], Any]

# ----------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """A target/drafter pair (exact rational rows per context), a chain length and a prompt."""

    name: str
    target: ToyModel
    drafter: ToyModel
    k: int
    prompt: tuple[int, ...] = (0,)

    @property
    def vocab(self) -> int:
        return self.target.vocab_size

    @property
    def n_new(self) -> int:
        """Tokens generated per case: ``k`` drafts plus the bonus position."""
        return self.k + 1

    def describe(self) -> str:
        return f"{self.name} (V={self.vocab}, k={self.k})"


def _frac_row(weights: Sequence[int]) -> tuple[Fraction, ...]:
    total = sum(weights)
    return tuple(Fraction(w, total) for w in weights)


def _pick(seed: int, ctx: tuple[int, ...], n: int) -> int:
    """A deterministic pseudo-random index in ``range(n)`` for a context."""
    return _hash_ints(seed, ctx, 1, n)[0]


def _onehot(v: int, j: int) -> tuple[Fraction, ...]:
    return tuple(Fraction(int(i == j)) for i in range(v))


def _family_random(v: int, s: int) -> tuple[ToyModel, ToyModel]:
    return random_table_model(v, s), random_table_model(v, s + 100)


def _family_p_eq_q(v: int, s: int) -> tuple[ToyModel, ToyModel]:
    t = random_table_model(v, s)
    return t, t


def _family_adversarial(v: int, s: int) -> tuple[ToyModel, ToyModel]:
    t = random_table_model(v, s)
    return t, adversarial_drafter(t)


def _family_onehot_target(v: int, s: int) -> tuple[ToyModel, ToyModel]:
    t = ToyModel(v, lambda ctx: _onehot(v, _pick(s, ctx, v)), name="onehot")
    return t, random_table_model(v, s + 100, zeros=False)


def _family_ties(v: int, s: int) -> tuple[ToyModel, ToyModel]:
    def p(ctx: tuple[int, ...]) -> tuple[Fraction, ...]:  # two tied tokens, the rest zero
        a = _pick(s, ctx, v)
        return _frac_row([int(i in (a, (a + 1) % v)) for i in range(v)])

    uniform = _frac_row([1] * v)
    return ToyModel(v, p, name="ties"), ToyModel(v, lambda ctx: uniform, name="uniform")


def _family_disjoint(v: int, s: int) -> tuple[ToyModel, ToyModel]:
    """The target never emits odd tokens; the drafter proposes mostly odd ones (p = 0)."""
    even = _frac_row([int(i % 2 == 0) * (1 + i) for i in range(v)])
    odd = _frac_row([3 if i % 2 else 1 for i in range(v)])
    return ToyModel(v, lambda ctx: even, name="even"), ToyModel(v, lambda ctx: odd, name="odd")


FAMILIES: dict[str, Callable[[int, int], tuple[ToyModel, ToyModel]]] = {
    "random": _family_random,  # context-dependent rows with zeros on both sides
    "p==q": _family_p_eq_q,  # the drafter is the target (empty residuals)
    "adversarial": _family_adversarial,  # one-hot drafter on the target's least likely token
    "onehot-target": _family_onehot_target,  # deterministic target, full-support drafter
    "ties": _family_ties,  # tied target tokens, uniform drafter
    "disjoint": _family_disjoint,  # drafter mass where p = 0
}


def standard_cases(
    vocabs: Sequence[int] = (2, 3, 4, 5),
    max_drafts: int = 3,
    families: Sequence[str] | None = None,
    seed: int = 0,
    max_chain: Callable[[int], int] | None = None,
) -> list[Case]:
    """The default sweep, smallest first: every family, vocabulary and chain length ``1..``.

    ``max_chain(v)`` caps the chain length per vocabulary (default: ``max_drafts`` for all).
    The default sweep (72 cases) takes about 3 s for our rule, about 30 s for transformers'.
    """
    names = list(FAMILIES) if families is None else list(families)
    for n in names:
        if n not in FAMILIES:
            raise InvalidInputError(f"unknown family {n!r}; choose from {sorted(FAMILIES)}")
    cap = max_chain or (lambda v: max_drafts)
    out = []
    for v in vocabs:
        if not 2 <= v <= 8:
            raise InvalidInputError(f"vocabulary sizes must be in 2..8, got {v}")
        for k in range(1, cap(v) + 1):
            for n in names:
                t, d = FAMILIES[n](v, seed)
                out.append(Case(n, t, d, k))
    return out


# ----------------------------------------------------------------------------- reference


class _SourceNoise:
    """Adapts a ``uniform(key)`` source to DecisionRule's ``noise.uniform(pos, stream)``."""

    def __init__(self, uniform: Callable[[Hashable], Any]) -> None:
        self._u = uniform

    def uniform(self, pos: int, stream: Any) -> Any:
        return self._u((pos, int(stream)))

    def gumbel(self, pos: int, size: int) -> Any:
        raise NotImplementedError("the conformance kit checks the rejection rule")


def _run_decision_rule(
    rule: DecisionRule,
    p_rows: Sequence[Any],
    q_rows: Sequence[Any],
    drafts: Sequence[int],
    bonus_row: Any = None,
) -> list[int]:
    out = []
    for i, x in enumerate(drafts):
        tok, accepted = rule.decide(i, p_rows[i], x, q_rows[i])
        out.append(tok)
        if not accepted:
            return out
    k = len(drafts)
    out.append(rule.decide(k, p_rows[k] if bonus_row is None else bonus_row)[0])
    return out


def reference_rule(
    p_rows: Sequence[Any], q_rows: Sequence[Any], drafts: Sequence[int], uniform: Uniform
) -> list[int]:
    """Our :class:`~dsi_core.sampling.DecisionRule` in rejection mode, as a kit rule."""
    return _run_decision_rule(
        DecisionRule("rejection", _SourceNoise(uniform)), p_rows, q_rows, drafts
    )


class _Inclusive:
    def __init__(self, u: Any) -> None:
        self.u = u

    def __lt__(self, r: Any) -> bool:
        return self.u <= r


class _LeqNoise(_SourceNoise):
    def uniform(self, pos: int, stream: Any) -> Any:
        u = super().uniform(pos, stream)
        return _Inclusive(u) if stream == sampling.Stream.ACCEPT else u


def _mutant_leq(
    p_rows: Sequence[Any], q_rows: Sequence[Any], drafts: Sequence[int], uniform: Uniform
) -> list[int]:
    """Accepts on ``u <= p/q`` (transformers' comparison) instead of ``u < p/q``."""
    return _run_decision_rule(DecisionRule("rejection", _LeqNoise(uniform)), p_rows, q_rows, drafts)


def _mutant_wrong_residual(
    p_rows: Sequence[Any], q_rows: Sequence[Any], drafts: Sequence[int], uniform: Uniform
) -> list[int]:
    """Samples a rejection's correction from ``max(0, q - p)`` instead of ``max(0, p - q)``."""
    orig = sampling.residual

    def bad(p: Any, q: Any, draft: int) -> Any:
        return orig(p, q, draft) if q is None else orig(q, p, draft)

    with _patched(sampling, "residual", bad):
        return reference_rule(p_rows, q_rows, drafts, uniform)


def _mutant_wrong_q(
    p_rows: Sequence[Any], q_rows: Sequence[Any], drafts: Sequence[int], uniform: Uniform
) -> list[int]:
    """Verifies against a uniform ``q`` instead of the row the draft was sampled from."""
    flat = [tuple(Fraction(1, len(q)) for _ in q) for q in q_rows]
    return reference_rule(p_rows, flat, drafts, uniform)


def _mutant_bonus_from_q(
    p_rows: Sequence[Any], q_rows: Sequence[Any], drafts: Sequence[int], uniform: Uniform
) -> list[int]:
    """Draws the bonus token (all drafts accepted) from the drafter's row, not the target's."""
    rule = DecisionRule("rejection", _SourceNoise(uniform))
    return _run_decision_rule(rule, p_rows, q_rows, drafts, bonus_row=q_rows[len(drafts)])


MUTANTS: dict[str, Rule] = {
    "leq": _mutant_leq,
    "wrong_residual": _mutant_wrong_residual,
    "wrong_q": _mutant_wrong_q,
    "bonus_from_q": _mutant_bonus_from_q,
}


@contextlib.contextmanager
def _patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


# ----------------------------------------------------------------------------- exact check


class _Source:
    """``uniform(key)`` backed by the enumerator's current run (one GridUniform per key)."""

    def __init__(self, noise: Any, resolution: int) -> None:
        self.noise = noise
        self.M = resolution

    def __call__(self, key: Hashable) -> GridUniform:
        k = ("kit", key)
        u = self.noise.vars.get(k)
        if u is None:
            u = self.noise.vars[k] = GridUniform(self.noise.enum, self.M)
        return u


@dataclass
class Counterexample:
    """The smallest failing case and the shortest prefix event whose probability is wrong."""

    case: str
    vocab: int
    k: int
    prefix: tuple[int, ...]  # P(output starts with prefix) differs
    got: Fraction
    want: Fraction
    p_row: tuple[Fraction, ...]  # target and drafter rows at the prompt
    q_row: tuple[Fraction, ...]
    resolution: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "vocab": self.vocab,
            "k": self.k,
            "prefix": list(self.prefix),
            "got": str(self.got),
            "want": str(self.want),
            "difference": str(self.got - self.want),
            "p_row_at_prompt": [str(x) for x in self.p_row],
            "q_row_at_prompt": [str(x) for x in self.q_row],
            "resolution": self.resolution,
        }

    def __str__(self) -> str:
        return (
            f"{self.case} (V={self.vocab}, k={self.k}, M={self.resolution}): "
            f"P(output starts {list(self.prefix)}) = {self.got} but the target gives "
            f"{self.want} (difference {self.got - self.want}); at the prompt "
            f"p = [{', '.join(map(str, self.p_row))}], q = [{', '.join(map(str, self.q_row))}]"
        )


@dataclass
class CaseResult:
    """The exact output law of one case and its distance from the target's law."""

    case: Case
    law: dict[tuple[int, ...], Fraction]
    target_law: dict[tuple[int, ...], Fraction]
    resolution: int
    paths: int
    tv: Fraction = field(init=False)
    out_of_support: Fraction = field(init=False)  # mass on sequences the target never emits

    def __post_init__(self) -> None:
        keys = set(self.law) | set(self.target_law)
        zero = Fraction(0)
        self.tv = (
            sum((abs(self.law.get(s, zero) - self.target_law.get(s, zero)) for s in keys), zero) / 2
        )
        self.out_of_support = sum(
            (pr for s, pr in self.law.items() if s not in self.target_law), zero
        )

    @property
    def passed(self) -> bool:
        return self.tv == 0

    def counterexample(self) -> Counterexample:
        """Shortest prefix whose probability differs (largest difference among those)."""
        for length in range(1, self.case.n_new + 1):
            got: dict[tuple[int, ...], Fraction] = defaultdict(Fraction)
            want: dict[tuple[int, ...], Fraction] = defaultdict(Fraction)
            for s, pr in self.law.items():
                got[s[:length]] += pr
            for s, pr in self.target_law.items():
                want[s[:length]] += pr
            diffs = [(abs(got[y] - want[y]), y) for y in sorted(set(got) | set(want))]
            worst = max(diffs, key=lambda d: d[0])
            if worst[0]:
                y = worst[1]
                c = self.case
                ctx = c.prompt
                return Counterexample(
                    c.name,
                    c.vocab,
                    c.k,
                    y,
                    got[y],
                    want[y],
                    tuple(c.target.row(ctx)),
                    tuple(c.drafter.row(ctx)),
                    self.resolution,
                )
        raise ValueError("the laws are equal")

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case.name,
            "vocab": self.case.vocab,
            "k": self.case.k,
            "passed": self.passed,
            "tv": str(self.tv),
            "tv_float": float(self.tv),
            "out_of_support": str(self.out_of_support),
            "out_of_support_float": float(self.out_of_support),
            "resolution": self.resolution,
            "tv_times_resolution": float(self.tv * self.resolution),
            "paths": self.paths,
        }


@dataclass
class ExactReport:
    """What :func:`check_rule_exact` returns."""

    rule: str
    results: list[CaseResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def max_tv(self) -> Fraction:
        return max((r.tv for r in self.results), default=Fraction(0))

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    @property
    def counterexample(self) -> Counterexample | None:
        """The first failing case in sweep order (smallest vocabulary, then chain) or None."""
        f = self.failures
        return f[0].counterexample() if f else None

    def to_dict(self) -> dict[str, Any]:
        ce = self.counterexample
        return {
            "rule": self.rule,
            "check": "exact",
            "passed": self.passed,
            "cases": len(self.results),
            "failed_cases": len(self.failures),
            "max_tv": str(self.max_tv),
            "max_tv_float": float(self.max_tv),
            "max_out_of_support": str(
                max((r.out_of_support for r in self.results), default=Fraction(0))
            ),
            "counterexample": ce.to_dict() if ce else None,
            "results": [r.to_dict() for r in self.results],
        }


def _check_tokens(out: Any, k: int, vocab: int, where: str) -> tuple[int, ...]:
    try:
        toks = tuple(int(x) for x in out)
    except TypeError:
        raise InvalidInputError(f"{where}: the rule returned {out!r}, not a token list") from None
    if not 1 <= len(toks) <= k + 1:
        raise InvalidInputError(
            f"{where}: the rule returned {len(toks)} tokens for {k} drafts (want 1..{k + 1})"
        )
    if any(not 0 <= t < vocab for t in toks):
        raise InvalidInputError(f"{where}: the rule returned a token outside 0..{vocab - 1}")
    return toks


def _case_law(rule: Rule, case: Case, M: int, max_paths: int) -> tuple[dict, int]:
    """Exact law of ``case.n_new`` tokens generated with ``rule``; and the number of paths."""
    v = case.vocab
    paths = 0
    step_memo: dict[tuple, dict] = {}
    seq_memo: dict[tuple, dict] = {}

    def step_law(ctx: tuple[int, ...], k: int) -> dict[tuple[int, ...], Fraction]:
        nonlocal paths
        key = (ctx, k)
        if key in step_memo:
            return step_memo[key]
        law: dict[tuple[int, ...], Fraction] = defaultdict(Fraction)
        for drafts in itertools.product(range(v), repeat=k):
            weight = Fraction(1)
            for i, x in enumerate(drafts):
                weight *= case.drafter.row(ctx + drafts[:i])[x]
                if not weight:
                    break
            if not weight:
                continue
            p_rows = [tuple(case.target.row(ctx + drafts[:i])) for i in range(k + 1)]
            q_rows = [tuple(case.drafter.row(ctx + drafts[:i])) for i in range(k + 1)]
            enum = Enumerator(M, max_paths=max_paths)

            def program(noise: Any, p_rows=p_rows, q_rows=q_rows, drafts=drafts) -> tuple:
                out = rule(p_rows, q_rows, list(drafts), _Source(noise, M))
                return _check_tokens(out, k, v, f"{case.describe()}, drafts {list(drafts)}")

            for out, pr in enum.distribution(program).items():
                law[out] += weight * pr
            paths += enum.paths
        step_memo[key] = dict(law)
        return step_memo[key]

    def seq_law(ctx: tuple[int, ...], r: int) -> dict[tuple[int, ...], Fraction]:
        if r == 0:
            return {(): Fraction(1)}
        if (ctx, r) in seq_memo:
            return seq_memo[(ctx, r)]
        out: dict[tuple[int, ...], Fraction] = defaultdict(Fraction)
        if r == 1:
            step = {(x,): pr for x, pr in enumerate(case.target.row(ctx)) if pr}
        else:
            step = step_law(ctx, min(case.k, r - 1))
        for emitted, pr in step.items():
            for rest, pr2 in seq_law(ctx + emitted, r - len(emitted)).items():
                out[emitted + rest] += pr * pr2
        seq_memo[(ctx, r)] = dict(out)
        return seq_memo[(ctx, r)]

    return seq_law(tuple(case.prompt), case.n_new), paths


def check_rule_exact(
    rule: Rule,
    cases: Sequence[Case] | None = None,
    *,
    resolution: int | None = None,
    grid_multiple: int = 1,
    stop_at_first_failure: bool = False,
    max_paths: int = 1_000_000,
    name: str | None = None,
) -> ExactReport:
    """Exact output law of ``rule`` on every case, compared with the target's law.

    ``resolution``: the uniforms' grid size ``M`` (uniforms take values ``j/M``); default per
    case: ``grid_multiple`` times the least common multiple of every threshold a correct rule
    compares with (there the strict rule is exactly lossless). Pass e.g. ``2**24`` to model
    float32 ``torch.rand``. Returns an :class:`ExactReport` (law, TV distance and out-of-support
    mass per case, and a minimal counterexample when a law differs).
    """
    if cases is None:
        cases = standard_cases()
    if resolution is not None and resolution < 1:
        raise InvalidInputError(f"resolution must be >= 1, got {resolution}")
    results = []
    for case in cases:
        M = resolution or grid_multiple * grid_size(
            case.target, case.drafter, case.prompt, case.n_new
        )
        law, paths = _case_law(rule, case, M, max_paths)
        want = target_distribution(case.target, case.prompt, case.n_new)
        results.append(CaseResult(case, law, want, M, paths))
        if stop_at_first_failure and not results[-1].passed:
            break
    return ExactReport(name or getattr(rule, "__name__", repr(rule)), results)


# ----------------------------------------------------------------------------- statistical


@dataclass
class StatResult:
    """One case of the statistical check."""

    case: Case
    n: int
    cells: int  # cells after merging those with expected count < 5
    chi2: float
    p_value: float
    tv_hat: float  # empirical TV distance (unmerged cells)
    tv_threshold: float  # the TV test fails above this
    out_of_support: int  # samples the target can never produce (any one fails the case)
    alpha: float  # false-failure rate of each of the two tests on this case
    detectable_tv_chi2: float  # TV (on merged cells) detected with prob >= power (asymptotic)
    detectable_tv: float  # any TV detected by the TV test with prob >= power (finite-sample)

    @property
    def passed(self) -> bool:
        return (
            self.out_of_support == 0
            and self.p_value > self.alpha
            and (self.tv_hat <= self.tv_threshold)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case.name,
            "vocab": self.case.vocab,
            "k": self.case.k,
            "passed": self.passed,
            "n": self.n,
            "cells": self.cells,
            "chi2": self.chi2,
            "p_value": self.p_value,
            "tv_hat": self.tv_hat,
            "tv_threshold": self.tv_threshold,
            "out_of_support": self.out_of_support,
            "alpha_per_test": self.alpha,
            "detectable_tv_chi2": self.detectable_tv_chi2,
            "detectable_tv": self.detectable_tv,
        }


@dataclass
class StatReport:
    """What :func:`check_sampler_statistical` returns."""

    sampler: str
    results: list[StatResult]
    alpha: float  # total false-failure rate (union bound over cases and the two tests)
    power: float

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sampler": self.sampler,
            "check": "statistical",
            "passed": self.passed,
            "false_failure_rate": self.alpha,
            "power": self.power,
            "results": [r.to_dict() for r in self.results],
        }


def _float_rows(rows: Sequence[Any]) -> list[np.ndarray]:
    return [np.asarray([float(x) for x in r], dtype=np.float64) for r in rows]


def _detectable_chi2(df: int, crit: float, n: int, power: float) -> float:
    """Smallest TV the chi-square test detects with probability >= ``power``.

    For any alternative at TV distance ``d`` (on the test's cells), the non-centrality
    ``n * sum (p'_i - p_i)^2 / p_i`` is at least ``4 n d^2`` (Cauchy-Schwarz).
    """
    from scipy.optimize import brentq
    from scipy.stats import ncx2

    if ncx2.sf(crit, df, 1e-9) >= power:
        return 0.0
    hi = 1.0
    while ncx2.sf(crit, df, hi) < power:
        hi *= 2
    lam = brentq(lambda x: ncx2.sf(crit, df, x) - power, 1e-9, hi)
    return math.sqrt(lam / (4 * n))


def check_sampler_statistical(
    sampler: Sampler,
    cases: Sequence[Case] | None = None,
    *,
    n: int = 20_000,
    alpha: float = 1e-3,
    power: float = 0.9,
    seed: int = 0,
    name: str | None = None,
) -> StatReport:
    """Chi-square and TV tests of a black-box sampler's ``k + 1``-token law on each case.

    Every step drafts ``k`` tokens from the drafter (numpy, ``seed``), calls the sampler and
    truncates at ``k + 1`` tokens. False-failure rate: at most ``alpha`` in total (each case
    runs both tests at ``alpha / (2 * cases)``; union bound; the chi-square level is
    asymptotic, the TV test's is a finite-sample bound: McDiarmid plus
    ``E TV_hat <= sum sqrt(p (1 - p) / n) / 2``). A sample the target cannot produce fails its
    case outright (false-failure rate 0). Reported per case: the smallest TV distance each
    test detects with probability >= ``power`` at this ``n``.
    """
    from scipy.stats import chi2 as chi2_dist

    if cases is None:
        cases = default_statistical_cases()
    if n < 100:
        raise InvalidInputError(f"n must be >= 100, got {n}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise InvalidInputError("alpha and power must be in (0, 1)")
    rng = np.random.default_rng(seed)
    a_case = alpha / (2 * len(cases))
    results = []
    memo: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}

    def frow(model: ToyModel, ctx: tuple[int, ...]) -> np.ndarray:
        key = (id(model), ctx)
        if key not in memo:
            memo[key] = _float_rows([model.row(ctx)])[0]
            memo[key].setflags(write=False)
        return memo[key]

    for case in cases:
        want = {
            s: float(p)
            for s, p in target_distribution(case.target, case.prompt, case.n_new).items()
        }
        counts: dict[tuple[int, ...], int] = defaultdict(int)
        for _ in range(n):
            ctx = tuple(case.prompt)
            out: list[int] = []
            while len(out) < case.n_new:
                drafts: list[int] = []
                for _i in range(case.k):
                    drafts.append(
                        inverse_cdf(frow(case.drafter, ctx + tuple(drafts)), rng.random())
                    )
                pre = [ctx + tuple(drafts[:i]) for i in range(case.k + 1)]
                p_rows = [frow(case.target, c) for c in pre]
                q_rows = [frow(case.drafter, c) for c in pre]
                toks = _check_tokens(
                    sampler(p_rows, q_rows, drafts), case.k, case.vocab, case.describe()
                )
                out.extend(toks)
                ctx = ctx + toks
            counts[tuple(out[: case.n_new])] += 1
        bad = sum(c for s, c in counts.items() if s not in want)
        keys = sorted(want)
        exp = np.array([want[s] for s in keys]) * n
        obs = np.array([counts.get(s, 0) for s in keys], dtype=float)
        tv_hat = 0.5 * (float(np.abs(obs / n - exp / n).sum()) + bad / n)
        e_tv = 0.5 * float(np.sqrt(np.array([want[s] for s in keys]) * (1 - exp / n) / n).sum())
        tv_thr = e_tv + math.sqrt(math.log(1 / a_case) / (2 * n))
        cells = len(keys) + 1  # + the out-of-support cell
        detect_tv = (
            tv_thr + 0.5 * math.sqrt(cells / n) + math.sqrt(math.log(1 / (1 - power)) / (2 * n))
        )
        small = exp < 5
        if small.any():
            exp = np.append(exp[~small], exp[small].sum())
            obs = np.append(obs[~small], obs[small].sum())
            if exp[-1] < 5 and len(exp) > 1:  # fold a still-small pooled cell into the smallest
                j = int(np.argmin(exp[:-1]))
                exp[j] += exp[-1]
                obs[j] += obs[-1]
                exp, obs = exp[:-1], obs[:-1]
        df = len(exp) - 1
        if df >= 1:
            stat = float(((obs - exp) ** 2 / exp).sum())
            pval = float(chi2_dist.sf(stat, df))
            d_chi = _detectable_chi2(df, float(chi2_dist.isf(a_case, df)), n, power)
        else:
            stat, pval, d_chi = 0.0, 1.0, float("inf")
        results.append(
            StatResult(case, n, len(exp), stat, pval, tv_hat, tv_thr, bad, a_case, d_chi, detect_tv)
        )
    return StatReport(name or getattr(sampler, "__name__", repr(sampler)), results, alpha, power)


def default_statistical_cases(seed: int = 0) -> list[Case]:
    """Four row pairs for the statistical check (k + 1 = 3 tokens, V = 3): random, p == q,
    tied target tokens, and the adversarial drafter (a one-hot target would leave one cell)."""
    out = []
    for fam in ("random", "p==q", "ties", "adversarial"):
        t, d = FAMILIES[fam](3, seed)
        out.append(Case(fam, t, d, 2))
    return out


def rule_sampler(rule: Rule, seed: int = 0) -> Sampler:
    """A kit rule run with real random numbers (numpy, float64), for the statistical check."""
    rng = np.random.default_rng(seed)

    def sampler(p_rows, q_rows, drafts) -> Any:
        cache: dict[Hashable, float] = {}

        def uniform(key: Hashable) -> float:
            if key not in cache:
                cache[key] = float(rng.random())
            return cache[key]

        return rule(p_rows, q_rows, drafts, uniform)

    sampler.__name__ = getattr(rule, "__name__", "rule")
    return sampler


# ----------------------------------------------------------------------------- transformers


HF_PARAMS = ("candidate_input_ids", "candidate_logits", "candidate_length", "new_logits")

SNAP_DENOMINATOR = 10**6


def _snap(x: float) -> Fraction:
    """The rational (denominator <= 10**6) a float64 result of exact-row arithmetic stands for.

    Float rows built from small-denominator rationals give results within ~1e-15 of a rational
    with a small denominator; that rational is recovered exactly (checked to within 1e-12).
    """
    if not math.isfinite(x):
        raise InvalidInputError(f"the function compared a uniform with {x!r}")
    r = Fraction(x).limit_denominator(SNAP_DENOMINATOR)
    if abs(float(r) - x) > 1e-12 * max(1.0, abs(x)):
        raise InvalidInputError(f"cannot recover an exact rational from {x!r}")
    return r


class _SymbolicRand:
    """What the patched ``torch.rand_like`` returns: a vector of symbolic uniforms."""

    def __init__(self, uniforms: list[Any], snap: Callable[[float], Fraction]) -> None:
        self.u = uniforms
        self.snap = snap

    def _cmp(self, other: Any, op: Callable[[Any, Fraction], bool]) -> Any:
        import torch

        vals = other.reshape(-1).tolist() if hasattr(other, "reshape") else [other] * len(self.u)
        if len(vals) != len(self.u):
            raise InvalidInputError("rand_like result compared with a tensor of another shape")
        return torch.tensor([op(u, self.snap(float(v))) for u, v in zip(self.u, vals, strict=True)])

    def __le__(self, other: Any) -> Any:
        return self._cmp(other, lambda u, r: u <= r)

    def __lt__(self, other: Any) -> Any:
        return self._cmp(other, lambda u, r: u < r)

    def __ge__(self, other: Any) -> Any:
        return self._cmp(other, lambda u, r: u >= r)

    def __gt__(self, other: Any) -> Any:
        return self._cmp(other, lambda u, r: u > r)


@contextlib.contextmanager
def _symbolic_torch(
    uniform: Callable[[Hashable], Any], snap: Callable[[float], Fraction] = _snap
) -> Iterator[None]:
    """Patch ``torch.rand_like`` and ``torch.multinomial`` to read symbolic uniforms.

    ``rand_like(x)`` gives one uniform per element of ``x`` (it supports only comparisons);
    ``multinomial(w, 1)`` samples each row of ``w`` by inverse CDF (ideal, index order) with
    weights read through ``snap``. Any other use raises.
    """
    import torch

    calls = itertools.count()

    def rand_like(x: Any, *args: Any, **kwargs: Any) -> _SymbolicRand:
        c = next(calls)
        return _SymbolicRand([uniform(("rand_like", c, i)) for i in range(x.numel())], snap)

    def multinomial(w: Any, num_samples: int, replacement: bool = False, **kw: Any) -> Any:
        if num_samples != 1:
            raise InvalidInputError("the exact adapter supports torch.multinomial(w, 1) only")
        c = next(calls)
        rows = w.reshape(-1, w.shape[-1]).tolist()
        picks = []
        for j, row in enumerate(rows):
            weights = [snap(float(x)) for x in row]
            if sum(weights) <= 0:
                raise InvalidInputError("torch.multinomial called with no mass")
            picks.append([inverse_cdf(weights, uniform(("multinomial", c, j)))])
        out = torch.tensor(picks)
        return out if w.dim() == 2 else out.reshape(-1)

    with _patched(torch, "rand_like", rand_like), _patched(torch, "multinomial", multinomial):
        yield


def _hf_tensors(p_rows: Sequence[Any], q_rows: Sequence[Any], drafts: Sequence[int], dtype: Any):
    import torch

    def logits(rows: Sequence[Any]) -> Any:
        arr = np.asarray([[float(x) for x in r] for r in rows], dtype=np.float64)
        with np.errstate(divide="ignore"):
            return torch.tensor(np.log(arr), dtype=dtype)[None]

    k = len(drafts)
    ids = torch.tensor([[0, *[int(x) for x in drafts]]])
    return ids, logits(q_rows[:k]), k, logits(p_rows[: k + 1])


def hf_rule(fn: Callable[..., Any], dtype: str = "float64") -> Rule:
    """A kit rule from a function with transformers' ``_speculative_sampling`` signature.

    The function runs unmodified on logits ``log(row)`` with ``torch.rand_like`` /
    ``torch.multinomial`` patched to read the kit's symbolic uniforms (``multinomial`` becomes
    an ideal inverse-CDF sampler). ``dtype``:

    * ``"float64"`` (checks the rule's logic): every number the function compares a uniform
      with, or passes to ``multinomial``, is snapped back to the small-denominator rational it
      stands for (:func:`_snap`), so rounding plays no part;
    * ``"float32"`` (models generation): logits in float32 as in ``generate``, and the exact
      float32 values the function computes are used as they are; with ``resolution=2**24``
      (float32 ``torch.rand`` on CPU) this is the exact law of the real computation, up to
      the idealised multinomial.
    """
    if dtype not in ("float64", "float32"):
        raise InvalidInputError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    snap = _snap if dtype == "float64" else Fraction

    def rule(p_rows, q_rows, drafts, uniform) -> list[int]:
        import torch

        ids, cl, k, nl = _hf_tensors(p_rows, q_rows, drafts, getattr(torch, dtype))
        with _symbolic_torch(uniform, snap):
            valid, _n = fn(ids, cl, k, nl)
        return [int(x) for x in valid.reshape(-1).tolist()]

    rule.__name__ = getattr(fn, "__qualname__", "hf_rule")
    return rule


def hf_sampler(fn: Callable[..., Any], dtype: str = "float32", seed: int = 0) -> Sampler:
    """A black-box sampler from a transformers-style function, with torch's own randomness
    (seeded once with ``torch.manual_seed(seed)``); logits in ``dtype`` as in generation."""
    import torch

    torch.manual_seed(seed)
    dt = getattr(torch, dtype)

    def sampler(p_rows, q_rows, drafts) -> list[int]:
        ids, cl, k, nl = _hf_tensors(p_rows, q_rows, drafts, dt)
        valid, _n = fn(ids, cl, k, nl)
        return [int(x) for x in valid.reshape(-1).tolist()]

    sampler.__name__ = getattr(fn, "__qualname__", "hf_sampler")
    return sampler


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``torch.set_num_threads(n)`` (restored after); a no-op without torch.

    Samplers on tiny rows run ~10x faster with one thread on a busy machine.
    """
    try:
        import torch
    except ImportError:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ----------------------------------------------------------------------------- front end


def load_function(spec: str) -> Callable[..., Any]:
    """``"package.module:function"`` (``function`` may be dotted) -> the callable."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise InvalidInputError(f"expected MODULE:FUNCTION, got {spec!r}")
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as exc:
        raise InvalidInputError(f"cannot import {mod_name!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InvalidInputError(f"{mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InvalidInputError(f"{spec} is not callable")
    return obj


def interface_of(fn: Callable[..., Any]) -> str:
    """``"hf"`` (transformers' signature), ``"rule"`` (4 parameters) or ``"sampler"`` (3)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        raise InvalidInputError(f"cannot read the signature of {fn!r}") from None
    names = list(params)
    if tuple(names[:4]) == HF_PARAMS:
        return "hf"
    required = [
        p
        for p in params.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(required) == 4:
        return "rule"
    if len(required) == 3:
        return "sampler"
    raise InvalidInputError(
        f"{getattr(fn, '__name__', fn)} takes {len(required)} required arguments: a rule takes "
        "(p_rows, q_rows, drafts, uniform), a sampler (p_rows, q_rows, drafts), or "
        "transformers' (candidate_input_ids, candidate_logits, candidate_length, new_logits)"
    )


def conform(
    spec: str | Callable[..., Any],
    *,
    vocabs: Sequence[int] = (2, 3, 4, 5),
    max_drafts: int = 3,
    resolution: int | None = None,
    samples: int = 20_000,
    alpha: float = 1e-3,
    statistical: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything ``dsi conform`` runs: the exact check (rules and transformers-style functions)
    and the statistical check (all three kinds); returns a JSON-ready dict."""
    fn = load_function(spec) if isinstance(spec, str) else spec
    kind = interface_of(fn)
    name = spec if isinstance(spec, str) else getattr(fn, "__qualname__", repr(fn))
    out: dict[str, Any] = {"function": name, "interface": kind}
    if kind in ("rule", "hf"):
        rule = hf_rule(fn) if kind == "hf" else fn
        cases = standard_cases(vocabs, max_drafts)
        with torch_threads(1):
            rep = check_rule_exact(rule, cases, resolution=resolution, name=name)
        ex = rep.to_dict()
        if resolution is not None:
            # on a grid that is not a multiple of the thresholds' denominators no float sampler
            # is exact; judge against our strict rule on the same grid, and the support
            ref = check_rule_exact(reference_rule, cases, resolution=resolution)
            for r, rr in zip(ex["results"], ref.results, strict=True):
                r["reference_tv"] = str(rr.tv)
                r["reference_tv_float"] = float(rr.tv)
                r["reference_out_of_support"] = str(rr.out_of_support)
                r["passed"] = Fraction(r["out_of_support"]) == 0 and Fraction(r["tv"]) <= rr.tv
            ex["failed_cases"] = sum(not r["passed"] for r in ex["results"])
            ex["passed"] = ex["failed_cases"] == 0
            first = next((i for i, r in enumerate(ex["results"]) if not r["passed"]), None)
            ex["counterexample"] = (
                None if first is None else rep.results[first].counterexample().to_dict()
            )
            ex["verdict"] = (
                f"at resolution {resolution}: pass iff no mass outside the target's support and "
                "TV <= that of dsi_core's strict rule u < p/q on the same grid"
            )
        else:
            ex["verdict"] = "exact equality with the target's law (uniforms on the lcm grid)"
        out["exact"] = ex
    if statistical:
        if kind == "hf":
            sam = hf_sampler(fn, seed=seed)
        elif kind == "rule":
            sam = rule_sampler(fn, seed)
        else:
            sam = fn
        with torch_threads(1):  # tiny tensors: a thread pool only adds contention
            out["statistical"] = check_sampler_statistical(
                sam, n=samples, alpha=alpha, seed=seed, name=name
            ).to_dict()
    out["passed"] = all(out[c]["passed"] for c in ("exact", "statistical") if c in out)
    return out


def format_report(rep: dict[str, Any]) -> str:
    """The text form of :func:`conform`'s dict."""
    lines = [f"conformance of {rep['function']} (interface: {rep['interface']})"]
    ex = rep.get("exact")
    if ex:
        oos = float(Fraction(ex["max_out_of_support"]))
        lines.append(
            f"exact: {'PASS' if ex['passed'] else 'FAIL'}: {ex['cases'] - ex['failed_cases']}/"
            f"{ex['cases']} cases pass ({ex['verdict']}); max TV ~{ex['max_tv_float']:.3g}, "
            f"max mass outside the target's support ~{oos:.3g}"
        )
        for r in ex["results"]:
            if not r["passed"] or "reference_tv" in r:
                ref = (
                    f"; strict rule on this grid: TV ~{r['reference_tv_float']:.3g}"
                    if "reference_tv" in r
                    else ""
                )
                lines.append(
                    f"  {r['case']:<14} V={r['vocab']} k={r['k']} M={r['resolution']:.4g}: "
                    f"TV ~{r['tv_float']:.3g} (= {r['tv_times_resolution']:.3g}/M), out of "
                    f"support ~{r['out_of_support_float']:.3g}{ref}"
                    f"{'' if r['passed'] else '  FAIL'}"
                )
        if ex["counterexample"]:
            c = ex["counterexample"]
            lines.append(
                f"  minimal counterexample: {c['case']} V={c['vocab']} k={c['k']} "
                f"M={c['resolution']}: P(output starts {c['prefix']}) = {c['got']}, target "
                f"{c['want']}; p at prompt [{', '.join(c['p_row_at_prompt'])}], q "
                f"[{', '.join(c['q_row_at_prompt'])}]"
            )
    st = rep.get("statistical")
    if st:
        lines.append(
            f"statistical: {'PASS' if st['passed'] else 'FAIL'} (false-failure rate <= "
            f"{st['false_failure_rate']:g}; detection probability {st['power']:g})"
        )
        for r in st["results"]:
            lines.append(
                f"  {r['case']:<14} V={r['vocab']} k={r['k']} n={r['n']}: chi2 p={r['p_value']:.3g}"
                f", TV^={r['tv_hat']:.4f} (fails above {r['tv_threshold']:.4f}), out of support "
                f"{r['out_of_support']}; detects TV >= {r['detectable_tv_chi2']:.4f} (chi2, "
                f"merged cells) / {r['detectable_tv']:.4f} (TV test)"
                f"{'' if r['passed'] else '  FAIL'}"
            )
    lines.append("PASS" if rep["passed"] else "FAIL")
    return "\n".join(lines)
