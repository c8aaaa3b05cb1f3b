"""Latency in expectation with a FIXED number of target servers S (the paper's heatmaps: S = 7).

`proofs.expectation` assumes enough servers. Here DSI's latency on each acceptance pattern is
the end time of the simulated backend driving the real coordinator with `S` servers
(`proofs.simcheck.simulate`, exact Fractions; a due task waits, FIFO, while all `S` servers are
busy), for all `2^N` patterns; SI (one server) comes from the Fraction evaluator. As in
`proofs.expectation`, `E[L](a) = sum_j S_j a^j (1 - a)^(N - j)` with `S_j` the sum of the
latencies of the patterns with `j` ones (i.i.d. acceptance with rate `a`, `t = 1`), and z3
decides `0 <= a <= 1 and not claim(a)` over one real `a`.

Simulator runs are shared between server counts (exact, not an approximation): a run with `S`
servers whose busiest moment held `b <= S'` servers makes the same decisions with `S'` servers
(no due task ever found `S'` busy), and a run without any wait is the run of every larger `S`.

Findings on the grid (brute force first, then the theorems below):
- same lookahead: `E[DSI_{k,S}] <= E[SI_k]` for every `S >= 2`, *also* below the SP degree the
  policy needs (a second server already lets DSI do what SI does; pathwise too, checked on every
  pattern of length 7); it fails only for `S = 1` (DSI is then non-SI);
- fixed `k` against SI with its best lookahead: holds when `S` covers the degree the policy
  needs on horizon `N` (then the latencies are the model's on every pattern); below it DSI
  loses near `a = 1` for every grid point with `c <= t/10` (e.g. the paper's `S = 7`, `k = 1`,
  `c = t/20`), while for `c = t/4` the outcome depends on `N` (holds at 9, fails at 8);
- DSI with its best `k in 1..5` against SI with its best `k' in 1..N-1`: holds for `S in {3, 7}`,
  fails for `S = 2` and `c <= t/10` near `a = 1` (every `k <= 5` needs more than 2 servers there;
  with `k'` restricted to the same range as DSI's it is a corollary of the same-`k` claim).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import z3

from proofs.expectation import (
    _rational,
    _z3_poly,
    latency_polynomial,
    pattern_latencies,
    poly_value,
)
from proofs.latency_model import si_latency
from proofs.simcheck import simulate
from proofs.sp_degree_model import sp_degree_needed
from proofs.theorem import Mutant, Problem, Theorem

__all__ = [
    "THEOREMS",
    "install",
    "prepare",
    "prepare_chunks",
    "dsi_sim_latencies",
    "dsi_sim_polynomial",
    "expected_dsi_sim",
    "latency_degree_ok",
]

FAMILY = "expect_servers"
_MODEL = (
    "i.i.d. acceptance with rate a, t = 1; DSI = simulated backend + real coordinator with S "
    "servers on all 2^N patterns, SI = evaluator (one server)"
)
ENOUGH = 64  # more servers than any run of N <= 12 uses


@dataclass(frozen=True)
class _Run:
    end: Fraction
    busy: int  # max_busy_servers
    waits: int  # task_waits


_RUNS: dict[tuple[tuple[int, ...], Fraction, int], dict[int, _Run]] = {}


def _run(x: tuple[int, ...], c: Fraction, k: int, servers: int) -> _Run:
    """The simulated DSI run on pattern `x`, reusing a run with another server count if exact."""
    runs = _RUNS.setdefault((x, c, k), {})
    run = runs.get(servers)
    if run is not None:
        return run
    for s, other in runs.items():
        if (s > servers and other.busy <= servers) or (s < servers and other.waits == 0):
            runs[servers] = other
            return other
    sim = simulate("dsi", x, 1, c, k, servers)
    run = runs[servers] = _Run(sim.end, sim.stats.max_busy_servers, sim.stats.task_waits)
    return run


# ---------------------------------------------------------------- parallel warm-up (-j)
# `python -m proofs -j` may run the simulations in several worker processes first (one chunk
# per (c, k)) and install them here before the theorems run: the same deterministic runs, computed
# elsewhere (a run that is not installed is simulated on demand, as with -j 1).

Chunk = tuple[int, Fraction, tuple[tuple[int, int], ...]]  # (n, c, ((k, S), ...) in order)
RunData = list[tuple[tuple[tuple[int, ...], Fraction, int], dict[int, tuple[Fraction, int, int]]]]


def prepare_chunks(names: Sequence[str] | None = None) -> list[Chunk]:
    """The simulations the theorems below use, one chunk per (c, k), in the theorems' order of
    server counts (larger S first, then S = 1, then ENOUGH), so the same runs are reused.

    Empty when `names` (the selected theorems) has no theorem over the whole grid: the others
    need a few hundred runs, cheaper on demand."""
    grid = {f"dsi_kS_le_si_k_N{N}", f"dsi_kS_le_best_si_if_deg_N{N}"}
    grid.add(f"best_dsi_S3_7_le_best_si_N{N}")
    if names is not None and not grid & set(names):
        return []
    chunks = []
    for c in _CS:
        for k in _KS:
            pairs = [(k, s) for s in _SERVERS]
            if c == Fraction(1, 20):
                pairs += [(k, 1)] + ([(k, ENOUGH)] if k == 1 else [])
            chunks.append((N, c, tuple(pairs)))
    return chunks


def prepare(chunk: Chunk) -> RunData:
    """Simulates one chunk (in a worker); returns its runs as plain data."""
    n, c, pairs = chunk
    for k, s in pairs:
        dsi_sim_latencies(n, c, k, s)
    keys = {(x, c, k) for x in itertools.product((0, 1), repeat=n) for k, _ in pairs}
    return [
        (key, {s: (r.end, r.busy, r.waits) for s, r in runs.items()})
        for key, runs in _RUNS.items()
        if key in keys
    ]


def install(data: RunData) -> None:
    """Installs runs computed by `prepare` (in another process) into this process's cache."""
    for key, runs in data:
        mine = _RUNS.setdefault(key, {})
        for s, (end, busy, waits) in runs.items():
            mine.setdefault(s, _Run(end, busy, waits))


