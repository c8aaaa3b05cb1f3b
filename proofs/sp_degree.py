"""The SP degree DSI's policy needs: z3 theorems over one segment, symbolic drafter latency c.

Encoding (`_segment`): one segment of remaining length `L` starting at time 0 whose acceptance
run is `m` (draft `m` is the first rejected one), `t = 1` (every time is positively homogeneous
in `(t, c)`), `c` a symbolic real. It is `proofs.sp_degree_model.dsi_server_tasks` with every
branch on `c` turned into a z3 condition: the decision times `D_i`, whether the segment reaches
offset `i` (`cont_i`: earlier drafts accepted and arrived in time), its end, and per task an
existence condition, a start, a stop and the backend's processing order at equal times. The
number of servers held right after a task starts is a sum of `If`s over all tasks. By the
segment reduction (module docstring of `sp_degree_model`), the maximum over `L <= N`, `m < L`
is the degree needed over all patterns of length `N`; `tests/proofs` checks the encoding
against the Fraction evaluator, which tests/property/test_sp_degree.py checks against the
coordinator.

Theorems: with `x = (t - c)/(k c)` and `floor(x) = v` (`c` symbolic in the interval
`t/((v+1)k + 1) < c <= t/(vk + 1)`, plus `k c <= t`), no segment ever holds more than
`min(v + 2, 1 + ceil((L - 1)/k))` servers (sufficiency), and the mutant "one fewer" has a
counterexample (necessity). `sp_degree_one_fewer_k2` prints such a witness and re-runs it in the
simulator with `S` and `S - 1` servers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

import z3

from proofs.latency_model import _ceil_div, dsi_latency
from proofs.simcheck import simulate
from proofs.sp_degree_model import (
    BLOCK_START,
    RESULT_START,
    dsi_max_busy,
    sp_degree_latency_formula,
    sp_degree_wait_formula,
    worst_pattern,
)
from proofs.theorem import Mutant, Problem, Theorem

__all__ = ["THEOREMS", "segment_busy"]

FAMILY = "sp_degree"
_Task = tuple[z3.BoolRef, z3.ArithRef, z3.ArithRef, int]


def _min(x: z3.ArithRef, y: z3.ArithRef) -> z3.ArithRef:
    return z3.If(x <= y, x, y)


def _segment(length: int, m: int, k: int, t: z3.ArithRef, c: z3.ArithRef) -> list[_Task]:
    """Tasks `(exists, begin, stop, order)` of one segment (see the module docstring)."""

    def bb(i: int) -> z3.ArithRef:  # start of the block covering row i >= 1
        return min(_ceil_div(i, k) * k, length - 1) * c

    dec = [t]
    cont: list[z3.BoolRef] = [z3.BoolVal(True)]
    for i in range(1, length):
        dec.append(_min(bb(i) + t, dec[-1] + t))
        arrived = i * c <= dec[i - 1]  # draft i - 1 arrives at i c
        cont.append(z3.And(cont[-1], z3.BoolVal(i - 1 < m), arrived))
    end = dec[0]
    for i in range(1, length):
        end = z3.If(cont[i], dec[i], end)
    tasks: list[_Task] = [(z3.BoolVal(True), z3.RealVal(0), t, RESULT_START)]
    j = 1
    while (j - 1) * k + 1 <= length - 1:
        top = min(j * k, length - 1)
        begin = top * c
        stop = _min(begin + t, z3.If(cont[top], dec[top], end))
        tasks.append((begin <= end, begin, stop, BLOCK_START))
        j += 1
    for i in range(1, length):
        exists = z3.And(cont[i], bb(i) > dec[i - 1])
        tasks.append((exists, dec[i - 1], _min(dec[i - 1] + t, dec[i]), RESULT_START))
    return tasks


def segment_busy(tasks: Sequence[_Task]) -> list[tuple[z3.BoolRef, z3.ArithRef]]:
    """Per task: (it exists, servers held right after it starts), in the backend's order."""
    out = []
    for ex_e, b_e, _, o_e in tasks:
        terms = []
        for ex, b, s, o in tasks:
            started = b <= b_e if o <= o_e else b < b_e
            running = s >= b_e if o_e == BLOCK_START else s > b_e
            terms.append(z3.If(z3.And(ex, started, running), 1, 0))
        out.append((ex_e, z3.Sum(terms)))
    return out


