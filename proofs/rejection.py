"""Rejection mode: latency with the wait-for-the-draft rule, and the output law over positions.

Family ``rejection``. In ``rejection`` mode every speculative position is decided *with* its
draft (``DecisionRule.needs_draft``): a row that arrives first waits for the draft, and SI keeps
its bonus row until the next draft arrives (SI with a deferred bonus). The model is
``proofs.latency_model.dsi_rejection_latency`` / ``si_rejection_latency``, checked against the
coordinator on the simulated backend exactly by ``tests/property/test_rejection_latency.py``.

1. **DSI <= non-SI, every N** (``rejection_dsi_le_nonsi_step``): a strong-induction step over
   the position ``p`` (``p = n0 + i``, segment start ``n0`` at time ``T = D_{n0-1}``). z3 proves,
   with ``t, c, d`` symbolic and ``n0, i`` symbolic integers: if ``D_q <= (q + 1) t`` for every
   ``q < p`` (used at ``q = p - 1`` and ``q = n0 - 1``), then ``D_p <= (p + 1) t``, from the step
   hypotheses ``D_p = max(A_p, R_p, D_{p-1})``, ``A_p <= T + delta + (i + 1) c`` (the drafter
   restarts at the segment start, after the preempted draft stops: ``0 <= delta <= min(d, c)``,
   ``delta = 0`` in the first segment) and the row ``R_p`` from one of the three cases of
   proofs/preemption.py (stored by ``D_{p-1}``; a live task started by ``D_{p-1}``; the chain
   task started at ``D_{p-1}``), under ``c + min(d, c) <= t`` (``c <= t`` when ``d = 0``).
   Induction on ``p`` (meta level) gives ``DSI <= N t`` for every ``N``. The step hypotheses
   are policy facts, not z3-checked: argued in proofs/README.md ("Rejection mode") for ``d = 0``
   and every ``S``, and for every ``d`` when ``c + min(d, c) <= t`` (then no step is decided by
   a draft arrival, ``rejection_draft_never_binds_any_delay``, and greedy mode's argument
   applies); **tested** for every ``d`` in {0, t/10, t/2, fails} and ``S`` in {1, 2, 64} on
   every commit (``test_rejection_latency.py::test_step_and_dsi_le_nonsi``).
2. **The bound for every ``c``** (``rejection_dsi_bound_step``): the same step gives
   ``D_p <= (p + 1) max(t, c + min(d, c))``; tight for ``d = 0`` (all accepted, ``c > t``:
   ``DSI = N c``, tested) -- ``rejection_dsi_slower_than_nonsi_c_gt_t_N4`` is z3's witness.
2b. **Reduction to the greedy model** (``d = 0``, enough servers): for ``c <= t`` the wait for
   the draft never binds (``rejection_dsi_wait_never_binds_if_c_le_t``, z3: ``A_i <= R_i`` at
   any offset, no induction needed), so rejection-mode DSI has exactly the greedy model's
   latency (that the two evaluators then coincide is argued by hand -- same ``R_i``
   recursion, the max never binds, no "behind" end -- and tested on every pattern ``N <= 7``);
   and rejection-mode SI is never ahead of greedy SI (``rejection_si_ge_greedy_si_segment``, a
   step over segments whose costs are read off the two evaluators by hand; tested likewise).
   With the ``latency`` family (meta-level composition, not one z3 query): ``DSI_1 <= SI``
   with any fixed lookahead for every ``N`` and ``DSI_k <= SI_k`` for ``N <= 16`` (``k <= 4``)
   carry over to rejection mode when ``c <= t``.
3. **DSI vs SI**, bounded, every ``c > 0`` (so also ``c > t``): the evaluators run on z3
   terms (``c`` symbolic, ``t = 1``: every latency is positively homogeneous in ``(t, c)``) for
   every pattern of every length ``N <= 6``, so each claim is a finite conjunction of
   piecewise-linear inequalities in ``c``. ``DSI_k <= SI_k`` (``k <= 4``) and
   ``DSI_{1,2} <= SI_{k'}`` for every ``k'`` are proved; ``DSI_3 <= SI_2`` is refuted (block
   alignment, e.g. ``a = 1010``, ``c = t/12``: ``7/3 t > 9/4 t``).
4. **The output law over positions** (``rejection_law_step_over_positions``): see `_law_step`.

Mutants: a drafter restart delay beyond ``t - c``, ``c > t``, a chain that waits for a
preempted task's acknowledgement at a step decided by a draft arrival (no slot is freed then,
unlike greedy's deliverer slot); the bound without the restart delay; ``c > t`` for the
reduction; reversed claims; ``DSI_3`` in place of ``DSI_{1,2}``; for the law: a row computed
on another prefix, and position ``n``'s uniforms dependent on the prefix.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import z3

from proofs.latency_model import dsi_rejection_latency, si_rejection_latency
from proofs.theorem import Mutant, Problem, Theorem

__all__ = ["THEOREMS", "Z3Ops", "dsi_rejection_term", "si_rejection_term"]

FAMILY = "rejection"


def _max(x: z3.ArithRef, y: z3.ArithRef) -> z3.ArithRef:
    return z3.If(x >= y, x, y)


def _min(x: z3.ArithRef, y: z3.ArithRef) -> z3.ArithRef:
    return z3.If(x <= y, x, y)


class Z3Ops:
    """The evaluators' arithmetic on z3 terms (see latency_model, rejection mode)."""

    @staticmethod
    def num(x: object) -> z3.ArithRef:
        return x if isinstance(x, z3.ArithRef) else z3.RealVal(str(x))

    max = staticmethod(_max)
    min = staticmethod(_min)

    @staticmethod
    def gt(x: z3.ArithRef, y: z3.ArithRef, a: z3.ArithRef, b: z3.ArithRef) -> z3.ArithRef:
        return z3.If(x > y, a, b)


