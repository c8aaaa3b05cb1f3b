"""Benchmarks: DSI vs SI vs non-SI side by side, and the coordinator's own overhead.

``run_bench`` interleaves the algorithms within every repetition (same prompts, same machine,
same minute), so drift hits all of them alike; it reports per-repetition ratios and their
median. Timing lives here, never in tests.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any

PROMPTS = {
    "chat": "What are three good habits for staying healthy? Answer briefly.",
    "code": "Write a Python function that checks whether a string is a palindrome.",
    "summary": (
        "Summarise in two sentences: The city council met on Tuesday to discuss the new bike "
        "lanes. Residents said the lanes made cycling safer, while shop owners worried about "
        "losing parking spaces. The council agreed to a six-month trial on Main Street."
    ),
}


@dataclass
class Row:
    drafter: str
    algorithm: str
    lookahead: int
    servers: int
    walls: list[float]
    tokens: int
    acceptance: float
    forwards: float

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["median_s"] = self.median
        return d


def machine() -> str:
    import os

    import torch

    return (
        f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), python {platform.python_version()}"
    )


def run_bench(
    target: Any,
    drafters: dict[str, Any],
    settings: list[tuple[str, int, int]],
    prompts: dict[str, str] | None = None,
    repeats: int = 3,
    max_new_tokens: int = 48,
    progress: bool = True,
    backend: str = "threads",
    devices: Any = None,
    threads_per_server: int | None = None,
    ray_options: dict[str, Any] | None = None,
) -> tuple[list[Row], dict[tuple[str, str], list[float]]]:
    """Time non-SI and every (drafter, algorithm, k, S) on the same prompts, ``repeats`` times.

    SI and DSI run on ``backend`` (``threads``, ``processes`` placed by ``devices`` and
    ``threads_per_server``, or ``ray`` with ``ray_options``: address, num_gpus, num_cpus); the
    worker pools are reused across prompts and repetitions; non-SI always runs on ``threads``
    in this process, where torch uses every thread it has: the same total thread budget as the
    workers of a DSI run.

    Returns the rows and, per (drafter, algorithm-label), the per-repetition speedups over
    non-SI (non-SI total wall / this total wall, both from the same repetition).
    """
    from tqdm import tqdm

    from dsi_core.api import generate

    prompts = prompts or PROMPTS
    configs = [("-", "nonsi", 1, 1)] + [
        (d, alg, k, s) for d in drafters for (alg, k, s) in settings
    ]
    # warm-up: first forwards pay for allocations and kernel selection
    generate("Hi", target=target, algorithm="nonsi", max_new_tokens=4)
    bar = tqdm(total=repeats * len(configs) * len(prompts), disable=not progress, leave=False)
    pools: dict[tuple[str, int], Any] = {}  # one process pool per (drafter, servers), reused
    try:
        return _bench_loop(
            target,
            drafters,
            configs,
            prompts,
            repeats,
            max_new_tokens,
            backend,
            devices,
            threads_per_server,
            ray_options,
            pools,
            bar,
        )
    finally:
        for pool in pools.values():
            pool.close()
        bar.close()


def _pool(
    backend: str,
    servers: int,
    devices: Any,
    threads_per_server: int | None,
    ray_options: dict[str, Any] | None,
) -> Any:
    if backend == "ray":
        from dsi_core.backends.ray_backend import RayBackend

        return RayBackend(servers, threads_per_server=threads_per_server, **(ray_options or {}))
    from dsi_core.backends.processes import ProcessesBackend

    return ProcessesBackend(servers, devices=devices, threads_per_server=threads_per_server)


def _bench_loop(
    target: Any,
    drafters: dict[str, Any],
    configs: list[tuple],
    prompts: dict[str, str],
    repeats: int,
    max_new_tokens: int,
    backend: str,
    devices: Any,
    threads_per_server: int | None,
    opts: dict[str, Any] | None,
    pools: dict[tuple[str, int], Any],
    bar: Any,
) -> tuple[list[Row], dict[tuple[str, str], list[float]]]:
    from dsi_core.api import generate

    rows: dict[tuple, Row] = {}
    speedups: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeats):
        totals: dict[tuple, float] = {}
        for cfg in configs:
            dname, alg, k, s = cfg
            wall = 0.0
            toks = acc_n = acc_d = fwd = 0
            for text in prompts.values():
                extra: dict[str, Any] = {}
                if alg != "nonsi" and backend in ("processes", "ray"):
                    n = 1 if alg == "si" else s
                    if (dname, n) not in pools:
                        pools[(dname, n)] = _pool(backend, n, devices, threads_per_server, opts)
                    extra = {"runner": pools[(dname, n)]}
                r = generate(
                    text,
                    backend=backend if alg != "nonsi" else "threads",
                    **extra,
                    target=target,
                    drafter=drafters.get(dname),
                    algorithm=alg,
                    lookahead=k,
                    servers=s,
                    max_new_tokens=max_new_tokens,
                )
                wall += r.stats.wall_time
                toks += len(r.tokens)
                acc_n += r.stats.drafts_accepted
                acc_d += r.stats.drafts_accepted + r.stats.drafts_rejected
                fwd += r.stats.target_started
                bar.update(1)
            totals[cfg] = wall
            row = rows.setdefault(cfg, Row(dname, alg, k, s, [], toks, 0.0, 0.0))
            row.walls.append(wall)
            row.acceptance = acc_n / acc_d if acc_d else 0.0
            row.forwards = fwd / len(prompts)
        base = totals[configs[0]]
        for cfg in configs[1:]:
            speedups.setdefault(cfg, []).append(base / totals[cfg])
    return list(rows.values()), speedups


def format_bench(rows: list[Row], speedups: dict, repeats: int) -> str:
    by = {(r.drafter, r.algorithm, r.lookahead, r.servers): r for r in rows}
    base = next(r for r in rows if r.algorithm == "nonsi")
    lines = [
        f"machine: {machine()}",
        f"{repeats} repetitions; walls are totals over the prompts; speedup = non-SI wall / "
        "wall, median of per-repetition ratios",
        f"{'drafter':<12}{'algorithm':<10}{'k':>3}{'S':>3}{'accept':>8}{'tgt fwd':>9}"
        f"{'median s':>10}{'vs non-SI':>11}{'DSI vs SI':>11}",
        f"{'-':<12}{'nonsi':<10}{'':>3}{'':>3}{'':>8}{base.forwards:>9.1f}{base.median:>10.2f}"
        f"{1.0:>11.2f}{'':>11}",
    ]
    for r in rows:
        if r.algorithm == "nonsi":
            continue
        sp = statistics.median(speedups[(r.drafter, r.algorithm, r.lookahead, r.servers)])
        vs_si = ""
        if r.algorithm == "dsi":
            si = [
                x
                for key, x in by.items()
                if key[0] == r.drafter and key[1] == "si" and key[2] == r.lookahead
            ]
            if si:
                pair = [a / b for a, b in zip(si[0].walls, r.walls, strict=True)]
                vs_si = f"{statistics.median(pair):.2f}"
        lines.append(
            f"{r.drafter:<12}{r.algorithm:<10}{r.lookahead:>3}{r.servers:>3}{r.acceptance:>8.2f}"
            f"{r.forwards:>9.1f}{r.median:>10.2f}{sp:>11.2f}{vs_si:>11}"
        )
    return "\n".join(lines)


def coordinator_overhead(n_tokens: int = 2000, vocab: int = 64, repeats: int = 5) -> dict:
    """Microseconds of coordinator decision logic per committed token (simulated backend).

    Times only the coordinator's ``start``/``on_event`` calls (decision rule, row checks and
    bookkeeping included; model and backend excluded), with float64 rows of size ``vocab``.
    """
    from fractions import Fraction

    import numpy as np

    from dsi_core.backends.simulated import SimulatedBackend
    from dsi_core.coordinator import Config, Coordinator
    from dsi_core.sampling import DecisionRule, KeyedNoise
    from dsi_core.testing.toy import ToyModel

    rng = np.random.default_rng(0)
    table = rng.dirichlet(np.ones(vocab) * 0.3, size=97)
    target = ToyModel(vocab, lambda toks: table[(len(toks) * 31 + toks[-1]) % 97])
    drafters = {
        "perfect": target,
        "half": ToyModel(
            vocab,
            lambda toks: (
                table[(len(toks) * 31 + toks[-1]) % 97]
                if len(toks) % 2
                else table[(len(toks) * 17) % 97]
            ),
        ),
    }
    out = {}
    for mode in ("greedy", "rejection"):
        for name, drafter in drafters.items():
            per_token = []
            for _ in range(repeats):
                coord = Coordinator(
                    Config("dsi", 4, 4, n_tokens), DecisionRule(mode, KeyedNoise(1))
                )
                spent = [0.0]
                start, on_event = coord.start, coord.on_event

                def timed(fn, spent=spent):
                    def wrapper(*a, **k):
                        t0 = time.perf_counter()
                        try:
                            return fn(*a, **k)
                        finally:
                            spent[0] += time.perf_counter() - t0

                    return wrapper

                coord.start, coord.on_event = timed(start), timed(on_event)
                SimulatedBackend(Fraction(1), Fraction(1, 5)).run(coord, target, drafter, [1])
                per_token.append(spent[0] / len(coord.committed) * 1e6)
            out[(mode, name)] = (statistics.median(per_token), coord.stats.acceptance_rate)
    return out


def replay_rows(
    rows: list[Row], profiles: dict[str, Any], cancellation: Any = "instant"
) -> list[dict[str, Any]]:
    """Measured wall vs the simulator's prediction from the measured pair profile.

    The prediction replays each prompt's measured acceptance pattern with the measured
    latencies (:mod:`dsi_core.experiments.estimate`), adding the measured prefill; it assumes
    one device per target server, so on a shared CPU measured/predicted > 1 measures the
    contention.
    """
    from dsi_core.experiments.estimate import predict

    out = []
    for r in rows:
        prof = profiles.get(r.drafter) or next(iter(profiles.values()))
        pred, _ = predict(prof, r.algorithm, r.lookahead, r.servers, cancellation)
        pred += sum(prof.prefills_s)
        out.append(
            {
                "drafter": r.drafter,
                "algorithm": r.algorithm,
                "lookahead": r.lookahead,
                "servers": r.servers,
                "measured_s": r.median,
                "predicted_s": pred,
                "meas_over_pred": r.median / pred,
            }
        )
    return out


def replay_table(rows: list[Row], profiles: dict[str, Any]) -> str:
    """:func:`replay_rows` as a table."""
    lines = [
        f"{'drafter':<14}{'algorithm':<10}{'k':>3}{'S':>3}{'measured s':>12}"
        f"{'predicted s':>13}{'meas/pred':>11}"
    ]
    for d in replay_rows(rows, profiles):
        lines.append(
            f"{d['drafter']:<14}{d['algorithm']:<10}{d['lookahead']:>3}{d['servers']:>3}"
            f"{d['measured_s']:>12.2f}{d['predicted_s']:>13.2f}{d['meas_over_pred']:>11.2f}"
        )
    return "\n".join(lines)
