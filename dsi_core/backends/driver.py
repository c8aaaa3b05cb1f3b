"""The event loop shared by every real transport (threads, processes).

It executes the coordinator's actions on workers and feeds their events back, and it owns what
every transport needs alike: picking a free target server (the one whose last context shares
the longest prefix with the new one, for KV reuse), forwarding cancellations, measuring the
preemption delay (cancel to ack) and the transport overhead (round trip minus compute),
deadlines, and failures. A transport only moves messages; it implements :class:`Transport`.

Failures: a worker that raises ends the run with that exception (after every worker is
stopped). A *dead* target server (its process vanished) is retired: its task is acked as
aborted, so the coordinator's chain re-covers the lost rows, and later tasks run on the
remaining servers (a task that finds no live free server waits in a FIFO). A dead drafter is
restarted once. No live server left, or a second drafter death, is a
:class:`~dsi_core.errors.BackendError`.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dsi_core.coordinator import Coordinator
from dsi_core.errors import BackendError, DeadlineExceededError
from dsi_core.events import (
    Cancel,
    DraftAborted,
    DraftDone,
    StartDraft,
    StartTarget,
    TargetAborted,
    TargetDone,
)


@dataclass
class Failure:
    """A worker raised: ``exc`` is re-raised in the caller's thread."""

    worker: str
    exc: BaseException


@dataclass
class Dead:
    """A worker vanished (its process exited) without reporting."""

    worker: str
    exitcode: Any = None


@dataclass
class Reply:
    """What a worker sends back: the event, seconds spent computing it, bytes on the wire."""

    event: Any
    compute_s: float = 0.0
    nbytes: int = 0


class Transport(Protocol):
    """Moves actions to workers and replies back. Workers ``0..servers-1`` are target
    servers; worker ``servers`` is the drafter."""

    servers: int

    def submit(self, worker: int, action: Any) -> int:
        """Send ``action``; returns the bytes sent (0 when nothing is serialised)."""
        ...

    def cancel(self, worker: int, ident: int) -> None:
        """Ask the worker running job ``ident`` to stop it."""
        ...

    def poll(self, timeout: float) -> list[tuple[int, Reply | Failure | Dead]]: ...

    def restart(self, worker: int) -> None:
        """Replace a dead worker with a fresh one (used for the drafter)."""
        ...


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class RunReport:
    """What the transport did during one run (returned by the backends, kept on Result)."""

    transport: str
    tasks: int = 0
    drafts: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    overhead_s: list[float] = field(default_factory=list)  # per job: round trip - compute
    preemption_delays_s: list[float] = field(default_factory=list)  # cancel -> ack, per job
    dead_servers: int = 0
    drafter_restarts: int = 0
    lost: int = 0  # jobs that died with their worker (never acked by a reply)
    abandoned: list[str] = field(default_factory=list)  # threads left stuck in a model call

    def as_dict(self) -> dict[str, Any]:
        jobs = max(1, self.tasks + self.drafts)
        med = statistics.median(self.overhead_s) if self.overhead_s else 0.0
        pre = self.preemption_delays_s
        return {
            "transport": self.transport,
            "tasks": self.tasks,
            "drafts": self.drafts,
            "bytes_per_job": (self.bytes_sent + self.bytes_received) / jobs,
            "overhead_ms_median": med * 1e3,
            "preemptions_acked": len(pre),
            "preemption_delay_ms_median": statistics.median(pre) * 1e3 if pre else 0.0,
            "preemption_delay_ms_max": max(pre) * 1e3 if pre else 0.0,
            "dead_servers": self.dead_servers,
            "drafter_restarts": self.drafter_restarts,
            "abandoned_threads": list(self.abandoned),
        }


