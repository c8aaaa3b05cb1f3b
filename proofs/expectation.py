"""Latency in expectation under i.i.d. acceptance: exact polynomials in the rate `a`, z3-checked.

Each position's draft is accepted independently with probability `a` (pattern `x in {0,1}^N`
has weight `a^|x| (1 - a)^(N - |x|)`). For fixed `N`, `t = 1`, a rational `c` and a lookahead,
the expected latency of an algorithm is the exact polynomial

    E[L](a) = sum_j S_j a^j (1 - a)^(N - j),   S_j = sum of L(x) over patterns with j ones,

computed from the Fraction evaluators of `proofs.latency_model` on all 2^N patterns. A claim
`E[L1](a) <= E[L2](a) on [0, 1]` is decided by z3 (nonlinear real arithmetic, one real `a`):
`0 <= a <= 1 and E[L1](a) > E[L2](a)` UNSAT = proved, SAT = a counterexample rate `a`, which
the witness re-checks exactly at a rational point (summing the evaluators over all patterns
again, independently of the cached polynomial).

Speed (exact, not an approximation): each pattern's latency is the sum of its segments' costs,
and a segment's cost is memoised. Both evaluators run segment by segment with the state
`(n0, now)` only: a segment's duration and commit count depend on the remaining length
`r = N - n0` and on the bits it reads, and it reads `a[n0], a[n0+1], ...` and stops at the first
0 at the latest (DSI: at a rejection, or earlier when behind or at the last position; SI: at a
rejection or after its `d` drafts). So the first segment of a length-`r` pattern whose first 0
is at offset `z` (`z = r`: none) is that of the representative `1^z 0 1^(r-z-1)`, and
`L(p) = seg_0(p).end + L(p[committed:])` with `L` of the suffix evaluated on its own (durations do
not depend on `now`). `latency_polynomial` sums these per-pattern latencies;
tests/proofs/test_proofs.py checks them against the evaluators on every pattern up to N = 10,
and the witnesses re-check their two reported expectations with the evaluators directly.

Pathwise `DSI_k <= SI_k` (`proofs.latency`, bounded N) already implies the same-k claim for
every law of the pattern; the "best SI" claim is not implied pathwise (`DSI_2 > SI_1` on
`a = 100`, `c = t/12`) and holds only in expectation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from functools import cache

import z3

from proofs.latency_model import Segment, dsi_latency, dsi_segments, si_latency, si_segments
from proofs.theorem import Mutant, Problem, Theorem

__all__ = ["THEOREMS", "expected_latency", "latency_polynomial", "pattern_latencies", "poly_value"]

FAMILY = "expectation"
_MODEL = (
    "latency model of docs/design.md (Speed model), i.i.d. acceptance with rate a,"
    " enough servers, t = 1"
)


def _latency(alg: str, k: int, old: bool) -> Callable[[Sequence[int], Fraction], Fraction]:
    if alg == "SI":
        return lambda x, c: si_latency(x, 1, c, k)
    return lambda x, c: dsi_latency(x, 1, c, k, old_final_block=old)


def _first_segment(alg: str, k: int, old: bool) -> Callable[[Sequence[int], Fraction], Segment]:
    if alg == "SI":
        return lambda x, c: si_segments(x, 1, c, k)[0]
    return lambda x, c: dsi_segments(x, 1, c, k, old_final_block=old)[0]


@cache
def _scaled_latencies(alg: str, n: int, c: Fraction, k: int, old: bool) -> tuple[int, ...]:
    """`den(c) * L(x)` (t = 1, an integer) for every pattern `x` of length `n`, in
    `itertools.product` order (pattern = the bits of its index, first position most significant).

    The patterns of length `r` whose first 0 is at offset `z` form one contiguous block of indices
    (a prefix `1^z 0`), and dropping their first segment's `m <= z + 1` positions maps the block
    onto a contiguous block of the length-`(r - m)` patterns (see the module docstring)."""
    seg0 = _first_segment(alg, k, old)
    scale = c.denominator  # with t = 1 every time is an integer multiple of 1 / den(c)
    lat: list[list[int]] = [[0]]  # lat[r][v]: the pattern of length r with index v
    for r in range(1, n + 1):
        row = [0] * (1 << r)
        for z in range(r + 1):
            seg = seg0((1,) * z + (0,) * (z < r) + (1,) * (r - z - 1), c)
            m, end = seg.committed, seg.end * scale
            if end.denominator != 1 or not 1 <= m <= min(z + 1, r):
                raise AssertionError(f"unexpected first segment {seg} (r={r}, z={z})")
            size = 1 << (r - z - 1) if z < r else 1
            start = ((1 << z) - 1) << (r - z)
            sub = start & ((1 << (r - m)) - 1)  # the suffix's index: the low r - m bits
            e = int(end)
            row[start : start + size] = [e + y for y in lat[r - m][sub : sub + size]]
        lat.append(row)
    return tuple(lat[n])


@cache
def pattern_latencies(
    alg: str, n: int, c: Fraction, k: int, old: bool = False
) -> tuple[Fraction, ...]:
    """`alg`'s latency (t = 1) on every pattern of length `n`, in `itertools.product` order,
    as sums of memoised segment costs (see the module docstring)."""
    return tuple(Fraction(x, c.denominator) for x in _scaled_latencies(alg, n, c, k, old))


@cache
def _ones(n: int) -> tuple[int, ...]:
    return tuple(bin(v).count("1") for v in range(1 << n))


@cache
def latency_polynomial(
    alg: str, n: int, c: Fraction, k: int, old: bool = False
) -> tuple[Fraction, ...]:
    """`(S_0..S_N)`: `E[L](a) = sum_j S_j a^j (1-a)^(N-j)` for `alg` in {"SI", "DSI"}, t = 1.

    `old` selects the mutant DSI whose final block waits for the last position's draft."""
    sums = [0] * (n + 1)
    for ones, lat in zip(_ones(n), _scaled_latencies(alg, n, c, k, old), strict=True):
        sums[ones] += lat
    return tuple(Fraction(x, c.denominator) for x in sums)