def _interval(v: int, k: int, t: z3.ArithRef, c: z3.ArithRef, strict: bool) -> list:
    """floor((t - c)/(k c)) = v; `strict`: x is not an integer (no zero-length wait)."""
    if v < 0:
        return [c > t]
    upper = c * (v * k + 1) < t if strict else c * (v * k + 1) <= t
    return [upper, t < c * ((v + 1) * k + 1), k * c <= t]


_BUSY: dict[tuple[int, int, int, str, str], list[tuple[z3.BoolRef, z3.ArithRef]]] = {}


def _busy_terms(
    length: int, m: int, k: int, t: z3.ArithRef, c: z3.ArithRef
) -> list[tuple[z3.BoolRef, z3.ArithRef]]:
    """`segment_busy(_segment(...))`, built once per segment and symbol names (the terms do not
    depend on the bound or on the interval of c, so every claim and mutant shares them)."""
    key = (length, m, k, t.sexpr(), c.sexpr())
    if key not in _BUSY:
        _BUSY[key] = segment_busy(_segment(length, m, k, t, c))
    return _BUSY[key]


def _bound_claims(
    n: int, k: int, t: z3.ArithRef, c: z3.ArithRef, bound: Callable[[int], int]
) -> list[z3.BoolRef]:
    claims = []
    for length in range(1, n + 1):
        for m in range(length):
            for ex, busy in _busy_terms(length, m, k, t, c):
                claims.append(z3.Implies(ex, busy <= bound(length)))
    return [z3.And(*claims)]


def _closed_form(n: int, k: int, vs: Sequence[int], slack: int = 0) -> Problem:
    """Claim per v: busy <= min(v + 2, 1 + ceil((L-1)/k)) - slack (slack 1: the mutant)."""
    t, c = z3.Reals("t c")
    # one claim per interval of c; the hypotheses make every interval's c possible
    v_var = z3.Int("v")
    hyps = [t == 1, c > 0, v_var >= min(vs), v_var <= max(vs)]
    claims = []
    for v in vs:

        def bound(length: int, v: int = v) -> int:
            return min(v + 2, 1 + _ceil_div(length - 1, k)) - slack

        claims.append(
            z3.Implies(
                z3.And(v_var == v, *_interval(v, k, t, c, False)),
                z3.And(*_bound_claims(n, k, t, c, bound)),
            )
        )
    hyps.append(z3.Or(*[z3.And(v_var == w, *_interval(w, k, t, c, False)) for w in vs]))
    return Problem(hyps, claims, _render_cv(t, c, v_var))


def _slow_blocks(n: int, k: int, bound: int) -> Problem:
    """t/k < c <= t: the chain runs beside the blocks; claim busy <= bound."""
    t, c = z3.Reals("t c")
    hyps = [t == 1, k * c > t, c <= t]
    return Problem(hyps, _bound_claims(n, k, t, c, lambda _length: bound), _render_cv(t, c))


def _frac(model: z3.ModelRef, x: z3.ArithRef) -> Fraction:
    return Fraction(str(model.eval(x, model_completion=True).as_fraction()))


def _render_cv(t: z3.ArithRef, c: z3.ArithRef, v: z3.ArithRef | None = None):
    def render(model: z3.ModelRef) -> str:
        text = f"c/t = {_frac(model, c) / _frac(model, t)}"
        if v is not None:
            text += f", floor((t-c)/(kc)) = {model.eval(v, model_completion=True)}"
        return text

    return render


def _one_fewer(n: int, k: int, v: int, slack: int = 1) -> Problem:
    """c with floor(x) = v, x not an integer: some segment holds v + 2 - slack + 1 servers."""
    t, c = z3.Reals("t c")
    hyps = [t == 1, *_interval(v, k, t, c, strict=True)]
    claims = _bound_claims(n, k, t, c, lambda _length: v + 2 - slack)
    return Problem(hyps, claims, lambda model: _witness(_frac(model, c), k, n, v + 2))


