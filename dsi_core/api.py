"""The Python API: :func:`generate` runs non-SI, SI or DSI and returns tokens, text and stats.

Everything is validated before any model is loaded or thread started, so a bad argument
raises a typed :class:`~dsi_core.errors.DSIError` and leaves nothing half-done.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from dsi_core.coordinator import ALGORITHMS, Config, Coordinator, Stats, TraceEvent
from dsi_core.errors import (
    ContextLengthError,
    InvalidInputError,
    VocabularyMismatchError,
)
from dsi_core.sampling import MODES, DecisionRule, KeyedNoise

BACKENDS = ("threads", "simulated")


@dataclass
class Result:
    """What :func:`generate` returns."""

    tokens: list[int]
    text: str | None
    stats: Stats
    trace: list[TraceEvent] = field(repr=False)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, trace: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "tokens": list(self.tokens),
            "text": self.text,
            "stats": self.stats.as_dict(),
            "settings": self.settings,
        }
        if trace:
            d["trace"] = [
                {"t": float(e.time), "what": e.what, "id": e.id, "pos": e.pos, "detail": e.detail}
                for e in self.trace
            ]
        return d


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an int, got {value!r}")


def resolve_drafter(drafter: Any, target: Any) -> Any:
    """``None``/"lookup" -> prompt lookup; a path -> HF model; an object is used as is."""
    from dsi_core.models.lookup import LookupDrafter

    if drafter is None or drafter == "lookup":
        return LookupDrafter()
    if isinstance(drafter, str):
        if drafter.startswith("derived:"):
            from dsi_core.models.derived import derived_drafter

            return derived_drafter(target, drafter.split(":", 1)[1])
        from dsi_core.models.hf import HFModel

        return HFModel.from_pretrained(drafter, device=str(getattr(target, "device", "cpu")))
    return drafter


def encode_prompt(prompt: Any, target: Any, chat: bool = True) -> list[int]:
    """A string goes through the target's tokenizer (chat template if it has one)."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InvalidInputError("prompt is empty")
        tok = getattr(target, "tokenizer", None)
        if tok is None:
            raise InvalidInputError("a text prompt needs a target with a tokenizer; pass ids")
        if chat and getattr(tok, "chat_template", None):
            enc = tok.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True
            )
            ids = enc["input_ids"] if isinstance(enc, dict) or hasattr(enc, "keys") else enc
            return [int(x) for x in ids]
        return [int(x) for x in tok(prompt)["input_ids"]]
    ids = list(prompt)
    if not ids:
        raise InvalidInputError("prompt is empty")
    for x in ids:
        if isinstance(x, bool) or not isinstance(x, int):
            raise InvalidInputError(f"prompt token ids must be ints, got {x!r}")
        if not 0 <= x < target.vocab_size:
            raise InvalidInputError(
                f"prompt token {x} outside the vocabulary [0, {target.vocab_size})"
            )
    return ids


def validate(
    *,
    algorithm: str,
    lookahead: int,
    servers: int,
    mode: str,
    temperature: float,
    seed: int,
    max_new_tokens: int,
    backend: str,
) -> None:
    """Parameter checks that need no model."""
    if algorithm not in ALGORITHMS:
        raise InvalidInputError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {MODES}, got {mode!r}")
    if backend not in BACKENDS:
        raise InvalidInputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    _check_int("seed", seed)
    Config(algorithm, lookahead, servers, max_new_tokens)  # range checks
    if mode != "greedy":
        if not isinstance(temperature, (int, float, Fraction)) or isinstance(temperature, bool):
            raise InvalidInputError(f"temperature must be a number, got {temperature!r}")
        if not (temperature > 0 and math.isfinite(float(temperature))):
            raise InvalidInputError(
                f"temperature must be a finite number > 0 in {mode!r} mode, got {temperature}"
            )
    KeyedNoise(seed)


def generate(
    prompt: str | Sequence[int],
    *,
    target: Any = None,
    drafter: Any = None,
    algorithm: str = "dsi",
    lookahead: int = 4,
    servers: int = 2,
    mode: str = "greedy",
    temperature: float = 1.0,
    seed: int = 0,
    max_new_tokens: int = 64,
    backend: str = "threads",
    chat: bool = True,
    stop_at_eos: bool = True,
    sim_target_latency: Any = Fraction(1),
    sim_draft_latency: Any = Fraction(1, 10),
    sim_order: Any = None,
) -> Result:
    """Generate ``max_new_tokens`` tokens (fewer at EOS) with non-SI, SI or DSI.

    ``target`` None loads SmolLM2-135M-Instruct; ``drafter`` None or "lookup" is the
    prompt-lookup drafter, a string path loads a Hugging Face model, "derived:KIND" derives a
    cheap drafter from the target (see :mod:`dsi_core.models.derived`), anything else must
    follow :class:`~dsi_core.models.base.DrafterModel`. ``servers`` is the SP degree (DSI only).
    ``temperature`` applies to both models' rows and is ignored in greedy mode.
    """
    validate(
        algorithm=algorithm,
        lookahead=lookahead,
        servers=servers,
        mode=mode,
        temperature=temperature,
        seed=seed,
        max_new_tokens=max_new_tokens,
        backend=backend,
    )
    if target is None:
        from dsi_core.models.smollm2 import load_smollm2

        target = load_smollm2()
    ids = encode_prompt(prompt, target, chat=chat)
    ctx = getattr(target, "max_context", None)
    if ctx is not None and len(ids) + max_new_tokens > ctx:
        raise ContextLengthError(
            f"prompt ({len(ids)} tokens) + max_new_tokens ({max_new_tokens}) exceeds the "
            f"model's context of {ctx} tokens"
        )
    d = None
    if algorithm != "nonsi":
        d = resolve_drafter(drafter, target)
        dv = getattr(d, "vocab_size", None)
        if dv is not None and dv != target.vocab_size:
            raise VocabularyMismatchError(
                f"drafter vocabulary ({dv}) differs from the target's ({target.vocab_size})"
            )
        dctx = getattr(d, "max_context", None)
        if dctx is not None and len(ids) + max_new_tokens > dctx:
            raise ContextLengthError(
                f"prompt + max_new_tokens exceeds the drafter's context {dctx}"
            )
    eos = getattr(target, "eos_token_id", None) if stop_at_eos else None
    temp = 1.0 if mode == "greedy" else temperature
    cfg = Config(algorithm, lookahead, servers, max_new_tokens, eos)
    coord = Coordinator(cfg, DecisionRule(mode, KeyedNoise(seed)))
    if backend == "threads":
        from dsi_core.backends.threads import ThreadsBackend

        n_servers = 1 if algorithm == "si" else servers
        ThreadsBackend(n_servers).run(coord, target, d, ids, temp)
    else:
        from dsi_core.backends.simulated import SimulatedBackend

        SimulatedBackend(sim_target_latency, sim_draft_latency, order=sim_order).run(
            coord, target, d, ids, temp
        )
    tok = getattr(target, "tokenizer", None)
    text = tok.decode(coord.committed, skip_special_tokens=True) if tok is not None else None
    settings = {
        "algorithm": algorithm,
        "lookahead": lookahead,
        "servers": servers,
        "mode": mode,
        "temperature": temperature,
        "seed": seed,
        "max_new_tokens": max_new_tokens,
        "backend": backend,
        "target": getattr(target, "name", type(target).__name__),
        "drafter": getattr(d, "name", type(d).__name__) if d is not None else None,
        "prompt_tokens": len(ids),
    }
    return Result(list(coord.committed), text, coord.stats, coord.trace, settings)
