"""DSI with a fixed SP degree S vs SI free to choose its lookahead: a counterexample.

The paper's heatmaps fix `S = 7`. The latency evaluators assume enough servers; the simulated
backend enforces `S` (a due task waits, FIFO, while all `S` servers are busy), so the DSI side
of this claim is the *simulator's* end time on the witness pattern, driving the real
coordinator, and not a symbolic model: z3 only decides `DSI_k(S) <= SI_{k'}` for every SI
lookahead `k' = 1..N-1` (SI encoded symbolically by `proofs.latency.si_unroll`) with the
simulated value as a constant. The control (DSI with enough servers, `dsi_unroll`) must be
proved on the same instance: the loss is caused by the server limit alone.

Search (simulator, all patterns `N <= 8`, `c = t/q`, `q = 2..12` and `2t/5`, `3t/10`,
`k = 1..5`, `S in {2, 3}`): the smallest witness is `N = 3`, `S = 2`, `k = 1`, `a = 110`,
`c <= t/5` (`DSI_1 = 2 t`, SI_2 = DSI_1 with enough servers = `t + 2c`); no pattern there makes DSI
lose for *every* `k = 1..5` with the same `S`, i.e. DSI that may also choose its lookahead did
not lose to SI in that range.
"""

from __future__ import annotations

from fractions import Fraction

import z3

from proofs.latency import dsi_unroll, si_unroll
from proofs.latency_model import dsi_latency, render_timeline, si_latency, si_segments
from proofs.simcheck import simulate
from proofs.theorem import Mutant, Problem, Theorem

__all__ = ["THEOREMS"]

FAMILY = "fixed_servers"


def _trace(a: list[int], c: Fraction, k: int, servers: int) -> str:
    run = simulate("dsi", a, 1, c, k, servers)
    starts = [f"{e.detail}@{e.time}" for e in run.trace if e.what == "task_start"]
    return (
        f"DSI(k={k}, S={servers}) = {run.end} t, {run.stats.task_waits} wait(s), "
        f"task starts: {', '.join(starts)}"
    )


def _problem(a: list[int], c: Fraction, k: int, servers: int, enough: bool = False) -> Problem:
    n = len(a)
    t, cz = z3.Reals("t c")
    bits = [z3.Bool(f"a{i}") for i in range(n)]
    hyps = [t == 1, cz == z3.RealVal(str(c))]
    hyps += [b if v else z3.Not(b) for b, v in zip(bits, a, strict=True)]
    if enough:
        dsi_states, cons = dsi_unroll("dsi_", bits, t, cz, k)
        dsi = dsi_states[-1].D
        hyps += cons
    else:
        dsi = z3.Real("dsi_S")
        hyps.append(dsi == z3.RealVal(str(simulate("dsi", a, 1, c, k, servers).end)))
    claims = []
    for kk in range(1, n):
        si, cons = si_unroll(f"si{kk}_", bits, t, cz, kk)
        hyps += cons
        claims.append(dsi <= si[-1].sig)

    def render(model: z3.ModelRef) -> str:
        best = min(range(1, n), key=lambda kk: si_latency(a, 1, c, kk))
        run = simulate("dsi", a, 1, c, k, servers)
        model_dsi = dsi_latency(a, 1, c, k)
        assert run.end > si_latency(a, 1, c, best) >= model_dsi and run.stats.task_waits > 0
        return "\n".join(
            [
                f"a = {''.join(map(str, a))}, c/t = {c}, S = {servers} (simulated backend)",
                _trace(a, c, k, servers),
                f"DSI(k={k}) with enough servers = {model_dsi} t",
                render_timeline(f"SI(k={best})", si_segments(a, 1, c, best), 1) + " (best SI)",
            ]
        )

    return Problem(hyps, claims, render)


def _theorem(name: str, a: list[int], c: Fraction, k: int, servers: int, note: str) -> Theorem:
    return Theorem(
        name=name,
        family=FAMILY,
        hypotheses=f"a = {''.join(map(str, a))}, c = t/{1 / c}, DSI with k = {k} on S = "
        f"{servers} servers (simulated backend, real coordinator); SI with any lookahead; {note}",
        claim=f"DSI_{k}(S = {servers}) <= SI_k' for every k' = 1..N-1",
        expected="counterexample",
        rlimit=50_000_000,
        build=lambda: _problem(a, c, k, servers),
        mutants=(
            Mutant(
                f"control: DSI_{k} with enough servers",
                lambda: _problem(a, c, k, servers, enough=True),
            ),
        ),
    )


THEOREMS: list[Theorem] = [
    _theorem("dsi_S2_slower_than_best_si", [1, 1, 0], Fraction(1, 10), 1, 2, "smallest found"),
    _theorem("dsi_S7_slower_than_best_si", [1] * 8, Fraction(1, 20), 1, 7, "the paper's S = 7"),
]