def _witness(c: Fraction, k: int, n: int, s_star: int) -> str:
    """Re-runs, in the simulator with S* and S* - 1 servers, the first pattern (a segment of
    length L <= n with acceptance run m) that holds S* servers and is slower with one fewer
    (raises if there is none, or if the code disagrees with the model)."""
    t = Fraction(1)
    assert s_star == sp_degree_wait_formula(t, c, k, n) == sp_degree_latency_formula(t, c, k)
    assert worst_pattern(t, c, k, n)[0] == s_star
    for length in range(1, n + 1):
        for m in range(length):
            a = [1] * m + [0] * (length - m)
            if dsi_max_busy(a, t, c, k) < s_star:
                continue
            model = dsi_latency(a, t, c, k)
            enough = simulate("dsi", a, t, c, k, s_star)
            fewer = simulate("dsi", a, t, c, k, s_star - 1)
            assert enough.end == model and enough.stats.task_waits == 0
            assert enough.stats.max_busy_servers == s_star
            if not (fewer.stats.task_waits > 0 and fewer.end > model):
                continue
            starts = [f"{e.detail}@{e.time}" for e in enough.trace if e.what == "task_start"]
            return (
                f"k = {k}, c/t = {c}, a = {''.join(map(str, a))}: S* = {s_star} servers busy "
                f"at once; task starts (kind@time, S = {s_star}): {', '.join(starts)}\n"
                f"simulator: S = {s_star}: DSI = {enough.end} t = model, 0 waits; "
                f"S = {s_star - 1}: DSI = {fewer.end} t > {model} t, "
                f"{fewer.stats.task_waits} wait(s)"
            )
    raise AssertionError(f"no pattern of length <= {n} is slower with {s_star - 1} servers")


