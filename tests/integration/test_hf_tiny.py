"""The Hugging Face path on small random Llamas built from a config (no weights needed)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dsi_core import generate
from dsi_core.checker import check_trace, checked
from dsi_core.models.hf import crop_cache, tiny_llama
from dsi_core.models.lookup import LookupDrafter


@pytest.fixture(scope="module")
def models():
    return tiny_llama(64, seed=0), tiny_llama(64, seed=1, layers=1)


def full_rows(m, tokens, start):
    with torch.inference_mode():
        logits = m.model(input_ids=torch.tensor([tokens])).logits[0]
    return logits[start - 1 :].numpy()


def test_crop_cache_keeps_exactly_the_prefix(models):
    target, _ = models
    st = target.new_state()
    target.logits(st, list(range(1, 11)), 10)
    assert st.cache.get_seq_length() == 10
    cache = crop_cache(st.cache, 6)
    assert cache.get_seq_length() == 6
    assert crop_cache(cache, 0).get_seq_length() == 0


def test_kv_reuse_matches_full_forward(models):
    target, _ = models
    st = target.new_state()
    seqs = [
        ([1, 2, 3, 4, 5], 1),
        ([1, 2, 3, 4, 5, 6, 7], 5),  # extend
        ([1, 2, 3, 9, 9], 4),  # diverge: crop to the common prefix
        ([1, 2, 3, 9, 9, 10, 11, 12], 3),  # rows requested before the cached end
        ([7], 1),  # nothing in common
    ]
    for tokens, start in seqs:
        got = target.logits(st, tokens, start)
        want = full_rows(target, tokens, start)
        assert got.shape == (len(tokens) - start + 1, 64)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


SETTINGS = [(1, 2), (3, 3), (4, 1)]


@pytest.mark.parametrize("drafter_kind", ["model", "lookup"])
def test_greedy_dsi_si_nonsi_identical(models, drafter_kind):
    target, model_drafter = models
    drafter = model_drafter if drafter_kind == "model" else LookupDrafter()
    for prompt in ([1, 2, 3], [5, 9, 5, 9, 5], [42]):
        ref = generate(prompt, target=target, algorithm="nonsi", max_new_tokens=24).tokens
        for algorithm, (k, s) in itertools.product(["si", "dsi"], SETTINGS):
            out = checked(
                generate(
                    prompt,
                    target=target,
                    drafter=drafter,
                    algorithm=algorithm,
                    lookahead=k,
                    servers=s,
                    max_new_tokens=24,
                )
            )
            assert out.tokens == ref, (prompt, algorithm, k, s)


@pytest.mark.parametrize("mode", ["rejection", "coupled"])
def test_sampling_output_independent_of_schedule(models, mode):
    """Same seed -> same tokens, whatever the backend, lookahead, SP degree or timing."""
    target, drafter = models
    for seed in (0, 1):
        outs = set()
        for backend, (k, s) in itertools.product(["threads", "simulated"], SETTINGS):
            r = checked(
                generate(
                    [3, 1, 4],
                    target=target,
                    drafter=drafter,
                    algorithm="dsi",
                    mode=mode,
                    lookahead=k,
                    servers=s,
                    seed=seed,
                    max_new_tokens=20,
                    backend=backend,
                    temperature=0.8,
                )
            )
            outs.add(tuple(r.tokens))
        si = generate(
            [3, 1, 4],
            target=target,
            drafter=drafter,
            algorithm="si",
            mode=mode,
            lookahead=2,
            seed=seed,
            max_new_tokens=20,
            temperature=0.8,
        )
        outs.add(tuple(si.tokens))
        if mode == "coupled":
            ns = generate(
                [3, 1, 4],
                target=target,
                algorithm="nonsi",
                mode=mode,
                seed=seed,
                max_new_tokens=20,
                temperature=0.8,
            )
            outs.add(tuple(ns.tokens))
        assert len(outs) == 1, outs


def test_result_reports_stats_and_trace(models):
    target, drafter = models
    r = generate([1, 2, 3], target=target, drafter=drafter, max_new_tokens=12, lookahead=2)
    s = r.to_dict()
    assert check_trace(s["trace"]) == []  # the JSON form of the trace checks too
    assert len(s["tokens"]) == 12
    assert s["stats"]["target_started"] >= 1 and 0 <= s["stats"]["acceptance_rate"] <= 1
    assert s["stats"]["wall_time"] > 0
    whats = {e["what"] for e in s["trace"]}
    assert {"task_start", "task_done", "draft_start", "draft_done", "commit"} <= whats


# ----------------------------------------------------------------------------- HF conventions


def test_raw_pretrained_models_as_target_and_drafter():
    """A ``transformers`` ``PreTrainedModel`` is accepted as is, like ``assistant_model``."""
    from transformers import PreTrainedModel

    from dsi_core.models.hf import HFModel

    raw_target = tiny_llama(64, seed=0).model
    raw_drafter = tiny_llama(64, seed=1, layers=1).model
    assert isinstance(raw_target, PreTrainedModel) and not isinstance(raw_target, HFModel)
    prompt = [1, 2, 3, 4]
    ref = generate(prompt, target=HFModel(raw_target), algorithm="nonsi", max_new_tokens=10)
    assert generate(prompt, target=raw_target, algorithm="nonsi", max_new_tokens=10).tokens == (
        ref.tokens
    )
    for target, drafter in [
        (raw_target, raw_drafter),  # both raw
        (HFModel(raw_target), raw_drafter),  # a raw drafter for a wrapped target
        (raw_target, HFModel(raw_drafter)),
    ]:
        for algorithm, k, s in [("dsi", 2, 3), ("si", 3, 1)]:
            r = generate(
                prompt,
                target=target,
                drafter=drafter,
                algorithm=algorithm,
                lookahead=k,
                servers=s,
                max_new_tokens=10,
            )
            assert r.tokens == ref.tokens, (algorithm, type(target), type(drafter))
            assert r.stats.drafts_started > 0


def test_raw_pretrained_model_needs_ids_not_text():
    """A bare model has no tokenizer: a text prompt is a typed error, not an AttributeError."""
    from dsi_core.errors import InvalidInputError

    raw = tiny_llama(64, seed=0).model
    with pytest.raises(InvalidInputError, match="tokenizer"):
        generate("hello", target=raw, algorithm="nonsi", max_new_tokens=2)


class _HalfModel:
    """Has ``new_state`` but neither ``rows``/``vocab_size`` (target) nor ``propose`` (drafter)."""

    def new_state(self):
        return None


@pytest.mark.parametrize(
    "target, missing",
    [(object(), ["new_state", "rows", "vocab_size"]), (_HalfModel(), ["rows", "vocab_size"])],
)
def test_object_following_no_target_protocol_is_a_typed_error(target, missing):
    from dsi_core.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as info:
        generate([1, 2], target=target, algorithm="nonsi", max_new_tokens=2)
    msg = str(info.value)
    assert "TargetModel" in msg and "PreTrainedModel" in msg
    for name in missing:
        assert name in msg, (name, msg)
    assert "new_state" not in msg.split("missing:")[1] or "new_state" in missing


@pytest.mark.parametrize("drafter", [object(), _HalfModel(), 42])
def test_object_following_no_drafter_protocol_is_a_typed_error(models, drafter):
    from dsi_core.errors import InvalidInputError

    target, _ = models
    with pytest.raises(InvalidInputError) as info:
        generate([1, 2], target=target, drafter=drafter, algorithm="dsi", max_new_tokens=2)
    msg = str(info.value)
    assert "DrafterModel" in msg and "propose" in msg, msg
