"""Turn what a user passes as ``target`` or ``drafter`` into a model dsi_core can drive.

Accepted, in this order: ``None`` (the default SmolLM2 target / the prompt-lookup drafter);
a drafter spec string (``"lookup"``, ``"derived:KIND"``); a path or hub id (a Hugging Face
causal LM); a ``transformers`` ``PreTrainedModel`` (wrapped in :class:`~dsi_core.models.hf.HFModel`,
with no tokenizer unless one is given); any object that follows
:class:`~dsi_core.models.base.TargetModel` / :class:`~dsi_core.models.base.DrafterModel`.
Anything else is a typed :class:`~dsi_core.errors.InvalidInputError` naming what is missing.

:func:`check_target_spec` and :func:`check_drafter_spec` validate all of that *without loading
anything*, so :func:`dsi_core.generate` and the CLI run them first. A string is a model source
(:func:`check_model_source`): an existing directory must hold a ``config.json`` that parses and
a weights file; a string that is neither an existing path nor a hub id cached on this machine
fails at once with :class:`~dsi_core.errors.ModelNotFoundError` unless the hub is reachable
(never probed when ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` is set), instead of spending
tens of seconds in the hub client's retries.
"""

from __future__ import annotations

import glob
import json
import os
import re
import socket
import sys
from typing import Any
from urllib.parse import urlparse

from dsi_core.errors import DSIError, InvalidInputError, ModelNotFoundError

DERIVED_KINDS = ("int8", "bf16", "fp16", "layers=N")
TARGET_METHODS = ("new_state", "rows")
DRAFTER_METHODS = ("new_state", "propose")
ROW_KINDS = ("logits", "probs")
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")
HUB_PROBE_TIMEOUT_S = 2.0
_HUB_ID = re.compile(r"^(?:[\w.-]{1,96}/)?[\w.-]{1,96}$")
_hub_reachable: bool | None = None  # probed at most once per process


def _is_pretrained(obj: Any) -> bool:
    """Whether ``obj`` is a ``transformers`` ``PreTrainedModel``, without importing transformers:
    an instance can only exist once its defining module has been imported."""
    mod = sys.modules.get("transformers.modeling_utils")
    cls = getattr(mod, "PreTrainedModel", None)
    return cls is not None and isinstance(obj, cls)


def _missing(obj: Any, methods: tuple[str, ...], attrs: tuple[str, ...]) -> list[str]:
    out = [m for m in methods if not callable(getattr(obj, m, None))]
    out += [a for a in attrs if not hasattr(obj, a)]
    return out


def _offline_env() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_reachable() -> bool:
    """Whether the Hugging Face hub answers a TCP connection (probed once per process).

    False without any network call when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set.
    """
    global _hub_reachable
    if _offline_env():
        return False
    if _hub_reachable is None:
        host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
        try:
            with socket.create_connection((host or "huggingface.co", 443), HUB_PROBE_TIMEOUT_S):
                _hub_reachable = True
        except OSError:
            _hub_reachable = False
    return _hub_reachable


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        hit = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - an invalid id is simply "not cached"
        return False
    return isinstance(hit, str)


def _hub_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:
        return "~/.cache/huggingface/hub"


def _looks_like_path(spec: str) -> bool:
    """A hub id is ``name`` or ``org/name``; anything rooted or deeper is a path."""
    return (
        spec.startswith((".", "~", "/", os.path.sep))
        or spec.count("/") > 1
        or spec.endswith("/")
        or "\\" in spec
    )


