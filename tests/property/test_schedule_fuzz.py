"""Schedule fuzzer: 1,200 random completion orders and jittered latencies, every mode and
algorithm, each output compared with a reference that has no schedule at all.

Each run draws a toy target (vocabulary 2-5, exact Fraction or float rows), a drafter (a toy
model with its own rows, the target itself, an adversarial one, or prompt lookup), ``k``, ``S``,
``N``, a seed and a schedule, and runs on the simulated backend, either

* through :func:`dsi_core.generate` with ``sim_order="random:SEED"`` (any completion order) or
  random per-job ``Fraction`` latencies (a callable, so each job draws its own), or
* through the coordinator directly with ``cancellation="fails"`` (preempted jobs keep running
  and deliver their stale results late, which must be dropped).

References, computed position by position with the decision rules and no coordinator:

* ``greedy``: plain argmax decoding of the target (lowest index on ties);
* ``coupled``: ``argmax(log p + G_pos)``, the non-SI output for the seed;
* ``rejection``: SI/DSI decide *every* position with the drafter's draft for it, so the output
  is the sequential loop "draft from the committed prefix, then decide" (a function of seed,
  drafter and prompt); non-SI samples plainly from ``p``.

``FUZZ_RUNS`` (per test, default 300; 4 tests) and ``FUZZ_SEED`` widen or move the search; a
failure prints the run's parameters. Two mutants (noise keyed by call order; stale target
results treated as fresh) must be caught, so the fuzzer is shown able to fail.
"""

from __future__ import annotations

import os
import random
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from dsi_core import generate
from dsi_core.backends.simulated import SimulatedBackend
from dsi_core.config import Config
from dsi_core.coordinator import Coordinator
from dsi_core.models.base import Proposal
from dsi_core.models.lookup import LookupDrafter
from dsi_core.sampling import DecisionRule, KeyedNoise, argmax, to_probs
from dsi_core.testing.toy import ToyModel, adversarial_drafter, random_table_model

RUNS = int(os.environ.get("FUZZ_RUNS", "300"))
BASE = int(os.environ.get("FUZZ_SEED", "20261128"))
MODES = ("greedy", "rejection", "coupled")
ALGORITHMS = ("dsi", "si", "nonsi")


# ----------------------------------------------------------------------------- references


def _q(drafter: Any, tokens: list[int], temperature: float) -> tuple[Any, int | None]:
    prop: Proposal = drafter.propose(None, tokens)
    q = None if prop.q is None else to_probs(prop.q, "probs", temperature)
    return q, prop.token


def reference(
    mode: str,
    algorithm: str,
    target: Any,
    drafter: Any,
    prompt: list[int],
    n: int,
    seed: int,
    temperature: float,
) -> list[int]:
    """The tokens every schedule must produce (see the module docstring)."""
    rule = DecisionRule(mode, KeyedNoise(seed))
    temp = 1.0 if mode == "greedy" else temperature
    out: list[int] = []
    for pos in range(n):
        ctx = prompt + out
        p = to_probs(target.row(ctx), "probs", temp)
        if mode == "greedy":
            out.append(argmax(p))
        elif mode == "coupled" or algorithm == "nonsi":
            out.append(rule.decide(pos, p)[0])
        else:
            q, token = _q(drafter, ctx, temp)
            draft = token if token is not None else rule.draft_token(pos, q)
            out.append(rule.decide(pos, p, draft, q)[0])
    return out


# ----------------------------------------------------------------------------- random runs


def _float_model(m: ToyModel) -> ToyModel:
    return ToyModel(
        m.vocab_size, lambda t: np.asarray([float(x) for x in m.fn(t)]), name=m.name + "-f"
    )


def draw(rng: random.Random, i: int, mode: str) -> dict[str, Any]:
    """The parameters of run ``i`` (cycles through the algorithms)."""
    vocab = rng.randint(2, 5)
    target = random_table_model(vocab, rng.randrange(10**6), zeros=rng.random() < 0.5)
    kind = rng.choice(["model", "model", "self", "adversarial", "lookup"])
    if kind == "model":
        drafter: Any = random_table_model(vocab, rng.randrange(10**6), zeros=rng.random() < 0.5)
    elif kind == "self":
        drafter = target
    elif kind == "adversarial":
        drafter = adversarial_drafter(target)
    else:
        drafter = LookupDrafter()
    if rng.random() < 0.3:  # float rows exercise the tolerance path and the torch-like dtype
        target = _float_model(target)
        if isinstance(drafter, ToyModel):
            drafter = _float_model(drafter)
    return dict(
        mode=mode,
        algorithm=ALGORITHMS[i % 3],
        target=target,
        drafter=drafter,
        drafter_kind=kind,
        prompt=[rng.randrange(vocab) for _ in range(rng.randint(1, 3))],
        n=rng.randint(1, 12),
        k=rng.randint(1, 5),
        servers=rng.randint(1, 5),
        seed=rng.randrange(2**32),
        temperature=rng.choice([1.0, 1.0, 0.7, 1.6]),
        schedule=rng.choice(["order", "jitter", "jitter", "fails"]),
        schedule_seed=rng.randrange(2**32),
    )


