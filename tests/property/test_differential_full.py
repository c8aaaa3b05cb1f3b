"""Differential test at full width: simulator vs latency model where the model applies, and
output equality to the reference everywhere.

Width: finite ``S`` (1..5 and 64), EOS, every named completion order plus seeded random ones,
instant / delayed / failed cancellation, all three modes, DSI / SI / non-SI. The pattern target
and drafter make every mode's decisions equal (one-hot rows: greedy, coupled and rejection all
accept exactly the drafts with ``a[i] = 1``), so the committed tokens must be the reference
``y(0..)`` (cut after the first EOS) in *every* configuration, and every trace must pass the
checker. The latency model (``proofs.latency_model``) applies when the clock is the simulator's
own (no forced order), cancellation is instant, there is no EOS, the mode is greedy or coupled
(rejection mode waits for drafts: not modelled), and no task waited for a server; there the end
time must equal the model's exactly. The ``slow`` sweep does the same exhaustively for every
pattern with N <= 8, k <= 6 and several c/t (fixed, so no seed is involved).
"""

from __future__ import annotations

import itertools
from fractions import Fraction as F

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsi_core import Config, Coordinator, DecisionRule, KeyedNoise, check_trace
from dsi_core.backends.simulated import ORDERS, SimulatedBackend
from dsi_core.testing.synthetic import PatternDrafter, PatternTarget, y
from proofs.latency_model import dsi_latency, nonsi_latency, si_latency

MODEL = {"dsi": dsi_latency, "si": si_latency}
CANCELLATIONS = ["instant", F(1, 10), F(1, 2), "fails"]


def run(
    algorithm, a, k, servers, t, c, mode="greedy", order=None, cancellation="instant", eos=None
):
    cfg = Config(algorithm, k, servers, len(a), eos_token_id=eos, mode=mode)
    coord = Coordinator(cfg, DecisionRule(mode, KeyedNoise(0)))
    drafter = PatternDrafter(a) if algorithm != "nonsi" else None
    backend = SimulatedBackend(t, c, order=order, cancellation=cancellation)
    end = backend.run(coord, PatternTarget(), drafter, [0])
    return end, coord


def reference(n, eos):
    out = [y(i) for i in range(n)]
    if eos is not None and eos in out:
        out = out[: out.index(eos) + 1]
    return out


def check_run(algorithm, a, k, servers, t, c, mode, order, cancellation, eos):
    end, coord = run(algorithm, a, k, servers, t, c, mode, order, cancellation, eos)
    cfg = (algorithm, a, k, servers, t, c, mode, order, cancellation, eos)
    assert coord.committed == reference(len(a), eos), cfg
    assert check_trace(coord.trace) == [], cfg
    model_applies = (
        order is None
        and cancellation == "instant"
        and eos is None
        and mode != "rejection"
        and coord.stats.task_waits == 0
    )
    if model_applies:
        want = nonsi_latency(len(a), t) if algorithm == "nonsi" else MODEL[algorithm](a, t, c, k)
        assert end == want, cfg
    if algorithm != "si" and order is None and mode != "rejection":
        assert end <= len(coord.committed) * t, cfg  # DSI <= non-SI: every S and every d
    return model_applies


@settings(max_examples=max(300, settings.default.max_examples), deadline=None)
@given(
    a=st.lists(st.integers(0, 1), min_size=1, max_size=10),
    t=st.sampled_from([F(1), F(3, 2)]),
    c=st.fractions(min_value=F(1, 12), max_value=F(2), max_denominator=12),
    k=st.integers(1, 5),
    servers=st.sampled_from([1, 2, 3, 5, 64]),
    algorithm=st.sampled_from(["dsi", "si", "nonsi"]),
    mode=st.sampled_from(["greedy", "coupled", "rejection"]),
    order=st.sampled_from([None, *sorted(ORDERS), "random:1", "random:2"]),
    cancellation=st.sampled_from(CANCELLATIONS),
    eos=st.sampled_from([None, None, 0, 1, 2]),
)
def test_full_width(a, t, c, k, servers, algorithm, mode, order, cancellation, eos):
    check_run(algorithm, a, k, servers, t, c, mode, order, cancellation, eos)


def test_every_named_order_and_cancellation_on_fixed_cases():
    """Deterministic coverage of the whole grid on a few patterns (no hypothesis draw)."""
    applied = 0
    for a, algorithm, mode, order, canc, servers in itertools.product(
        ([1, 0, 1, 1, 0, 1], [0, 0, 0], [1, 1, 1, 1, 1]),
        ["dsi", "si", "nonsi"],
        ["greedy", "coupled", "rejection"],
        [None, *sorted(ORDERS)],
        CANCELLATIONS,
        [1, 2, 64],
    ):
        applied += check_run(algorithm, a, 2, servers, F(1), F(1, 4), mode, order, canc, None)
    assert applied > 0  # the model comparison was exercised


@pytest.mark.slow
def test_exhaustive_sweep_against_the_model():
    """Every pattern N <= 8, k <= 6, c/t in {1/10, 1/4, 1/2, 3/2}, S = 64, instant: model ==
    simulator; and DSI k = 1, S = 2 with failed cancellation: reference output and DSI <= non-SI."""
    t = F(1)
    for n in range(1, 9):
        for a in itertools.product([0, 1], repeat=n):
            a = list(a)
            for k, c in itertools.product(range(1, 7), [F(1, 10), F(1, 4), F(1, 2), F(3, 2)]):
                for algorithm in ("dsi", "si"):
                    assert check_run(algorithm, a, k, 64, t, c, "greedy", None, "instant", None)
                if k == 1:
                    check_run("dsi", a, k, 2, t, c, "greedy", None, "fails", None)
