"""The ``ray`` backend on a local Ray: same tokens as the simulated reference, no actor
survives its backend, dead actors are survived. Marked ``ray``; runs in CI (the test extra
installs Ray), deselect with ``-m "not ray"``."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import ray

from dsi_core import generate
from dsi_core.backends.ray_backend import RayBackend
from dsi_core.checker import checked
from dsi_core.config import Config
from dsi_core.coordinator import Coordinator
from dsi_core.models.hf import tiny_llama
from dsi_core.sampling import DecisionRule, KeyedNoise
from dsi_core.testing.toy import ToyModel, random_table_model

pytestmark = pytest.mark.ray

TARGET = random_table_model(5, seed=21, exact=False)
DRAFTER = random_table_model(5, seed=22, exact=False)
PROMPT = [1, 2]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    import sys

    from ray import cloudpickle

    # the model classes below live in this test module, which Ray's workers cannot import
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def all_dead(actors) -> bool:
    from ray.exceptions import RayActorError

    for a in actors:
        try:
            ray.get(a.ping.remote(), timeout=30)
        except RayActorError:
            continue
        return False
    return True


def run(backend: str, **kw):
    args = dict(target=TARGET, drafter=DRAFTER, max_new_tokens=12, seed=4)
    args.update(kw)
    return checked(generate(PROMPT, backend=backend, **args))  # every run's trace is checked


@pytest.mark.parametrize("mode", ["greedy", "rejection", "coupled"])
def test_ray_equals_the_simulated_reference(mode):
    with RayBackend(3) as rb:
        for alg, k in (("dsi", 2), ("dsi", 1)):
            cfg = Config(alg, k, 3, 12, mode=mode)
            ref = run("simulated", algorithm=alg, lookahead=k, servers=3, mode=mode)
            coord = Coordinator(cfg, DecisionRule(mode, KeyedNoise(4)))
            rb.run(coord, TARGET, DRAFTER, PROMPT)
            assert coord.committed == ref.tokens
        actors = rb.actors()
        assert len(actors) == 4
    assert all_dead(actors)


def test_ray_through_generate_with_tiny_hf_models():
    target, drafter = tiny_llama(64, seed=0), tiny_llama(64, seed=1)
    kw = dict(target=target, drafter=drafter, max_new_tokens=12, seed=2, mode="rejection")
    ref = generate([1, 2, 3], backend="simulated", **kw)
    got = generate([1, 2, 3], backend="ray", servers=2, **kw)
    assert got.tokens == ref.tokens
    assert got.transport["transport"] == "ray" and got.transport["tasks"] >= 1


class Exploding(ToyModel):
    def rows(self, state, tokens, start):
        self.calls += 1
        if self.calls > 2:
            raise RuntimeError("model blew up")
        return super().rows(state, tokens, start)


def test_a_raising_model_ends_the_run_and_kills_the_actors():
    rb = RayBackend(2)
    coord = Coordinator(Config("dsi", 2, 2, 30), DecisionRule("greedy", KeyedNoise(0)))
    boom = Exploding(TARGET.vocab_size, TARGET.fn, "exploding")
    with pytest.raises(RuntimeError, match="model blew up"):
        rb._start(boom, DRAFTER)
        actors = rb.actors()
        rb.run(coord, boom, DRAFTER, PROMPT)
    assert rb.actors() == [] and all_dead(actors)


class DiesOnce(ToyModel):
    def __init__(self, base: ToyModel, flag: str) -> None:
        super().__init__(base.vocab_size, base.fn, "dies-once")
        self.flag = flag

    def rows(self, state, tokens, start):
        self.calls += 1
        if self.calls > 2 and not os.path.exists(self.flag):
            open(self.flag, "w").close()
            os._exit(3)
        return super().rows(state, tokens, start)


def test_a_killed_server_actor_is_survived_with_identical_tokens(tmp_path):
    kw = dict(mode="rejection", lookahead=2, servers=3, max_new_tokens=16)
    ref = run("simulated", **kw)
    got = run("ray", target=DiesOnce(TARGET, str(tmp_path / "died")), **kw)
    assert (tmp_path / "died").exists()
    assert got.tokens == ref.tokens
    assert got.transport["dead_servers"] == 1


class Hangs(ToyModel):
    def rows(self, state, tokens, start):
        time.sleep(60)
        return super().rows(state, tokens, start)


def test_keyboard_interrupt_kills_the_actors():
    rb = RayBackend(2)
    hung = Hangs(TARGET.vocab_size, TARGET.fn, "hangs")
    rb._start(hung, DRAFTER)
    actors = rb.actors()
    coord = Coordinator(Config("dsi", 2, 2, 12), DecisionRule("greedy", KeyedNoise(0)))
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            rb.run(coord, hung, DRAFTER, PROMPT)
    finally:
        timer.cancel()
    assert rb.actors() == [] and all_dead(actors)
