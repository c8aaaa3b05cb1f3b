"""Ray: each target server and the drafter a Ray actor, on one machine or a cluster.

Every actor hosts a :class:`~dsi_core.backends.worker.ServerWorker` (its own model copy, KV
cache and placement: ``num_gpus`` per server, fractional allowed, and ``num_cpus``, 0 by
default so that any number of servers fits on a small machine); the calling
process runs the coordinator through the shared event loop
(:func:`~dsi_core.backends.driver.drive`). ``ray.init()`` starts a local Ray unless one is
running; ``address`` (or ``RAY_ADDRESS``) joins an existing cluster. Models travel by Ray's
serialisation (cloudpickle); an :class:`~dsi_core.models.hf.HFModel` with a ``recipe`` is
rebuilt by the actor from its recipe (each machine loads its own weights).

Actors are threaded (``max_concurrency=2``): a cancel call runs beside the running job and sets
the flag that a preemptible model checks between decoder layers. A dead actor (a crashed or
killed server) is retired like a dead process (see :mod:`dsi_core.backends.driver`); a dead
drafter is restarted once. :meth:`RayBackend.close` kills every actor of the backend; the Ray
runtime itself is shut down only if this backend started it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from dsi_core.backends.driver import Dead, Failure, Reply, RunReport, drive
from dsi_core.backends.worker import STOP_ALL, ServerWorker, job_id, place
from dsi_core.coordinator import Coordinator
from dsi_core.errors import BackendError, InvalidInputError


class _Worker:
    """The actor body (wrapped with ``ray.remote`` when the backend starts)."""

    def __init__(self, model: Any, device: str | None, threads: int | None) -> None:
        place(model, device, threads)
        self.model = model
        self.worker: ServerWorker | None = None
        self.cancel_id = -1

    def ping(self) -> int:
        return os.getpid()

    def reset(self, prompt: list[int], temperature: float, rule: Any) -> None:
        self.cancel_id = -1
        if self.worker is None:
            self.worker = ServerWorker(self.model, prompt, temperature, rule)
        else:
            self.worker.reset(prompt, temperature, rule)

    def handle(self, action: Any) -> tuple[Any, float]:
        ident = job_id(action)
        t0 = time.perf_counter()
        assert self.worker is not None, "job before reset"
        ev = self.worker.handle(action, lambda: self.cancel_id in (ident, STOP_ALL))
        return ev, time.perf_counter() - t0

    def cancel(self, ident: int) -> None:
        self.cancel_id = ident


class _RayTransport:
    def __init__(self, backend: RayBackend) -> None:
        self.b = backend
        self.servers = backend.servers
        self.refs: dict[Any, int] = {}

    def submit(self, worker: int, action: Any) -> int:
        actor = self.b._actors[worker]
        if actor is None:
            raise BackendError("coordinator asked for a draft but no drafter")
        self.refs[actor.handle.remote(action)] = worker
        return 0

    def cancel(self, worker: int, ident: int) -> None:
        actor = self.b._actors[worker]
        if actor is not None:
            actor.cancel.remote(ident)

    def poll(self, timeout: float) -> list[tuple[int, Any]]:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        if not self.refs:
            time.sleep(timeout)
            return []
        ready, _ = ray.wait(list(self.refs), num_returns=len(self.refs), timeout=timeout)
        out: list[tuple[int, Any]] = []
        for ref in ready:
            w = self.refs.pop(ref)
            label = self.b._label(w)
            try:
                ev, compute = ray.get(ref)
            except RayActorError as exc:
                out.append((w, Dead(label, str(exc).splitlines()[0] if str(exc) else None)))
                continue
            except RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                out.append((w, Failure(label, cause if cause is not None else exc)))
                continue
            out.append((w, Reply(ev, compute)))
        return out

    def restart(self, worker: int) -> None:
        self.b._restart(worker)


class RayBackend:
    """Drives a :class:`Coordinator` with one Ray actor per worker (see module docstring)."""

    name = "ray"

    def __init__(
        self,
        servers: int,
        address: str | None = None,
        num_gpus: float = 0.0,
        num_cpus: float = 0.0,
        drafter_num_gpus: float | None = None,
        threads_per_server: int | None = None,
        timeout_s: float | None = None,
        task_timeout_s: float | None = None,
        startup_timeout_s: float = 300.0,
        poll_s: float = 0.05,
        compact: bool = True,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        for name, v in (("num_gpus", num_gpus), ("num_cpus", num_cpus)):
            if not (isinstance(v, int | float) and not isinstance(v, bool) and v >= 0):
                raise InvalidInputError(f"{name} must be a number >= 0, got {v!r}")
        self.servers = servers
        self.address = address if address is not None else os.environ.get("RAY_ADDRESS")
        self.num_gpus = num_gpus
        self.num_cpus = num_cpus
        self.drafter_num_gpus = num_gpus if drafter_num_gpus is None else drafter_num_gpus
        self.threads = threads_per_server if threads_per_server is not None else 1
        self.timeout_s = timeout_s
        self.task_timeout_s = task_timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.poll_s = poll_s
        self.compact = compact
        self.init_kwargs = init_kwargs or {}
        self.report = RunReport("ray")
        self._actors: list[Any] = []
        self._models: tuple[Any, Any] | None = None
        self._started_ray = False
        self._remote: Any = None

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _label(self, w: int) -> str:
        return "drafter" if w == self.servers else f"target-{w}"

    def _ensure_ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise InvalidInputError(
                "the ray backend needs Ray: pip install 'dsi-core[ray]'"
            ) from None
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
            kwargs.update(self.init_kwargs)
            ray.init(address=self.address, **kwargs)
            self._started_ray = True
        if self._remote is None:
            self._remote = ray.remote(max_concurrency=2)(_Worker)
        return ray

    def _spawn(self, index: int, model: Any) -> Any:
        gpus = self.drafter_num_gpus if index == self.servers else self.num_gpus
        opts = {"num_cpus": self.num_cpus, "num_gpus": gpus}
        device = "cuda" if gpus and gpus > 0 else None
        return self._remote.options(**opts).remote(model, device, self.threads)

    def _start(self, target: Any, drafter: Any) -> None:
        self.close(shutdown=False)
        ray = self._ensure_ray()
        self._models = (target, drafter)
        try:
            self._actors = [self._spawn(i, target) for i in range(self.servers)]
            self._actors.append(self._spawn(self.servers, drafter) if drafter is not None else None)
            live = [a for a in self._actors if a is not None]
            try:
                ray.get([a.ping.remote() for a in live], timeout=self.startup_timeout_s)
            except ray.exceptions.GetTimeoutError:
                raise BackendError(
                    f"{len(live)} actors did not start within {self.startup_timeout_s} s: does "
                    f"the cluster have num_gpus={self.num_gpus} and num_cpus={self.num_cpus} "
                    "free for each of them?"
                ) from None
        except BaseException:
            self.close()
            raise

    def _restart(self, index: int) -> None:
        import ray

        old = self._actors[index]
        if old is not None:
            ray.kill(old)
        model = self._models[1] if index == self.servers else self._models[0]  # type: ignore[index]
        actor = self._spawn(index, model)
        ray.get(actor.reset.remote(*self._reset_args), timeout=self.startup_timeout_s)
        self._actors[index] = actor

    def actors(self) -> list[Any]:
        """Handles of the live actors (for tests that check nothing survives)."""
        return [a for a in self._actors if a is not None]

    def close(self, shutdown: bool = True) -> None:
        """Kill every actor of this backend; shut Ray down if this backend started it."""
        actors = [a for a in self._actors if a is not None]
        self._actors = []
        self._models = None
        if actors:
            import ray

            for a in actors:
                try:
                    ray.kill(a)
                except Exception:  # noqa: BLE001 - already dead
                    pass
            _await_dead(actors, 10.0)
        if shutdown and self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False
            self._remote = None

    def run(
        self,
        coord: Coordinator,
        target: Any,
        drafter: Any,
        prompt: Sequence[int],
        temperature: float = 1.0,
    ) -> float:
        """Run to completion; returns wall seconds (actor start-up excluded)."""
        if self._models is None or self._models[0] is not target or self._models[1] is not drafter:
            self._start(target, drafter)
        ray = self._ensure_ray()
        rule = coord.rule if self.compact else None
        self._reset_args = (list(prompt), temperature, rule)
        self.report = RunReport("ray")
        ok = False
        transport = _RayTransport(self)
        try:
            live = [a for a in self._actors if a is not None]
            ray.get([a.reset.remote(*self._reset_args) for a in live])
            wall = drive(
                coord,
                transport,
                prompt,
                self.report,
                timeout_s=self.timeout_s,
                task_timeout_s=self.task_timeout_s,
                poll_s=self.poll_s,
                names=[self._label(i) for i in range(self.servers + 1)],
            )
            for a in live:  # stop stale jobs; their replies are dropped with the refs
                a.cancel.remote(STOP_ALL)
            if transport.refs:
                ray.wait(list(transport.refs), num_returns=len(transport.refs), timeout=10.0)
            ok = True
            if self.report.dead_servers or self.report.drafter_restarts:
                self._models = None  # start a full set of actors next time
            return wall
        finally:
            if not ok:
                self.close()


def _await_dead(actors: list[Any], timeout_s: float) -> None:
    """``ray.kill`` is asynchronous: wait until every actor really refuses calls."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    deadline = time.monotonic() + timeout_s
    for a in actors:
        while time.monotonic() < deadline:
            try:
                ray.get(a.ping.remote(), timeout=max(0.1, deadline - time.monotonic()))
            except RayActorError:
                break
            except GetTimeoutError:
                break  # a killed actor that never answers is as good as dead
            time.sleep(0.05)