def _all_n(variant: str = "") -> Problem:
    """The SP degree for every N (`k c <= t`), as facts about one segment with symbolic indices.

    Symbols: `k >= 1`, `v = floor((t - c)/(k c)) >= 0`, the segment length `L >= 2`, its
    acceptance run `m < L`, a row `i` and two block indices `i2 < j`; `t = 1`, `c` symbolic.
    `q_x = ceil(x/k)` is an integer pinned by `(q - 1) k < x <= q k`. From `_segment`:
    row `x >= 1` is covered by the block starting at `bb(x) = min(q_x k, L - 1) c`, block `y`
    starts at `min(y k, L - 1) c` and exists while that is no later than the segment's end
    `D_m`, and holds its server at most `t`. Claims (each for all values of the symbols):
      `dec`: `D_x = bb(x) + t` solves the recurrence `D_x = min(bb(x) + t, D_{x-1} + t)`,
        `D_0 = t` (so, by induction on `x`, it is the decision time of row `x`);
      `arrive`: draft `i - 1` arrives (at `i c`) by `D_{i-1}`: the segment reaches offset `m`;
      `nochain`: `bb(i) <= D_{i-1}`: no chain task exists (only the zero-draft task and blocks);
      `window`: a block `i2 < j` still running when block `j` starts has `i2 >= j - v - 1`;
      `zero`: the zero-draft task still running when block `j` starts implies `j <= v + 1`.
    Counting (by hand): at block `j`'s start at most `min(j, v + 2)` blocks run, plus the
    zero-draft task only if `j <= v + 1`: at most `v + 2` servers; and at most `1 + J` with
    `J = ceil((L - 1)/k)` blocks. `variant` selects a mutant: `window` / `zero` claim one block
    less; `slow` replaces `k c <= t` by `t/k < c <= t` (the chain then runs beside the blocks).
    `variant="lat"`: `v = ceil(x)` and the last two claims for tasks still running *after*
    block `j` starts (`i2 >= j - v`, zero-draft task only if `j <= v`): at most `v + 1 = S_lat`
    tasks overlap for a positive time (`lat_window` / `lat_zero`: its mutants).
    """
    t, c = z3.RealVal(1), z3.Real("c")
    k, v, n_len, m, i, i2, j = z3.Ints("k v L m i i2 j")
    q_i, q_prev, q_m = z3.Ints("q_i q_im1 q_m")

    def covered(x: z3.ArithRef, q: z3.ArithRef) -> z3.ArithRef:  # bb(x), 0 at x = 0
        return z3.If(x == 0, 0, z3.If(q * k <= n_len - 1, q * k, n_len - 1) * c)

    def is_ceil(q: z3.ArithRef, x: z3.ArithRef) -> z3.BoolRef:
        return z3.And((q - 1) * k < x, x <= q * k)

    def begin(y: z3.ArithRef) -> z3.ArithRef:
        return z3.If(y * k <= n_len - 1, y * k, n_len - 1) * c

    hyps = [c > 0, k >= 1, n_len >= 2, m >= 0, m <= n_len - 1]
    strict = variant.startswith("lat")
    if variant == "slow":
        hyps += [k * c > t, c <= t]
    elif strict:  # v = ceil(x) here: the tasks that overlap for a positive time
        hyps += [k * c <= t, v >= 0, (v - 1) * k * c < t - c, t - c <= v * k * c]
    else:
        hyps += [k * c <= t, v >= 0, v * k * c <= t - c, t - c < (v + 1) * k * c]
    hyps += [i >= 1, i <= n_len - 1, is_ceil(q_i, i), is_ceil(q_prev, i - 1), is_ceil(q_m, m)]
    hyps += [j >= 1, (j - 1) * k + 1 <= n_len - 1]  # block j exists in `_segment`'s loop
    d_prev = covered(i - 1, q_prev) + t
    block_i = covered(i, q_i) + t
    exists_j = begin(j) <= covered(m, q_m) + t  # block j starts by the segment's end D_m
    w = 1 if variant in ("window", "lat_window") else 0
    z = 1 if variant in ("zero", "lat_zero") else 0
    claims = [
        z3.If(block_i <= d_prev + t, block_i, d_prev + t) == block_i,
        i * c <= d_prev,
        covered(i, q_i) <= d_prev,
    ]
    if strict:  # still running *after* block j's start (it does not end at that instant)
        claims += [
            z3.Implies(
                z3.And(exists_j, i2 >= 1, i2 < j, begin(i2) + t > begin(j)), i2 >= j - v + w
            ),
            z3.Implies(z3.And(exists_j, begin(j) < t), j <= v - z),
        ]
    else:
        claims += [
            z3.Implies(
                z3.And(exists_j, i2 >= 1, i2 < j, begin(i2) + t >= begin(j)), i2 >= j - v - 1 + w
            ),
            z3.Implies(z3.And(exists_j, begin(j) <= t), j <= v + 1 - z),
        ]
    return Problem(hyps, claims)


def _late_drafter(c_gt_t: bool = True) -> Problem:
    """c > t, every N: draft 0 arrives after row 0 is decided, so each segment decides one
    position with the zero-draft task alone; no block starts by its end (one server)."""
    t, c = z3.RealVal(1), z3.Real("c")
    k, n_len, y = z3.Ints("k L y")
    hyps = [c > t if c_gt_t else z3.And(c > 0, c <= t), k >= 1, n_len >= 2, y >= 1]
    begin = z3.If(y * k <= n_len - 1, y * k, n_len - 1) * c
    return Problem(hyps, [1 * c > t, begin > t])  # draft 0 late; block y after the end D_0 = t


_HYP = (
    "one segment of length L <= {n} (every pattern of length <= {n}, by the segment "
    "reduction), acceptance run m < L, c symbolic with floor((t-c)/(kc)) = v, v in {vs}, "
    "k c <= t or c > t; t = 1; coordinator's policy, instant preemption, backend's tie order"
)
_CASES = {1: (7, (-1, 0, 1, 2, 3, 4, 5)), 2: (8, (-1, 0, 1, 2)), 3: (8, (-1, 0, 1))}