def dsi_rejection_term(a: Sequence[int], t: z3.ArithRef, c: z3.ArithRef, k: int) -> z3.ArithRef:
    return dsi_rejection_latency(a, t, c, k, ops=Z3Ops)  # type: ignore[return-value]


def si_rejection_term(a: Sequence[int], t: z3.ArithRef, c: z3.ArithRef, k: int) -> z3.ArithRef:
    return si_rejection_latency(a, t, c, k, ops=Z3Ops)  # type: ignore[return-value]


# ---------------------------------------------------------------- 1-2. DSI <= non-SI, every N


def _step(claim: str = "nonsi", mutant: str = "") -> Problem:
    t, c, d, delta = z3.Reals("t c d delta")
    T, Dprev, Dp, A, R, s, ack = z3.Reals("T D_prev D_p A_p R_p s ack")
    n0, i = z3.Ints("n0 i")
    case = z3.Int("case")  # 1 row stored, 2 live covering task, 3 chain task
    p = n0 + i
    dmax = _min(d, c)
    # the per-position bound to prove (and assumed for earlier positions)
    if claim == "nonsi":
        unit = t
    else:
        unit = _max(t, c) if mutant == "no_delay_term" else _max(t, c + dmax)
    hyps = [
        t > 0,
        c > 0,
        d >= 0,
        n0 >= 0,
        i >= 0,
        # induction hypothesis D_q <= (q + 1) t at q = n0 - 1 (T) and q = p - 1 (D_prev)
        T >= 0,
        T <= z3.ToReal(n0) * unit,
        z3.Implies(n0 == 0, T == 0),
        Dprev >= T,
        Dprev <= z3.ToReal(p) * unit,
        z3.Implies(i == 0, Dprev == T),
        # the draft of p: the drafter restarts at T once the preempted draft stops
        delta >= 0,
        delta <= dmax,
        z3.Implies(n0 == 0, delta == 0),
        A >= T,
        A <= T + delta + z3.ToReal(i + 1) * c,
        # the row of p
        z3.Or(case == 1, case == 2, case == 3),
        z3.Implies(case == 1, R <= Dprev),
        z3.Implies(case == 2, z3.And(s >= T, s <= Dprev, R == s + t)),
        # decisions in order, each with its draft (the wait-for-the-draft rule)
        Dp == _max(_max(A, R), Dprev),
    ]
    if mutant == "chain_waits_for_ack":
        # at a step decided by a draft arrival no task left: the chain waits for a preempted
        # task that frees its server at ack <= D_prev + d
        hyps += [ack >= Dprev, ack <= Dprev + d, z3.Implies(case == 3, R == ack + t)]
    else:
        hyps.append(z3.Implies(case == 3, R == Dprev + t))
    if claim == "nonsi":
        if mutant == "restart_delay":
            hyps += [c <= t]  # c <= t alone, any d: the preempted draft may delay the restart
        elif mutant == "c_gt_t":
            hyps += [d == 0, c > t]
        else:
            hyps.append(c + dmax <= t)
        goal = Dp <= z3.ToReal(p + 1) * t
    else:
        goal = Dp <= z3.ToReal(p + 1) * unit

    def render(m: z3.ModelRef) -> str:
        names = ["t", "c", "d", "delta", "T", "D_prev", "A_p", "R_p", "D_p", "ack"]
        vals = ", ".join(f"{x} = {m.eval(z3.Real(x), model_completion=True)}" for x in names)
        return f"n0 = {m.eval(n0)}, i = {m.eval(i)}, case = {m.eval(case)}, {vals}"

    return Problem(hyps, goal, render)


