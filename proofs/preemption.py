"""The chain step under a cancellation delay d (family ``preemption``).

``dsi_le_nonsi_inductive`` (proofs/latency.py) proves the arithmetic: ``D_0 <= t`` and the step
``D_p <= D_{p-1} + t`` give ``DSI <= N t`` for every ``N``. Here the step itself is encoded as
the case analysis of proofs/README.md ("Preemption delay"), with the preemption delay explicit:
a preempted task started at ``s`` and cancelled at ``x`` frees its server at
``ack = min(x + d, s + t)`` (``d = 0``: instant; ``d`` large: run to completion).

At ``D = D_{p-1}`` (greedy/coupled: the step that decided ``p - 1`` was the arrival of a row, so
its task ``T`` has just left and one server slot is free) exactly one case holds:
(i) row ``p`` is stored: ``D_p = D``; (ii) a live task started at ``s <= D`` covers ``p`` and
is not preempted before it delivers: ``D_p = s + t``; (iii) the chain task for ``p`` takes a
free slot at once (it comes first in ``_due_task``): ``D_p = D + t``.

Mutants: the issue's ``_row_covered`` bug (a preempted, unacknowledged task ``X`` still
"covers" row ``p``, so the chain starts only when ``X`` is acked): refuted for some ``d > 0``
and, as a control, proved for ``d = 0`` (the bug is invisible under instant preemption, which is
why it survived the old proofs); and a policy where the chain does not come first (a block takes
the deliverer's slot, the chain waits for another server): refuted. These are models of the
coordinator's step, not the code: the tie to the code is the trace checker's ``chain``
invariant and the tests named in proofs/README.md.
"""

from __future__ import annotations

import z3

from proofs.theorem import Mutant, Problem, Theorem

FAMILY = "preemption"


def _step(mutant: str = "", d_zero: bool = False) -> Problem:
    t, d, D, Dp = z3.Reals("t d D D_p")
    s_cov, s_x, x_cancel, s_other = z3.Reals("s_cov s_x x_cancel s_other")
    case = z3.Int("case")  # 1 stored, 2 live cover, 3 chain
    ack_x = z3.If(x_cancel + d < s_x + t, x_cancel + d, s_x + t)
    ack_other = z3.Real("ack_other")
    hyps = [t > 0, d >= 0, D >= 0, z3.Or(case == 1, case == 2, case == 3)]
    if d_zero:
        hyps.append(d == 0)
    hyps += [
        z3.Implies(case == 1, Dp == D),
        z3.Implies(case == 2, z3.And(s_cov <= D, s_cov >= 0, Dp == s_cov + t)),
    ]
    if mutant == "row_covered_counts_cancelled":
        # a preempted task X (started s_x, cancelled x_cancel <= D) counts as cover until acked
        hyps += [
            z3.Implies(
                case == 3,
                z3.And(
                    0 <= s_x, s_x <= x_cancel, x_cancel <= D, Dp == z3.If(ack_x > D, ack_x, D) + t
                ),
            )
        ]
    elif mutant == "chain_not_first":
        # the deliverer's free slot goes to a block; the chain waits for another server, busy
        # with a task started at s_other <= D and freed at ack_other in [s_other, s_other + t]
        hyps += [
            z3.Implies(
                case == 3,
                z3.And(
                    0 <= s_other,
                    s_other <= D,
                    ack_other >= s_other,
                    ack_other <= s_other + t,
                    Dp == z3.If(ack_other > D, ack_other, D) + t,
                ),
            )
        ]
    else:
        hyps.append(z3.Implies(case == 3, Dp == D + t))

    def render(m: z3.ModelRef) -> str:
        names = ("t", "d", "D", "D_p", "case", "s_x", "x_cancel", "s_other", "ack_other")
        return ", ".join(f"{n} = {m.eval(z3.Real(n) if n != 'case' else z3.Int(n))}" for n in names)

    return Problem(hyps, Dp <= D + t, render)


THEOREMS = [
    Theorem(
        name="chain_step_any_delay",
        family=FAMILY,
        hypotheses="greedy/coupled; any S >= 1; any cancellation delay d >= 0 (run to completion "
        "included); cases (i)-(iii) of the module docstring at D = D_{p-1}",
        claim="D_p <= D_{p-1} + t (with dsi_le_nonsi_inductive: DSI <= N t for every N and d)",
        expected="proved",
        rlimit=2_000_000,
        build=_step,
        mutants=(
            Mutant(
                "row_covered counts a cancelled, unacked task (d > 0 allowed)",
                lambda: _step("row_covered_counts_cancelled"),
            ),
            Mutant(
                "control: the same bug with d = 0 (instant preemption) is harmless",
                lambda: _step("row_covered_counts_cancelled", d_zero=True),
                expected="proved",
            ),
            Mutant("chain not first for the freed slot", lambda: _step("chain_not_first")),
        ),
    ),
]