_LAT: dict[tuple[int, Fraction, int, int], tuple[Fraction, ...]] = {}


def dsi_sim_latencies(n: int, c: Fraction, k: int, servers: int) -> tuple[Fraction, ...]:
    """Simulated DSI end times (t = 1) on every pattern of length `n`, in `itertools` order."""
    key = (n, c, k, servers)
    if key not in _LAT:
        _LAT[key] = tuple(_run(x, c, k, servers).end for x in itertools.product((0, 1), repeat=n))
    return _LAT[key]


def dsi_sim_polynomial(n: int, c: Fraction, k: int, servers: int) -> tuple[Fraction, ...]:
    """`(S_0..S_N)` of `E[DSI_{k,S}](a)` from the simulator's latencies."""
    sums = [Fraction(0)] * (n + 1)
    for x, lat in zip(
        itertools.product((0, 1), repeat=n), dsi_sim_latencies(n, c, k, servers), strict=True
    ):
        sums[sum(x)] += lat
    return tuple(sums)


def expected_dsi_sim(n: int, c: Fraction, k: int, servers: int, rate: Fraction) -> Fraction:
    """`E[DSI_{k,S}]` at a rational rate, summed directly over the patterns (witness re-check)."""
    total = Fraction(0)
    for x, lat in zip(
        itertools.product((0, 1), repeat=n), dsi_sim_latencies(n, c, k, servers), strict=True
    ):
        ones = sum(x)
        total += rate**ones * (1 - rate) ** (n - ones) * lat
    return total