# ---------------------------------------------------------------- 2b. reduction to greedy


def _wait_never_binds(c_le_t: bool = True) -> Problem:
    """Offset ``i >= 1`` of a DSI segment (``d = 0``): the draft is there when the row is.

    ``A_i = T + (i + 1) c``; ``R_i = min(B_i, D_{i-1} + t)`` with ``B_i = T + m c + t`` for the
    block's draft count ``m = min(ceil(i/k) k, L - 1) >= i`` (``i <= L - 1``); ``D_{i-1} >=
    A_{i-1} = T + i c`` holds by the model's ``D = max(A, R)`` (not an induction hypothesis).
    Claim ``A_i <= R_i``, so ``D_i = R_i``: no position waits and no segment would end
    "behind"; with ``A_0 = T + c <= T + t = R_0`` (offset 0, by hand) the rejection-mode model
    is the greedy model (`dsi_latency`) whenever ``c <= t`` -- that last step, comparing the
    two evaluators' recursions, is argued here and tested (tests/proofs/test_rejection.py).
    """
    t, c, T, Dprev = z3.Reals("t c T D_prev")
    i, m = z3.Ints("i m")
    hyps = [t > 0, c > 0, T >= 0, i >= 1, m >= i, Dprev >= T + z3.ToReal(i) * c]
    hyps.append(c <= t if c_le_t else c > t)
    row = _min(T + z3.ToReal(m) * c + t, Dprev + t)
    return Problem(hyps, T + z3.ToReal(i + 1) * c <= row)


def _draft_never_binds_any_delay(slow: bool = False) -> Problem:
    """Every cancellation delay ``d``, every ``S``: at offset ``i`` of a segment (start ``T``)
    the draft of ``p = n0 + i`` arrives no later than its row when ``c + min(d, c) <= t``.

    Premises (runtime facts, argued in proofs/README.md and asserted on every commit by
    ``test_rejection_latency.py::check_steps``): the drafter restarts at ``T + delta``,
    ``0 <= delta <= min(d, c)``, and then drafts without pause inside the segment, one request
    at a time: ``A_0 <= T + delta + c``, ``A_i = A_{i-1} + c``; the row of offset 0 comes from
    the zero-draft task started at ``T`` or later; a row at offset ``i >= 1`` comes from a task
    started no earlier than ``A_{i-1}`` (a block's input holds draft ``i - 1``; the chain task
    starts at ``D_{i-1} >= A_{i-1}``), and a forward takes ``t``. Claim ``A_i <= R_i``: every
    decision is made when a target task delivers (``D_p = max(R_p, D_{p-1})``), which frees that
    task's server at that instant -- the situation of greedy mode, whose step facts
    (proofs/preemption.py) then apply for every ``d``. ``slow``: the control ``c + delta > t``.
    """
    t, c, d, delta, T, A_prev, A, s, R = z3.Reals("t c d delta T A_prev A_i s R_i")
    i = z3.Int("i")
    hyps = [t > 0, c > 0, d >= 0, T >= 0, i >= 0, delta >= 0, delta <= _min(d, c)]
    hyps.append(c + delta > t if slow else c + _min(d, c) <= t)
    hyps += [
        z3.Implies(i == 0, z3.And(A <= T + delta + c, s >= T)),
        z3.Implies(i >= 1, z3.And(A_prev >= T + delta, A == A_prev + c, s >= A_prev)),
        R >= s + t,
    ]
    return Problem(hyps, A <= R)