def check_model_source(spec: Any, role: str = "model") -> str:
    """Validate a model path or hub id without loading it; returns it as a string.

    * an existing directory: needs a ``config.json`` that parses as a JSON object and a weights
      file (``*.safetensors``, ``*.bin`` or their ``.index.json``);
    * an existing file: refused (pass the model's directory);
    * anything path-like (``/``-rooted, ``./``, ``~``, more than one ``/``) that does not exist:
      :class:`ModelNotFoundError`;
    * otherwise a hub id (``name`` or ``org/name``): accepted if cached locally or if the hub
      is reachable; else :class:`ModelNotFoundError` saying where it looked.
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise InvalidInputError(f"{role} path must be a string, got {type(spec).__name__}")
    if not spec.strip():
        raise InvalidInputError(f"{role} path is empty")
    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        cfg = os.path.join(path, "config.json")
        if not os.path.isfile(cfg):
            raise ModelNotFoundError(
                f"{role} {spec!r} is a directory but not a Hugging Face model (no config.json)"
            )
        try:
            with open(cfg, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(
                f"{role} {spec!r}: config.json is unreadable or not JSON ({exc})"
            ) from None
        if not isinstance(data, dict):
            raise ModelNotFoundError(f"{role} {spec!r}: config.json is not a JSON object")
        pattern = os.path.join(glob.escape(path), "")
        if not any(glob.glob(pattern + w) for w in WEIGHT_PATTERNS):
            raise ModelNotFoundError(
                f"{role} {spec!r} has a config.json but no weights ({', '.join(WEIGHT_PATTERNS)})"
            )
        return spec
    if os.path.exists(path):
        raise ModelNotFoundError(
            f"{role} {spec!r} is a file; pass the directory of a Hugging Face model"
        )
    if _looks_like_path(spec) or not _HUB_ID.match(spec):
        what = role if role == "model" else f"{role} model"
        raise ModelNotFoundError(f"no {what} at {spec!r} (no such file or directory)")
    if _hub_cached(spec) or hub_reachable():
        return spec
    raise ModelNotFoundError(
        f"{role} {spec!r} is neither an existing path nor a Hugging Face hub id cached in "
        f"{_hub_cache_dir()}, and the hub is unreachable (offline); pass a local model directory"
    )


def _check_row_kind(obj: Any, role: str) -> None:
    kind = getattr(obj, "row_kind", "probs")
    if kind not in ROW_KINDS:
        raise InvalidInputError(
            f"{role} {type(obj).__name__} has row_kind {kind!r}; use one of {ROW_KINDS}"
        )


def _check_vocab(obj: Any, role: str, optional: bool) -> None:
    v = getattr(obj, "vocab_size", None)
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InvalidInputError(
            f"{role} {type(obj).__name__}.vocab_size must be an int >= 1, got {v!r}"
        )


def check_target_spec(target: Any) -> None:
    """Validate ``target`` without loading anything (see :func:`resolve_target`)."""
    if target is None or _is_pretrained(target):
        return
    if isinstance(target, str | os.PathLike):
        check_model_source(target, "target")
        return
    missing = _missing(target, TARGET_METHODS, ("vocab_size",))
    if missing:
        raise InvalidInputError(
            f"target {type(target).__name__} is neither a path, a transformers PreTrainedModel, "
            f"nor a dsi_core TargetModel (missing: {', '.join(missing)})"
        )
    _check_vocab(target, "target", optional=False)
    _check_row_kind(target, "target")


def check_drafter_spec(spec: Any) -> None:
    """Validate a drafter (spec string, path, model or object) without loading anything."""
    if spec is None or _is_pretrained(spec):
        return
    if isinstance(spec, os.PathLike):
        check_model_source(spec, "drafter")
        return
    if isinstance(spec, str):
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
        check_model_source(spec, "drafter")
        return
    missing = _missing(spec, DRAFTER_METHODS, ())
    if missing:
        raise InvalidInputError(
            f"drafter {type(spec).__name__} is neither 'lookup', 'derived:KIND', a path, a "
            f"transformers PreTrainedModel, nor a dsi_core DrafterModel "
            f"(missing: {', '.join(missing)})"
        )
    _check_vocab(spec, "drafter", optional=True)
    _check_row_kind(spec, "drafter")


def _load_hf(path: str, role: str, device: str | None) -> Any:
    """``HFModel.from_pretrained`` with every load failure as a typed error naming the path."""
    from dsi_core.models.hf import HFModel

    try:
        return HFModel.from_pretrained(path, device=device)
    except DSIError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - transformers/safetensors raise many kinds
        raise ModelNotFoundError(
            f"cannot load {role} from {path!r}: {type(exc).__name__}: {exc}"
        ) from exc


def resolve_target(target: Any, device: str | None = None) -> Any:
    """The target model to drive (see the module docstring)."""
    check_target_spec(target)
    if target is None:
        from dsi_core.models.smollm2 import load_smollm2

        return load_smollm2(device=device)
    if isinstance(target, str | os.PathLike):
        return _load_hf(os.path.expanduser(os.fspath(target)), "target", device)
    if _is_pretrained(target):
        from dsi_core.models.hf import HFModel

        return HFModel(target)
    return target


def resolve_drafter(drafter: Any, target: Any) -> Any:
    """The drafter to drive: ``None``/"lookup", "derived:KIND", a path, a model, an object."""
    from dsi_core.models.lookup import LookupDrafter

    check_drafter_spec(drafter)
    if drafter is None or drafter == "lookup":
        return LookupDrafter()
    if isinstance(drafter, str | os.PathLike):
        spec = os.fspath(drafter)
        if spec.startswith("derived:"):
            from dsi_core.models.derived import derived_drafter

            return derived_drafter(target, spec.split(":", 1)[1])
        device = str(getattr(target, "device", "cpu"))
        return _load_hf(os.path.expanduser(spec), "drafter", device)
    if _is_pretrained(drafter):
        from dsi_core.models.hf import HFModel

        return HFModel(drafter)
    return drafter