@cache
def _si_latencies(n: int, c: Fraction, k: int) -> tuple[Fraction, ...]:
    """SI's latency from the evaluator itself on every pattern (for the witnesses' re-check)."""
    return tuple(si_latency(x, 1, c, k) for x in itertools.product((0, 1), repeat=n))


def _expected_si(n: int, c: Fraction, k: int, rate: Fraction) -> Fraction:
    total = Fraction(0)
    for x, lat in zip(itertools.product((0, 1), repeat=n), _si_latencies(n, c, k), strict=True):
        ones = sum(x)
        total += rate**ones * (1 - rate) ** (n - ones) * lat
    return total


def latency_degree_ok(n: int, c: Fraction, k: int, servers: int) -> bool:
    """`S` covers the SP degree on horizon `n`: the simulated DSI with `S` servers ends at the
    model's `dsi_latency` (enough servers) on every pattern of length `n` (as memoised segment
    sums: `proofs.expectation.pattern_latencies`)."""
    return dsi_sim_latencies(n, c, k, servers) == pattern_latencies("DSI", n, c, k)


# ---------------------------------------------------------------- problems


@dataclass(frozen=True)
class _Case:
    """One conjunct: min over DSI's (k, S) options <= SI(k') for every k' in `si_ks`."""

    c: Fraction
    dsi: tuple[tuple[int, int], ...]  # (k, S) pairs; the conjunct holds if any of them is <=
    si_ks: tuple[int, ...]


def _problem(n: int, cases: Sequence[_Case], reverse: bool = False) -> Problem:
    """`min_{(k,S)} E[DSI_{k,S}](a) <= E[SI_k'](a)` on [0, 1] for every case and k' (one solver
    call per (case, k')); `reverse` is the control `E[SI_k'] <= E[DSI_{k,S}]` (single option)."""
    a = z3.Real("a")
    claims = []
    for case in cases:
        dsi = [_z3_poly(dsi_sim_polynomial(n, case.c, k, s), a) for k, s in case.dsi]
        for kk in case.si_ks:
            si = _z3_poly(latency_polynomial("SI", n, case.c, kk), a)
            claim = z3.And([si <= d for d in dsi]) if reverse else z3.Or([d <= si for d in dsi])
            claims.append(claim)

    def render(model: z3.ModelRef) -> str:
        rate = _rational(model, a)
        for case in cases:
            # pick the options from the polynomials, then re-check the two reported values by
            # summing over all patterns directly (independently of the polynomials)
            e_dsi = {ks: poly_value(dsi_sim_polynomial(n, case.c, *ks), rate) for ks in case.dsi}
            e_si = {
                kk: poly_value(latency_polynomial("SI", n, case.c, kk), rate) for kk in case.si_ks
            }
            (k, s), best_dsi = min(e_dsi.items(), key=lambda kv: kv[1])
            pick = max if reverse else min  # reverse fails iff some SI(k') > some DSI option
            kk, best_si = pick(e_si.items(), key=lambda kv: kv[1])
            if (best_si > best_dsi) if reverse else (best_dsi > best_si):
                direct = (
                    expected_dsi_sim(n, case.c, k, s, rate),
                    _expected_si(n, case.c, kk, rate),
                )
                if direct != (best_dsi, best_si):
                    raise AssertionError(f"polynomial and direct sum differ at rate {rate}")
                dsi_text = f"E[DSI(k={k}, S={s})] = {float(best_dsi):.6f} t"
                if len(case.dsi) > 1:
                    ks = ", ".join(str(k_) for k_, _ in case.dsi)
                    dsi_text = f"min_k E[DSI(k, S={s})], k in {{{ks}}}: " + dsi_text
                si_text = f"E[SI(k={kk})] = {float(best_si):.6f} t"
                if len(case.si_ks) > 1:
                    si_text = (
                        f"{'max' if reverse else 'min'}_k' E[SI(k')], k' in "
                        f"{case.si_ks[0]}..{case.si_ks[-1]}: " + si_text
                    )
                return (
                    f"N={n}, rate a={rate} (~{float(rate):.6f}), c/t={case.c}, t=1 (best of "
                    f"each side): {dsi_text} > {si_text}"
                    if not reverse
                    else f"N={n}, rate a={rate} (~{float(rate):.6f}), c/t={case.c}, t=1: "
                    f"{dsi_text} < {si_text}"
                )
        raise AssertionError(f"z3 rate {rate} is no counterexample under exact evaluation")

    return Problem([a >= 0, a <= 1], claims, render)