def _si_rejection_ge_greedy(reverse: bool = False) -> Problem:
    """One SI segment: the rejection-mode SI is never ahead of the greedy SI.

    Both SIs pass through the same segment starts (argued from the two evaluators, not
    z3-checked: a segment at ``n0`` drafts
    ``d = min(k, N - 1 - n0)``; after ``m`` accepted drafts the next starts at ``n0 + m + 1``
    in both, the rejection-mode one deciding the bonus position with its draft). Segment costs
    from the same start: greedy ``d c + t``; rejection mode ``d c + t`` (a rejection),
    ``d c + t + c`` (a full block and the bonus draft), ``d c + max(c, t)`` or ``d c + t + c``
    (the final segment); these costs are transcribed by hand from ``si_rejection_latency`` and
    ``si_latency``. Claim: if the rejection-mode SI starts the segment no earlier (``U >= G``),
    it ends it no earlier. Induction over segments (meta level; base ``U = G = 0``):
    ``SI_rej(a) >= SI_greedy(a)``.
    """
    t, c, U, G = z3.Reals("t c U G")
    d, case = z3.Ints("d case")
    hyps = [t > 0, c > 0, G >= 0, U >= G, d >= 0, z3.Or([case == j for j in (1, 2, 3, 4)])]
    dc = z3.ToReal(d) * c
    rej = z3.If(
        case == 1,
        U + dc + t,
        z3.If(case == 2, U + dc + t + c, z3.If(case == 3, U + dc + _max(c, t), U + dc + t + c)),
    )
    greedy = G + dc + t
    return Problem(hyps, greedy >= rej if reverse else rej >= greedy)


# ---------------------------------------------------------------- 3. bounded, symbolic c


def _all_patterns(nmax: int, nmin: int = 1) -> list[tuple[int, ...]]:
    return [a for n in range(nmin, nmax + 1) for a in itertools.product((0, 1), repeat=n)]


def _fmt(model: z3.ModelRef, c: z3.ArithRef) -> str:
    return str(model.eval(c, model_completion=True))


def _compare(
    nmax: int,
    pairs: Sequence[tuple[int, int]],
    c_hyp: Callable[[z3.ArithRef], z3.BoolRef],
    nmin: int = 1,
    reverse: bool = False,
) -> Problem:
    """DSI_k(a) <= SI_k'(a) for every (k, k') in `pairs` and every pattern, t = 1.

    `reverse` (a mutant) claims SI_k'(a) <= DSI_k(a) instead: it must be refuted, which shows
    the two sides are not the same term."""
    c = z3.Real("c")
    one = z3.RealVal(1)
    pats = _all_patterns(nmax, nmin)
    claims = []
    for k, k2 in pairs:
        sides = [(dsi_rejection_term(a, one, c, k), si_rejection_term(a, one, c, k2)) for a in pats]
        claims.append(z3.And([(s <= d) if reverse else (d <= s) for d, s in sides]))

    def render(m: z3.ModelRef) -> str:
        from fractions import Fraction

        cv = Fraction(_fmt(m, c))
        for k, k2 in pairs:
            for a in pats:
                dv = dsi_rejection_latency(a, 1, cv, k)
                sv = si_rejection_latency(a, 1, cv, k2)
                pat = "".join(map(str, a))
                if dv > sv and not reverse:
                    return f"a = {pat}, c = {cv} t: DSI_{k} = {dv} t > SI_{k2} = {sv} t"
                if sv > dv and reverse:
                    return f"a = {pat}, c = {cv} t: SI_{k2} = {sv} t > DSI_{k} = {dv} t"
        return f"c = {cv} (no pattern re-evaluates as a counterexample: encoding mismatch)"

    return Problem([c > 0, c_hyp(c)], claims, render)


def _dsi_vs_nonsi_bounded(n: int, c_gt_t: bool) -> Problem:
    c = z3.Real("c")
    one = z3.RealVal(1)
    pats = _all_patterns(n, n)
    claim = z3.And([dsi_rejection_term(a, one, c, k) <= len(a) for a in pats for k in (1, 2)])

    def render(m: z3.ModelRef) -> str:
        from fractions import Fraction

        cv = Fraction(_fmt(m, c))
        for k, a in itertools.product((1, 2), pats):
            v = dsi_rejection_latency(a, 1, cv, k)
            if v > len(a):
                return f"a = {''.join(map(str, a))}, k = {k}, c = {cv} t: DSI = {v} t > {len(a)} t"
        return f"c = {cv} (no pattern re-evaluates as a counterexample: encoding mismatch)"

    return Problem([c > 0, c > 1 if c_gt_t else c <= 1], claim, render)


