"""Cheap drafters derived from the target itself (no second checkpoint needed).

* ``int8``: dynamic int8 quantisation of every ``nn.Linear`` (torch's quantize_dynamic; CPU).
  Same architecture and vocabulary, close to the target's rows.
* ``bf16`` / ``fp16``: the target's own weights cast to bfloat16 / float16 (any device; on a
  GPU the natural drafter for an fp32 target with one checkpoint). Logits go back as float32.
* ``layers=N``: the first ``N`` decoder layers plus the final norm and LM head.

Measured on SmolLM2 on 2 CPU cores (see docs/results.md, "Drafters"): truncation accepts poorly
unless nearly all layers are kept.
"""

from __future__ import annotations

import copy
from typing import Any

from dsi_core.errors import InvalidInputError


def derived_drafter(target: Any, kind: str) -> Any:
    """A drafter made from ``target`` (an :class:`~dsi_core.models.hf.HFModel`)."""
    import torch

    from dsi_core.models.hf import HFModel

    if not isinstance(target, HFModel):
        raise InvalidInputError("derived drafters need a Hugging Face target (HFModel)")
    model = target.model
    if kind == "int8":
        if target.device.type != "cpu":
            raise InvalidInputError("derived:int8 uses torch dynamic quantisation (CPU only)")
        q = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
        )
        return HFModel(q, target.tokenizer, name=f"{target.name}-int8")
    if kind in ("bf16", "fp16"):
        dtype = torch.bfloat16 if kind == "bf16" else torch.float16
        low = copy.deepcopy(model).to(dtype)
        recipe = None
        if target.recipe is not None:
            recipe = (_derived_from_recipe, {"recipe": target.recipe, "kind": kind})
        return HFModel(low, target.tokenizer, name=f"{target.name}-{kind}", recipe=recipe)
    if kind.startswith("layers="):
        try:
            n = int(kind.split("=", 1)[1])
        except ValueError:
            raise InvalidInputError(f"bad derived drafter {kind!r}; use layers=N") from None
        layers = model.model.layers
        if not 1 <= n <= len(layers):
            raise InvalidInputError(f"layers must be in [1, {len(layers)}], got {n}")
        # copy the module tree but share every parameter and buffer with the target
        memo = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
        m = copy.deepcopy(model, memo)
        m.model.layers = torch.nn.ModuleList(list(m.model.layers)[:n])
        m.config.num_hidden_layers = n
        return HFModel(m, target.tokenizer, name=f"{target.name}-layers{n}")
    raise InvalidInputError(
        f"unknown derived drafter {kind!r}; use 'int8', 'bf16', 'fp16' or 'layers=N'"
    )


def _derived_from_recipe(recipe: tuple[Any, dict], kind: str) -> Any:
    """Rebuild a derived drafter in a server process: load the target, then derive."""
    fn, kwargs = recipe
    return derived_drafter(fn(**kwargs), kind)
