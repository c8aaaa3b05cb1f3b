"""Discrete-event backend with a virtual clock: deterministic, and any interleaving on demand.

By default each draft takes ``draft_latency`` and each target task ``target_latency`` (numbers,
ideally :class:`fractions.Fraction`, or callables of the action), and completions happen in
time order; ties go to the drafter first, then to target tasks in start order. With ``order``
(a callable choosing which in-flight job completes next, or one of the names in ``ORDERS``)
time is ignored and the chooser forces any completion order, including adversarial ones.

Preemption (the cancellation delay ``d``): ``cancellation="instant"`` (the default, ``d = 0``)
removes the job and acks it at once. ``cancellation="fails"`` (``d = infinity``) lets a
preempted job run to completion and deliver its (stale) result, so tests can check that stale
results are dropped rather than committed. A number ``d >= 0`` (ideally a Fraction, e.g. one
decoder layer's share of ``t``) is a bounded delay: the preempted job keeps its server until
``min(cancel time + d, its finish)`` and is then acked (``TargetAborted`` / ``DraftAborted``),
or delivers its stale result if it finished first. Under a forced ``order`` there is no clock:
a delayed cancellation is acked whenever the chooser picks the job.

A latency that is not a finite number >= 0 or a callable, an unknown order and a
cancellation model other than these are refused when the backend is built
(:class:`~dsi_core.errors.InvalidInputError`); :func:`dsi_core.generate` uses the same checks
(with latencies > 0).
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from dsi_core.backends.worker import compute_draft, compute_target
from dsi_core.coordinator import Coordinator
from dsi_core.errors import BackendError, InvalidInputError
from dsi_core.events import Cancel, DraftAborted, StartDraft, StartTarget, TargetAborted


@dataclass
class Job:
    kind: str  # "draft" or "target"
    id: int
    action: Any
    finish: Any
    seq: int
    cancelled: bool = field(default=False)
    abort_at: Any = None  # when a delayed cancellation frees the server (bounded delay only)


def _fifo(jobs: Sequence[Job]) -> int:
    return 0


def _lifo(jobs: Sequence[Job]) -> int:
    return len(jobs) - 1


def _drafts_last(jobs: Sequence[Job]) -> int:
    for i in range(len(jobs) - 1, -1, -1):
        if jobs[i].kind == "target":
            return i
    return 0


def _targets_last(jobs: Sequence[Job]) -> int:
    for i, j in enumerate(jobs):
        if j.kind == "draft":
            return i
    return 0


def random_order(seed: int) -> Callable[[Sequence[Job]], int]:
    rng = random.Random(seed)
    return lambda jobs: rng.randrange(len(jobs))


ORDERS: dict[str, Callable[[Sequence[Job]], int]] = {
    "fifo": _fifo,  # oldest job first
    "lifo": _lifo,  # newest job first: later tasks overtake earlier ones
    "drafts_last": _drafts_last,  # every target result before any draft (newest target first)
    "targets_last": _targets_last,  # drafter runs as far ahead as it can before any result
}


def check_latency(v: Any, name: str, zero_ok: bool = True) -> None:
    """A simulated latency: a finite number >= 0 (> 0 unless ``zero_ok``; a Fraction keeps the
    clock exact) or a callable of the action returning one."""
    if callable(v):
        return
    low = ">= 0" if zero_ok else "> 0"
    if (
        isinstance(v, bool)
        or not isinstance(v, numbers.Real)
        or not (math.isfinite(float(v)) and (v > 0 or (zero_ok and v == 0)))
    ):
        raise InvalidInputError(f"{name} must be a finite number {low} or a callable, got {v!r}")


def check_order(order: Any, name: str) -> None:
    """A completion order: None, a callable, one of :data:`ORDERS` or ``"random:SEED"``."""
    if order is None or callable(order):
        return
    if isinstance(order, str):
        if order in ORDERS:
            return
        if order.startswith("random:") and order[7:].isdigit():
            return
    raise InvalidInputError(
        f"{name} must be None, a callable, 'random:SEED' or one of {sorted(ORDERS)}, got {order!r}"
    )


class SimulatedBackend:
    """Drives a :class:`Coordinator` on a virtual clock (see module docstring)."""

    def __init__(
        self,
        target_latency: Any = Fraction(1),
        draft_latency: Any = Fraction(1, 10),
        order: str | Callable[[Sequence[Job]], int] | None = None,
        cancellation: Any = "instant",
        max_steps: int = 10_000_000,
    ) -> None:
        check_latency(target_latency, "target_latency")
        check_latency(draft_latency, "draft_latency")
        check_order(order, "order")
        if isinstance(cancellation, str):
            if cancellation not in ("instant", "fails"):
                raise InvalidInputError("cancellation must be 'instant', 'fails' or a delay >= 0")
        elif isinstance(cancellation, bool) or not (
            isinstance(cancellation, int | float | Fraction) and cancellation >= 0
        ):
            raise InvalidInputError("cancellation must be 'instant', 'fails' or a delay >= 0")
        if isinstance(order, str):
            if order.startswith("random:"):
                order = random_order(int(order.split(":", 1)[1]))
            else:
                order = ORDERS[order]
        self.target_latency = target_latency
        self.draft_latency = draft_latency
        self.order = order
        self.cancellation = cancellation
        self.max_steps = max_steps
        self.now: Any = Fraction(0)

    def _latency(self, spec: Any, action: Any) -> Any:
        return spec(action) if callable(spec) else spec

    def run(
        self,
        coord: Coordinator,
        target: Any,
        drafter: Any,
        prompt: Sequence[int],
        temperature: float = 1.0,
    ) -> Any:
        """Run to completion; returns the virtual end time."""
        prompt = list(prompt)
        self.now = Fraction(0)
        self.max_in_flight = {"draft": 0, "target": 0}  # physically running jobs, stale included
        jobs: list[Job] = []
        seq = 0
        t_state = target.new_state()
        d_state = drafter.new_state() if drafter is not None else None

        def execute(actions: list[Any]) -> None:
            nonlocal seq
            work = list(actions)
            while work:
                a = work.pop(0)
                if isinstance(a, StartDraft | StartTarget):
                    if isinstance(a, StartDraft):
                        if drafter is None:
                            raise BackendError("coordinator asked for a draft but no drafter")
                        kind, ident, lat = "draft", a.request_id, self.draft_latency
                    else:
                        kind, ident, lat = "target", a.task_id, self.target_latency
                    seq += 1
                    finish = self.now + self._latency(lat, a)
                    jobs.append(Job(kind, ident, a, finish, seq))
                    busy = sum(1 for j in jobs if j.kind == kind)
                    self.max_in_flight[kind] = max(self.max_in_flight[kind], busy)
                elif isinstance(a, Cancel):
                    job = next((j for j in jobs if j.kind == a.what and j.id == a.id), None)
                    if job is None:
                        raise BackendError(f"cancel of unknown {a.what} {a.id}")
                    if self.cancellation == "instant":
                        jobs.remove(job)
                        ev = DraftAborted(a.id) if a.what == "draft" else TargetAborted(a.id)
                        work.extend(coord.on_event(ev, self.now))
                    else:
                        job.cancelled = True
                        d = self.cancellation
                        if d != "fails" and (self.order is not None or self.now + d < job.finish):
                            job.abort_at = self.now + d
                            job.finish = job.abort_at
                else:
                    raise BackendError(f"unknown action {a!r}")

        execute(coord.start(self.now))
        steps = 0
        while not coord.done:
            if not jobs:
                raise BackendError("deadlock: the coordinator is waiting but nothing is in flight")
            steps += 1
            if steps > self.max_steps:
                raise BackendError("simulation exceeded max_steps")
            if self.order is None:
                job = min(jobs, key=lambda j: (j.finish, 0 if j.kind == "draft" else 1, j.seq))
                self.now = job.finish
            else:
                ordered = sorted(jobs, key=lambda j: j.seq)
                idx = self.order(ordered)
                if not 0 <= idx < len(ordered):
                    raise BackendError(f"order chose {idx} of {len(ordered)} jobs")
                job = ordered[idx]
                self.now = Fraction(steps)
            jobs.remove(job)
            model, state = (drafter, d_state) if job.kind == "draft" else (target, t_state)
            if job.abort_at is not None:  # a delayed cancellation took effect before the finish
                ev = DraftAborted(job.id) if job.kind == "draft" else TargetAborted(job.id)
            else:
                ev = self.complete(job, model, state, prompt, temperature)
            execute(coord.on_event(ev, self.now))
        coord.stats.wall_time = float(self.now)
        return self.now

    def complete(
        self, job: Job, model: Any, state: Any, prompt: list[int], temperature: float
    ) -> Any:
        """Compute the event a finished job delivers (tests override this to poison stale jobs)."""
        if job.kind == "draft":
            return compute_draft(model, state, prompt, job.action, temperature)
        return compute_target(model, state, prompt, job.action, temperature)
