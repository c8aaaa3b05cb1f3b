"""The ``processes`` backend: same tokens as the simulated reference, nothing outlives a run,
dead servers are survived, deadlines end hung runs, and forwards stop between layers.

Every check compares tokens or counts processes; none asserts a duration.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import threading
import time

import numpy as np
import pytest

from dsi_core import generate
from dsi_core.backends.processes import ProcessesBackend
from dsi_core.backends.worker import ServerWorker
from dsi_core.checker import checked
from dsi_core.config import Config
from dsi_core.coordinator import Coordinator
from dsi_core.errors import BackendError, DeadlineExceededError
from dsi_core.events import StartTarget, TargetAborted, TargetDone
from dsi_core.models.hf import tiny_llama
from dsi_core.sampling import DecisionRule, KeyedNoise
from dsi_core.testing.toy import ToyModel, random_table_model

TARGET = random_table_model(5, seed=11, exact=False)
DRAFTER = random_table_model(5, seed=12, exact=False)
PROMPT = [1, 2]


def children() -> set[int]:
    return {p.pid for p in mp.active_children()}


def run(backend: str, **kw):
    args = dict(target=TARGET, drafter=DRAFTER, max_new_tokens=12, seed=5)
    args.update(kw)
    return checked(generate(PROMPT, backend=backend, **args))  # every run's trace is checked


@pytest.mark.parametrize("mode", ["greedy", "rejection", "coupled"])
@pytest.mark.parametrize(
    "alg,k,s", [("dsi", 1, 2), ("dsi", 2, 3), ("dsi", 4, 2), ("si", 3, 1), ("nonsi", 1, 2)]
)
def test_processes_equal_the_simulated_reference(mode, alg, k, s):
    before = children()
    kw = dict(mode=mode, algorithm=alg, lookahead=k, servers=s, temperature=0.9)
    ref = run("simulated", **kw)
    got = run("processes", **kw)
    assert got.tokens == ref.tokens
    assert got.transport["transport"] == "processes" and got.transport["tasks"] >= 1
    assert children() <= before  # every worker process was joined


def test_processes_report_bytes_and_a_positive_overhead():
    """Round trip (send to reply) minus the compute time the worker measured: pickling and the
    pipe cost something, so the median is positive (a compute time measured wrongly, larger
    than the round trip, would be clipped to 0)."""
    t = run("processes", servers=2, lookahead=2).transport
    assert t["transport"] == "processes" and t["tasks"] >= 1 and t["drafts"] >= 1
    assert t["bytes_per_job"] > 0
    assert t["overhead_ms_median"] > 0


class Jittery(ToyModel):
    """Random sleeps per call, so completion order varies from run to run."""

    def __init__(self, base: ToyModel, seed: int) -> None:
        super().__init__(base.vocab_size, base.fn, "jittery")
        self.rng = random.Random(seed)

    def rows(self, state, tokens, start):
        time.sleep(self.rng.random() * 0.004)
        return super().rows(state, tokens, start)

    def propose(self, state, tokens):
        time.sleep(self.rng.random() * 0.002)
        return super().propose(state, tokens)


@pytest.mark.parametrize("mode", ["greedy", "rejection"])
def test_jittered_processes_runs_equal_the_reference(mode):
    ref = run("simulated", mode=mode, lookahead=2, servers=3, max_new_tokens=16)
    for seed in range(3):
        got = run(
            "processes",
            target=Jittery(TARGET, seed),
            drafter=Jittery(DRAFTER, 100 + seed),
            mode=mode,
            lookahead=2,
            servers=3,
            max_new_tokens=16,
        )
        assert got.tokens == ref.tokens


def test_tiny_hf_models_in_processes_equal_the_reference():
    target, drafter = tiny_llama(64, seed=0), tiny_llama(64, seed=1)
    for mode in ("greedy", "rejection"):
        kw = dict(target=target, drafter=drafter, mode=mode, max_new_tokens=16, seed=2)
        ref = generate([1, 2, 3], backend="simulated", **kw)
        got = generate([1, 2, 3], backend="processes", servers=2, **kw)
        assert got.tokens == ref.tokens


def test_a_backend_reuses_its_workers_across_runs_and_close_stops_them():
    """Three runs on the same workers, each with its own prompt (the workers must take the new
    prompt: a worker that kept the old one would compute on the wrong context)."""
    before = children()
    prompts = [PROMPT, [3], [4, 0, 1]]
    with ProcessesBackend(2) as b:
        toks, pids = [], []
        for seed, prompt in enumerate(prompts):
            coord = Coordinator(Config("dsi", 2, 2, 10), DecisionRule("greedy", KeyedNoise(seed)))
            b.run(coord, TARGET, DRAFTER, prompt)
            toks.append(coord.committed)
            pids.append(tuple(b.pids()))
        assert len(set(pids)) == 1 and len(pids[0]) == 3  # 2 servers + drafter, reused
    assert children() <= before
    kw = dict(target=TARGET, drafter=DRAFTER, lookahead=2, servers=2, max_new_tokens=10)
    refs = [generate(p, backend="simulated", seed=0, **kw).tokens for p in prompts]
    assert toks == refs and len({tuple(t) for t in refs}) > 1  # the prompts matter


class Exploding(ToyModel):
    def __init__(self, base: ToyModel, after: int) -> None:
        super().__init__(base.vocab_size, base.fn, "exploding")
        self.after = after

    def rows(self, state, tokens, start):
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("model blew up")
        return [self.row(tokens[:j]) for j in range(start, len(tokens) + 1)]


def test_a_raising_model_ends_the_run_and_no_process_survives():
    before = children()
    with pytest.raises(RuntimeError, match="model blew up") as info:
        run("processes", target=Exploding(TARGET, 2), servers=2, max_new_tokens=30)
    assert any("target" in n for n in getattr(info.value, "__notes__", []))
    assert children() <= before


class DiesOnce(ToyModel):
    """The first process to call it ``after`` times exits hard (a crashed server/drafter)."""

    def __init__(self, base: ToyModel, flag: str, after: int = 2) -> None:
        super().__init__(base.vocab_size, base.fn, "dies-once")
        self.flag, self.after = flag, after

    def _maybe_die(self) -> None:
        self.calls += 1
        if self.calls > self.after and not os.path.exists(self.flag):
            open(self.flag, "w").close()
            os._exit(3)

    def rows(self, state, tokens, start):
        self._maybe_die()
        return super().rows(state, tokens, start)

    def propose(self, state, tokens):
        self._maybe_die()
        return super().propose(state, tokens)


@pytest.mark.parametrize("who", ["target", "drafter"])
@pytest.mark.parametrize("mode", ["greedy", "rejection"])
def test_a_killed_worker_is_survived_with_identical_tokens(tmp_path, who, mode):
    before = children()
    kw = dict(mode=mode, lookahead=2, servers=3, max_new_tokens=20)
    ref = run("simulated", **kw)
    model = DiesOnce(TARGET if who == "target" else DRAFTER, str(tmp_path / "died"))
    got = run("processes", **{who: model}, **kw)
    assert (tmp_path / "died").exists()  # the crash really happened
    assert got.tokens == ref.tokens
    key = "dead_servers" if who == "target" else "drafter_restarts"
    if mode == "rejection":  # every position waits for its draft and row: the death is seen
        assert got.transport[key] == 1
    else:  # greedy DSI may finish on the chain before it notices a dead drafter
        assert got.transport[key] <= 1
    assert children() <= before


class AlwaysDies(ToyModel):
    def rows(self, state, tokens, start):
        os._exit(4)


def test_every_server_dead_is_a_typed_error():
    before = children()
    dead = AlwaysDies(TARGET.vocab_size, TARGET.fn, "always-dies")
    with pytest.raises(BackendError, match="every target server died"):
        run("processes", target=dead, servers=2)
    assert children() <= before


class Hangs(ToyModel):
    """Hangs for a minute in every call, unless :attr:`release` is set (in this process: a
    worker process's copy is never released, the backend kills it)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.release = threading.Event()

    def __getstate__(self):  # spawn pickles the model: a process-local event does not travel
        return {k: v for k, v in self.__dict__.items() if k != "release"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.release = threading.Event()

    def rows(self, state, tokens, start):
        self.release.wait(60)
        return super().rows(state, tokens, start)

    def propose(self, state, tokens):
        self.release.wait(60)
        return super().propose(state, tokens)


def dsi_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dsi-")]


@pytest.mark.parametrize("who", ["target", "drafter"])
@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_a_hanging_model_hits_the_task_deadline(who, backend):
    before = children()
    hung = Hangs(5, TARGET.fn if who == "target" else DRAFTER.fn, "hangs")
    t0 = time.monotonic()
    try:
        with pytest.raises(DeadlineExceededError, match="deadline"):
            run(backend, **{who: hung}, task_timeout_s=0.5, mode="rejection")
        assert time.monotonic() - t0 < 30  # far below the 60 s hang: the deadline ended it
        assert children() <= before
    finally:
        hung.release.set()  # threads cannot be killed: free the abandoned ones
        for t in dsi_threads():  # so that no later test finds them still running
            t.join(10)


class SlowToPlace(ToyModel):
    """A model whose placement on its device takes a minute: its worker hangs while starting."""

    def to(self, device):
        time.sleep(60)
        return self


def test_a_worker_that_hangs_while_starting_is_a_typed_error():
    before = children()
    slow = SlowToPlace(5, TARGET.fn, "slow-to-place")
    t0 = time.monotonic()
    with ProcessesBackend(2, devices=["cpu", "cpu"], startup_timeout_s=1.0) as b:
        coord = Coordinator(Config("dsi", 2, 2, 10), DecisionRule("greedy", KeyedNoise(0)))
        with pytest.raises(BackendError, match="target-0 did not start within 1.0 s"):
            b.run(coord, slow, DRAFTER, PROMPT)
    assert time.monotonic() - t0 < 30  # far below the 60 s hang: the startup deadline ended it
    assert children() <= before


def test_run_deadline_processes():
    before = children()
    with pytest.raises(DeadlineExceededError, match="run exceeded"):
        run("processes", target=Hangs(5, TARGET.fn, "hangs"), timeout_s=0.5)
    assert children() <= before


_VICTIM = """
import sys, time
from dsi_core.backends.processes import ProcessesBackend
from dsi_core.testing.toy import random_table_model

b = ProcessesBackend(2, start_method=sys.argv[1])
b._start(random_table_model(5, seed=11, exact=False), random_table_model(5, seed=12, exact=False))
print(" ".join(str(p) for p in b.pids()), flush=True)
time.sleep(120)
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # zombies are gone
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads process states from /proc")
def test_workers_exit_when_their_parent_is_killed(tmp_path):
    """SIGKILL runs no cleanup in the parent; its three workers must notice and exit. Under
    fork (the CPU default) a worker blocked on its pipe never sees end-of-file (its later
    siblings inherited the parent's end), so without the parent watch they would live on.
    (Under spawn nothing is inherited: end-of-file ends them.)"""
    import subprocess
    import sys

    script = tmp_path / "victim.py"
    script.write_text(_VICTIM)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, str(script), "fork"], stdout=subprocess.PIPE, text=True, env=env
    )
    pids: list[int] = []
    try:
        pids = [int(x) for x in proc.stdout.readline().split()]
        assert len(pids) == 3 and all(_running(p) for p in pids)
    finally:
        proc.kill()
        proc.wait(30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_running(p) for p in pids):
        time.sleep(0.1)
    left = [p for p in pids if _running(p)]
    for p in left:  # do not leak them into the rest of the suite
        os.kill(p, signal.SIGKILL)
    assert not left, f"workers {left} outlived their killed parent"


def test_keyboard_interrupt_leaves_no_process():
    before = children()
    hung = Hangs(5, TARGET.fn, "hangs")
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run("processes", target=hung, servers=2)
    finally:
        timer.cancel()
    assert children() <= before


# ----------------------------------------------------------------------------- preemption


def _sleepy_llama(layers: int, sleep_s: float, log: list):
    m = tiny_llama(64, seed=0, layers=layers)
    for i, layer in enumerate(m.model.model.layers):

        def hook(mod, args, i=i):
            log.append(i)
            time.sleep(sleep_s)

        layer.register_forward_hook(hook)
    return m


def test_a_cancel_stops_the_forward_at_the_next_layer_and_keeps_the_cache_consistent():
    log: list[int] = []
    m = _sleepy_llama(8, 0.0, log)
    prompt = [1, 2, 3, 4]
    w = ServerWorker(m, prompt, 1.0)
    first = StartTarget(1, 1, (5, 6), 0, "chain")
    assert isinstance(w.handle(first, lambda: False), TargetDone)
    cached = w.state.cache.get_seq_length()
    log.clear()
    stop = lambda: len(log) >= 2  # noqa: E731 - cancelled while layer 1 runs
    ev = w.handle(StartTarget(2, 1, (5, 6, 7, 8, 9), 2, "block"), stop)
    assert isinstance(ev, TargetAborted)
    assert len(log) == 2  # layers 0 and 1 ran; layer 2 never started
    # every layer cut back to the same complete prefix, and the state says which one it is
    lengths = {layer.get_seq_length() for layer in w.state.cache.layers}
    assert lengths == {len(w.state.tokens)} and 0 < len(w.state.tokens) <= cached
    assert w.state.tokens == (prompt + [5, 6])[: len(w.state.tokens)]
    again = w.handle(StartTarget(3, 1, (5, 6, 7, 8, 9), 2, "block"), lambda: False)
    fresh = ServerWorker(tiny_llama(64, seed=0, layers=8), prompt, 1.0)
    ref = fresh.handle(StartTarget(3, 1, (5, 6, 7, 8, 9), 2, "block"), lambda: False)
    # equal up to float reassociation (different forward shapes); a stale or misaligned cache
    # would change the rows entirely
    for a, b in zip(again.rows, ref.rows, strict=True):
        assert np.allclose(a, b, rtol=1e-5, atol=1e-7) and a.argmax() == b.argmax()


def test_preempted_forwards_in_processes_keep_the_output():
    log: list[int] = []
    target = _sleepy_llama(6, 0.002, log)
    drafter = tiny_llama(64, seed=1)
    kw = dict(target=target, drafter=drafter, max_new_tokens=16, lookahead=2, seed=1)
    ref = generate([1, 2, 3], backend="simulated", **kw)
    got = generate([1, 2, 3], backend="processes", servers=3, **kw)
    assert got.tokens == ref.tokens
    assert got.stats.target_preempted >= 1  # random drafts are rejected: preemption happened


def test_default_start_method(monkeypatch):
    """fork on CPU with one thread per server, unless this process initialised CUDA (which
    cannot be forked); the check must not import torch (seconds, and a Ctrl-C half-way
    through an import leaves a broken torch behind)."""
    import sys
    import types

    from dsi_core.backends.processes import _default_start_method

    if "fork" not in mp.get_all_start_methods():
        assert _default_start_method([None], 1) == "spawn"
        return
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert _default_start_method([None, None], 1) == "fork"
    assert "torch" not in sys.modules
    assert _default_start_method([None], 2) == "spawn"  # OpenMP threads do not survive fork
    assert _default_start_method(["cpu", "cuda:0"], 1) == "spawn"
    for initialised, want in ((True, "spawn"), (False, "fork")):
        cuda = types.SimpleNamespace(is_initialized=lambda v=initialised: v)
        monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
        assert _default_start_method([None], 1) == want
