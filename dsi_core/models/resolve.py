"""Turn what a user passes as ``target`` or ``drafter`` into a model dsi_core can drive.

Accepted, in this order: ``None`` (the default SmolLM2 target / the prompt-lookup drafter);
a drafter spec string (``"lookup"``, ``"derived:KIND"``); a path or hub id (a Hugging Face
causal LM); a ``transformers`` ``PreTrainedModel`` (wrapped in :class:`~dsi_core.models.hf.HFModel`,
with no tokenizer unless one is given); any object that follows
:class:`~dsi_core.models.base.TargetModel` / :class:`~dsi_core.models.base.DrafterModel`.
Anything else is a typed :class:`~dsi_core.errors.InvalidInputError` naming what is missing.
"""

from __future__ import annotations

import os
from typing import Any

from dsi_core.errors import InvalidInputError

DERIVED_KINDS = ("int8", "bf16", "fp16", "layers=N")
TARGET_METHODS = ("new_state", "rows")
DRAFTER_METHODS = ("new_state", "propose")


def _is_pretrained(obj: Any) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:  # transformers not installed: nothing can be a PreTrainedModel
        return False
    return isinstance(obj, PreTrainedModel)


def _missing(obj: Any, methods: tuple[str, ...], attrs: tuple[str, ...]) -> list[str]:
    out = [m for m in methods if not callable(getattr(obj, m, None))]
    out += [a for a in attrs if not hasattr(obj, a)]
    return out


def check_drafter_spec(spec: Any) -> None:
    """Validate a drafter *string* without loading anything (paths must exist)."""
    if spec is None or not isinstance(spec, str):
        return
    if spec == "lookup":
        return
    if spec.startswith("derived:"):
        kind = spec.split(":", 1)[1]
        if kind in ("int8", "bf16", "fp16"):
            return
        if kind.startswith("layers="):
            n = kind.split("=", 1)[1]
            if n.isdigit() and int(n) >= 1:
                return
        raise InvalidInputError(
            f"unknown derived drafter {spec!r}; use derived:{{{','.join(DERIVED_KINDS)}}}"
        )
    if not spec.strip():
        raise InvalidInputError("drafter spec is empty")
    if _looks_like_path(spec) and not os.path.exists(spec):
        from dsi_core.errors import ModelNotFoundError

        raise ModelNotFoundError(f"no drafter model at {spec!r}")


def _looks_like_path(spec: str) -> bool:
    return os.path.sep in spec or spec.startswith(".") or spec.startswith("~")


def resolve_target(target: Any, device: str | None = None) -> Any:
    """The target model to drive (see the module docstring)."""
    if target is None:
        from dsi_core.models.smollm2 import load_smollm2

        return load_smollm2(device=device)
    if isinstance(target, str | os.PathLike):
        from dsi_core.models.hf import HFModel

        return HFModel.from_pretrained(os.fspath(target), device=device)
    if _is_pretrained(target):
        from dsi_core.models.hf import HFModel

        return HFModel(target)
    missing = _missing(target, TARGET_METHODS, ("vocab_size",))
    if missing:
        raise InvalidInputError(
            f"target {type(target).__name__} is neither a path, a transformers PreTrainedModel, "
            f"nor a dsi_core TargetModel (missing: {', '.join(missing)})"
        )
    return target


def resolve_drafter(drafter: Any, target: Any) -> Any:
    """The drafter to drive: ``None``/"lookup", "derived:KIND", a path, a model, an object."""
    from dsi_core.models.lookup import LookupDrafter

    if drafter is None or drafter == "lookup":
        return LookupDrafter()
    if isinstance(drafter, str | os.PathLike):
        spec = os.fspath(drafter)
        check_drafter_spec(spec)
        if spec.startswith("derived:"):
            from dsi_core.models.derived import derived_drafter

            return derived_drafter(target, spec.split(":", 1)[1])
        from dsi_core.models.hf import HFModel

        return HFModel.from_pretrained(spec, device=str(getattr(target, "device", "cpu")))
    if _is_pretrained(drafter):
        from dsi_core.models.hf import HFModel

        return HFModel(drafter)
    missing = _missing(drafter, DRAFTER_METHODS, ())
    if missing:
        raise InvalidInputError(
            f"drafter {type(drafter).__name__} is neither 'lookup', 'derived:KIND', a path, a "
            f"transformers PreTrainedModel, nor a dsi_core DrafterModel "
            f"(missing: {', '.join(missing)})"
        )
    return drafter
