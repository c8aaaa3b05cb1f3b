"""``dsi estimate``: what would DSI buy for *your* model pair?

1. Latencies, measured on this machine (medians): the target's first-token (prefill) latency,
   its per-token decode latency, its cost of a forward that computes ``r`` rows (verification
   of ``r - 1`` drafts) for ``r = 1..8``, and the drafter's per-token latency.
2. Acceptance, per position: the target decodes each prompt greedily; at every position the
   drafter is asked for its proposal *given the correct prefix* and compared with the target's
   token. This gives the full 0/1 pattern ``a`` of the speed model (docs/design.md), so nothing
   is censored (estimating from SI runs would cut every run of accepted drafts at ``k``).
3. Prediction: the simulated backend (the real coordinator) replays each prompt's pattern with
   the measured latencies -- a forward computing ``r`` rows costs the measured cost for ``r`` --
   for non-SI, SI(k) and DSI(k, S). The needed SP degree is the smallest ``S`` for which DSI(k)
   never waited for a server on these prompts.

The prediction assumes target servers that do not slow each other down (one device each).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PairProfile:
    prefill_s: float
    decode_s: float
    rows_cost_s: dict[int, float]
    draft_s: float
    patterns: list[list[int]]
    prompt_names: list[str] = field(default_factory=list)
    prefills_s: list[float] = field(default_factory=list)  # per prompt

    @property
    def acceptance(self) -> float:
        allp = [x for p in self.patterns for x in p]
        return sum(allp) / len(allp) if allp else 0.0

    def task_cost(self, rows: int) -> float:
        if rows in self.rows_cost_s:
            return self.rows_cost_s[rows]
        top = max(self.rows_cost_s)
        return self.rows_cost_s[top]


def _median_time(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _ready(rows: Any) -> Any:
    """``rows`` once computed: a device tensor is waited for (one element read), so a timing
    around a GPU forward covers the forward, not just its launch."""
    last = rows[-1]
    if hasattr(last, "detach"):
        float(last[0])
    return rows


def greedy_decision_cost(
    target: Any, ids: list[int], last: int | None = None, repeats: int = 5
) -> tuple[bool, dict[str, float]]:
    """ms per row of a greedy decision on ``target``'s logits rows for ``ids`` (the last
    ``last`` positions, or all): ``device_top2`` (:meth:`DecisionRule.compact_logits`, the top
    two read where the row lives) vs ``host_float64`` (the exact float64 row), medians of
    ``repeats``; and whether both decided the same tokens."""
    from dsi_core.sampling import DecisionRule, KeyedNoise, to_probs

    rule = DecisionRule("greedy", KeyedNoise(0))
    zrows = _ready(target.rows(target.new_state(), ids, 1))
    zrows = zrows[-last:] if last else zrows
    ways = {
        "device_top2": lambda z: rule.compact_logits(0, z, 1.0, "row"),
        "host_float64": lambda z: rule.compact(0, to_probs(z, "logits")),
    }
    same = all(ways["device_top2"](z) == ways["host_float64"](z) for z in zrows)
    cost = {}
    for name, fn in ways.items():
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            for z in zrows:
                fn(z)
            times.append((time.perf_counter() - t) / len(zrows))
        cost[name] = statistics.median(times) * 1e3
    return same, cost


def profile_pair(
    target: Any, drafter: Any, prompts: dict[str, str], n_tokens: int = 32, repeats: int = 5
) -> PairProfile:
    """Measure latencies and per-position acceptance (see the module docstring)."""
    from dsi_core.api import encode_prompt

    patterns, names = [], []
    decode, prefill, draft = [], [], []
    rows_cost: dict[int, list[float]] = {}
    for name, text in prompts.items():
        ids = encode_prompt(text, target)
        st = target.new_state()
        t0 = time.perf_counter()
        z = _ready(target.rows(st, ids, len(ids)))[-1]
        prefill.append(time.perf_counter() - t0)
        toks = list(ids)
        cont = []
        for _ in range(n_tokens):
            tok = int(z.argmax())
            cont.append(tok)
            toks.append(tok)
            if tok == getattr(target, "eos_token_id", None):
                break
            t0 = time.perf_counter()
            z = _ready(target.rows(st, toks, len(toks)))[-1]
            decode.append(time.perf_counter() - t0)
        # verification cost: r rows = forward over r new tokens on a cached prefix
        base = list(ids)
        for r in range(1, 9):
            if len(cont) < r:
                break
            vs = target.new_state()
            target.rows(vs, base, len(base))

            seq = base + cont[:r]

            def verify(vs: Any = vs, seq: list = seq, start: int = len(base) + 1) -> None:
                _ready(target.rows(vs, seq, start))

            verify()  # warm-up for this shape
            rows_cost.setdefault(r + 1, []).append(_median_time(verify, repeats))
        # acceptance pattern and drafter latency
        dst = drafter.new_state()
        pattern = []
        for i, tok in enumerate(cont):
            t0 = time.perf_counter()
            prop = drafter.propose(dst, list(ids) + cont[:i])
            draft.append(time.perf_counter() - t0)
            guess = prop.token if prop.token is not None else int(prop.q.argmax())
            pattern.append(int(guess == tok))
        patterns.append(pattern)
        names.append(name)
    rows_cost_s = {r: statistics.median(v) for r, v in rows_cost.items()}
    dec = statistics.median(decode)
    rows_cost_s[1] = dec
    return PairProfile(
        statistics.median(prefill),
        dec,
        rows_cost_s,
        statistics.median(draft),
        patterns,
        names,
        prefill,
    )


def predict(
    profile: PairProfile, algorithm: str, k: int, servers: int, cancellation: Any = "instant"
) -> tuple[float, bool]:
    """Total predicted latency over the prompts (after the prefill), and whether a task waited.

    ``cancellation`` is the simulator's preemption model (``"instant"``, ``"fails"`` = a
    cancelled task runs to completion, or a delay as the simulated backend accepts it).
    """
    from dsi_core.testing.replay import replay_pattern

    total, waited = 0.0, False
    for pattern in profile.patterns:
        end, coord = replay_pattern(
            algorithm,
            pattern,
            k,
            servers,
            lambda a: profile.task_cost(len(a.context) - a.lo + 1),
            profile.draft_s,
            cancellation=cancellation,
        )
        total += float(end)
        waited = waited or coord.stats.task_waits > 0
    return total, waited


def estimate_data(profile: PairProfile, lookaheads: list[int], max_servers: int) -> dict:
    """Predictions per (algorithm, k, S) and the recommendation, as plain data."""
    nonsi, _ = predict(profile, "nonsi", 1, 1)
    rows: list[dict[str, Any]] = [
        {"algorithm": "nonsi", "lookahead": None, "servers": 1, "predicted_s": nonsi}
    ]
    best = ("nonsi", 1, 1, nonsi)
    for k in lookaheads:
        si, _ = predict(profile, "si", k, 1)
        rows.append({"algorithm": "si", "lookahead": k, "servers": 1, "predicted_s": si})
        if si < best[3]:
            best = ("si", k, 1, si)
        needed = None
        for s in range(1, max_servers + 1):
            d, waited = predict(profile, "dsi", k, s)
            if not waited and needed is None:
                needed = s
            if s == max_servers or not waited:
                rows.append(
                    {
                        "algorithm": "dsi",
                        "lookahead": k,
                        "servers": s,
                        "predicted_s": d,
                        "needed_servers": needed,
                    }
                )
                if d < best[3]:
                    best = ("dsi", k, s, d)
                break
    for r in rows:
        r["vs_nonsi"] = nonsi / r["predicted_s"]
    alg, k, s, v = best
    return {
        "prefill_s": profile.prefill_s,
        "decode_s": profile.decode_s,
        "rows_cost_s": {str(r): v for r, v in sorted(profile.rows_cost_s.items())},
        "draft_s": profile.draft_s,
        "acceptance": profile.acceptance,
        "positions": sum(len(p) for p in profile.patterns),
        "prompts": len(profile.patterns),
        "predictions": rows,
        "recommended": {"algorithm": alg, "lookahead": k, "servers": s, "vs_nonsi": nonsi / v},
    }


def format_estimate(data: dict) -> str:
    """:func:`estimate_data` as the text table ``dsi estimate`` prints."""
    lines = [
        f"target: prefill {data['prefill_s'] * 1e3:.1f} ms, decode {data['decode_s'] * 1e3:.1f} "
        "ms/token, forward computing r rows: "
        + ", ".join(f"r={r}: {v * 1e3:.1f} ms" for r, v in data["rows_cost_s"].items()),
        f"drafter: {data['draft_s'] * 1e3:.2f} ms/token; acceptance (greedy, per position, "
        f"{data['positions']} positions): {data['acceptance']:.3f}",
        f"predicted decode time over {data['prompts']} prompts (prefill excluded), one "
        "device per target server:",
        f"{'algorithm':<8}{'k':>3}{'S':>4}{'predicted s':>13}{'vs non-SI':>11}{'note':>20}",
    ]
    for r in data["predictions"]:
        k = "" if r["lookahead"] is None else r["lookahead"]
        note = ""
        if r["algorithm"] == "dsi":
            n = r["needed_servers"]
            note = f"needed S = {n}" if n else f"waits even at S={r['servers']}"
        lines.append(
            f"{r['algorithm']:<8}{k:>3}{r['servers']:>4}{r['predicted_s']:>13.3f}"
            f"{r['vs_nonsi']:>11.2f}{note:>20}"
        )
    rec = data["recommended"]
    lines.append(
        f"recommended: {rec['algorithm']} k={rec['lookahead']} S={rec['servers']} "
        f"(predicted {rec['vs_nonsi']:.2f}x non-SI on separate devices)"
    )
    return "\n".join(lines)


def estimate_table(profile: PairProfile, lookaheads: list[int], max_servers: int) -> str:
    """The prediction table for a measured profile (text)."""
    return format_estimate(estimate_data(profile, lookaheads, max_servers))