def poly_value(sums: Sequence[Fraction], rate: Fraction) -> Fraction:
    """`sum_j S_j a^j (1-a)^(N-j)` at a rational rate."""
    n = len(sums) - 1
    return sum((s * rate**j * (1 - rate) ** (n - j) for j, s in enumerate(sums)), start=Fraction(0))


def expected_latency(
    alg: str, n: int, c: Fraction, k: int, rate: Fraction, old: bool = False
) -> Fraction:
    """`E[L]` at a rational rate, summed directly over all patterns (the witnesses' re-check)."""
    lat = _latency(alg, k, old)
    total = Fraction(0)
    for x in itertools.product((0, 1), repeat=n):
        ones = sum(x)
        total += rate**ones * (1 - rate) ** (n - ones) * lat(x, c)
    return total


@cache
def monomial_coefficients(sums: tuple[Fraction, ...]) -> tuple[Fraction, ...]:
    """`(b_0..b_N)` with `sum_j S_j a^j (1-a)^(N-j) = sum_i b_i a^i` (exact binomial expansion),
    checked by evaluating both forms at N + 1 distinct rational points (two polynomials of
    degree <= N that agree there are equal)."""
    n = len(sums) - 1
    coef = [Fraction(0)] * (n + 1)
    for j, s in enumerate(sums):
        for m in range(n - j + 1):  # (1 - a)^(n-j) = sum_m C(n-j, m) (-a)^m
            coef[j + m] += s * math.comb(n - j, m) * (-1) ** m
    for x in (Fraction(i, n + 1) for i in range(n + 1)):
        if poly_value(sums, x) != sum(b * x**i for i, b in enumerate(coef)):
            raise AssertionError("binomial expansion disagrees with the Bernstein form")
    return tuple(coef)


_POLY: dict[tuple[tuple[Fraction, ...], str], z3.ArithRef] = {}


def _z3_poly(sums: Sequence[Fraction], a: z3.ArithRef) -> z3.ArithRef:
    """`E[L](a)` as a z3 term in the monomial basis (`monomial_coefficients`): the same
    polynomial as `sum_j S_j a^j (1-a)^(N-j)`, cheaper for z3 to normalise (built once per
    polynomial and variable name)."""
    key = (tuple(sums), a.sexpr())
    if key not in _POLY:
        _POLY[key] = _z3_poly_uncached(sums, a)
    return _POLY[key]


def _z3_poly_uncached(sums: Sequence[Fraction], a: z3.ArithRef) -> z3.ArithRef:
    terms = [
        z3.RealVal(f"{b.numerator}/{b.denominator}") * (a**i if i else 1)
        for i, b in enumerate(monomial_coefficients(tuple(sums)))
        if b != 0
    ]
    return z3.Sum(terms) if terms else z3.RealVal(0)


def _rational(model: z3.ModelRef, a: z3.ArithRef) -> Fraction:
    val = model.eval(a, model_completion=True)
    if z3.is_rational_value(val):
        return Fraction(str(val.as_fraction()))
    return Fraction(val.approx(40).as_fraction()).limit_denominator(10**12)


