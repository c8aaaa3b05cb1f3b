"""Cross-implementation check on a real model: transformers and dsi_core emit the same tokens.

SmolLM2-135M-Instruct in float32, greedy, on five chat prompts (ids built once with the
tokenizer's chat template, then given to every implementation): transformers' plain greedy
``generate``, transformers' assisted ``generate`` with ``prompt_lookup_num_tokens``, and
dsi_core's non-SI, SI and DSI (lookup drafter). Outputs are compared as token ids up to and
including the first EOS. Marked ``slow``: 51 s to 84 s measured on the 2 shared CPU cores
(load average 3 to 5); one torch thread per forward, several times faster than two on a busy
machine.

The comparison can fail: a decoding that starts with the target's second-best token must
differ from the reference.
"""

from __future__ import annotations

import pytest

from dsi_core import generate
from dsi_core.api import encode_prompt

pytestmark = pytest.mark.slow

PROMPTS = [
    "What is the capital of France?",
    "Write a Python function that returns the factorial of n.",
    "List three colours of the rainbow.",
    "Repeat after me: the cat sat on the mat, the cat sat on the mat.",
    "Translate 'good morning' into German and Spanish.",
]
N_NEW = 16


@pytest.fixture(scope="module")
def target():
    from dsi_core.models.smollm2 import load_smollm2
    from dsi_core.testing.conformance import torch_threads

    m = load_smollm2(device="cpu")
    with torch_threads(1):  # 2 shared cores: one thread per forward is ~5x faster here
        yield m


def _cut(tokens, eos):
    out = []
    for t in tokens:
        out.append(int(t))
        if t in eos:
            break
    return out


def _hf(target, ids, **kw):
    import torch

    x = torch.tensor([ids])
    with torch.no_grad():
        out = target.model.generate(
            input_ids=x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=N_NEW,
            do_sample=False,
            pad_token_id=target.tokenizer.eos_token_id,
            **kw,
        )
    return out[0, len(ids) :].tolist()


@pytest.mark.parametrize("prompt", PROMPTS)
def test_transformers_and_dsi_core_agree(target, prompt):
    import torch

    assert target.model.dtype == torch.float32
    ids = encode_prompt(prompt, target, chat=True)
    eos = {int(target.eos_token_id)}
    gen_eos = target.model.generation_config.eos_token_id
    eos |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])

    ref = _cut(_hf(target, ids), eos)
    assert len(ref) >= 4
    runs = {
        "hf-prompt-lookup": _hf(target, ids, prompt_lookup_num_tokens=3),
        "nonsi": generate(ids, target=target, algorithm="nonsi", max_new_tokens=N_NEW).tokens,
        "si": generate(
            ids,
            target=target,
            drafter="lookup",
            algorithm="si",
            lookahead=3,
            servers=1,
            max_new_tokens=N_NEW,
        ).tokens,
        "dsi": generate(
            ids,
            target=target,
            drafter="lookup",
            algorithm="dsi",
            lookahead=2,
            servers=2,
            max_new_tokens=N_NEW,
        ).tokens,
    }
    for name, toks in runs.items():
        assert _cut(toks, eos) == ref, (name, target.tokenizer.decode(toks))


def test_comparison_can_fail(target):
    """A decoding that takes the second-best first token differs from greedy."""
    import torch

    ids = encode_prompt(PROMPTS[0], target, chat=True)
    ref = _hf(target, ids)
    with torch.no_grad():
        logits = target.model(torch.tensor([ids])).logits[0, -1]
    second = int(torch.topk(logits, 2).indices[1])
    other = _hf(target, ids + [second])
    assert _cut([second, *other], {int(target.eos_token_id)}) != _cut(
        ref, {int(target.eos_token_id)}
    )
