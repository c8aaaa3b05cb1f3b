"""CPU figures for docs/results.md ("Backends"): one command, medians, side by side.

``python scripts/cpu_measure.py [--quick]`` prints:

1. transport overhead per job (round trip minus compute) and bytes per job, threads vs
   processes, on a toy model (pure transport) in greedy and rejection mode;
2. SmolLM2 ms per forward computing r = 1..9 rows (fp32, this CPU), and the greedy decision
   per row: top two read on the logits tensor vs the float64 softmax row;
3. the derived:bf16 drafter on this CPU: acceptance (greedy, per position) and c/t;
4. drafter run-ahead in a 64-token DSI run (lookup, k = 4, S = 2): draft requests, how many
   were preempted or dropped stale, and the coordinator's own time against the wall time;
   then the same run on ``processes``: the CPU seconds of the calling process (coordinator and
   pipes), of the drafter process and of the target servers, against the wall time.

``python scripts/compile_probe.py`` is the torch.compile probe (separate: it compiles for
about 100 s on this CPU).
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    quick = "--quick" in sys.argv
    from dsi_core import generate
    from dsi_core.backends.processes import ProcessesBackend
    from dsi_core.testing.toy import random_table_model

    target = random_table_model(8, seed=1, exact=False)
    drafter = random_table_model(8, seed=2, exact=False)
    print("1. transport overhead per job (toy model, 64 tokens, DSI k=2 S=2), medians of 5 runs")
    for mode in ("greedy", "rejection"):
        for backend in ("threads", "processes"):
            pool = ProcessesBackend(2) if backend == "processes" else None
            ovh, nbytes = [], []
            try:
                for seed in range(5):
                    r = generate(
                        [1, 2],
                        target=target,
                        drafter=drafter,
                        mode=mode,
                        seed=seed,
                        lookahead=2,
                        servers=2,
                        max_new_tokens=64,
                        backend=backend,
                        runner=pool,
                    )
                    ovh.append(r.transport["overhead_ms_median"])
                    nbytes.append(r.transport["bytes_per_job"])
            finally:
                if pool is not None:
                    pool.close()
            print(
                f"   {mode:<10}{backend:<10} overhead {statistics.median(ovh):.3f} ms/job, "
                f"{statistics.median(nbytes):.0f} bytes/job"
            )

    from dsi_core.experiments.bench import PROMPTS
    from dsi_core.experiments.estimate import greedy_decision_cost, profile_pair
    from dsi_core.models.resolve import resolve_drafter
    from dsi_core.models.smollm2 import load_smollm2

    model = load_smollm2()
    ids = model.tokenizer(PROMPTS["chat"])["input_ids"]
    print("2. SmolLM2 fp32 ms per forward computing r rows (median of 7 after 2 warm-ups)")
    per = {}
    for r in range(1, 10):
        times = []
        for _ in range(4 if quick else 9):
            st = model.new_state()
            model.rows(st, ids, len(ids))
            t = time.perf_counter()
            model.rows(st, ids + list(range(100, 100 + r)), len(ids) + 1)
            times.append(time.perf_counter() - t)
        per[r] = statistics.median(times[2:]) * 1e3
    print("   " + ", ".join(f"r={r}: {v:.1f}" for r, v in per.items()))
    same, cost = greedy_decision_cost(model, ids)
    print(
        f"   greedy decision per row ({len(ids)} rows, same tokens: {same}): "
        + ", ".join(f"{k} {v:.3f} ms" for k, v in cost.items())
    )

    print("3. derived:bf16 drafter on this CPU (greedy acceptance per position, c/t)")
    bf16 = resolve_drafter("derived:bf16", model)
    prompts = {"chat": PROMPTS["chat"]} if quick else PROMPTS
    prof = profile_pair(model, bf16, prompts, n_tokens=8 if quick else 32, repeats=3)
    print(
        f"   acceptance {prof.acceptance:.3f}, c = {prof.draft_s * 1e3:.1f} ms, "
        f"t = {prof.decode_s * 1e3:.1f} ms, c/t = {prof.draft_s / prof.decode_s:.2f}"
    )

    print("4. drafter run-ahead, 64-token DSI run (SmolLM2, lookup, k=4, S=2, threads)")
    from dsi_core.coordinator import Coordinator

    spent = [0.0]
    orig = Coordinator.on_event

    def timed(self, ev, now=0.0):  # noqa: ANN001, ANN202
        t = time.perf_counter()
        try:
            return orig(self, ev, now)
        finally:
            spent[0] += time.perf_counter() - t

    Coordinator.on_event = timed  # type: ignore[method-assign]
    try:
        r = generate(PROMPTS["chat"], target=model, max_new_tokens=16 if quick else 64)
    finally:
        Coordinator.on_event = orig  # type: ignore[method-assign]
    s = r.stats
    print(
        f"   {len(r.tokens)} tokens, {s.drafts_started} draft requests "
        f"({s.draft_preempted} preempted, {s.stale_results_dropped} stale results), "
        f"coordinator {spent[0] * 1e3:.1f} ms of {s.wall_time * 1e3:.0f} ms wall "
        f"({100 * spent[0] / s.wall_time:.1f}%)"
    )
    print("   the same on processes (one thread per worker), CPU seconds per process, 3 runs:")
    lookup = resolve_drafter("lookup", model)
    n_new = 16 if quick else 64
    with ProcessesBackend(2, threads_per_server=1) as pool:
        generate(
            "Hi", target=model, drafter=lookup, max_new_tokens=2, backend="processes", runner=pool
        )
        pids = pool.pids()  # targets first, the drafter last
        for _ in range(3):
            before, mine = [cpu_s(p) for p in pids], own_cpu_s()
            r = generate(
                PROMPTS["chat"],
                target=model,
                drafter=lookup,
                max_new_tokens=n_new,
                backend="processes",
                runner=pool,
            )
            used = [cpu_s(p) - b for p, b in zip(pids, before, strict=True)]
            s = r.stats
            print(
                f"   {len(r.tokens)} tokens, {s.drafts_started} draft requests, wall "
                f"{s.wall_time:.2f} s; CPU: caller {own_cpu_s() - mine:.2f} s, drafter "
                f"{used[-1]:.2f} s, targets {' + '.join(f'{u:.2f}' for u in used[:-1])} s; "
                f"{r.transport['bytes_per_job']:.0f} bytes/job"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
