"""Every bad input gives a clear, typed error, before any work starts or with no thread left."""

from __future__ import annotations

import threading
from fractions import Fraction

import numpy as np
import pytest

import dsi_core.models.smollm2 as smollm2
from dsi_core import generate
from dsi_core.cli import main
from dsi_core.errors import (
    ContextLengthError,
    DrafterError,
    InvalidDistributionError,
    InvalidInputError,
    ModelNotFoundError,
    VocabularyMismatchError,
)
from dsi_core.models.base import Proposal
from dsi_core.testing.toy import ToyModel, random_table_model

TARGET = random_table_model(4, 1)
DRAFTER = random_table_model(4, 2)


def run(**kw):
    args = dict(target=TARGET, drafter=DRAFTER, max_new_tokens=8, backend="threads")
    args.update(kw)
    return generate([1, 2], **args)


@pytest.fixture(autouse=True)
def no_default_model_load(monkeypatch):
    """Validation must happen before the (slow) default model is loaded."""

    def boom(*a, **k):
        raise AssertionError("default model loaded before validation")

    monkeypatch.setattr(smollm2, "load_smollm2", boom)


@pytest.mark.parametrize(
    "kw",
    [
        dict(lookahead=0),
        dict(lookahead=-3),
        dict(servers=0),
        dict(max_new_tokens=-1),
        dict(max_new_tokens=0),
        dict(max_new_tokens=10**9),
        dict(mode="rejection", temperature=0),
        dict(mode="coupled", temperature=-1.0),
        dict(mode="rejection", temperature=float("nan")),
        dict(algorithm="turbo"),
        dict(mode="nucleus"),
        dict(backend="gpu-magic"),
        dict(seed=-5),
    ],
)
def test_bad_parameters_fail_before_any_work(kw):
    with pytest.raises(InvalidInputError):
        generate("hello", **kw)  # target=None: would load SmolLM2 if validation came later


def test_greedy_ignores_temperature():
    assert run(mode="greedy", temperature=0).tokens


def test_empty_prompt():
    with pytest.raises(InvalidInputError, match="empty"):
        generate([], target=TARGET, drafter=DRAFTER)
    with pytest.raises(InvalidInputError):
        generate("   ", target=TARGET, drafter=DRAFTER)


def test_prompt_token_outside_vocabulary():
    with pytest.raises(InvalidInputError, match="vocabulary"):
        generate([1, 99], target=TARGET, drafter=DRAFTER)


def test_vocabulary_mismatch():
    with pytest.raises(VocabularyMismatchError):
        run(drafter=random_table_model(5, 2))


def test_prompt_longer_than_context():
    t = random_table_model(4, 1)
    t.max_context = 10
    with pytest.raises(ContextLengthError):
        generate([1] * 8, target=t, drafter=DRAFTER, max_new_tokens=3)


def test_nan_in_a_target_row_is_reported():
    bad = ToyModel(
        4,
        lambda toks: np.array([np.nan, 0.5, 0.25, 0.25]) if len(toks) > 3 else np.array([0.25] * 4),
    )
    for backend in ("threads", "simulated"):
        with pytest.raises(InvalidDistributionError):
            generate([1, 2], target=bad, drafter=DRAFTER, backend=backend, max_new_tokens=6)


class ZeroQDrafter:
    vocab_size = 4

    def new_state(self):
        return None

    def propose(self, state, tokens):
        return Proposal(q=np.array([0.0, 0.5, 0.5, 0.0]), token=3)


@pytest.mark.parametrize("mode", ["rejection", "greedy", "coupled"])
@pytest.mark.parametrize("backend", ["threads", "simulated"])
def test_drafter_whose_q_excludes_its_own_token(mode, backend):
    # Deterministic by the policy, not by timing: SI starts no target task before its first
    # draft arrives, so that draft is never stale and is always checked, whatever the threads
    # do (DSI on threads may finish from the target's chain before any draft is used, then the
    # bad draft is harmless and unchecked). The simulated backend's DSI is deterministic.
    algorithm = "si" if backend == "threads" else "dsi"
    with pytest.raises(DrafterError, match="probability 0"):
        run(drafter=ZeroQDrafter(), mode=mode, backend=backend, algorithm=algorithm)