# ---------------------------------------------------------------- the theorems

N = 9
_CS = (Fraction(1, 20), Fraction(1, 10), Fraction(1, 4), Fraction(1, 2), Fraction(1))
_CS_TEXT = "{" + ", ".join(map(str, _CS)) + "}"
_KS = (1, 2, 3, 4, 5)
_SERVERS = (7, 3, 2)  # largest first: smaller counts reuse the runs that fit
_ALL_SI = tuple(range(1, N))  # SI with k' >= N - 1 equals SI(N - 1)


def _same_k(servers: Sequence[int], cs: Sequence[Fraction] = _CS) -> list[_Case]:
    return [_Case(c, ((k, s),), (k,)) for s in servers for c in cs for k in _KS]


def _best_dsi(servers: int) -> list[_Case]:
    return [_Case(c, tuple((k, servers) for k in _KS), _ALL_SI) for c in _CS]


def _fixed_k(covered: bool) -> list[_Case]:
    """Fixed k against SI's best lookahead, for the (c, k, S) whose S covers (or not) the SP
    degree on horizon N."""
    return [
        _Case(c, ((k, s),), _ALL_SI)
        for s in _SERVERS
        for c in _CS
        for k in _KS
        if latency_degree_ok(N, c, k, s) == covered
    ]


# The (c, k, S) of the grid below the degree on horizon N = 9 (from the brute force; the fixed-k
# theorem checks that exactly these are the uncovered ones). Each is a mutant: those with
# c <= t/10 must fail; those with c = t/4 hold at N = 9 (horizon alignment: DSI's all-accepted
# run then ties SI(N-1); at N = 8 they fail, e.g. DSI_{1,3}(1^8) = 3 t > SI_7(1^8) = 11/4 t).
_UNCOVERED = tuple(
    (Fraction(c), k, s)
    for s, c, ks in (
        (7, "1/20", (1,)),
        (7, "1/10", (1,)),
        (3, "1/20", (1, 2, 3)),
        (3, "1/10", (1, 2, 3)),
        (3, "1/4", (1,)),
        (2, "1/20", (1, 2, 3, 4, 5)),
        (2, "1/10", (1, 2, 3, 4, 5)),
        (2, "1/4", (1, 2, 5)),
    )
    for k in ks
)


def _covered_problem() -> Problem:
    uncovered = {(x.c, x.dsi[0][0], x.dsi[0][1]) for x in _fixed_k(covered=False)}
    if uncovered != set(_UNCOVERED):
        raise AssertionError(f"degree-uncovered cases changed: {sorted(uncovered)}")
    return _problem(N, _fixed_k(covered=True))


def _theorem(
    name: str,
    hypotheses: str,
    claim: str,
    expected: str,
    build: Callable[[], Problem],
    mutants: tuple[Mutant, ...],
    rlimit: int = 200_000_000,
) -> Theorem:
    return Theorem(
        name=name,
        family=FAMILY,
        hypotheses=hypotheses + "; " + _MODEL,
        claim=claim,
        expected=expected,  # type: ignore[arg-type]
        rlimit=rlimit,
        build=build,
        mutants=mutants,
    )


