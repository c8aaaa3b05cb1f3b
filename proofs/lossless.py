"""Losslessness of the rejection rule (Leviathan et al. / Chen et al.) as z3 theorems.

The rule (docs/design.md, "Decision rules"): a draft `x ~ q` is accepted iff `u < p(x)/q(x)` with
`u ~ U[0, 1)`; on rejection a token is sampled from `max(0, p - q)` normalised. Claims:

1. Per-token lemmas over the reals (hence for every vocabulary size): the probability of drawing
   and accepting `x` is `q(x) P(u < p(x)/q(x)) = min(p(x), q(x))`, and pointwise, for every
   value of `u` in `[0, 1)`, a token with `p(x) = 0` is never emitted (the strict `<` matters
   exactly here: with `u <= p/q` the value `u = 0` accepts it; under a continuous uniform the
   two rules have the same law, but real generators return 0.0 with positive probability).
2. Every vocabulary size, by induction over an integer token index: `p, q : Int -> Real` are
   uninterpreted, and the prefix sums `SP(j) = sum_{i<j} p(i)` (likewise `SQ`, `SA` for
   `min(p, q)`, `SR` for `max(0, p - q)`) are uninterpreted functions constrained only by their
   recursive definitions at the step index. z3 proves, quantifier-free, the base case `Inv(0)`
   and the step `Inv(j) => Inv(j+1)` for a symbolic `j` and a symbolic token `x`, where
   `Inv(j)` says `SA(j) + SR(j) = SP(j)`, `0 <= SA(j) <= SQ(j)`, `SR(j) >= 0` and, if `x < j`,
   `max(0, p(x) - q(x)) <= SR(j)`. Induction on the naturals (the one meta-level step, not done
   by z3) gives `Inv(n)` for every `n`. The final theorem assumes `Inv(n)` (and its mirror image
   with `p, q` swapped, the same lemma by symmetry) and proves `P(out = x) = p(x)` with the
   rejection probability `1 - SA(n)` (by lemma 1 the total acceptance mass is `SA(n)`) and
   normaliser `SR(n)`; when `SR(n) = 0` the residual is arbitrary (it is drawn with probability
   0).
3. Direct symbolic statement for vocabularies of 2..5 tokens (real-valued `p`, `q`).
4. The k-draft chain with the bonus token (vocabulary 2, k = 1, 2, symbolic conditional rows
   `p(.|h)`, `q(.|h)`): the emitted tokens, completed by plain target sampling up to `k + 1`
   tokens, have exactly the target's joint law `prod_i p(y_i | y_<i)`.

Mutants that must be refuted: `u <= p/q`, residual `max(0, q - p)`, sampling the rejection from
`p` instead of the residual, a `q` other than the one the draft was sampled from, verifying a
draft against the wrong row and drawing the bonus token from the drafter.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import z3

from proofs.theorem import Mutant, Problem, Theorem

__all__ = ["THEOREMS"]

FAMILY = "lossless"


def _min(x: z3.ArithRef, y: z3.ArithRef) -> z3.ArithRef:
    return z3.If(x <= y, x, y)


def _pos(x: z3.ArithRef) -> z3.ArithRef:
    return z3.If(x >= 0, x, 0)


def _accept_prob(p: z3.ArithRef, q: z3.ArithRef, strict: bool = True) -> z3.ArithRef:
    """P(u < p/q) (or P(u <= p/q)) for u ~ U[0, 1): min(1, p/q); both equal under this law."""
    del strict  # a continuous uniform has no atoms; see `_support` for where `<` matters
    return z3.If(p >= q, z3.RealVal(1), p / q)


# ---------------------------------------------------------------- 1. per-token lemmas


def _accept_mass(wrong_q: bool = False) -> Problem:
    p, q, q2 = z3.Reals("p q q_used")
    hyps = [p >= 0, q >= 0, p <= 1, q <= 1, q2 > 0, q2 <= 1]
    used = q2 if wrong_q else q
    mass = z3.If(q > 0, q * _accept_prob(p, used), 0)
    return Problem(hyps, mass == _min(p, q))


def _support(nonstrict: bool = False, residual_q_minus_p: bool = False) -> Problem:
    p, q, u = z3.Reals("p q u")
    hyps = [p == 0, q > 0, q <= 1, u >= 0, u < 1]
    accept = u <= p / q if nonstrict else u < p / q
    residual = _pos(q - p) if residual_q_minus_p else _pos(p - q)
    return Problem(hyps, z3.And(z3.Not(accept), residual == 0))


# ---------------------------------------------------------------- 2. every vocabulary size

_I = z3.IntSort()
_R = z3.RealSort()


def _vocab_functions() -> dict[str, z3.FuncDeclRef]:
    return {name: z3.Function(name, _I, _R) for name in ("p", "q", "SP", "SQ", "SA", "SR")}


def _inv(f: dict[str, z3.FuncDeclRef], j: z3.ArithRef, x: z3.ArithRef) -> z3.BoolRef:
    p, q = f["p"], f["q"]
    return z3.And(
        f["SA"](j) + f["SR"](j) == f["SP"](j),
        f["SA"](j) >= 0,
        f["SA"](j) <= f["SQ"](j),
        f["SR"](j) >= 0,
        z3.Implies(z3.And(0 <= x, x < j), _pos(p(x) - q(x)) <= f["SR"](j)),
    )


def _sums_base() -> Problem:
    f = _vocab_functions()
    x = z3.Int("x")
    hyps = [f[s](0) == 0 for s in ("SP", "SQ", "SA", "SR")]
    return Problem(hyps, _inv(f, z3.IntVal(0), x))


def _sums_step(residual_q_minus_p: bool = False) -> Problem:
    f = _vocab_functions()
    j, x = z3.Ints("j x")
    p, q = f["p"], f["q"]
    res = _pos(q(j) - p(j)) if residual_q_minus_p else _pos(p(j) - q(j))
    hyps = [
        j >= 0,
        p(j) >= 0,
        q(j) >= 0,
        f["SP"](j + 1) == f["SP"](j) + p(j),
        f["SQ"](j + 1) == f["SQ"](j) + q(j),
        f["SA"](j + 1) == f["SA"](j) + _min(p(j), q(j)),
        f["SR"](j + 1) == f["SR"](j) + res,
        _inv(f, j, x),
    ]
    return Problem(hyps, _inv(f, j + 1, x))


def _law_any_n(mutant: str = "") -> Problem:
    """P(out = x) = p(x) from Inv(n) (and its mirror with p, q swapped) for a symbolic n."""
    f = _vocab_functions()
    g = dict(f, p=f["q"], q=f["p"], SP=f["SQ"], SQ=f["SP"], SR=z3.Function("SRqp", _I, _R))
    n, x = z3.Ints("n x")
    p, q = f["p"](x), f["q"](x)
    free = z3.Real("residual_when_never_rejected")
    hyps = [
        n >= 1,
        0 <= x,
        x < n,
        p >= 0,
        q >= 0,
        f["SP"](n) == 1,
        f["SQ"](n) == 1,
        _inv(f, n, x),
        _inv(g, n, x),  # the same lemma for (q, p): SA(n) + SRqp(n) = SQ(n)
        free >= 0,
        free <= 1,
    ]
    reject = 1 - f["SA"](n)  # lemma 1 termwise: total acceptance mass = sum_y min(p, q)
    norm, top = f["SR"](n), _pos(p - q)
    if mutant == "residual_q_minus_p":
        norm, top = g["SR"](n), _pos(q - p)
    residual = z3.If(norm > 0, top / norm, free)
    if mutant == "reject_samples_p":
        residual = p
    out = z3.If(q > 0, q * _accept_prob(p, q), 0) + reject * residual
    return Problem(hyps, out == p)


# ---------------------------------------------------------------- 3. small vocabularies


def _law_small_n(n: int, mutant: str = "") -> Problem:
    p = [z3.Real(f"p{i}") for i in range(n)]
    q = [z3.Real(f"q{i}") for i in range(n)]
    used = [z3.Real(f"q_used{i}") for i in range(n)] if mutant == "wrong_q" else q
    free = [z3.Real(f"r{i}") for i in range(n)]
    hyps = [z3.Sum(p) == 1, z3.Sum(q) == 1, z3.Sum(free) == 1]
    hyps += [v >= 0 for v in (*p, *q, *free)]
    if mutant == "wrong_q":
        hyps += [z3.Sum(used) == 1] + [v > 0 for v in used]
    acc = [z3.If(q[i] > 0, q[i] * _accept_prob(p[i], used[i]), 0) for i in range(n)]
    reject = 1 - z3.Sum(acc)
    if mutant == "residual_q_minus_p":
        top = [_pos(q[i] - p[i]) for i in range(n)]
    else:
        top = [_pos(p[i] - used[i]) for i in range(n)]
    norm = z3.Sum(top)
    outs = []
    for i in range(n):
        residual = p[i] if mutant == "reject_samples_p" else z3.If(norm > 0, top[i] / norm, free[i])
        outs.append(acc[i] + reject * residual == p[i])

    def render(model: z3.ModelRef) -> str:
        def show(vs: list[z3.ArithRef]) -> str:
            return "(" + ", ".join(str(model.eval(v)) for v in vs) + ")"

        text = f"p={show(p)} q={show(q)}"
        if mutant == "wrong_q":
            text += f" q_used={show(used)}"
        got = [
            model.eval(acc[i] + reject * z3.If(norm > 0, top[i] / norm, free[i])) for i in range(n)
        ]
        return text + " P(out)=(" + ", ".join(str(v) for v in got) + ")"

    return Problem(hyps, outs, render)


# ---------------------------------------------------------------- 4. k-draft chain, vocab 2


def _chain(k: int, mutant: str = "") -> Problem:
    """Joint law of SI/DSI's emitted tokens (completed by target sampling) for vocabulary {0,1}."""
    hists = [h for m in range(k + 2) for h in itertools.product((0, 1), repeat=m)]
    prow = {h: z3.Real("p1|" + "".join(map(str, h))) for h in hists}
    qrow = {h: z3.Real("q1|" + "".join(map(str, h))) for h in hists if len(h) < k}
    free = {h: z3.Real("r1|" + "".join(map(str, h))) for h in qrow}
    hyps = [z3.And(v >= 0, v <= 1) for v in (*prow.values(), *qrow.values(), *free.values())]

    def pr(h: tuple[int, ...], y: int) -> z3.ArithRef:
        return prow[h] if y == 1 else 1 - prow[h]

    def qr(h: tuple[int, ...], y: int) -> z3.ArithRef:
        return qrow[h] if y == 1 else 1 - qrow[h]

    def target(h: tuple[int, ...], y: tuple[int, ...]) -> z3.ArithRef:
        out: z3.ArithRef = z3.RealVal(1)
        for i, yi in enumerate(y):
            out = out * pr(h + y[:i], yi)
        return out

    def residual(h: tuple[int, ...], y: int) -> z3.ArithRef:
        row: Callable[[tuple[int, ...], int], z3.ArithRef] = pr
        tops = {v: _pos(row(h, v) - qr(h, v)) for v in (0, 1)}
        if mutant == "residual_q_minus_p":
            tops = {v: _pos(qr(h, v) - row(h, v)) for v in (0, 1)}
        norm = tops[0] + tops[1]
        fallback = free[h] if y == 1 else 1 - free[h]
        return z3.If(norm > 0, tops[y] / norm, fallback)

    law: dict[tuple[int, ...], z3.ArithRef] = {
        y: z3.RealVal(0) for y in itertools.product((0, 1), repeat=k + 1)
    }
    for x in itertools.product((0, 1), repeat=k):
        weight: z3.ArithRef = z3.RealVal(1)
        for i in range(k):
            weight = weight * qr(x[:i], x[i])
        for i in range(k):
            h = x[:i]
            verify_row = x[: i + 1] if mutant == "wrong_row" else h
            acc = z3.If(qr(h, x[i]) > 0, _accept_prob(pr(verify_row, x[i]), qr(h, x[i])), 1)
            for y in law:
                if y[:i] == h:  # rejected at i: emit h + residual token, complete with target
                    law[y] = law[y] + weight * (1 - acc) * residual(h, y[i]) * target(
                        y[: i + 1], y[i + 1 :]
                    )
            weight = weight * acc
        for y in law:
            if y[:k] == x:
                bonus = qr(x[: k - 1], y[k]) if mutant == "bonus_from_q" else pr(x, y[k])
                law[y] = law[y] + weight * bonus
    claim = [law[y] == target((), y) for y in law]

    def render(model: z3.ModelRef) -> str:
        rows = ", ".join(f"{v}={model.eval(v)}" for v in (*prow.values(), *qrow.values()))
        bad = [
            f"P({''.join(map(str, y))})={model.eval(law[y])} vs {model.eval(target((), y))}"
            for y in law
            if not z3.is_true(model.eval(law[y] == target((), y)))
        ]
        return rows + "; " + "; ".join(bad[:2])

    return Problem(hyps, claim, render)