# ---------------------------------------------------------------- 4. the law over positions


def _law_step(mutant: str = "") -> Problem:
    """The joint law of the first ``n + 1`` committed tokens, given that of the first ``n``.

    Sorts ``Prefix`` and ``Token`` are uninterpreted (every vocabulary size, every prefix set);
    ``h`` is a symbolic committed prefix of length ``n`` and ``x`` a symbolic token.
    z3-checked: from the hypotheses below, ``P_{n+1}(h x) = Pi_n(h) p(x | h)``.
    Hypotheses (stated, not z3-checked):
    - induction hypothesis ``P_n(h) = Pi_n(h) = prod_{i<n} p(y_i | y_<i)``;
    - **row on the committed prefix**: position ``n`` is decided from ``p(. | h)``, the target
      row computed on exactly the committed prefix, and (if drafted) a draft sampled from the
      drafter's row ``q(. | h)`` on the same prefix (the segment's drafts form a chain whose
      earlier drafts were all accepted). Checked at run time by ``dsi_core.checker``
      (invariants "prefix rows" and "drafts");
    - **independence**: position ``n``'s uniforms are keyed ``(seed, n, stream)`` and modelled
      as independent of the uniforms of positions ``< n`` (Philox outputs for distinct keys
      treated as independent uniforms), which, with ``h``, determine the prefix: so
      ``P(prefix = h, y_n = x) = P_n(h) M(h, x)``, ``M`` the one-position law under fresh
      uniforms;
    - **one-position law** in the form of lossless claims 1-2: with a draft,
      ``M = min(p, q)(x) + (1 - SA) r(x)`` where ``SA = sum min(p, q)``, ``SR = sum (p - q)^+``,
      ``SA + SR = 1`` (``Inv(V)``, proved for every ``V`` by ``lossless/sums_*``), and
      ``r = (p - q)^+ / SR`` (arbitrary when ``SR = 0``); without a draft (non-SI) ``M = p(x)``.
    Induction on ``n`` (meta level; base ``n = 0``: the empty prefix, ``P_0 = Pi_0 = 1``) then
    gives the law ``prod p(y_i | y_<i)`` for every length.
    """
    prefix, token = z3.DeclareSort("Prefix"), z3.DeclareSort("Token")
    R = z3.RealSort()
    p = z3.Function("p", prefix, token, R)
    q = z3.Function("q", prefix, token, R)
    law_n = z3.Function("P_n", prefix, R)
    pi_n = z3.Function("Pi_n", prefix, R)
    sa = z3.Function("SA", prefix, R)
    sr = z3.Function("SR", prefix, R)
    h, h_other = z3.Consts("h h_other", prefix)
    x = z3.Const("x", token)
    joint, r, m_hx = z3.Reals("joint r M")
    drafted = z3.Bool("drafted")
    row = h_other if mutant == "row_on_other_prefix" else h
    px, qx = p(row, x), q(row, x)
    excess = z3.If(px >= qx, px - qx, 0)
    hyps = [
        law_n(h) == pi_n(h),  # induction hypothesis
        law_n(h) >= 0,
        law_n(h) <= 1,
        p(h, x) >= 0,
        p(h, x) <= 1,
        px >= 0,
        px <= 1,
        qx >= 0,
        qx <= 1,
        sa(row) >= 0,
        sr(row) >= 0,
        sa(row) + sr(row) == 1,
        _min(px, qx) <= sa(row),
        excess <= sr(row),
        z3.Implies(sr(row) > 0, r == excess / sr(row)),
        z3.Implies(sr(row) == 0, z3.And(r >= 0, r <= 1)),
        m_hx == z3.If(drafted, _min(px, qx) + (1 - sa(row)) * r, px),
    ]
    if mutant == "row_on_other_prefix":
        hyps.append(h_other != h)
    if mutant == "dependent_uniforms":
        # without independence only the Frechet bounds tie the joint to its marginals
        hyps += [
            joint <= law_n(h),
            joint <= m_hx,
            joint >= law_n(h) + m_hx - 1,
            joint >= 0,
        ]
    else:
        hyps.append(joint == law_n(h) * m_hx)
    claim = joint == pi_n(h) * p(h, x)

    def render(m: z3.ModelRef) -> str:
        def ev(e: z3.ExprRef) -> str:
            return str(m.eval(e, model_completion=True))

        return (
            f"drafted = {ev(drafted)}, P_n(h) = {ev(law_n(h))}, p(x|h) = {ev(p(h, x))}, "
            f"row used p(x|.) = {ev(px)}, q = {ev(qx)}, M = {ev(m_hx)}, joint = {ev(joint)}"
        )

    return Problem(hyps, claim, render)


