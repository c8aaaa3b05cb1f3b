"""Threads on one machine: one drafter thread and ``S`` target-server threads.

Each worker is a :class:`~dsi_core.backends.worker.ServerWorker` (its own KV cache) in a
thread; the calling thread runs the coordinator through the shared event loop
(:func:`~dsi_core.backends.driver.drive`). Preemption reaches a running forward: a preemptible
model (:class:`~dsi_core.models.hf.HFModel`) stops at the next decoder layer; other models
finish their call and their result is dropped as stale. Threads share one interpreter lock and
one model object (and, on a GPU, one CUDA stream): use them for tests and small CPUs, and the
``processes`` backend for real parallelism. A model stuck inside a call cannot be interrupted in
a thread: on a deadline the run ends with :class:`~dsi_core.errors.DeadlineExceededError`, the
stuck daemon thread is abandoned, and the error's note (and ``RunReport.abandoned``) names it
(the ``processes`` backend kills it instead).
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any

from dsi_core.backends.driver import Failure, Reply, RunReport, drive
from dsi_core.backends.worker import ServerWorker, job_id
from dsi_core.coordinator import Coordinator
from dsi_core.errors import BackendError
from dsi_core.sampling import DecisionRule


class _Thread(threading.Thread):
    def __init__(self, index: int, name: str, worker: ServerWorker, out: queue.Queue) -> None:
        super().__init__(name=f"dsi-{name}", daemon=True)
        self.index = index
        self.label = name
        self.worker = worker
        self.inbox: queue.Queue = queue.Queue()
        self.out = out
        self.cancelled: set[int] = set()

    def run(self) -> None:
        while True:
            action = self.inbox.get()
            if action is None:
                return
            ident = job_id(action)
            t0 = time.perf_counter()
            try:
                ev = self.worker.handle(action, lambda i=ident: i in self.cancelled)
            except BaseException as exc:  # noqa: BLE001 - forwarded to the driving thread
                self.out.put((self.index, Failure(self.label, exc)))
                return
            self.out.put((self.index, Reply(ev, time.perf_counter() - t0)))


class _ThreadTransport:
    def __init__(self, threads: list[_Thread], out: queue.Queue) -> None:
        self.threads = threads
        self.servers = len(threads) - 1
        self.out = out

    def submit(self, worker: int, action: Any) -> int:
        self.threads[worker].inbox.put(action)
        return 0

    def cancel(self, worker: int, ident: int) -> None:
        self.threads[worker].cancelled.add(ident)

    def poll(self, timeout: float) -> list[tuple[int, Any]]:
        try:
            first = self.out.get(timeout=timeout)
        except queue.Empty:
            if not all(t.is_alive() for t in self.threads if t.worker.model is not None):
                raise BackendError("a worker thread died without reporting") from None
            return []
        got = [first]
        while True:
            try:
                got.append(self.out.get_nowait())
            except queue.Empty:
                return got

    def restart(self, worker: int) -> None:  # pragma: no cover - threads do not die silently
        raise BackendError("a worker thread died")


class _NoModel:
    def new_state(self) -> None:
        return None


class ThreadsBackend:
    """Drives a :class:`Coordinator` with real threads (see module docstring)."""

    name = "threads"

    def __init__(
        self,
        servers: int,
        poll_s: float = 0.05,
        join_timeout_s: float = 10.0,
        timeout_s: float | None = None,
        task_timeout_s: float | None = None,
        compact: bool = True,
    ) -> None:
        self.servers = servers
        self.poll_s = poll_s
        self.join_timeout_s = join_timeout_s
        self.timeout_s = timeout_s
        self.task_timeout_s = task_timeout_s
        self.compact = compact
        self.report = RunReport("threads")

    def run(
        self,
        coord: Coordinator,
        target: Any,
        drafter: Any,
        prompt: Sequence[int],
        temperature: float = 1.0,
    ) -> float:
        """Run to completion; returns wall seconds. Raises a failing worker's exception."""
        rule: DecisionRule | None = coord.rule if self.compact else None
        out: queue.Queue = queue.Queue()
        self.report = RunReport("threads")
        threads = [
            _Thread(i, f"target-{i}", ServerWorker(target, prompt, temperature, rule), out)
            for i in range(self.servers)
        ]
        dmodel = drafter if drafter is not None else _NoModel()
        threads.append(
            _Thread(self.servers, "drafter", ServerWorker(dmodel, prompt, temperature, rule), out)
        )
        if drafter is None:
            threads[-1].worker.model = None
        started: list[_Thread] = []
        clean = False
        try:
            for t in threads:
                t.start()
                started.append(t)
            wall = drive(
                coord,
                _ThreadTransport(threads, out),
                prompt,
                self.report,
                timeout_s=self.timeout_s,
                task_timeout_s=self.task_timeout_s,
                poll_s=self.poll_s,
                names=[t.label for t in threads],
            )
            clean = True
            return wall
        except BaseException as exc:
            stuck = self._stop(started, clean)
            if stuck:
                exc.add_note(_abandoned_note(stuck))
            raise
        finally:
            if clean:
                stuck = self._stop(started, clean)
                if stuck:
                    warnings.warn(_abandoned_note(stuck), RuntimeWarning, stacklevel=2)

    def _stop(self, started: list[_Thread], clean: bool) -> list[str]:
        """Stop and join every thread; the names of those still stuck in a model call."""
        _stop_all(started)
        for t in started:
            t.inbox.put(None)
        # after an error a stuck model call may never return: do not wait long for it
        wait = self.join_timeout_s if clean else min(self.join_timeout_s, 1.0)
        deadline = time.monotonic() + wait
        for t in started:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in started if t.is_alive()]
        self.report.abandoned = stuck
        return stuck


def _abandoned_note(names: list[str]) -> str:
    return (
        f"worker thread(s) {', '.join(names)} stayed inside a model call that does not return "
        "or check its stop flag, and were abandoned (daemon threads; Python cannot kill a "
        "thread): they end when that call returns. backend='processes' kills such workers."
    )


def _stop_all(threads: list[_Thread]) -> None:
    """Make every in-flight and queued job stop: a cancelled set that contains everything."""

    class _All(set):
        def __contains__(self, item: object) -> bool:
            return True

    for t in threads:
        t.cancelled = _All()