def _jitter(rng: random.Random, lo: int, hi: int):  # noqa: ANN202 - latency callable
    return lambda action: Fraction(rng.randint(lo, hi), 16)


def run(params: dict[str, Any]) -> list[int]:
    """Execute one drawn run on the simulated backend; returns the tokens."""
    p = params
    srng = random.Random(p["schedule_seed"])
    t_lat = _jitter(srng, 4, 64)  # 0.25 .. 4
    d_lat = _jitter(srng, 1, 24)  # 1/16 .. 1.5: sometimes slower than the target
    if p["schedule"] == "fails":
        cfg = Config(
            p["algorithm"],
            p["k"],
            p["servers"],
            p["n"],
            mode=p["mode"],
            temperature=p["temperature"],
            seed=p["seed"],
            backend="simulated",
        )
        coord = Coordinator(cfg, DecisionRule(cfg.mode, KeyedNoise(cfg.seed)))
        backend = SimulatedBackend(t_lat, d_lat, cancellation="fails")
        drafter = p["drafter"] if cfg.speculative else None
        backend.run(coord, p["target"], drafter, p["prompt"], cfg.effective_temperature)
        return list(coord.committed)
    kw: dict[str, Any] = {}
    if p["schedule"] == "order":
        kw["sim_order"] = f"random:{p['schedule_seed']}"
    else:
        kw["sim_target_latency"], kw["sim_draft_latency"] = t_lat, d_lat
    return generate(
        p["prompt"],
        target=p["target"],
        drafter=p["drafter"],
        algorithm=p["algorithm"],
        lookahead=p["k"],
        servers=p["servers"],
        mode=p["mode"],
        temperature=p["temperature"],
        seed=p["seed"],
        max_new_tokens=p["n"],
        backend="simulated",
        **kw,
    ).tokens


def fuzz(mode: str, runs: int, base: int) -> list[str]:
    """Run ``runs`` drawn runs of ``mode``; returns a description of every mismatch."""
    bad = []
    for i in range(runs):
        rng = random.Random(f"{base}:{mode}:{i}")
        p = draw(rng, i, mode)
        want = reference(
            mode,
            p["algorithm"],
            p["target"],
            p["drafter"],
            p["prompt"],
            p["n"],
            p["seed"],
            p["temperature"],
        )
        got = run(p)
        if got != want:
            shown = {k: v for k, v in p.items() if k not in ("target", "drafter")}
            bad.append(f"run {i}: got {got}, want {want}; {shown}")
    return bad


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", MODES + ("rejection-2",))
def test_every_schedule_gives_the_reference_output(mode):
    """4 x RUNS runs (rejection twice: its reference is the subtlest)."""
    m = mode.split("-")[0]
    bad = fuzz(m, RUNS, BASE + (7 if mode.endswith("-2") else 0))
    assert not bad, f"{len(bad)} of {RUNS} {m} runs differ from the reference:\n" + "\n".join(
        bad[:5]
    )


def test_the_runs_cover_every_mode_algorithm_and_schedule():
    seen = set()
    for mode in MODES:
        for i in range(RUNS):
            p = draw(random.Random(f"{BASE}:{mode}:{i}"), i, mode)
            seen.add((p["mode"], p["algorithm"], p["schedule"]))
    assert len(seen) == 3 * 3 * 3


# ----------------------------------------------------------------------------- mutants


def test_fuzzer_catches_noise_keyed_by_call_order(monkeypatch):
    """Randomness drawn from a shared counter (by call order, not position) is caught."""
    counter = iter(range(10**9))

    def by_call_order(self, pos, stream):
        return float(np.random.Generator(np.random.Philox(key=next(counter))).random())

    monkeypatch.setattr(KeyedNoise, "uniform", by_call_order)
    assert fuzz("rejection", 60, BASE)


def test_fuzzer_catches_stale_target_results_used_as_fresh(monkeypatch):
    """A coordinator that forgets that a task was preempted commits rows of a dead context."""
    original = Coordinator._on_target

    def forgetful(self, ev):
        task = self._tasks.get(ev.task_id)
        if task is not None:
            task.cancelled = False
        return original(self, ev)

    monkeypatch.setattr(Coordinator, "_on_target", forgetful)
    bad = [b for mode in MODES for b in fuzz(mode, 60, BASE)]
    assert bad
