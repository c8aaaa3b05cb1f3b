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
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsi_core.errors import ModelNotFoundError
from dsi_core.models.base import Preempted, Proposal


def crop_layers(cache: Any, keep: int) -> Any:
    """Like :func:`crop_cache`, layer by layer: after a forward stopped between decoder layers
    the first layers hold more positions than the rest; every layer is cut back to ``keep``."""
    layers = getattr(cache, "layers", None)
    if cache is None or keep <= 0 or layers is None:
        return crop_cache(cache, keep)
    for layer in layers:
        have = layer.get_seq_length()
        if have > keep:
            layer.crop(keep - have)
    return cache


def decoder_layers(model: Any) -> Any:
    """The decoder's list of layers (where a forward can be stopped), or None."""
    import torch

    dec = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = getattr(dec, "layers", None)
    if isinstance(layers, torch.nn.ModuleList) and len(layers):
        return layers
    best = None
    for mod in model.modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod):
            if best is None or len(mod) > len(best):
                best = mod
    return best


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
    """Wraps a causal LM (and optionally its tokenizer) for dsi_core; rows are logits.

    Forwards are preemptible: ``rows(..., should_stop=f)`` checks ``f()`` before every decoder
    layer and, once it is true, crops the KV cache back to the last complete prefix and raises
    :class:`~dsi_core.models.base.Preempted`. ``recipe`` (a callable and its keyword arguments
    that rebuild this model) makes the model pickle as that recipe, so a server process loads
    it itself instead of receiving its weights through a pipe.
    """

    row_kind = "logits"
    preemptible = True

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        name: str | None = None,
        recipe: tuple[Callable[..., Any], dict[str, Any]] | None = None,
    ) -> None:
        self.recipe = recipe
        self._local = threading.local()
        self._hooked = False
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

        from dsi_core.models.resolve import check_model_source

        if "gguf_file" not in kwargs:  # a GGUF directory has no config.json to check
            # typed errors before transformers runs: a missing path, a directory that is not a
            # model, or a hub id while offline (no hub retries)
            path = check_model_source(path, "model")
        elif (os.path.sep in str(path) or str(path).startswith(".")) and not os.path.exists(path):
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
        recipe = (_from_pretrained, {"path": path, "dtype": dtype, "device": device, **kwargs})
        return cls(model.to(device), tok, name=path, recipe=recipe)

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("_local", None)
        d["_hooked"] = False
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)
        self._local = threading.local()

    def __reduce__(self) -> Any:
        if self.recipe is not None:
            fn, kwargs = self.recipe
            return (_rebuild, (fn, kwargs))
        return object.__reduce__(self)

    def to(self, device: Any) -> HFModel:
        """Move the weights to ``device`` (a server's placement); returns self."""
        import torch

        self.model = self.model.to(torch.device(device))
        self.device = next(self.model.parameters()).device
        return self

    def _install_hooks(self) -> None:
        layers = decoder_layers(self.model)
        if layers is not None:
            for layer in layers:
                layer.register_forward_pre_hook(self._layer_gate)
        self._hooked = True

    def _layer_gate(self, module: Any, args: Any) -> None:
        fn = getattr(self._local, "should_stop", None)
        if fn is not None and fn():
            raise Preempted

    def new_state(self) -> _State:
        return _State()

    def _forward(
        self,
        state: _State,
        tokens: Sequence[int],
        start: int,
        should_stop: Callable[[], bool] | None = None,
    ) -> Any:
        """float32 logits rows for positions ``start .. len(tokens)``, on the model's device."""
        import torch

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
        if should_stop is not None and not self._hooked:
            self._install_hooks()
        self._local.should_stop = should_stop
        try:
            if should_stop is not None and should_stop():
                raise Preempted
            with torch.inference_mode():
                out = self.model(input_ids=ids, **kwargs)
        except Preempted:
            state.cache = crop_layers(state.cache, keep)  # layers that ran hold more positions
            state.tokens = tokens[:keep]
            raise
        finally:
            self._local.should_stop = None
        cache = getattr(out, "cache", None)
        state.cache = cache if cache is not None else out.past_key_values
        state.tokens = tokens
        logits = out.logits[0, -n_rows:]
        if logits.shape[0] != n_rows:
            raise RuntimeError(f"model returned {logits.shape[0]} logits rows, need {n_rows}")
        return logits.float()

    def logits(
        self,
        state: _State,
        tokens: Sequence[int],
        start: int,
        should_stop: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """Raw logits rows for positions ``start .. len(tokens)`` (float32 numpy, on the host)."""
        return self._forward(state, tokens, start, should_stop).cpu().numpy()

    def rows(
        self,
        state: _State,
        tokens: Sequence[int],
        start: int,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Any]:
        """Logits rows (``row_kind = "logits"``) as float32 tensors left on the model's device.

        Temperature and normalisation are applied by the caller (:func:`~dsi_core.sampling.
        to_probs`, which copies a row to the host only when the decision needs the row; a
        greedy decision reads only its top two entries there, see
        :meth:`~dsi_core.sampling.DecisionRule.compact_logits`).
        """
        return list(self._forward(state, tokens, start, should_stop))

    def propose(
        self, state: _State, tokens: Sequence[int], should_stop: Callable[[], bool] | None = None
    ) -> Proposal:
        return Proposal(q=self._forward(state, tokens, len(tokens), should_stop)[-1])


def _rebuild(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    return fn(**kwargs)


def _from_pretrained(path: str, **kwargs: Any) -> HFModel:
    return HFModel.from_pretrained(path, **kwargs)


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
