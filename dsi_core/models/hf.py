"""Adapter for any Hugging Face ``AutoModelForCausalLM``, with a per-worker KV cache.

``HFModel`` implements both the target and the drafter protocols. Each worker state keeps a
``DynamicCache`` and the tokens it holds; a call reuses the longest common prefix with the new
sequence, crops the rest (``crop_cache`` pins the ``Cache.crop`` convention, which changed
across transformers versions) and runs one forward over the uncached suffix. Defaults: float32
on CPU (exactness), bfloat16 on CUDA.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsi_core.errors import ModelNotFoundError
from dsi_core.models.base import Proposal


def crop_cache(cache: Any, keep: int) -> Any:
    """Shrink ``cache`` to its first ``keep`` positions; returns the cache to use (maybe new).

    transformers 5.x ``crop(n)`` removes ``-n`` tokens for negative ``n`` and rejects positive
    ``n``; 4.x ``crop(max_length)`` treats a negative value the same way. Passing a negative
    count therefore works with both; ``keep == 0`` starts a fresh cache.
    """
    from transformers import DynamicCache

    if cache is None or keep <= 0:
        return DynamicCache()
    have = cache.get_seq_length()
    if have > keep:
        cache.crop(keep - have)
    return cache


@dataclass
class _State:
    cache: Any = None
    tokens: list[int] = field(default_factory=list)


class HFModel:
    """Wraps a causal LM (and optionally its tokenizer) for dsi_core; rows are logits."""

    row_kind = "logits"

    def __init__(self, model: Any, tokenizer: Any = None, name: str | None = None) -> None:
        import torch

        self.torch = torch
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "hf-model") or "hf-model"
        head = model.get_output_embeddings()
        out = getattr(head, "out_features", None)  # also right for quantised Linear heads
        self.vocab_size = int(out if out is not None else model.config.vocab_size)
        self.max_context = getattr(model.config, "max_position_embeddings", None)
        self.device = next(model.parameters()).device
        eos = getattr(model.config, "eos_token_id", None)
        if tokenizer is not None and tokenizer.eos_token_id is not None:
            eos = tokenizer.eos_token_id
        self.eos_token_id = eos[0] if isinstance(eos, list) else eos
        params = inspect.signature(model.forward).parameters
        # transformers 5.x names the KV cache argument ``cache``; 4.x ``past_key_values``
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep_kw = "logits_to_keep" if "logits_to_keep" in params else None

    @classmethod
    def from_pretrained(
        cls, path: str, dtype: Any = None, device: str | None = None, **kwargs: Any
    ) -> HFModel:
        """Load a local model directory (or a hub id when the hub is reachable)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if os.path.sep in path or path.startswith("."):
            if not os.path.exists(path):
                raise ModelNotFoundError(f"no model at {path!r}")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = torch.bfloat16 if device == "cuda" else torch.float32
        try:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
            tok = AutoTokenizer.from_pretrained(
                path, **{k: v for k, v in kwargs.items() if k == "gguf_file"}
            )
        except OSError as exc:
            raise ModelNotFoundError(f"cannot load a causal LM from {path!r}: {exc}") from exc
        return cls(model.to(device), tok, name=path)

    def new_state(self) -> _State:
        return _State()

    def logits(self, state: _State, tokens: Sequence[int], start: int) -> np.ndarray:
        """Raw logits rows for positions ``start .. len(tokens)`` (float32 numpy)."""
        torch = self.torch
        tokens = list(tokens)
        if not 1 <= start <= len(tokens):
            raise ValueError(f"start {start} out of range for {len(tokens)} tokens")
        n = 0
        for a, b in zip(state.tokens, tokens, strict=False):
            if a != b:
                break
            n += 1
        keep = min(n, start - 1)
        state.cache = crop_cache(state.cache, keep)
        ids = torch.tensor([tokens[keep:]], dtype=torch.long, device=self.device)
        n_rows = len(tokens) - start + 1
        kwargs = {self._cache_kw: state.cache, "use_cache": True}
        if self._keep_kw:
            kwargs[self._keep_kw] = n_rows  # only the rows we need go through the LM head
        with torch.inference_mode():
            out = self.model(input_ids=ids, **kwargs)
        cache = getattr(out, "cache", None)
        state.cache = cache if cache is not None else out.past_key_values
        state.tokens = tokens
        logits = out.logits[0, -n_rows:]
        if logits.shape[0] != n_rows:
            raise RuntimeError(f"model returned {logits.shape[0]} logits rows, need {n_rows}")
        return logits.float().cpu().numpy()

    def rows(self, state: _State, tokens: Sequence[int], start: int) -> list[np.ndarray]:
        """Logits rows (``row_kind = "logits"``); temperature is applied by the caller."""
        return list(self.logits(state, tokens, start))

    def propose(self, state: _State, tokens: Sequence[int]) -> Proposal:
        return Proposal(q=self.logits(state, tokens, len(tokens))[-1])


def tiny_llama(vocab_size: int = 64, seed: int = 0, layers: int = 2, hidden: int = 32) -> HFModel:
    """A small random Llama built from a config in-process (no weights needed), float32."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=0,
        eos_token_id=None,
        pad_token_id=None,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    with torch.no_grad():  # sharpen the random init so rows are not near-uniform
        model.lm_head.weight.mul_(8.0)
    m = HFModel(model, None, name=f"tiny-llama(seed={seed})")
    m.eos_token_id = None
    return m
