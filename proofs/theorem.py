"""The shared shape of a machine-checked claim: a `Theorem`, its `Mutant`s, and `check()`.

A theorem is built as a `Problem`: z3 hypotheses plus a claim. Checking it means
(a) the hypotheses alone are satisfiable (a proof from contradictory hypotheses is vacuous and
    counts as a failure),
(b) `hypotheses AND NOT claim` is UNSAT (the claim is *proved*) or SAT (a *counterexample*,
    rendered as a readable witness),
    Optional `lemmas` (the cut rule, to help the solver): each is checked in order under the
    hypotheses and the lemmas proved before it, and once proved it is assumed from then on. A
    proved lemma is a consequence of the hypotheses, so UNSAT of `hypotheses AND lemmas AND NOT
    claim` proves the claim from the hypotheses alone, and a model of it is a counterexample of
    the claim. A lemma that is not proved (SAT or UNKNOWN) is dropped with all later ones and
    the claim is checked with the lemmas proved so far: a lemma never decides an outcome by
    itself (e.g. `D_p <= SI_p` at every position `p` before the claim at the last one).
(c) every attached mutant (the same statement about a deliberately broken rule or schedule, or
    a control variant) gives its own expected outcome. By default a mutant expects the opposite
    of the theorem: a proved theorem's mutant must be refuted by a counterexample, which shows
    the encoding is sharp enough to notice the bug; a counterexample theorem's mutant (a control
    with stronger hypotheses or a fixed schedule) must be proved, which shows the witness is not
    an artefact of a trivially broken encoding.

Every solver call runs on a fresh solver under z3's deterministic resource limit `rlimit`, so the
outcome does not depend on machine speed; UNKNOWN (including rlimit exhaustion) is a failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import z3

Outcome = Literal["proved", "counterexample"]


@dataclass
class Problem:
    """What a theorem's build function returns: hypotheses, claim and a witness renderer.

    `claim` may be a list of conjuncts; each is then checked in its own solver call (the claim
    is proved iff every conjunct is), which keeps each call small.
    """

    hypotheses: Sequence[z3.BoolRef]
    claim: z3.BoolRef | Sequence[z3.BoolRef]
    render: Callable[[z3.ModelRef], str] | None = None
    note: str = ""  # shown as the result's detail (e.g. how many cases the claim covers)
    lemmas: Sequence[z3.BoolRef] = ()  # proved first, then assumed (module docstring, (b))


@dataclass(frozen=True)
class Mutant:
    """A broken rule/schedule (or control variant) whose outcome must be `expected`.

    `expected=None` means the opposite of the owning theorem's expectation.
    """

    name: str
    build: Callable[[], Problem]
    expected: Outcome | None = None


@dataclass(frozen=True)
class Theorem:
    """A claim with its hypotheses in words, expected outcome and deterministic resource limit."""

    name: str
    family: str
    hypotheses: str
    claim: str
    expected: Outcome
    rlimit: int
    build: Callable[[], Problem]
    mutants: tuple[Mutant, ...] = ()


@dataclass
class Result:
    """The outcome of `check()`: `ok` iff the theorem and all its mutants behaved as expected."""

    theorem: Theorem
    status: str
    ok: bool
    seconds: float
    witness: str = ""
    detail: str = ""
    rlimit_used: int = 0
    mutants: list[tuple[str, str, bool, str]] = field(default_factory=list)


def _rlimit_count(solver: z3.Solver) -> int:
    """The context's cumulative resource counter (z3 counts per context, not per solver)."""
    stats = solver.statistics()
    for key in stats.keys():
        if key == "rlimit count":
            return int(stats.get_key_value(key))
    return 0


def _global_count() -> int:
    probe = z3.Solver()
    probe.check()
    return _rlimit_count(probe)


def _solve(formulas: Sequence[z3.BoolRef], rlimit: int) -> tuple[z3.CheckSatResult, z3.Solver, int]:
    """One check on a fresh solver; z3 applies `rlimit` relative to the current counter."""
    before = _global_count()
    solver = z3.Solver()
    solver.set("rlimit", rlimit)
    solver.add(*formulas)
    res = solver.check()
    return res, solver, max(0, _rlimit_count(solver) - before)


def _default_render(model: z3.ModelRef) -> str:
    items = sorted((str(d.name()), str(model[d])) for d in model.decls())
    text = ", ".join(f"{k}={v}" for k, v in items)
    return text if len(text) <= 400 else text[:400] + " ..."


def _decide(problem: Problem, rlimit: int) -> tuple[str, str, int]:
    """Returns (status, witness, rlimit used); status in proved/counterexample/vacuous/unknown."""
    res, solver, used = _solve(problem.hypotheses, rlimit)
    if res == z3.unsat:
        return "vacuous", "hypotheses are unsatisfiable", used
    if res != z3.sat:
        return "unknown", f"hypotheses: {solver.reason_unknown()}", used
    known = list(problem.hypotheses)
    for lemma in problem.lemmas:
        res, solver, spent = _solve([*known, z3.Not(lemma)], rlimit)
        used += spent
        if res != z3.unsat:
            break  # not proved: dropped with the later lemmas (the claim is still checked)
        known.append(lemma)
    claims = [problem.claim] if isinstance(problem.claim, z3.BoolRef) else list(problem.claim)
    for claim in claims:
        res, solver, spent = _solve([*known, z3.Not(claim)], rlimit)
        used += spent
        if res == z3.sat:
            render = problem.render or _default_render
            return "counterexample", render(solver.model()), used
        if res != z3.unsat:
            return "unknown", f"claim: {solver.reason_unknown()}", used
    return "proved", "", used


def _opposite(outcome: Outcome) -> Outcome:
    return "counterexample" if outcome == "proved" else "proved"


def check(theorem: Theorem) -> Result:
    """Checks a theorem and its mutants; see the module docstring for what is checked."""
    start = time.perf_counter()
    try:
        problem = theorem.build()
        status, witness, used = _decide(problem, theorem.rlimit)
    except Exception as exc:  # an encoding error is a failure, reported, not a crash
        return Result(theorem, "error", False, time.perf_counter() - start, detail=repr(exc))
    ok = status == theorem.expected
    mutants: list[tuple[str, str, bool, str]] = []
    for mutant in theorem.mutants:
        want = mutant.expected or _opposite(theorem.expected)
        try:
            m_status, m_witness, m_used = _decide(mutant.build(), theorem.rlimit)
        except Exception as exc:
            m_status, m_witness, m_used = "error", repr(exc), 0
        used += m_used
        mutants.append((mutant.name, m_status, m_status == want, m_witness))
        ok = ok and m_status == want
    if not theorem.mutants:
        ok = False  # every theorem must carry at least one mutant
    return Result(
        theorem,
        status,
        ok,
        time.perf_counter() - start,
        witness=witness,
        detail=problem.note,
        rlimit_used=used,
        mutants=mutants,
    )
