"""Real concurrency on one machine: one drafter thread and ``S`` target-server threads.

Each worker owns its model state (its own KV cache); the main thread runs the coordinator and
is the only thread that touches it. Preemption is best effort, as on real hardware: a job that
has not started yet is skipped (and acked as aborted), a running forward finishes and its
result arrives as stale, which the coordinator drops. A worker that raises ends the run with
that very exception after every thread has been told to stop and joined.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dsi_core.backends.worker import compute_draft, compute_target
from dsi_core.coordinator import Coordinator
from dsi_core.errors import BackendError
from dsi_core.events import (
    Cancel,
    DraftAborted,
    StartDraft,
    StartTarget,
    TargetAborted,
    TargetDone,
)


@dataclass
class _Failure:
    worker: str
    exc: BaseException


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class _Worker(threading.Thread):
    def __init__(self, name: str, backend: ThreadsBackend, model: Any, fn: Any) -> None:
        super().__init__(name=name, daemon=True)
        self.inbox: queue.Queue = queue.Queue()
        self.backend = backend
        self.model = model
        self.fn = fn
        self.state = model.new_state()
        self.last_tokens: list[int] = []

    def run(self) -> None:
        b = self.backend
        while True:
            item = self.inbox.get()
            if item is None:
                return
            kind, ident, action = item
            if (kind, ident) in b._cancelled:
                b._results.put(DraftAborted(ident) if kind == "draft" else TargetAborted(ident))
                continue
            try:
                ev = self.fn(self, action)
            except BaseException as exc:  # noqa: BLE001 - forwarded to the main thread
                b._results.put(_Failure(self.name, exc))
                return
            b._results.put(ev)


class ThreadsBackend:
    """Drives a :class:`Coordinator` with real threads (see module docstring)."""

    def __init__(self, servers: int, poll_s: float = 0.5, join_timeout_s: float = 60.0):
        self.servers = servers
        self.poll_s = poll_s
        self.join_timeout_s = join_timeout_s
        self._results: queue.Queue = queue.Queue()
        self._cancelled: set[tuple[str, int]] = set()

    def run(
        self,
        coord: Coordinator,
        target: Any,
        drafter: Any,
        prompt: Sequence[int],
        temperature: float = 1.0,
    ) -> float:
        """Run to completion; returns wall seconds. Raises a failing worker's exception."""
        prompt = list(prompt)
        self._results = queue.Queue()
        self._cancelled = set()

        def do_draft(w: _Worker, a: StartDraft) -> Any:
            return compute_draft(w.model, w.state, prompt, a, temperature)

        def do_target(w: _Worker, a: StartTarget) -> Any:
            return compute_target(w.model, w.state, prompt, a, temperature)

        servers = [_Worker(f"target-{i}", self, target, do_target) for i in range(self.servers)]
        draft_worker = _Worker("drafter", self, drafter, do_draft) if drafter is not None else None
        workers = servers + ([draft_worker] if draft_worker else [])
        busy: dict[int, _Worker] = {}  # task id -> server
        for w in workers:
            w.start()
        t0 = time.perf_counter()

        def dispatch(actions: list[Any]) -> None:
            for a in actions:
                if isinstance(a, StartDraft):
                    if draft_worker is None:
                        raise BackendError("coordinator asked for a draft but no drafter")
                    draft_worker.inbox.put(("draft", a.request_id, a))
                elif isinstance(a, StartTarget):
                    free = [w for w in servers if w not in busy.values()]
                    if not free:
                        raise BackendError("no free target server (coordinator over-committed)")
                    ctx = prompt + list(a.context)
                    w = max(free, key=lambda s: _lcp(s.last_tokens, ctx))  # best KV reuse
                    w.last_tokens = ctx
                    busy[a.task_id] = w
                    w.inbox.put(("target", a.task_id, a))
                elif isinstance(a, Cancel):
                    self._cancelled.add((a.what, a.id))
                else:
                    raise BackendError(f"unknown action {a!r}")

        try:
            dispatch(coord.start(0.0))
            while not coord.done:
                try:
                    ev = self._results.get(timeout=self.poll_s)
                except queue.Empty:
                    if not all(w.is_alive() for w in workers):
                        raise BackendError("a worker thread died without reporting") from None
                    continue
                if isinstance(ev, _Failure):
                    ev.exc.add_note(f"raised in dsi_core worker thread {ev.worker!r}")
                    raise ev.exc
                if isinstance(ev, TargetDone | TargetAborted):
                    busy.pop(ev.task_id, None)
                dispatch(coord.on_event(ev, time.perf_counter() - t0))
            wall = time.perf_counter() - t0
            coord.stats.wall_time = wall
            return wall
        finally:
            for key in [("target", tid) for tid in busy]:
                self._cancelled.add(key)
            for w in workers:
                w.inbox.put(None)
            deadline = time.monotonic() + self.join_timeout_s
            for w in workers:
                w.join(timeout=max(0.0, deadline - time.monotonic()))
