"""Latency claims of DSI vs SI vs non-SI as z3 theorems over the model of `latency_model`.

The encodings below unroll the same per-position recurrences that `proofs.latency_model`
evaluates with Fractions (a test checks them against each other on every small pattern), with
a symbolic acceptance pattern `a in {0,1}^N`, symbolic `t, c > 0` (reals) and concrete `k`.

DSI state at position `p` (one fresh z3 variable each, defined by equalities):
  `D` decision time, `A` arrival time of the draft for `p`, `U` uncapped start time of the
  block covering row `p` (`T + ceil(i/k) k c` at offset `i`; `T` at offset 0), `E = T + (L-1) c`
  the arrival time of the segment's last *needed* draft (`L = N - n0`: the segment's last row
  `L - 1` judges draft `L - 2`, and no row judges the draft of position `N - 1`, so the final,
  partial block starts at `E`), `cnt` = offset within its block
  (0 at offset 0, then 1..k). Step `p -> p+1`: the segment ends at `p` iff the drafter is behind
  (`A > D`) or `a[p] = 0`; then `D' = D + t` (zero-draft task on the new prefix), else
  `D' = min(min(U', E') + t, D + t)` (the block, or the zero-draft chain).
SI state: `sig` end time of the segment holding `p`, `r = d - i` drafts left after offset `i`;
  the segment continues iff `r > 0 and a[p] = 1`; a new one at `p'` drafts
  `d = min(k, N - 1 - p')` tokens (never the last position's) and ends `d c + t` later.

Inductive lemmas replace `N` and the position by symbolic integers (then `L c` and `r c` are
products of an integer and a real variable, which z3's nonlinear arithmetic handles here), and
conclude for every `N` by induction on the position (the one meta-level step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import z3

from proofs.latency_model import (
    dsi_latency,
    dsi_segments,
    nonsi_latency,
    render_timeline,
    si_latency,
    si_segments,
)
from proofs.theorem import Mutant, Problem, Theorem

__all__ = ["THEOREMS", "DsiState", "SiState", "dsi_unroll", "si_unroll"]

FAMILY = "latency"
Num = z3.ArithRef | int


def _min(x: z3.ArithRef, y: z3.ArithRef) -> z3.ArithRef:
    return z3.If(x <= y, x, y)


@dataclass(frozen=True)
class DsiState:
    """Symbolic DSI state at one position (see the module docstring)."""

    D: z3.ArithRef
    A: z3.ArithRef
    U: z3.ArithRef
    E: z3.ArithRef
    cnt: z3.ArithRef


@dataclass(frozen=True)
class SiState:
    """Symbolic SI state at one position: segment end time and drafts left after it."""

    sig: z3.ArithRef
    r: z3.ArithRef


def _fresh_dsi(name: str) -> DsiState:
    D, A, U, E = z3.Reals(f"{name}.D {name}.A {name}.U {name}.E")
    return DsiState(D, A, U, E, z3.Int(f"{name}.cnt"))


def dsi_init(
    name: str, n: Num, t: z3.ArithRef, c: z3.ArithRef, last_draft: bool = False
) -> tuple[DsiState, list]:
    """State at position 0: segment starts at time 0. `last_draft` is the old-rule mutant (the
    final block also waits for the draft of position N - 1, which no row judges)."""
    s = _fresh_dsi(name)
    needed = n if last_draft else n - 1
    return s, [s.D == t, s.A == c, s.U == 0, s.E == needed * c, s.cnt == 0]


def dsi_step(
    s: DsiState,
    a_p: z3.BoolRef,
    t: z3.ArithRef,
    c: z3.ArithRef,
    k: Num,
    rem_next: Num,
    name: str,
    chain: bool = True,
    late_block: bool = False,
    last_draft: bool = False,
) -> tuple[DsiState, list[z3.BoolRef]]:
    """Transition p -> p+1; `rem_next = N - (p+1)`. `chain`/`late_block`/`last_draft` select
    mutants (no zero-draft chain; every block waits for one draft too many; the final block
    waits for the draft of the last position, i.e. the rule before the coordinator's fix)."""
    n = _fresh_dsi(name)
    new = z3.Or(s.A > s.D, z3.Not(a_p))
    first = k * c + c if late_block else k * c  # mutant: a block waits for one draft too many
    u_next = z3.If(n.cnt == 1, z3.If(s.cnt == 0, s.U + first, s.U + k * c), s.U)
    block = _min(n.U, n.E) + t
    cons = [
        n.cnt == z3.If(new, 0, z3.If(s.cnt == k, 1, s.cnt + 1)),
        n.U == z3.If(new, s.D, u_next),
        n.E == z3.If(new, s.D + (rem_next if last_draft else rem_next - 1) * c, s.E),
        n.A == z3.If(new, s.D + c, s.A + c),
        n.D == z3.If(new, s.D + t, _min(block, s.D + t) if chain else block),
    ]
    return n, cons


def dsi_unroll(
    name: str, a: Sequence[z3.BoolRef], t: z3.ArithRef, c: z3.ArithRef, k: int, **mut: bool
) -> tuple[list[DsiState], list[z3.BoolRef]]:
    """All N states of DSI(k) on pattern `a`; the latency is `states[-1].D`."""
    n = len(a)
    s, cons = dsi_init(f"{name}0", n, t, c, last_draft=mut.get("last_draft", False))
    states = [s]
    for p in range(n - 1):
        s, more = dsi_step(s, a[p], t, c, k, n - p - 1, f"{name}{p + 1}", **mut)
        states.append(s)
        cons += more
    return states, cons


def si_init(name: str, d0: Num, t: z3.ArithRef, c: z3.ArithRef) -> tuple[SiState, list]:
    """State at position 0 with `d0 = min(k, N - 1)` drafts in the first segment."""
    s = SiState(z3.Real(f"{name}.sig"), z3.Int(f"{name}.r"))
    return s, [s.sig == d0 * c + t, s.r == d0]


def si_step(
    s: SiState, a_p: z3.BoolRef, t: z3.ArithRef, c: z3.ArithRef, d_new: Num, name: str
) -> tuple[SiState, list[z3.BoolRef]]:
    """Transition p -> p+1; `d_new` drafts if a new segment starts at p+1."""
    n = SiState(z3.Real(f"{name}.sig"), z3.Int(f"{name}.r"))
    cont = z3.And(s.r > 0, a_p)
    return n, [
        n.sig == z3.If(cont, s.sig, s.sig + d_new * c + t),
        n.r == z3.If(cont, s.r - 1, d_new),
    ]


def si_unroll(
    name: str, a: Sequence[z3.BoolRef], t: z3.ArithRef, c: z3.ArithRef, k: int
) -> tuple[list[SiState], list[z3.BoolRef]]:
    """All N states of SI(k) on pattern `a`; the latency is `states[-1].sig`."""
    n = len(a)
    s, cons = si_init(f"{name}0", min(k, n - 1), t, c)
    states = [s]
    for p in range(n - 1):
        s, more = si_step(s, a[p], t, c, min(k, n - p - 2), f"{name}{p + 1}")
        states.append(s)
        cons += more
    return states, cons


# ---------------------------------------------------------------- witnesses


def _frac(model: z3.ModelRef, x: z3.ArithRef) -> Fraction:
    return Fraction(str(model.eval(x, model_completion=True).as_fraction()))


def _pattern(model: z3.ModelRef, a: Sequence[z3.BoolRef]) -> list[int]:
    return [1 if z3.is_true(model.eval(x, model_completion=True)) else 0 for x in a]


def _timelines(
    a: Sequence[z3.BoolRef],
    t: z3.ArithRef,
    c: z3.ArithRef,
    checks: Sequence[tuple[str, int, z3.ArithRef]],
) -> Callable[[z3.ModelRef], str]:
    """Renders the pattern and the timelines of `checks` = (algorithm, k, z3 latency) and
    cross-checks every z3 latency against the Fraction evaluator (raises on a mismatch)."""

    def render(model: z3.ModelRef) -> str:
        pat, tv, cv = _pattern(model, a), _frac(model, t), _frac(model, c)
        lines = [f"a={''.join(map(str, pat))} (N={len(pat)}), c/t={cv / tv}"]
        for alg, k, expr in checks:
            got = _frac(model, expr)
            if alg == "nonSI":
                want = nonsi_latency(len(pat), tv)
                lines.append(f"non-SI = {want / tv} t")
            elif alg == "SI":
                want = si_latency(pat, tv, cv, k)
                lines.append(render_timeline(f"SI(k={k})", si_segments(pat, tv, cv, k), tv))
            else:
                want = dsi_latency(pat, tv, cv, k)
                lines.append(render_timeline(f"DSI(k={k})", dsi_segments(pat, tv, cv, k), tv))
            if got != want:
                raise AssertionError(f"encoding disagrees with evaluator: {alg} {got} != {want}")
        return "\n".join(lines)

    return render


def _symbols(n: int) -> tuple[list[z3.BoolRef], z3.ArithRef, z3.ArithRef]:
    return [z3.Bool(f"a{i}") for i in range(n)], z3.Real("t"), z3.Real("c")


def _timelines_raw(
    a: Sequence[z3.BoolRef],
    t: z3.ArithRef,
    c: z3.ArithRef,
    checks: Sequence[tuple[str, z3.ArithRef]],
) -> Callable[[z3.ModelRef], str]:
    """Witness of a mutant (a schedule the evaluators do not implement): z3 values only."""

    def render(model: z3.ModelRef) -> str:
        pat, tv, cv = _pattern(model, a), _frac(model, t), _frac(model, c)
        vals = ", ".join(f"{alg} = {_frac(model, e) / tv} t" for alg, e in checks)
        return f"a={''.join(map(str, pat))}, c/t={cv / tv}: {vals}"

    return render


# ---------------------------------------------------------------- bounded theorems


def _dsi_vs_nonsi(n: int, ks: Sequence[int], chain: bool = True) -> Problem:
    a, t, c = _symbols(n)
    hyps: list[z3.BoolRef] = [t > 0, c > 0]
    claims, checks = [], []
    for k in ks:
        states, cons = dsi_unroll(f"dsi{k}_", a, t, c, k, chain=chain)
        hyps += cons
        claims.append(states[-1].D <= n * t)
        checks.append(("DSI", k, states[-1].D))
    render = (
        _timelines(a, t, c, [*checks, ("nonSI", 0, n * t)])
        if chain
        else _timelines_raw(a, t, c, [(f"DSI-no-chain(k={k})", e) for _, k, e in checks])
    )
    return Problem(hyps, claims, render)


def _dsi_c_gt_t(n: int, ks: Sequence[int], c_gt_t: bool = True) -> Problem:
    a, t, c = _symbols(n)
    hyps: list[z3.BoolRef] = [t > 0, c > t if c_gt_t else z3.And(c > 0, c < t)]
    claims, checks = [], []
    for k in ks:
        states, cons = dsi_unroll(f"dsi{k}_", a, t, c, k)
        hyps += cons
        claims.append(states[-1].D == n * t)
        checks.append(("DSI", k, states[-1].D))
    return Problem(hyps, claims, _timelines(a, t, c, [*checks, ("nonSI", 0, n * t)]))


def _dsi_vs_si(
    n: int,
    k_dsi: int,
    k_sis: Sequence[int],
    c_max_t: bool = False,
    late_block: bool = False,
    t_one: bool = False,
    last_draft: bool = False,
    joint: bool = False,
    stepwise: bool = False,
) -> Problem:
    """Claims DSI(k_dsi) <= SI(k) for each k in k_sis (c > 0, or 0 < c <= t if c_max_t).

    `t_one` fixes t = 1: no loss of generality, every latency of the model is positively
    homogeneous of degree 1 in (t, c) (sums, minima and comparisons of such terms), and it
    makes the search markedly cheaper. `joint` checks the conjunction over `k_sis` in one
    solver call (the same claim; cheaper when the DSI unrolling dominates). `stepwise` proves
    `D_p <= SI_p` at every earlier position `p` first, as lemmas (`Problem.lemmas`, the cut
    rule): the claim is unchanged, and the search over all patterns then costs about a tenth for
    one SI lookahead (not for twelve at once: `dsi1_le_si_any_lookahead` uses `joint` only)."""
    a, t, c = _symbols(n)
    hyps: list[z3.BoolRef] = [t > 0, c > 0]
    if t_one:
        hyps.append(t == 1)
    if c_max_t:
        hyps.append(c <= t)
    dsi, cons = dsi_unroll("dsi_", a, t, c, k_dsi, late_block=late_block, last_draft=last_draft)
    hyps += cons
    claims, checks = [], [("DSI", k_dsi, dsi[-1].D)]
    lemmas: list[list[z3.BoolRef]] = [[] for _ in range(n - 1)]
    for k in k_sis:
        si, cons = si_unroll(f"si{k}_", a, t, c, k)
        hyps += cons
        claims.append(dsi[-1].D <= si[-1].sig)
        checks.append(("SI", k, si[-1].sig))
        for p in range(n - 1):
            lemmas[p].append(dsi[p].D <= si[p].sig)
    if joint:
        claims = [z3.And(claims)]
    if late_block or last_draft:
        label = "DSI-late-block" if late_block else "DSI-old-final-block"
        raw = [(label, dsi[-1].D), *[(f"SI(k={k})", e) for _, k, e in checks[1:]]]
        return Problem(hyps, claims, _timelines_raw(a, t, c, raw))
    steps = [z3.And(at_p) for at_p in lemmas] if stepwise else []
    return Problem(hyps, claims, _timelines(a, t, c, checks), lemmas=steps)


def _si_vs_nonsi(
    n: int,
    k: int,
    all_accepted: bool = False,
    c_max: Fraction = Fraction(1),
    c_min: Fraction = Fraction(0),
) -> Problem:
    """Claims SI(k) <= N t under c_min t < c <= c_max t."""
    a, t, c = _symbols(n)
    si, cons = si_unroll("si_", a, t, c, k)
    hyps = [t > 0, c > c_min * t, c <= c_max * t, *cons]
    if all_accepted:
        hyps += list(a)
    checks = [("SI", k, si[-1].sig), ("nonSI", 0, n * t)]
    return Problem(hyps, si[-1].sig <= n * t, _timelines(a, t, c, checks))


def _segment_cost(m_max: int, k: int, chain: bool = True) -> Problem:
    """Our DSI segment cost D_m - T vs the paper's min((m//k + 1) k c + t, (m + 1) t).

    `E` (the final block's start, `(L - 1) c` after T) is left arbitrary, `E >= 0`: the bound
    holds whether or not the segment reaches the last position."""
    t, c, e = z3.Reals("t c E")
    hyps: list[z3.BoolRef] = [t > 0, c > 0, e >= 0]
    d = z3.Reals(" ".join(f"D{i}" for i in range(m_max + 1)))
    hyps.append(d[0] == t)
    claims = []
    for i in range(1, m_max + 1):
        block = _min(-(-i // k) * k * c, e) + t
        hyps.append(d[i] == (_min(block, d[i - 1] + t) if chain else block))
    for m in range(m_max + 1):
        authors = _min((m // k + 1) * k * c + t, (m + 1) * t)
        claims.append(d[m] <= authors)
    return Problem(hyps, claims)


# ---------------------------------------------------------------- inductive lemmas (every N)


def _ind_dsi_le_nonsi(chain: bool = True) -> Problem:
    """D_0 = t and D_{p+1} <= D_p + t for any state, k, N: hence D_{N-1} <= N t."""
    t, c = z3.Reals("t c")
    k, rem = z3.Ints("k rem")
    a_p = z3.Bool("a_p")
    s0, base = dsi_init("init", z3.Int("N"), t, c)
    s = _fresh_dsi("s")
    n, step = dsi_step(s, a_p, t, c, k, rem, "next", chain=chain)
    hyps = [t > 0, c > 0, k >= 1, rem >= 1, s.cnt >= 0, s.cnt <= k, *base, *step]
    return Problem(hyps, [s0.D <= t, n.D <= s.D + t])


def _ind_c_gt_t(c_gt_t: bool = True) -> Problem:
    """For c > t every position starts a segment whose draft is late: D_{p+1} = D_p + t."""
    t, c = z3.Reals("t c")
    k, rem = z3.Ints("k rem")
    a_p = z3.Bool("a_p")
    s0, base = dsi_init("init", z3.Int("N"), t, c)
    s = _fresh_dsi("s")
    n, step = dsi_step(s, a_p, t, c, k, rem, "next")

    def inv(x: DsiState) -> z3.BoolRef:
        return z3.And(x.cnt == 0, x.A == x.D - t + c)

    hyps = [t > 0, c > t if c_gt_t else z3.And(c > 0, c < t), k >= 1, rem >= 1, inv(s)]
    hyps += [*base, *step]
    return Problem(hyps, [s0.D == t, inv(s0), n.D == s.D + t, inv(n)])


def _ind_dsi1_le_si(late_block: bool = False) -> Problem:
    """Inductive state dominance of DSI(1) over SI with any (even adaptive) lookahead.

    Inv(p): D = U + t, A = U + c, E - U >= (R - 1) c with R = N - p >= 1, 0 <= cnt <= 1,
    r >= 0 and D <= sig - r c (the SI budget of position p: segment start + t + offset * c).
    SI drafts any d >= 0 per segment (d = 0: one plain target step), so this covers every fixed
    lookahead under the new rule (d = min(k, N - 1 - n0)), the old one, and adaptive ones.
    """
    t, c = z3.Reals("t c")
    n0, d0, rem, d_new = z3.Ints("N d0 R d_new")
    a_p = z3.Bool("a_p")

    def inv(x: DsiState, y: SiState, r: z3.ArithRef) -> z3.BoolRef:
        return z3.And(
            x.D == x.U + t,
            x.A == x.U + c,
            x.E - x.U >= (r - 1) * c,
            r >= 1,
            x.cnt >= 0,
            x.cnt <= 1,
            y.r >= 0,
            x.D <= y.sig - y.r * c,
        )

    x0, base = dsi_init("dsi0", n0, t, c)
    y0, base_si = si_init("si0", d0, t, c)
    x, y = _fresh_dsi("dsi"), SiState(z3.Real("si.sig"), z3.Int("si.r"))
    x1, step = dsi_step(x, a_p, t, c, 1, rem - 1, "dsi1", late_block=late_block)
    y1, step_si = si_step(y, a_p, t, c, d_new, "si1")
    hyps = [t > 0, c > 0, c <= t, n0 >= 1, d0 >= 0, rem >= 2, d_new >= 0, inv(x, y, rem)]
    hyps += [*base, *base_si, *step, *step_si]
    claims = [
        inv(x0, y0, n0),
        inv(x1, y1, rem - 1),
        x1.D <= y1.sig,
        z3.Implies(inv(x, y, z3.Int("R_any")), x.D <= y.sig),  # also at p = N - 1 (R = 1)
    ]
    return Problem(hyps, claims)


def _si_block_gap(o: z3.ArithRef, cnt: z3.ArithRef, k: z3.ArithRef, t, c) -> z3.ArithRef:
    """The least `sig - U` (SI's segment end minus DSI's block start) over all-accepted runs
    from a common start, given the phases: SI offset `o` in a full segment, DSI offset `cnt` in
    its block. At offset `i = s (k + 1) + o` of a piece, `U - T = ceil(i/k) k c` and
    `sig - T = (s + 1)(k c + t)`, so `sig - U = k c + (s + 1) t - ceil((s + o)/k) k c`; the
    phases fix `s mod k` (`s = cnt - o mod k`), and the gap grows by `k (t - c) >= 0` when `s`
    grows by `k`, so the smallest `s` of that class, `s0`, gives the least gap."""
    diff = cnt - o
    s0 = z3.If(cnt == 0, 0, z3.If(diff == k, 0, z3.If(diff < 0, diff + k, diff)))
    w = z3.If(s0 + o == 0, 0, z3.If(s0 + o <= k, 1, 2))  # ceil((s0 + o) / k), s0 + o < 2k
    return k * c + (s0 + 1) * t - w * (k * c)


def _ind_dsik_le_sik(late_block: bool = False, last_draft: bool = False) -> Problem:
    """Inductive state dominance of DSI(k) over SI(k) (the same lookahead, symbolic), every N.

    Ghost state: `o`, SI's offset within its segment (`o + r = d`, the segment's drafts).
    Inv(p), with `R = N - p >= 1`:
      DSI's drafter is never behind (`D >= A`), so DSI's segments end only at rejections, as
      SI's pieces do; the drafts arrive on DSI's block grid (`A - U = c` at offset 0, else
      `(cnt + 1 - k) c`) and `E - A = (R - 2) c`;
      DSI decides no later than its block or chain allows: `D <= U + t`, and within a block
      `D <= U - k c + cnt t + t` (the chain from the block before), and `D <= E + t`;
      SI drafts no earlier than DSI: `sig - t - r c >= A - c`;
      SI's segment is full (`o + r = k`) or the final one (`r = R - 1`, fewer drafts);
      in a full segment `sig - U >= _si_block_gap(o, cnt)`.
    Then `D <= sig`: in a full segment from the gap, in the final one from `D <= E + t`.
    A rejection restarts both from their own decision times, `D <= sig`, so the invariant
    survives it without splitting the pattern into pieces.
    """
    t, c = z3.Reals("t c")
    k, n0, rem, o = z3.Ints("k N R o")
    a_p = z3.Bool("a_p")

    extra = 1 if last_draft else 0  # the mutant's final block starts one draft later

    def inv(x: DsiState, y: SiState, o: z3.ArithRef, r: z3.ArithRef) -> z3.BoolRef:
        full = o + y.r == k
        return z3.And(
            r >= 1,
            x.cnt >= 0,
            x.cnt <= k,
            y.r >= 0,
            o >= 0,
            o + y.r <= k,
            z3.Or(full, y.r == r - 1),
            z3.Implies(x.cnt == 0, o == 0),
            x.D >= x.A,
            x.A - x.U == z3.If(x.cnt == 0, c, (x.cnt + 1 - k) * c),
            x.E - x.A == (r - 2 + extra) * c,
            x.D <= x.U + t,
            z3.Implies(x.cnt >= 1, x.D <= x.U - k * c + x.cnt * t + t),
            x.D <= x.E + t,
            y.sig - t - y.r * c >= x.A - c,
            z3.Implies(full, y.sig - x.U >= _si_block_gap(o, x.cnt, k, t, c)),
        )

    mut = {"late_block": late_block, "last_draft": last_draft}
    x0, base = dsi_init("dsi0", n0, t, c, last_draft=last_draft)
    y0, base_si = si_init("si0", z3.If(k <= n0 - 1, k, n0 - 1), t, c)
    x, y = _fresh_dsi("dsi"), SiState(z3.Real("si.sig"), z3.Int("si.r"))
    x1, step = dsi_step(x, a_p, t, c, k, rem - 1, "dsi1", **mut)
    y1, step_si = si_step(y, a_p, t, c, z3.If(k <= rem - 2, k, rem - 2), "si1")
    o1 = z3.If(z3.And(y.r > 0, a_p), o + 1, 0)
    hyps = [t > 0, c > 0, c <= t, k >= 1, n0 >= 1, rem >= 2, inv(x, y, o, rem)]
    hyps += [*base, *base_si, *step, *step_si]
    claims = [
        inv(x0, y0, z3.IntVal(0), n0),
        inv(x1, y1, o1, rem - 1),
        x1.D <= y1.sig,
        z3.Implies(inv(x, y, o, z3.Int("R_any")), x.D <= y.sig),  # also at p = N - 1
    ]
    return Problem(hyps, claims)


def _ind_si_ge_nonsi(c_ge_t: bool = True) -> Problem:
    """For c >= t, SI with any lookahead is never faster than non-SI: sig_p - r_p c >= (p+1) t."""
    t, c, x = z3.Reals("t c X")
    d0, d_new = z3.Ints("d0 d_new")
    a_p = z3.Bool("a_p")
    y0, base = si_init("si0", d0, t, c)
    y = SiState(z3.Real("si.sig"), z3.Int("si.r"))
    y1, step = si_step(y, a_p, t, c, d_new, "si1")

    def inv(s: SiState, bound: z3.ArithRef) -> z3.BoolRef:
        return z3.And(s.r >= 0, s.sig - s.r * c >= bound)

    hyps = [t > 0, c >= t if c_ge_t else z3.And(c > 0, c < t), d0 >= 0, d_new >= 0, inv(y, x)]
    hyps += [*base, *step]
    return Problem(hyps, [inv(y0, t), inv(y1, x + t), y.sig >= x])


# ---------------------------------------------------------------- the theorems

_MODEL = "latency model of docs/design.md with the coordinator's policy, enough servers"
_BOUNDED_N = 32
_C_GT_T_N = 32
_SI_ANY_N = 12
_SAME_K_N = {2: 16, 3: 16, 4: 16, 5: 14}  # lookahead -> horizon

THEOREMS: list[Theorem] = [
    Theorem(
        name="dsi_le_nonsi_inductive",
        family=FAMILY,
        hypotheses="any N, any k >= 1, any t, c > 0 (c > t included); " + _MODEL,
        claim="D_0 = t and D_{p+1} <= D_p + t, hence DSI_k <= N t = non-SI",
        expected="proved",
        rlimit=20_000_000,
        build=_ind_dsi_le_nonsi,
        mutants=(Mutant("no zero-draft chain", lambda: _ind_dsi_le_nonsi(chain=False)),),
    ),
    Theorem(
        name=f"dsi_le_nonsi_N{_BOUNDED_N}",
        family=FAMILY,
        hypotheses=f"N = {_BOUNDED_N}, k in 1..4, every pattern a, any t, c > 0; " + _MODEL,
        claim="DSI_k(a) <= N t",
        expected="proved",
        rlimit=200_000_000,
        build=lambda: _dsi_vs_nonsi(_BOUNDED_N, (1, 2, 3, 4)),
        mutants=(Mutant("no zero-draft chain", lambda: _dsi_vs_nonsi(8, (2,), chain=False)),),
    ),
    Theorem(
        name="dsi_eq_nonsi_if_c_gt_t_inductive",
        family=FAMILY,
        hypotheses="any N, any k >= 1, c > t > 0; " + _MODEL,
        claim="every draft arrives late (A > D) so every segment decides one token: DSI_k = N t",
        expected="proved",
        rlimit=20_000_000,
        build=_ind_c_gt_t,
        mutants=(Mutant("control: 0 < c < t", lambda: _ind_c_gt_t(c_gt_t=False)),),
    ),
    Theorem(
        name=f"dsi_eq_nonsi_if_c_gt_t_N{_C_GT_T_N}",
        family=FAMILY,
        hypotheses=f"N = {_C_GT_T_N}, k in 1..3, every pattern, c > t > 0; " + _MODEL,
        claim="DSI_k(a) = N t",
        expected="proved",
        rlimit=100_000_000,
        build=lambda: _dsi_c_gt_t(_C_GT_T_N, (1, 2, 3)),
        mutants=(Mutant("control: 0 < c < t", lambda: _dsi_c_gt_t(8, (2,), c_gt_t=False)),),
    ),
    Theorem(
        name="dsi1_le_si_any_lookahead_inductive",
        family=FAMILY,
        hypotheses="any N, 0 < c <= t, SI drafts any d >= 0 per segment; " + _MODEL,
        claim="Inv(0) and Inv(p) => Inv(p+1) for the state-dominance invariant, and "
        "Inv(p) => D_p <= SI's commit time of p; hence DSI_1 <= SI_k for every k",
        expected="proved",
        rlimit=50_000_000,
        build=_ind_dsi1_le_si,
        mutants=(Mutant("DSI block waits for one draft too many", lambda: _ind_dsi1_le_si(True)),),
    ),
    Theorem(
        name="dsik_le_sik_inductive",
        family=FAMILY,
        hypotheses="any N, any k >= 1 (symbolic, the same for both), every pattern, "
        "0 < c <= t; " + _MODEL,
        claim="Inv(0) and Inv(p) => Inv(p+1) for the state-dominance invariant, and "
        "Inv(p) => D_p <= SI_k's commit time of p; hence DSI_k <= SI_k (with "
        "dsi_eq_nonsi_if_c_gt_t and si_ge_nonsi_if_c_ge_t also for c > t)",
        expected="proved",
        rlimit=100_000_000,
        build=_ind_dsik_le_sik,
        mutants=(
            Mutant("DSI block waits for one draft too many", lambda: _ind_dsik_le_sik(True)),
            Mutant(
                "old rule: DSI's final block waits for the last position's draft",
                lambda: _ind_dsik_le_sik(last_draft=True),
            ),
        ),
    ),
    Theorem(
        name="si_ge_nonsi_if_c_ge_t_inductive",
        family=FAMILY,
        hypotheses="any N, SI drafts any d >= 0 per segment, c >= t > 0; " + _MODEL,
        claim="SI_k >= N t (with dsi_eq_nonsi_if_c_gt_t: DSI_1 <= SI_k also for c > t)",
        expected="proved",
        rlimit=20_000_000,
        build=_ind_si_ge_nonsi,
        mutants=(Mutant("control: 0 < c < t", lambda: _ind_si_ge_nonsi(c_ge_t=False)),),
    ),
    Theorem(
        name=f"dsi1_le_si_any_lookahead_N{_SI_ANY_N}",
        family=FAMILY,
        hypotheses=f"N = {_SI_ANY_N}, every pattern, SI lookahead k = 1..N, any t, c > 0; "
        + _MODEL,
        claim="DSI_1(a) <= SI_k(a) for every k",
        expected="proved",
        rlimit=500_000_000,
        build=lambda: _dsi_vs_si(_SI_ANY_N, 1, range(1, _SI_ANY_N + 1), t_one=True, joint=True),
        mutants=(
            Mutant(
                "DSI block waits for one draft too many",
                lambda: _dsi_vs_si(8, 1, (1,), late_block=True),
            ),
        ),
    ),
    *[
        Theorem(
            name=f"dsi{k}_le_si{k}_N{n}",
            family=FAMILY,
            hypotheses=f"N = {n}, k = {k} for both, every pattern, any t, c > 0; " + _MODEL,
            claim=f"DSI_{k}(a) <= SI_{k}(a)",
            expected="proved",
            rlimit=800_000_000,
            build=lambda k=k, n=n: _dsi_vs_si(n, k, (k,), t_one=True, stepwise=True),
            mutants=(
                Mutant(
                    "DSI block waits for one draft too many",
                    lambda k=k: _dsi_vs_si(8, k, (k,), late_block=True),
                ),
                Mutant(
                    "old rule: DSI's final block waits for the last position's draft",
                    lambda k=k: _dsi_vs_si(8, k, (k,), last_draft=True),
                ),
            ),
        )
        for k, n in _SAME_K_N.items()
    ],
    Theorem(
        name="si_slower_than_nonsi",
        family=FAMILY,
        hypotheses="N = 9, k = 2, fast drafter 0 < c <= t/10; " + _MODEL,
        claim="SI_2(a) <= N t on every pattern",
        expected="counterexample",
        rlimit=50_000_000,
        build=lambda: _si_vs_nonsi(9, 2, c_max=Fraction(1, 10)),
        mutants=(
            Mutant(
                "control: all drafts accepted, 0 < c <= t",
                lambda: _si_vs_nonsi(9, 2, all_accepted=True),
            ),
        ),
    ),
    Theorem(
        name="slow_drafter_si_slower_than_nonsi",
        family=FAMILY,
        hypotheses="N = 8, k = 2, every draft accepted, slow drafter t < c <= 2t; " + _MODEL,
        claim="SI_2(a) <= N t",
        expected="counterexample",
        rlimit=50_000_000,
        build=lambda: _si_vs_nonsi(8, 2, all_accepted=True, c_min=Fraction(1), c_max=Fraction(2)),
        mutants=(
            Mutant(
                "control: all drafts accepted, 0 < c <= t (then d c + t <= (d + 1) t per segment)",
                lambda: _si_vs_nonsi(8, 2, all_accepted=True, c_max=Fraction(1)),
            ),
        ),
    ),
    *[
        Theorem(
            name=f"dsi{k}_slower_than_si1",
            family=FAMILY,
            hypotheses=f"N = 8, DSI with fixed k = {k}, SI with k = 1, 0 < c <= t; " + _MODEL,
            claim=f"DSI_{k}(a) <= SI_1(a) on every pattern",
            expected="counterexample",
            rlimit=100_000_000,
            build=lambda k=k: _dsi_vs_si(8, k, (1,), c_max_t=True),
            mutants=(
                Mutant("control: DSI with k = 1", lambda: _dsi_vs_si(8, 1, (1,), c_max_t=True)),
            ),
        )
        for k in (2, 4)
    ],
    *[
        Theorem(
            name=f"segment_cost_le_authors_k{k}",
            family=FAMILY,
            hypotheses=f"k = {k}, one segment with m = 0..24 accepted drafts, any final-block "
            "start E >= T (reaching the last position or not), any t, c > 0",
            claim="D_m - T <= min((floor(m/k) + 1) k c + t, (m + 1) t) (the paper's cost)",
            expected="proved",
            rlimit=50_000_000,
            build=lambda k=k: _segment_cost(24, k),
            mutants=(Mutant("no zero-draft chain", lambda k=k: _segment_cost(24, k, False)),),
        )
        for k in (1, 2, 3, 4)
    ],
]
