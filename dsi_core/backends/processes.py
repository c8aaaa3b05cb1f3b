"""Processes on one machine: a process per target server and one for the drafter.

Every worker is a :class:`~dsi_core.backends.worker.ServerWorker` in its own OS process, with
its own interpreter, its own copy of the model (placed on its own device: ``devices``, e.g.
``["cuda:0", "cuda:0", "cuda:1"]``) and its own intra-op thread budget
(``threads_per_server``). This is the backend for real speculation parallelism: threads share
one interpreter lock and one CUDA stream, processes share nothing. The calling process runs the
coordinator through the shared event loop (:func:`~dsi_core.backends.driver.drive`).

The wire: only token ids go to a worker (the action), only what the decision needs comes back
(greedy/coupled: the decided token per row, :class:`~dsi_core.sampling.Decided`; rejection:
the float64 rows), pickled over a pipe; the bytes and the round-trip overhead per job are
measured in :attr:`ProcessesBackend.report`. Cancellation is a shared integer per worker that
the model checks between decoder layers, so a cancelled forward stops within about one layer.

Start method: ``fork`` on CPU with one thread per server (fast: the model is inherited, not
sent), else ``spawn`` (CUDA cannot be forked; a forked child with several OpenMP threads can
hang). Under ``spawn`` the model is pickled: an :class:`~dsi_core.models.hf.HFModel` with a
``recipe`` is rebuilt by the child from that recipe (e.g. SmolLM2 from its cache). Workers are
started on the first :meth:`ProcessesBackend.run` and reused while the same target and drafter
objects are passed; :meth:`ProcessesBackend.close` (or ``with``) stops them, killing any that do
not stop in time. No worker outlives the backend, whatever ends the run (normal end, a raising
model, a deadline, KeyboardInterrupt), and none outlives the calling process: a worker whose
parent is gone (killed with SIGKILL, say, which runs no cleanup) exits within about half a
second (:func:`_exit_with_parent`).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import wait as mp_wait
from typing import Any

from dsi_core.backends.driver import Dead, Failure, Reply, RunReport, drive
from dsi_core.backends.worker import STOP_ALL, ServerWorker, job_id, place
from dsi_core.coordinator import Coordinator
from dsi_core.errors import BackendError, InvalidInputError


def _exit_with_parent(parent_pid: int, every_s: float = 0.5) -> threading.Thread:
    """Exit this worker once its parent process is gone.

    A parent killed without cleanup (SIGKILL, the OOM killer, a job scheduler's timeout) cannot
    stop its workers, and a worker blocked reading its pipe may never see end-of-file: under
    ``fork`` every later sibling inherited the parent's end of that pipe and keeps it open. So a
    daemon thread checks ``os.getppid()`` (which changes when the parent dies and the worker is
    re-parented) and ends the process with ``os._exit``.
    """

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(0)
            time.sleep(every_s)

    th = threading.Thread(target=watch, name="dsi-exit-with-parent", daemon=True)
    th.start()
    return th


def _child(
    label: str,
    conn: Any,
    cancel: Any,
    model: Any,
    device: str | None,
    threads: int | None,
    parent_pid: int | None = None,
) -> None:
    """A worker process: build the ServerWorker, then serve jobs until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    try:
        place(model, device, threads)
        worker: ServerWorker | None = None
        conn.send_bytes(pickle.dumps(("ready", os.getpid())))
        while True:
            msg = pickle.loads(conn.recv_bytes())
            if msg[0] == "stop":
                return
            if msg[0] == "reset":
                _, prompt, temperature, rule = msg
                if worker is None:
                    worker = ServerWorker(model, prompt, temperature, rule)
                else:
                    worker.reset(prompt, temperature, rule)
                continue
            action = msg[1]
            ident = job_id(action)
            t0 = time.perf_counter()
            assert worker is not None, "job before reset"
            ev = worker.handle(action, lambda i=ident: cancel.value in (i, STOP_ALL))
            conn.send_bytes(pickle.dumps(("done", ev, time.perf_counter() - t0)))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        try:
            blob = pickle.dumps(("fail", exc))
            pickle.loads(blob)
        except Exception:  # noqa: BLE001 - unpicklable exception: send its text
            text = "".join(traceback.format_exception(exc))
            blob = pickle.dumps(("fail", BackendError(f"{label} raised:\n{text}")))
        try:
            conn.send_bytes(blob)
        except OSError:
            pass


class _Proc:
    def __init__(
        self, ctx: Any, label: str, model: Any, device: str | None, threads: int | None
    ) -> None:
        self.label = label
        self.parent, child = ctx.Pipe(duplex=True)
        self.cancel = ctx.RawValue("q", -1)
        self.args = (label, child, self.cancel, model, device, threads, os.getpid())
        self.proc = ctx.Process(target=_child, args=self.args, name=f"dsi-{label}", daemon=True)
        self.proc.start()
        child.close()

    def send(self, obj: Any) -> int:
        blob = pickle.dumps(obj)
        self.parent.send_bytes(blob)
        return len(blob)


class _ProcTransport:
    def __init__(self, backend: ProcessesBackend) -> None:
        self.b = backend
        self.servers = backend.servers

    def submit(self, worker: int, action: Any) -> int:
        p = self.b._procs[worker]
        if p is None:
            raise BackendError("coordinator asked for a draft but no drafter")
        p.cancel.value = -1
        return p.send(("job", action))

    def cancel(self, worker: int, ident: int) -> None:
        p = self.b._procs[worker]
        if p is not None:
            p.cancel.value = ident

    def poll(self, timeout: float) -> list[tuple[int, Any]]:
        procs = [
            (i, p) for i, p in enumerate(self.b._procs) if p is not None and i not in self.b._dead
        ]
        ready = mp_wait([p.parent for _, p in procs] + [p.proc.sentinel for _, p in procs], timeout)
        out: list[tuple[int, Any]] = []
        for i, p in procs:
            if p.parent in ready:
                try:
                    blob = p.parent.recv_bytes()
                except (EOFError, OSError):
                    self.b._dead.add(i)
                    p.proc.join(1.0)
                    out.append((i, Dead(p.label, p.proc.exitcode)))
                    continue
                msg = pickle.loads(blob)
                if msg[0] == "fail":
                    out.append((i, Failure(p.label, msg[1])))
                else:
                    out.append((i, Reply(msg[1], msg[2], len(blob))))
            elif p.proc.sentinel in ready:
                self.b._dead.add(i)
                out.append((i, Dead(p.label, p.proc.exitcode)))
        return out

    def restart(self, worker: int) -> None:
        self.b._restart(worker)


def _default_start_method(devices: Sequence[str | None], threads: int | None) -> str:
    cuda = any(d is not None and str(d).startswith("cuda") for d in devices)
    if "fork" in mp.get_all_start_methods() and not cuda and threads in (None, 1):
        # CUDA cannot be forked once initialised; a process that has not imported torch has not
        # initialised it (and importing torch here would cost seconds, interruptible half-way)
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            return "spawn"
        return "fork"
    return "spawn"


class ProcessesBackend:
    """Drives a :class:`Coordinator` with one OS process per worker (see module docstring)."""

    name = "processes"

    def __init__(
        self,
        servers: int,
        devices: Sequence[str] | None = None,
        drafter_device: str | None = None,
        threads_per_server: int | None = None,
        start_method: str | None = None,
        timeout_s: float | None = None,
        task_timeout_s: float | None = None,
        startup_timeout_s: float = 300.0,
        poll_s: float = 0.05,
        compact: bool = True,
    ) -> None:
        if devices is not None:
            devices = [str(d) for d in devices]
            if len(devices) == 1:
                devices = devices * servers
            if len(devices) != servers:
                raise InvalidInputError(
                    f"devices lists {len(devices)} entries for {servers} servers (give one per "
                    "server, or one for all)"
                )
        if threads_per_server is not None and threads_per_server < 1:
            raise InvalidInputError(f"threads_per_server must be >= 1, got {threads_per_server}")
        self.servers = servers
        self.devices: list[str | None] = list(devices) if devices else [None] * servers
        self.drafter_device = drafter_device if drafter_device is not None else self.devices[0]
        self.threads = threads_per_server if threads_per_server is not None else 1
        method = start_method or _default_start_method(self.devices, self.threads)
        if method == "fork" and self.threads != 1:
            raise InvalidInputError("start_method='fork' needs threads_per_server=1 (OpenMP)")
        self.start_method = method
        self.timeout_s = timeout_s
        self.task_timeout_s = task_timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.poll_s = poll_s
        self.compact = compact
        self.report = RunReport("processes")
        self._procs: list[_Proc | None] = []
        self._dead: set[int] = set()
        self._models: tuple[Any, Any] | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> ProcessesBackend:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _spawn(self, index: int, model: Any) -> _Proc:
        ctx = mp.get_context(self.start_method)
        label = "drafter" if index == self.servers else f"target-{index}"
        dev = self.drafter_device if index == self.servers else self.devices[index]
        return _Proc(ctx, label, model, dev, self.threads)

    def _await_ready(self, procs: list[_Proc]) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        for p in procs:
            left = deadline - time.monotonic()
            if left <= 0 or not p.parent.poll(left):
                raise BackendError(f"{p.label} did not start within {self.startup_timeout_s} s")
            try:
                msg = pickle.loads(p.parent.recv_bytes())
            except (EOFError, OSError):
                raise BackendError(
                    f"{p.label} died while starting (exit code {p.proc.exitcode})"
                ) from None
            if msg[0] == "fail":
                raise msg[1]

    def _start(self, target: Any, drafter: Any) -> None:
        self.close()
        self._models = (target, drafter)
        try:
            for i in range(self.servers):
                self._procs.append(self._spawn(i, target))
            self._procs.append(self._spawn(self.servers, drafter) if drafter is not None else None)
            self._await_ready([p for p in self._procs if p is not None])
        except BaseException:
            self.close()
            raise

    def _restart(self, index: int) -> None:
        old = self._procs[index]
        if old is not None:
            _stop([old], 0.5)
        model = self._models[1] if index == self.servers else self._models[0]  # type: ignore[index]
        p = self._spawn(index, model)
        self._procs[index] = p
        self._await_ready([p])
        p.send(("reset", *self._reset_args))
        self._dead.discard(index)

    def close(self, grace_s: float = 5.0) -> None:
        """Stop every worker process (joined; killed if it does not stop within ``grace_s``)."""
        procs = [p for p in self._procs if p is not None]
        self._procs = []
        self._dead = set()
        self._models = None
        _stop(procs, grace_s)

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests that check nothing leaks)."""
        return [p.proc.pid for p in self._procs if p is not None and p.proc.is_alive()]

    # ------------------------------------------------------------------ run

    def run(
        self,
        coord: Coordinator,
        target: Any,
        drafter: Any,
        prompt: Sequence[int],
        temperature: float = 1.0,
    ) -> float:
        """Run to completion; returns wall seconds (worker start-up excluded)."""
        if (
            self._models is None
            or self._models[0] is not target
            or self._models[1] is not drafter
            or self._dead
        ):
            self._start(target, drafter)
        rule = coord.rule if self.compact else None
        self._reset_args = (list(prompt), temperature, rule)
        self.report = RunReport("processes")
        ok = False
        try:
            for p in self._procs:
                if p is not None:
                    p.cancel.value = -1
                    p.send(("reset", *self._reset_args))
            wall = drive(
                coord,
                _ProcTransport(self),
                prompt,
                self.report,
                timeout_s=self.timeout_s,
                task_timeout_s=self.task_timeout_s,
                poll_s=self.poll_s,
                names=[p.label if p else "drafter" for p in self._procs],
            )
            ok = self._drain()
            return wall
        finally:
            if not ok:  # an error, a deadline or an interrupt: nothing survives, a hung
                self.close(grace_s=0.5)  # worker is killed after half a second

    def _drain(self, timeout_s: float = 10.0) -> bool:
        """After a run: stop jobs still running (stale) and wait for their replies, so the next
        run starts on idle workers. Returns False if a worker did not answer in time."""
        for p in self._procs:
            if p is not None:
                p.cancel.value = STOP_ALL
        busy = self.report.tasks + self.report.drafts - self._acked()
        deadline = time.monotonic() + timeout_s
        transport = _ProcTransport(self)
        while busy > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for _, msg in transport.poll(left):
                if isinstance(msg, Reply):
                    busy -= 1
                else:
                    return False
        return True

    def _acked(self) -> int:
        return len(self.report.overhead_s) + self.report.lost


def _stop(procs: list[_Proc], timeout_s: float) -> None:
    for p in procs:
        p.cancel.value = STOP_ALL
        try:
            p.send(("stop",))
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + timeout_s
    for p in procs:
        p.proc.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.proc.is_alive():
            p.proc.kill()
            p.proc.join(5.0)
        p.parent.close()