# ---------------------------------------------------------------- theorems


N_SAME_K = 6
SAME_K = [(k, k) for k in (1, 2, 3, 4)]
N_ANY_K = 6


def _any_k_pairs(ks: Sequence[int]) -> list[tuple[int, int]]:
    # k' = N_ANY_K stands for every k' >= N_ANY_K: a segment drafts d <= N - 1 < k' then, so
    # it is never a full block. (k' = N - 1 is not enough: at N = 6, a = 111111, c = 3t/2,
    # SI_5 = 10t (a full block, then the bonus draft) but SI_6 = 9t.)
    return [(k, k2) for k in ks for k2 in range(1, N_ANY_K + 1)]


def _any_c(c: z3.ArithRef) -> z3.BoolRef:
    return c > 0


THEOREMS = [
    Theorem(
        name="rejection_dsi_le_nonsi_step",
        family=FAMILY,
        hypotheses="rejection mode; every N (strong induction on p, base D_{-1} = 0); t, c, d "
        "symbolic with c + min(d, c) <= t (d = 0: c <= t); step facts of the module docstring "
        "(argued for d = 0 and any S; tested for d in {t/10, t/2, fails}, S in {1, 2, 64}, "
        "N <= 4)",
        claim="D_p <= (p + 1) t, hence DSI <= N t = non-SI",
        expected="proved",
        rlimit=5_000_000,
        build=_step,
        mutants=(
            Mutant(
                "c <= t but the restart delay min(d, c) > t - c",
                lambda: _step("nonsi", "restart_delay"),
            ),
            Mutant("d = 0 and c > t", lambda: _step("nonsi", "c_gt_t")),
            Mutant(
                "the chain waits for a preempted task's ack (d > 0)",
                lambda: _step("nonsi", "chain_waits_for_ack"),
            ),
        ),
    ),
    Theorem(
        name="rejection_dsi_bound_step",
        family=FAMILY,
        hypotheses="rejection mode; every N; every t, c > 0, d >= 0; the same step facts "
        "(argued for d = 0 and any S; tested for d in {t/10, t/2, fails}, S in {1, 2, 64}, "
        "c/t in {1/4, 1/2, 3/4, 1, 3/2}, N <= 4)",
        claim="D_p <= (p + 1) max(t, c + min(d, c)), hence DSI <= N max(t, c + min(d, c))",
        expected="proved",
        rlimit=5_000_000,
        build=lambda: _step("bound"),
        mutants=(
            Mutant(
                "the bound without the restart delay: N max(t, c)",
                lambda: _step("bound", "no_delay_term"),
            ),
        ),
    ),
    Theorem(
        name="rejection_dsi_wait_never_binds_if_c_le_t",
        family=FAMILY,
        hypotheses="rejection mode, d = 0, enough servers; every N, k, offset i >= 1 "
        "(D_{i-1} >= A_{i-1} by D = max(A, R); i = 0 by hand: T + c <= T + t); 0 < c <= t",
        claim="A_i <= R_i (so, argued and tested: DSI in rejection mode has the greedy "
        "model's latency, dsi_latency)",
        expected="proved",
        rlimit=2_000_000,
        build=_wait_never_binds,
        mutants=(Mutant("c > t", lambda: _wait_never_binds(c_le_t=False)),),
    ),
    Theorem(
        name="rejection_draft_never_binds_any_delay",
        family=FAMILY,
        hypotheses="rejection mode, every cancellation delay d >= 0, every S, every N, k, "
        "offset i; c + min(d, c) <= t; the drafter's restart and pace and the start of the "
        "task of each row as runtime facts (argued, asserted on every commit in the tests)",
        claim="A_i <= R_i: every decision is made when a target task delivers, so the greedy "
        "step facts (a server freed at D_{p-1}, the chain first) hold for every d",
        expected="proved",
        rlimit=2_000_000,
        build=_draft_never_binds_any_delay,
        mutants=(Mutant("c + delta > t", lambda: _draft_never_binds_any_delay(slow=True)),),
    ),
    Theorem(
        name="rejection_si_ge_greedy_si_segment",
        family=FAMILY,
        hypotheses="one SI segment from the same position (same starts: argued), "
        "rejection-mode start U >= greedy start G; segment costs of the two evaluators "
        "(transcribed by hand); every d >= 0, t, c > 0; induction over segments (meta level)",
        claim="rejection-mode SI ends the segment no earlier than greedy SI: SI_rej >= SI_greedy",
        expected="proved",
        rlimit=2_000_000,
        build=_si_rejection_ge_greedy,
        mutants=(Mutant("reversed: greedy SI ends later", lambda: _si_rejection_ge_greedy(True)),),
    ),
    Theorem(
        name="rejection_dsi_slower_than_nonsi_c_gt_t_N4",
        family=FAMILY,
        hypotheses="rejection mode, every pattern of length 4, k in {1, 2}, enough servers, "
        "d = 0, c > t (symbolic), t = 1",
        claim="DSI_k <= N t",
        expected="counterexample",
        rlimit=5_000_000,
        build=lambda: _dsi_vs_nonsi_bounded(4, c_gt_t=True),
        mutants=(Mutant("control: c <= t", lambda: _dsi_vs_nonsi_bounded(4, c_gt_t=False)),),
    ),
    Theorem(
        name=f"rejection_dsi_k_le_si_k_N{N_SAME_K}",
        family=FAMILY,
        hypotheses="rejection mode (SI with the deferred bonus), every pattern of every length "
        f"N <= {N_SAME_K}, k in 1..4, every c > 0 (symbolic), t = 1, enough servers, d = 0",
        claim="DSI_k <= SI_k",
        expected="proved",
        rlimit=20_000_000,
        build=lambda: _compare(N_SAME_K, SAME_K, _any_c),
        mutants=(
            Mutant(
                "reversed: SI_k <= DSI_k",
                lambda: _compare(N_SAME_K, SAME_K, _any_c, reverse=True),
            ),
        ),
    ),
    Theorem(
        name=f"rejection_dsi12_le_si_any_k_N{N_ANY_K}",
        family=FAMILY,
        hypotheses=f"rejection mode, every pattern of every length N <= {N_ANY_K}, every c > 0, "
        f"t = 1, SI with any fixed lookahead k' in 1..{N_ANY_K} (larger k' act as "
        f"{N_ANY_K} here: d <= N - 1 < k'), enough servers, d = 0",
        claim="DSI_1 <= SI_k' and DSI_2 <= SI_k'",
        expected="proved",
        rlimit=20_000_000,
        build=lambda: _compare(N_ANY_K, _any_k_pairs((1, 2)), _any_c),
        mutants=(
            Mutant(
                "DSI_3 in place of DSI_1, DSI_2",
                lambda: _compare(N_ANY_K, _any_k_pairs((3,)), _any_c),
            ),
        ),
    ),
    Theorem(
        name="rejection_dsi3_slower_than_si2_N4",
        family=FAMILY,
        hypotheses="rejection mode, every pattern of length 4, every c > 0, t = 1",
        claim="DSI_3 <= SI_2",
        expected="counterexample",
        rlimit=5_000_000,
        build=lambda: _compare(4, [(3, 2)], _any_c, nmin=4),
        mutants=(Mutant("control: DSI_1 <= SI_2", lambda: _compare(4, [(1, 2)], _any_c, nmin=4)),),
    ),
    Theorem(
        name="rejection_law_step_over_positions",
        family=FAMILY,
        hypotheses="every vocabulary and prefix set (uninterpreted sorts); P_n(h) = Pi_n(h); "
        "row and draft on the committed prefix (checker); position n's keyed uniforms "
        "independent of earlier positions'; the one-position law of lossless claims 1-2",
        claim="P_{n+1}(h x) = Pi_n(h) p(x | h); with induction on n: the law of every length",
        expected="proved",
        rlimit=2_000_000,
        build=_law_step,
        mutants=(
            Mutant("row computed on another prefix", lambda: _law_step("row_on_other_prefix")),
            Mutant(
                "position n's uniforms dependent on the prefix",
                lambda: _law_step("dependent_uniforms"),
            ),
        ),
    ),
]