THEOREMS: list[Theorem] = [
    *[
        Theorem(
            name=f"sp_degree_exact_k{k}_N{n}",
            family=FAMILY,
            hypotheses=_HYP.format(n=n, vs=list(vs)),
            claim="servers busy at once <= min(2 + floor((t - c)/(k c)), 1 + ceil((N-1)/k)) "
            "(sufficient); mutant: one fewer is refuted (necessary)",
            expected="proved",
            rlimit=300_000_000,
            build=lambda n=n, k=k, vs=vs: _closed_form(n, k, vs),
            mutants=tuple(
                Mutant(
                    f"one server fewer, v = {v}",
                    lambda n=n, k=k, v=v: _closed_form(n, k, (v,), slack=1),
                )
                for v in vs
            ),
        )
        for k, (n, vs) in _CASES.items()
    ],
    *[
        Theorem(
            name=f"sp_degree_slow_blocks_le3_k{k}_N8",
            family=FAMILY,
            hypotheses="one segment, L <= 8, t/k < c <= t symbolic (the chain runs beside the "
            "blocks), t = 1; coordinator's policy",
            claim="servers busy at once <= 3",
            expected="proved",
            rlimit=300_000_000,
            build=lambda k=k: _slow_blocks(8, k, 3),
            mutants=(Mutant("at most 2", lambda k=k: _slow_blocks(8, k, 2)),),
        )
        for k in (2, 3)
    ],
    Theorem(
        name="sp_degree_all_n",
        family=FAMILY,
        hypotheses="every N (segment length L >= 2 symbolic), every k >= 1, every v = "
        "floor((t-c)/(kc)) >= 0 (k c <= t), acceptance run m < L, t = 1; coordinator's "
        "policy, instant preemption; the segment reduction and the final count by hand",
        claim="decision times D_x = bb(x) + t, every draft in time, no chain task, a block "
        "running at block j's start has index >= j - v - 1, the zero-draft task only if "
        "j <= v + 1: hence busy <= min(v + 2, 1 + ceil((L-1)/k)) = S_wait",
        expected="proved",
        rlimit=50_000_000,
        build=_all_n,
        mutants=(
            Mutant("window one block shorter (v + 1 servers)", lambda: _all_n("window")),
            Mutant("zero-draft task ends one block earlier", lambda: _all_n("zero")),
            Mutant("control: t/k < c <= t (chain beside the blocks)", lambda: _all_n("slow")),
        ),
    ),
    Theorem(
        name="sp_degree_lat_all_n",
        family=FAMILY,
        hypotheses="every N, every k >= 1, every v = ceil((t-c)/(kc)) >= 0 (k c <= t), "
        "acceptance run m < L, t = 1; coordinator's policy, instant preemption; the count, the "
        "segment reduction and 'a zero-length wait costs no latency' by hand (tested)",
        claim="as sp_degree_all_n, for tasks still running after block j starts: index >= "
        "j - v, the zero-draft task only if j <= v; hence at most 1 + ceil((t-c)/(kc)) = S_lat "
        "tasks overlap for a positive time",
        expected="proved",
        rlimit=50_000_000,
        build=lambda: _all_n("lat"),
        mutants=(
            Mutant("window one block shorter (v servers)", lambda: _all_n("lat_window")),
            Mutant("zero-draft task ends one block earlier", lambda: _all_n("lat_zero")),
        ),
    ),
    Theorem(
        name="sp_degree_late_drafter_all_n",
        family=FAMILY,
        hypotheses="every N, every k >= 1, c > t, t = 1; coordinator's policy",
        claim="each segment decides one position and starts no block: one server (S = 1)",
        expected="proved",
        rlimit=10_000_000,
        build=_late_drafter,
        mutants=(Mutant("control: 0 < c <= t", lambda: _late_drafter(False)),),
    ),
    Theorem(
        name="sp_degree_one_fewer_k2",
        family=FAMILY,
        hypotheses="k = 2, N <= 6, t/5 < c < t/3 (floor((t-c)/(2c)) = 1, not an integer), t = 1",
        claim="servers busy at once <= 2 (= S* - 1) on every pattern",
        expected="counterexample",
        rlimit=300_000_000,
        build=lambda: _one_fewer(6, 2, 1),
        mutants=(Mutant("control: S* = 3", lambda: _one_fewer(6, 2, 1, slack=0)),),
    ),
]