def test_unknown_model_path():
    from dsi_core.models.hf import HFModel

    with pytest.raises(ModelNotFoundError):
        HFModel.from_pretrained("/nonexistent/model")
    with pytest.raises(ModelNotFoundError):
        run(drafter="/nonexistent/drafter")


def test_hf_from_pretrained_checks_its_source_before_transformers(tmp_path, monkeypatch):
    # Called directly (not through generate or the CLI), from_pretrained validates the path
    # the same way: an offline unknown hub id, an empty directory and a config-less directory
    # are typed errors raised before transformers (and its hub retries) is reached.
    import transformers

    from dsi_core.models.hf import HFModel

    def unreachable(*args, **kwargs):
        raise AssertionError("transformers was called for an invalid model source")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", unreachable)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "config.json").write_text("{}")
    for spec, message in [
        ("bogus-model-name", "hub is unreachable"),
        (str(tmp_path / "missing"), "no model at"),
        (str(tmp_path), "no weights"),
    ]:
        with pytest.raises(ModelNotFoundError, match=message):
            HFModel.from_pretrained(spec)


def test_cli_reports_errors_with_exit_status_2(capsys):
    assert main(["generate", "hi", "--lookahead", "0"]) == 2
    assert "lookahead" in capsys.readouterr().err
    assert main(["generate", "hi", "--target", "/nonexistent/model"]) == 2


class Exploding(ToyModel):
    def __init__(self, base, after):
        super().__init__(base.vocab_size, base.fn, "exploding")
        self.after = after
        self.lock = threading.Lock()
        self.called = threading.Event()

    def _tick(self):
        self.called.set()
        with self.lock:
            self.calls += 1
            if self.calls > self.after:
                raise RuntimeError("model blew up")

    def rows(self, state, tokens, start):
        self._tick()
        return [self.row(tokens[:j]) for j in range(start, len(tokens) + 1)]

    def propose(self, state, tokens):
        self._tick()
        return Proposal(q=self.row(tokens))


class WaitsFor(ToyModel):
    """A target whose forwards wait until ``other`` has been called (at most 30 s): DSI's chain
    needs no drafter, so on a loaded machine a run could end before the drafter ever ran."""

    def __init__(self, base, other):
        super().__init__(base.vocab_size, base.fn, "waits")
        self.other = other

    def rows(self, state, tokens, start):
        self.other.called.wait(30)
        return super().rows(state, tokens, start)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("who", ["target", "drafter"])
def test_model_raising_mid_run_ends_the_run_cleanly(who):
    before = set(threading.enumerate())
    if who == "target":  # at least 8 target forwards for 40 tokens (k = 4): the 6th raises
        kw = {"target": Exploding(TARGET, after=5)}
    else:  # the drafter's first call raises, and no target forward runs before it
        bad = Exploding(DRAFTER, after=0)
        kw = {"drafter": bad, "target": WaitsFor(TARGET, bad)}
    with pytest.raises(RuntimeError, match="model blew up") as info:
        run(max_new_tokens=40, servers=3, **kw)
    assert any("worker thread" in n for n in getattr(info.value, "__notes__", []))
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leftover, leftover


def test_simulated_backend_deadlock_is_an_error():
    from dsi_core.backends.simulated import SimulatedBackend
    from dsi_core.coordinator import Config, Coordinator
    from dsi_core.errors import BackendError
    from dsi_core.sampling import DecisionRule, KeyedNoise

    class NeverStarts(Coordinator):
        def _schedule(self):
            return []

    c = NeverStarts(Config("dsi", 2, 2, 4), DecisionRule("greedy", KeyedNoise(0)))
    with pytest.raises(BackendError, match="deadlock"):
        SimulatedBackend(1, Fraction(1, 2)).run(c, TARGET, DRAFTER, [1])
