"""The greedy fast path: the token read from a logits row on its device (top two only) equals
the token of the exact float64 probability row, and near-ties go to the exact path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dsi_core import sampling
from dsi_core.backends.worker import compute_draft, compute_target
from dsi_core.errors import InvalidDistributionError
from dsi_core.events import StartDraft, StartTarget
from dsi_core.models.hf import tiny_llama
from dsi_core.sampling import (
    Decided,
    DecisionRule,
    KeyedNoise,
    argmax,
    greedy_logits_token,
    probs_from_logits,
)

# float32 logits with ties, near-ties (subnormals next to 0), masks and the extremes
ENTRY = st.one_of(
    st.floats(-30, 30, width=32),
    st.sampled_from([0.0, 1.4e-45, -1.4e-45, 2.8e-45, float("-inf"), 3.0e38, -3.0e38]),
)
ROWS = arrays(np.float32, st.integers(1, 12), elements=ENTRY)


def exact_token(z: np.ndarray, temperature: float) -> int | None:
    try:
        return argmax(probs_from_logits(z, temperature))
    except InvalidDistributionError:
        return None


@settings(max_examples=600, deadline=None)
@given(ROWS, st.sampled_from([1.0, 0.7, 1.3]))
def test_the_fast_token_is_the_exact_token(z, temperature):
    fast = greedy_logits_token(torch.from_numpy(z), temperature)
    ref = exact_token(z, temperature)
    if fast is not None:
        assert fast == ref
    rule = DecisionRule("greedy", KeyedNoise(0))
    if ref is None:  # NaN-free here, so only an all -inf row is invalid: still a typed error
        with pytest.raises(InvalidDistributionError):
            rule.compact_logits(0, torch.from_numpy(z), temperature, "row")
    else:
        assert rule.compact_logits(0, torch.from_numpy(z), temperature, "row") == Decided(
            ref, len(z)
        )


def test_ordinary_rows_take_the_fast_path():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(200, 1000)).astype(np.float32)
    fast = [greedy_logits_token(torch.from_numpy(r)) for r in rows]
    assert all(f == int(np.argmax(r)) for f, r in zip(fast, rows, strict=True))


def test_a_near_tie_goes_to_the_exact_path_and_the_margin_is_what_keeps_it_exact(monkeypatch):
    # float64 rounds exp(-1.4e-45) to 1: the probability row ties and the exact token is 0,
    # while the logits themselves put index 1 on top
    z = torch.tensor([0.0, 1.4e-45], dtype=torch.float32)
    assert exact_token(z.numpy(), 1.0) == 0 and int(z.argmax()) == 1
    assert greedy_logits_token(z) is None
    assert DecisionRule("greedy", KeyedNoise(0)).compact_logits(0, z, 1.0, "r").token == 0
    monkeypatch.setattr(sampling, "LOGIT_MARGIN", 0.0)  # the mutant: no margin
    assert greedy_logits_token(z) == 1  # disagrees with the exact path


@pytest.mark.parametrize(
    "bad", [[0.0, float("nan")], [float("inf"), 0.0], [float("-inf"), float("-inf")]]
)
def test_invalid_logits_are_typed_errors_on_the_fast_path_too(bad):
    z = torch.tensor(bad, dtype=torch.float32)
    assert greedy_logits_token(z) is None
    with pytest.raises(InvalidDistributionError):
        DecisionRule("greedy", KeyedNoise(0)).compact_logits(0, z, 1.0, "target row")


def test_non_tensors_and_other_modes_take_the_exact_path():
    z = np.array([0.1, 2.0, 0.3], dtype=np.float32)
    assert greedy_logits_token(z) is None  # numpy rows: the exact path
    assert greedy_logits_token(torch.zeros(2, 3)) is None  # not 1-D
    rule = DecisionRule("rejection", KeyedNoise(0))
    row = rule.compact_logits(0, torch.from_numpy(z), 1.0, "r")
    assert np.array_equal(row, probs_from_logits(z))  # rejection keeps the float64 row


def test_a_worker_decides_the_same_tokens_with_and_without_the_fast_path():
    model = tiny_llama(64, seed=3)
    prompt = [1, 2, 3]
    rule = DecisionRule("greedy", KeyedNoise(0))
    act = StartTarget(1, 0, (5, 9, 11, 4), 0, "block")
    fast = compute_target(model, model.new_state(), prompt, act, 1.0, rule=rule)
    rows = compute_target(model, model.new_state(), prompt, act, 1.0, rule=None)
    assert all(isinstance(r, Decided) for r in fast.rows)
    assert [r.token for r in fast.rows] == [argmax(r) for r in rows.rows]
    d = compute_draft(model, model.new_state(), prompt, StartDraft(2, 0, (5, 9)), 1.0, rule=rule)
    assert d.q is None and d.token == fast.rows[2].token  # same context (5, 9) as row 2
