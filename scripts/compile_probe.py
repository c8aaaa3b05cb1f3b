"""Does ``torch.compile`` pay for SmolLM2 here? A probe for the ``--compile`` decision.

``python scripts/compile_probe.py [--tokens N]`` times greedy decoding of the bare
``transformers`` model (``generate``, one new token per forward, the non-SI inner loop) three
ways: eager with the dynamic KV cache (what dsi_core runs), eager with a static cache, and a
static cache with the forward compiled (``mode="reduce-overhead"``: CUDA graphs on a GPU). It
prints the compile time (the first call) and the median ms per token of three further calls,
and whether the compiled model decodes the same tokens. transformers' own compile of a
static-cache ``generate`` (automatic on CUDA) is switched off (``disable_compile=True``), so
the first two are eager everywhere and the third is compiled by this probe alone.
``scripts/gpu_check.py`` runs it as its last, optional section.

This measures the ceiling only: dsi_core's forwards also vary in the number of rows, crop the
cache on preemption and stop between decoder layers (Python hooks, which break a compiled
graph), so a ``--compile`` option is worth building only if the ceiling is large.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any


def probe(model: Any, prompt: str, n_tokens: int = 16, repeats: int = 3) -> dict[str, Any]:
    """ms per token for eager/dynamic, eager/static and compiled/static greedy decoding."""
    import torch

    hf, dev = model.model, model.device
    ids = torch.tensor([model.tokenizer(prompt)["input_ids"]], device=dev)

    def timed(**kw: Any) -> tuple[float, list[int]]:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = hf.generate(
            ids,
            max_new_tokens=n_tokens,
            min_new_tokens=n_tokens,
            do_sample=False,
            disable_compile=True,  # no automatic compile (transformers does it on CUDA)
            **kw,
        )
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, out[0, ids.shape[1] :].tolist()

    res: dict[str, Any] = {"tokens": n_tokens}
    ref: list[int] = []
    eager_forward = hf.forward
    try:
        for label, kw in (
            ("eager_dynamic", {}),
            ("eager_static", {"cache_implementation": "static"}),
            ("compiled_static", {"cache_implementation": "static"}),
        ):
            if label == "compiled_static":
                hf.forward = torch.compile(eager_forward, mode="reduce-overhead", dynamic=False)
            first, toks = timed(**kw)
            if not ref:
                ref = toks
            walls = [timed(**kw)[0] for _ in range(repeats)]
            res[label] = {
                "first_call_s": first,
                "ms_per_token": statistics.median(walls) * 1e3 / n_tokens,
                "same_tokens": toks == ref,
            }
    finally:
        hf.forward = eager_forward
    return res


def show(res: dict[str, Any]) -> str:
    lines = []
    for label in ("eager_dynamic", "eager_static", "compiled_static"):
        if label in res:
            d = res[label]
            lines.append(
                f"   {label:<16} first call {d['first_call_s']:7.2f} s, then "
                f"{d['ms_per_token']:6.2f} ms/token, same tokens as eager: {d['same_tokens']}"
            )
    return "\n".join(lines)


def main() -> int:
    n = int(sys.argv[sys.argv.index("--tokens") + 1]) if "--tokens" in sys.argv else 16
    from dsi_core.experiments.bench import PROMPTS
    from dsi_core.models.smollm2 import load_smollm2

    print(f"torch.compile probe: SmolLM2 fp32, greedy, {n} new tokens, chat prompt")
    print(show(probe(load_smollm2(), PROMPTS["chat"], n_tokens=n)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
