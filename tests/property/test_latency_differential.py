"""The link between the proofs and the code: symbolic latency model == simulator, exactly.

For random acceptance patterns ``a`` and latencies ``(t, c)`` (Fractions), lookaheads ``k`` and
enough servers, the simulated backend drives the real coordinator with a target whose greedy
token at position ``i`` is ``y_i`` and a drafter that proposes ``y_i`` iff ``a[i] = 1``. Its
virtual end time must equal ``proofs.latency_model``'s evaluator exactly -- the evaluators are
the definitions the z3 theorems are checked against. A disagreement means the code or the
model is wrong; neither may be loosened to make the other pass.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from dsi_core.backends.simulated import SimulatedBackend
from dsi_core.coordinator import Config, Coordinator
from dsi_core.sampling import DecisionRule, KeyedNoise
from dsi_core.testing.synthetic import PatternDrafter, PatternTarget, y
from proofs.latency_model import dsi_latency, nonsi_latency, si_latency

PROMPT = [0]


def simulate(algorithm, a, t, c, k, servers=64):
    coord = Coordinator(
        Config(algorithm, k, servers, len(a)), DecisionRule("greedy", KeyedNoise(0))
    )
    backend = SimulatedBackend(t, c)
    end = backend.run(coord, PatternTarget(), PatternDrafter(a), PROMPT)
    assert coord.committed == [y(i) for i in range(len(a))]
    return end, coord


latencies = st.tuples(
    st.sampled_from([Fraction(1), Fraction(3, 2), Fraction(2)]),
    st.fractions(min_value=Fraction(1, 12), max_value=Fraction(3), max_denominator=12),
)


@settings(max_examples=max(400, settings.default.max_examples))
@given(a=st.lists(st.integers(0, 1), min_size=1, max_size=14), tc=latencies, k=st.integers(1, 5))
def test_simulator_equals_latency_model(a, tc, k):
    t, c = tc
    end, coord = simulate("dsi", a, t, c, k)
    assert end == dsi_latency(a, t, c, k), ("dsi", a, t, c, k)
    assert coord.stats.task_waits == 0  # the model assumes no task ever waits
    end, _ = simulate("si", a, t, c, k)
    assert end == si_latency(a, t, c, k), ("si", a, t, c, k)
    end, _ = simulate("nonsi", a, t, c, k)
    assert end == nonsi_latency(len(a), t)


def test_known_small_cases():
    t = Fraction(1)
    # all accepted, fast drafter: DSI's blocks beat the chain
    a = [1] * 6
    assert simulate("dsi", a, t, Fraction(1, 10), 2)[0] == dsi_latency(a, t, Fraction(1, 10), 2)
    # slow drafter: DSI degenerates to non-SI exactly
    assert simulate("dsi", [1, 0, 1, 1], t, Fraction(2), 3)[0] == 4 * t