def drive(
    coord: Coordinator,
    transport: Transport,
    prompt: Sequence[int],
    report: RunReport,
    *,
    timeout_s: float | None = None,
    task_timeout_s: float | None = None,
    poll_s: float = 0.05,
    names: Sequence[str] = (),
) -> float:
    """Run ``coord`` to completion on ``transport``; returns the wall seconds."""
    S = transport.servers
    D = S  # the drafter's worker index
    prompt = list(prompt)
    free = list(range(S))
    dead: set[int] = set()
    last_ctx: dict[int, list[int]] = {}
    on: dict[int, tuple[int, str, float]] = {}  # job id -> (worker, kind, submitted at)
    task_server: dict[int, int] = {}
    pending: deque[StartTarget] = deque()
    cancelled_at: dict[int, float] = {}
    drafter_deaths = 0
    t0 = time.perf_counter()

    def now() -> float:
        return time.perf_counter() - t0

    def start_target(a: StartTarget) -> bool:
        live = [w for w in free if w not in dead]
        if not live:
            return False
        ctx = prompt + list(a.context)
        w = max(live, key=lambda s: _lcp(last_ctx.get(s, ()), ctx))  # best KV reuse
        free.remove(w)
        last_ctx[w] = ctx
        task_server[a.task_id] = w
        on[a.task_id] = (w, "target", time.perf_counter())
        report.bytes_sent += transport.submit(w, a)
        report.tasks += 1
        return True

    def execute(actions: list[Any]) -> None:
        work = deque(actions)
        while work:
            a = work.popleft()
            if isinstance(a, StartDraft):
                on[a.request_id] = (D, "draft", time.perf_counter())
                report.bytes_sent += transport.submit(D, a)
                report.drafts += 1
            elif isinstance(a, StartTarget):
                if not start_target(a):
                    pending.append(a)
            elif isinstance(a, Cancel):
                cancelled_at[a.id] = time.perf_counter()
                if a.id in on:
                    transport.cancel(on[a.id][0], a.id)
                else:  # still waiting for a server: never started, ack at once
                    waiting = next((t for t in pending if t.task_id == a.id), None)
                    if waiting is None:
                        raise BackendError(f"cancel of unknown {a.what} {a.id}")
                    pending.remove(waiting)
                    cancelled_at.pop(a.id, None)
                    work.extend(coord.on_event(TargetAborted(a.id), now()))
            else:
                raise BackendError(f"unknown action {a!r}")

    def name(w: int) -> str:
        return names[w] if w < len(names) else ("drafter" if w == D else f"target-{w}")

    execute(coord.start(0.0))
    while not coord.done:
        wait = poll_s
        if timeout_s is not None:
            left = timeout_s - now()
            if left <= 0:
                raise DeadlineExceededError(
                    f"the run exceeded its deadline of {timeout_s} s ({coord.n} tokens committed)"
                )
            wait = min(wait, left)
        if task_timeout_s is not None and on:
            oldest = min(t for (_, _, t) in on.values())
            left = task_timeout_s - (time.perf_counter() - oldest)
            if left <= 0:
                jid, (w, kind, _) = min(on.items(), key=lambda kv: kv[1][2])
                raise DeadlineExceededError(
                    f"{kind} job {jid} on {name(w)} exceeded the per-task deadline of "
                    f"{task_timeout_s} s"
                )
            wait = min(wait, left)
        for w, msg in transport.poll(max(wait, 0.0)):
            if isinstance(msg, Failure):
                msg.exc.add_note(f"raised in dsi_core worker thread or process {msg.worker!r}")
                raise msg.exc
            if isinstance(msg, Dead):
                lost = [(jid, kind) for jid, (ww, kind, _) in on.items() if ww == w]
                if w == D:
                    drafter_deaths += 1
                    if drafter_deaths > 1:
                        raise BackendError(f"the drafter died twice (exit code {msg.exitcode})")
                    report.drafter_restarts += 1
                    transport.restart(D)
                    events: list[Any] = [DraftAborted(jid) for jid, _ in lost]
                else:
                    dead.add(w)
                    report.dead_servers += 1
                    if w in free:
                        free.remove(w)
                    if len(dead) == S:
                        raise BackendError(
                            f"every target server died (last: {name(w)}, exit {msg.exitcode})"
                        )
                    events = [TargetAborted(jid) for jid, _ in lost]
                report.lost += len(lost)
                for ev in events:
                    jid = ev.request_id if isinstance(ev, DraftAborted) else ev.task_id
                    on.pop(jid, None)
                    task_server.pop(jid, None)
                    cancelled_at.pop(jid, None)
                    execute(coord.on_event(ev, now()))
                while pending and start_target(pending[0]):
                    pending.popleft()
                continue
            ev = msg.event
            jid = ev.request_id if isinstance(ev, DraftDone | DraftAborted) else ev.task_id
            started = on.pop(jid, None)
            t_ack = time.perf_counter()
            if started is not None:
                report.overhead_s.append(max(0.0, t_ack - started[2] - msg.compute_s))
            report.bytes_received += msg.nbytes
            if jid in cancelled_at:
                report.preemption_delays_s.append(t_ack - cancelled_at.pop(jid))
            if isinstance(ev, TargetDone | TargetAborted):
                srv = task_server.pop(jid, None)
                if srv is not None and srv not in dead:
                    free.append(srv)
            if coord.done:
                continue
            execute(coord.on_event(ev, now()))
            while pending and start_target(pending[0]):
                pending.popleft()
    wall = now()
    coord.stats.wall_time = wall
    return wall