def _compare(
    n: int,
    cs: Sequence[Fraction],
    ks: Sequence[int],
    si_ks: Callable[[int], Sequence[int]],
    old: bool = False,
    reverse: bool = False,
) -> Problem:
    """Claims E[DSI_k](a) <= E[SI_k'](a) on [0, 1] for every c in cs, k in ks, k' in si_ks(k)
    (one conjunct per (c, k)); `reverse` is the control E[SI_k'] <= E[DSI_k]."""
    a = z3.Real("a")
    claims, cases = [], []
    for c in cs:
        for k in ks:
            dsi = _z3_poly(latency_polynomial("DSI", n, c, k, old), a)
            parts = []
            for j in si_ks(k):
                si = _z3_poly(latency_polynomial("SI", n, c, j), a)
                parts.append(si <= dsi if reverse else dsi <= si)
            claims.append(z3.And(parts))
            cases.append((c, k))

    def render(model: z3.ModelRef) -> str:
        rate = _rational(model, a)
        lines = [f"N={n}, rate a={rate} (~{float(rate):.6f}), t=1"]
        found = False
        for c, k in cases:
            # pick the case and k' from the polynomials, then re-check the two reported values
            # by summing the evaluators over all patterns (independently of the polynomials)
            e_dsi = poly_value(latency_polynomial("DSI", n, c, k, old), rate)
            e_si = {j: poly_value(latency_polynomial("SI", n, c, j), rate) for j in si_ks(k)}
            pick = max if reverse else min
            j_best = pick(e_si, key=lambda j: e_si[j])
            bad = e_si[j_best] > e_dsi if reverse else e_si[j_best] < e_dsi
            if bad:
                direct = (
                    expected_latency("DSI", n, c, k, rate, old),
                    expected_latency("SI", n, c, j_best, rate),
                )
                if direct != (e_dsi, e_si[j_best]):
                    raise AssertionError(f"polynomial and direct sum differ at rate {rate}")
                found = True
                name = "DSI-old-final-block" if old else "DSI"
                lines.append(
                    f"c={c}: E[{name}(k={k})] = {float(e_dsi):.6f}, "
                    f"{'max' if reverse else 'min'}_k' E[SI(k')] = E[SI(k={j_best})] = "
                    f"{float(e_si[j_best]):.6f}"
                )
                break
        if not found:
            raise AssertionError(f"z3 rate {rate} is no counterexample under exact evaluation")
        return "\n".join(lines)

    return Problem([a >= 0, a <= 1], claims, render)


# ---------------------------------------------------------------- the theorems

_N = 12
_CS = (Fraction(1, 20), Fraction(1, 10), Fraction(1, 4), Fraction(1, 2), Fraction(1))
_CS_TEXT = "{" + ", ".join(map(str, _CS)) + "}"
_KS = (1, 2, 3, 4, 5)


def _same_k(k: int) -> Sequence[int]:
    return (k,)


def _every_k(_: int) -> Sequence[int]:
    return range(1, _N)  # SI with k' >= N - 1 equals SI(N - 1): d = min(k', N - 1 - n0)


THEOREMS: list[Theorem] = [
    Theorem(
        name=f"expect_dsi_k_le_si_k_N{_N}",
        family=FAMILY,
        hypotheses=f"N = {_N}, k in 1..5 (same k for both), c/t in {_CS_TEXT}, "
        "every a in [0, 1]; " + _MODEL,
        claim="E[DSI_k](a) <= E[SI_k](a) as exact polynomials in a",
        expected="proved",
        rlimit=100_000_000,
        build=lambda: _compare(_N, _CS, _KS, _same_k),
        mutants=(
            Mutant(
                "control: reversed, E[SI_k] <= E[DSI_k] (DSI is strictly faster somewhere)",
                lambda: _compare(_N, _CS, _KS, _same_k, reverse=True),
            ),
        ),
    ),
    Theorem(
        name=f"expect_dsi_k_le_best_si_N{_N}",
        family=FAMILY,
        hypotheses=f"N = {_N}, DSI with fixed k in 1..5, SI with every lookahead k' = 1..N-1 "
        f"(k' >= N-1 all equal SI(N-1)), c/t in {_CS_TEXT}, every a in [0, 1]; " + _MODEL,
        claim="E[DSI_k](a) <= min_k' E[SI_k'](a) (not implied pathwise: DSI_2 > SI_1 on a=100)",
        expected="proved",
        rlimit=200_000_000,
        build=lambda: _compare(_N, _CS, _KS, _every_k),
        mutants=(
            Mutant(
                "old rule: DSI's final block waits for the last position's draft",
                lambda: _compare(_N, _CS, (2,), _every_k, old=True),
            ),
        ),
    ),
]
