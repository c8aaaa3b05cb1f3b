"""Latency-emulated servers: the paper's regimes on real threads, and replay through the model.

Each target forward sleeps ``t`` and each draft ``c`` (sleeping threads leave the 2 cores
free, so speculation parallelism is real here); the drafter agrees with the target's
continuation with probability ``a`` (an i.i.d. pattern: **synthetic**, label it so). Every run
on the threads backend is then replayed through the simulated backend with the same pattern
and latencies, twice: with instant preemption (the proved model) and with preempted work
running to completion (what threads can do: a running forward cannot be interrupted). The
ratio measured / predicted shows how faithful the runtime is to its model.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from dsi_core.testing.synthetic import PatternDrafter, PatternTarget, iid_pattern


class SleepyTarget(PatternTarget):
    def __init__(self, t: float) -> None:
        super().__init__(1)
        self.t = t

    def rows(self, state: Any, tokens: Any, start: int) -> list[Any]:
        time.sleep(self.t)
        return super().rows(state, tokens, start)


class SleepyDrafter(PatternDrafter):
    def __init__(self, a: Any, c: float) -> None:
        super().__init__(a, 1)
        self.c = c

    def propose(self, state: Any, tokens: Any) -> Any:
        time.sleep(self.c)
        return super().propose(state, tokens)


@dataclass
class EmuRow:
    algorithm: str
    lookahead: int
    servers: int
    measured: list[float]
    predicted_ideal: list[float]
    predicted_rtc: list[float]
    tasks: list[int]

    @property
    def median(self) -> float:
        return statistics.median(self.measured)

    def ratio(self, which: str = "rtc") -> float:
        pred = self.predicted_rtc if which == "rtc" else self.predicted_ideal
        return statistics.median(m / p for m, p in zip(self.measured, pred, strict=True))

    def as_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "lookahead": self.lookahead,
            "servers": self.servers,
            "measured_s": self.measured,
            "predicted_ideal_s": self.predicted_ideal,
            "predicted_rtc_s": self.predicted_rtc,
            "median_s": self.median,
            "meas_over_ideal": self.ratio("ideal"),
            "meas_over_rtc": self.ratio("rtc"),
            "tasks": self.tasks,
        }

    def overhead_per_task_ms(self) -> float:
        per = [
            (m - p) / n * 1e3
            for m, p, n in zip(self.measured, self.predicted_rtc, self.tasks, strict=True)
        ]
        return statistics.median(per)


def _run(
    algorithm: str,
    k: int,
    s: int,
    pattern: list[int],
    t: float,
    c: float,
    backend: str,
    cancellation: str = "instant",
) -> tuple[float, int]:
    from dsi_core.backends.threads import ThreadsBackend
    from dsi_core.coordinator import Config, Coordinator
    from dsi_core.sampling import DecisionRule, KeyedNoise
    from dsi_core.testing.replay import replay_pattern

    servers = 1 if algorithm == "si" else s
    if backend == "threads":
        coord = Coordinator(
            Config(algorithm, k, servers, len(pattern)), DecisionRule("greedy", KeyedNoise(0))
        )
        drafter = SleepyDrafter(pattern, c) if algorithm != "nonsi" else None
        ThreadsBackend(servers).run(coord, SleepyTarget(t), drafter, [0])
        return coord.stats.wall_time, coord.stats.target_started
    end, coord = replay_pattern(
        algorithm,
        pattern,
        k,
        servers,
        Fraction(t).limit_denominator(10**6),
        Fraction(c).limit_denominator(10**6),
        cancellation,
    )
    return float(end), coord.stats.target_started


def bench_emulated(
    t: float,
    c: float,
    a: float,
    settings: list[tuple[str, int, int]],
    n_tokens: int = 100,
    repeats: int = 3,
    progress: bool = True,
) -> list[EmuRow]:
    """Run non-SI and every (algorithm, k, S) ``repeats`` times on fresh patterns."""
    from tqdm import tqdm

    configs = [("nonsi", 1, 1)] + list(settings)
    rows = {cfg: EmuRow(*cfg, [], [], [], []) for cfg in configs}
    bar = tqdm(total=repeats * len(configs), disable=not progress, leave=False)
    for rep in range(repeats):
        pattern = iid_pattern(n_tokens, a, 1000 + rep)
        for cfg in configs:
            alg, k, s = cfg
            wall, tasks = _run(alg, k, s, pattern, t, c, "threads")
            ideal, _ = _run(alg, k, s, pattern, t, c, "simulated", "instant")
            rtc, _ = _run(alg, k, s, pattern, t, c, "simulated", "fails")
            r = rows[cfg]
            r.measured.append(wall)
            r.predicted_ideal.append(ideal)
            r.predicted_rtc.append(rtc)
            r.tasks.append(tasks)
            bar.update(1)
    bar.close()
    return list(rows.values())


def format_emulated(rows: list[EmuRow], t: float, c: float, a: float, n: int) -> str:
    base = rows[0].median
    lines = [
        f"SYNTHETIC emulation: t = {t * 1e3:g} ms, c = {c * 1e3:g} ms, i.i.d. acceptance "
        f"a = {a}, {n} tokens; medians of {len(rows[0].measured)} runs (fresh pattern each)",
        "predicted: simulator replay of the same pattern; ideal = instant preemption (the proved "
        "model), rtc = preempted work runs to completion (threads semantics)",
        f"{'algorithm':<10}{'k':>3}{'S':>3}{'measured s':>12}{'vs non-SI':>11}"
        f"{'meas/ideal':>12}{'meas/rtc':>10}{'ovh ms/task':>13}",
    ]
    for r in rows:
        lines.append(
            f"{r.algorithm:<10}{r.lookahead:>3}{r.servers:>3}{r.median:>12.3f}"
            f"{base / r.median:>11.2f}{r.ratio('ideal'):>12.3f}{r.ratio('rtc'):>10.3f}"
            f"{r.overhead_per_task_ms():>13.3f}"
        )
    return "\n".join(lines)