# ---------------------------------------------------------------- the theorems

_RULE = "accept x ~ q iff u < p(x)/q(x), u ~ U[0,1); else sample max(0, p - q) normalised"

THEOREMS: list[Theorem] = [
    Theorem(
        name="accept_mass",
        family=FAMILY,
        hypotheses="0 <= p(x), q(x) <= 1; u ~ U[0,1) so P(u < r) = min(1, r)",
        claim="q(x) * P(u < p(x)/q(x)) = min(p(x), q(x)) (the q(x) = 0 term is 0)",
        expected="proved",
        rlimit=2_000_000,
        build=_accept_mass,
        mutants=(Mutant("ratio uses a q other than the sampled one", lambda: _accept_mass(True)),),
    ),
    Theorem(
        name="never_emits_p_zero",
        family=FAMILY,
        hypotheses="p(x) = 0 < q(x) <= 1; any value u in [0, 1) (pointwise, not in law)",
        claim="the draft x is not accepted and the residual max(0, p - q) gives x weight 0",
        expected="proved",
        rlimit=2_000_000,
        build=_support,
        mutants=(
            Mutant("accept iff u <= p/q", lambda: _support(nonstrict=True)),
            Mutant("residual max(0, q - p)", lambda: _support(residual_q_minus_p=True)),
        ),
    ),
    Theorem(
        name="sums_base",
        family=FAMILY,
        hypotheses="empty prefix sums are 0",
        claim="Inv(0)",
        expected="proved",
        rlimit=2_000_000,
        build=_sums_base,
        mutants=(
            Mutant(
                "control: Inv(0) with SR(0) = 1 is not forced",
                lambda: Problem([], _sums_base().claim),
            ),
        ),
    ),
    Theorem(
        name="sums_step",
        family=FAMILY,
        hypotheses="symbolic j >= 0, x; p(j), q(j) >= 0; prefix-sum recurrences at j; Inv(j)",
        claim="Inv(j+1): SA + SR = SP, 0 <= SA <= SQ, SR >= 0, max(0, p(x) - q(x)) <= SR",
        expected="proved",
        rlimit=5_000_000,
        build=_sums_step,
        mutants=(Mutant("residual max(0, q - p)", lambda: _sums_step(True)),),
    ),
    Theorem(
        name="rejection_law_any_n",
        family=FAMILY,
        hypotheses="any vocabulary size n >= 1, token 0 <= x < n, sum p = sum q = 1, p, q >= 0, "
        "Inv(n) (sums_base + sums_step by induction), its p/q mirror, " + _RULE,
        claim="P(out = x) = p(x)",
        expected="proved",
        rlimit=10_000_000,
        build=_law_any_n,
        mutants=(
            Mutant("residual max(0, q - p)", lambda: _law_any_n("residual_q_minus_p")),
            Mutant("on rejection sample from p", lambda: _law_any_n("reject_samples_p")),
        ),
    ),
    *[
        Theorem(
            name=f"rejection_law_n{n}",
            family=FAMILY,
            hypotheses=f"vocabulary of {n} tokens, real p, q >= 0 summing to 1, " + _RULE,
            claim="P(out = x) = p(x) for every token x",
            expected="proved",
            rlimit=50_000_000,
            build=lambda n=n: _law_small_n(n),
            mutants=(
                Mutant("residual max(0, q - p)", lambda n=n: _law_small_n(n, "residual_q_minus_p")),
                Mutant("ratio and residual use another q", lambda n=n: _law_small_n(n, "wrong_q")),
                Mutant(
                    "on rejection sample from p", lambda n=n: _law_small_n(n, "reject_samples_p")
                ),
            ),
        )
        for n in (2, 3, 4, 5)
    ],
    *[
        Theorem(
            name=f"chain_k{k}_vocab2",
            family=FAMILY,
            hypotheses=f"vocabulary {{0,1}}, k = {k} drafts x_i ~ q(.|x_<i), symbolic rows "
            "p(.|h), q(.|h); verify x_i with p(.|x_<i), stop at the first rejection with a "
            "residual token, bonus token from p(.|x) if all accepted; completed by target sampling",
            claim=f"the law of the {k + 1} emitted tokens is prod_i p(y_i | y_<i)",
            expected="proved",
            rlimit=200_000_000,
            build=lambda k=k: _chain(k),
            mutants=(
                Mutant(
                    "verify x_i against p(.|x_<=i) (off by one)", lambda k=k: _chain(k, "wrong_row")
                ),
                Mutant("bonus token drawn from q", lambda k=k: _chain(k, "bonus_from_q")),
                Mutant("residual max(0, q - p)", lambda k=k: _chain(k, "residual_q_minus_p")),
            ),
        )
        for k in (1, 2)
    ],
]