THEOREMS: list[Theorem] = [
    _theorem(
        f"dsi_kS_le_si_k_N{N}",
        f"N = {N}, S in {{2, 3, 7}} servers for DSI (no SP-degree hypothesis), k in 1..5 (same k "
        f"for both), c/t in {_CS_TEXT}, every a in [0, 1]",
        "E[DSI_{k,S}](a) <= E[SI_k](a) as exact polynomials in a",
        "proved",
        lambda: _problem(N, _same_k(_SERVERS)),
        (
            Mutant(
                "one server (S = 1: DSI degenerates to non-SI), c = t/20",
                lambda: _problem(N, _same_k((1,), (Fraction(1, 20),))),
            ),
            Mutant(
                "control: reversed, E[SI_k] <= E[DSI_{k,2}] (DSI is strictly faster somewhere)",
                lambda: _problem(N, _same_k((2,), (Fraction(1, 20),)), reverse=True),
            ),
        ),
    ),
    _theorem(
        f"dsi_kS_le_best_si_if_deg_N{N}",
        f"N = {N}, (c, k, S) in {_CS_TEXT} x 1..5 x {{2, 3, 7}} such that S covers the SP "
        f"degree on horizon N (simulated DSI with S servers = model latency on all 2^N "
        f"patterns); SI with every k' = 1..N-1",
        "E[DSI_{k,S}](a) <= min_k' E[SI_k'](a) on [0, 1]",
        "proved",
        _covered_problem,
        tuple(
            Mutant(
                f"below the degree: S = {s}, c = t/{1 / c}, k = {k}"
                + ("" if c < Fraction(1, 4) else " (holds at this N: horizon alignment)"),
                lambda c=c, k=k, s=s: _problem(N, [_Case(c, ((k, s),), _ALL_SI)]),
                expected="counterexample" if c < Fraction(1, 4) else "proved",
            )
            for c, k, s in _UNCOVERED
        ),
    ),
    _theorem(
        f"dsi1_S7_slower_best_si_N{N}",
        f"N = {N}, the paper's S = 7, k = 1, c = t/20 (no wait needs "
        f"{sp_degree_needed(1, Fraction(1, 20), 1, N)} servers on horizon N), SI with every "
        "k' = 1..N-1",
        "E[DSI_{1,7}](a) <= min_k' E[SI_k'](a) on [0, 1]",
        "counterexample",
        lambda: _problem(N, [_Case(Fraction(1, 20), ((1, 7),), _ALL_SI)]),
        (
            Mutant(
                f"control: the same with enough servers (S = {ENOUGH}, simulated)",
                lambda: _problem(N, [_Case(Fraction(1, 20), ((1, ENOUGH),), _ALL_SI)]),
            ),
        ),
    ),
    _theorem(
        f"best_dsi_S3_7_le_best_si_N{N}",
        f"N = {N}, S in {{3, 7}}, DSI picks its best k in 1..5 at each a, SI its best k' in "
        f"1..N-1, c/t in {_CS_TEXT}, every a in [0, 1]",
        "min_k E[DSI_{k,S}](a) <= min_k' E[SI_k'](a) on [0, 1]",
        "proved",
        lambda: _problem(N, _best_dsi(7) + _best_dsi(3)),
        (Mutant("two servers (S = 2)", lambda: _problem(N, _best_dsi(2))),),
    ),
    _theorem(
        f"best_dsi_S2_slower_best_si_N{N}",
        f"N = {N}, S = 2, DSI picks its best k in 1..5, SI its best k' in 1..N-1, c = t/20",
        "min_k E[DSI_{k,2}](a) <= min_k' E[SI_k'](a) on [0, 1]",
        "counterexample",
        lambda: _problem(N, _best_dsi(2)[:1]),
        (
            Mutant(
                "control: S = 3, c = t/20",
                lambda: _problem(N, _best_dsi(3)[:1]),
            ),
            Mutant(
                "control: S = 2 with SI restricted to DSI's range k' in 1..5",
                lambda: _problem(N, [_Case(Fraction(1, 20), tuple((k, 2) for k in _KS), _KS)]),
            ),
        ),
    ),
]
