"""A small, self-contained mutant runner for the trusted core and the backends.

Why not mutmut: mutmut 3 installs, but it first runs the whole suite for its statistics and then
every generated mutant against every covering test; on this project's shared 2-core machine that
is hours. Here each mutant is a named, hand-written edit (the issue's list and a few more), each
runs only the fast test files that could see it, in a *copy* of the repository (the shared
checkout is never edited), with ``pytest -x`` and hypothesis shrinking off (``DSI_NO_SHRINK=1``).

    .venv/bin/python scripts/mutation.py            # every mutant, a table and the score
    .venv/bin/python scripts/mutation.py --list     # names only
    .venv/bin/python scripts/mutation.py NAME ...   # some of them

A mutant is *killed* when the tests fail (exit status 1) within the time limit, *survives* when
they pass, and is a *timeout* (counted as killed: the mutant hangs a run) past ``--timeout``.
The score is killed / (killed + survived); docs/mutation.md records a run and argues the
survivors.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

CORE_TESTS = [
    "tests/property/test_eos_waste.py",
    "tests/unit/test_coordinator.py",
    "tests/unit/test_checker.py",
    "tests/property/test_coordinator_stateful.py",
    "tests/property/test_latency_differential.py",
    "tests/property/test_coordinator_props.py",
    "tests/property/test_sp_degree.py",
    "tests/property/test_preemption_delay.py",
    "tests/property/test_differential_full.py",
]
SAMPLING_TESTS = [
    "tests/property/test_residual_paths.py",
    "tests/unit/test_sampling.py",
    "tests/unit/test_exact_lossless.py",
    "tests/unit/test_bad_inputs.py",
]
BACKEND_TESTS = [
    "tests/unit/test_threads_skip.py",
    "tests/unit/test_threads_kv_choice.py",
    "tests/unit/test_threads_determinism.py",
    "tests/unit/test_bad_inputs.py",
]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    note: str = ""


C, S = "dsi_core/coordinator.py", "dsi_core/sampling.py"
MUTANTS = [
    Mutant(
        "row_covered_counts_cancelled",
        C,
        "return any(not t.cancelled and t.lo <= pos <= t.context_len",
        "return any(t.lo <= pos <= t.context_len",
        tuple(CORE_TESTS),
        "issue 8: a cancelled, unacked task covers row n",
    ),
    Mutant(
        "drafted_eos_waste",
        C,
        "return min(last, self.n + i)",
        "return min(last, self.n + i + 1)",
        tuple(CORE_TESTS),
        "issue 8: one useless draft/row past a drafted EOS",
    ),
    Mutant(
        "eos_among_drafts_ignored",
        C,
        "        if eos is not None:\n            for i, d in enumerate(self._drafts):",
        "        if False:\n            for i, d in enumerate(self._drafts):",
        tuple(CORE_TESTS),
        "issue 8",
    ),
    Mutant(
        "si_drafts_last_position",
        C,
        "and nxt >= self._last_needed_row()",
        "and nxt > self._last_needed_row()",
        tuple(CORE_TESTS),
        "issue 8: SI drafts a position no row judges",
    ),
    Mutant(
        "rejection_does_not_wait_for_draft",
        C,
        "if draft is None and self._speculative and self.rule.needs_draft:",
        "if draft is None and self._speculative and self.rule.needs_draft and False:",
        tuple(CORE_TESTS + SAMPLING_TESTS),
        "issue 8: planted bug that survived the proofs",
    ),
    Mutant(
        "stale_task_result_used",
        C,
        "if task.cancelled or self.done:",
        "if self.done:",
        tuple(CORE_TESTS),
    ),
    Mutant(
        "stale_draft_used",
        C,
        "if cancelled or epoch != self.epoch or self.done:",
        "if self.done:",
        tuple(CORE_TESTS),
    ),
    Mutant(
        "sp_limit_counts_live_only",
        C,
        "if len(self._tasks) >= self._servers:",
        "if sum(not t.cancelled for t in self._tasks.values()) >= self._servers:",
        tuple(CORE_TESTS),
        "a cancelled, unacked task no longer holds its server",
    ),
    Mutant(
        "segment_keeps_rows",
        C,
        "        self._rows.clear()\n        self._row_src.clear()",
        "        self._row_src.clear()",
        tuple(CORE_TESTS),
    ),
    Mutant(
        "no_chain",
        C,
        'if cfg.algorithm in ("dsi", "nonsi") and not self._row_covered(n):',
        'if cfg.algorithm == "nonsi" and not self._row_covered(n):',
        tuple(CORE_TESTS),
    ),
    Mutant(
        "dsi_block_due_one_late",
        C,
        "due = nxt - self._verified_upto >= cfg.lookahead",
        "due = nxt - self._verified_upto > cfg.lookahead",
        tuple(CORE_TESTS),
    ),
    Mutant(
        "no_drop_useless",
        C,
        "if not task.cancelled and task.context_len < self.n:",
        "if False:",
        tuple(CORE_TESTS),
        "useless tasks keep their servers",
    ),
    Mutant(
        "epoch_not_incremented",
        C,
        "self.epoch += 1",
        "self.epoch += 0",
        tuple(CORE_TESTS),
        "ids still decide staleness; the trace's segment counter breaks",
    ),
    Mutant(
        "si_block_due_one_late",
        C,
        "due = nxt - 1 - self._verified_upto >= cfg.lookahead",
        "due = nxt - 1 - self._verified_upto > cfg.lookahead",
        tuple(CORE_TESTS),
    ),
    Mutant(
        "segment_keeps_draft_running",
        C,
        "            if not cancelled:\n                self._draft_req[rid] = (epoch, True)",
        "            if False:\n                self._draft_req[rid] = (epoch, True)",
        tuple(CORE_TESTS),
        "the in-flight draft is not preempted at a new segment",
    ),
    Mutant(
        "accept_u_le_ratio",
        S,
        "if u < p[draft] / qx:",
        "if u <= p[draft] / qx:",
        tuple(SAMPLING_TESTS),
        "accepts p(x) = 0 at u = 0",
    ),
    Mutant(
        "numpy_residual_q_minus_p",
        S,
        "return np.maximum(p - np.asarray(q, dtype=np.float64), 0.0)",
        "return np.maximum(np.asarray(q, dtype=np.float64) - p, 0.0)",
        tuple(SAMPLING_TESTS),
        "issue 8: planted bug that survived the proofs",
    ),
    Mutant(
        "numpy_residual_p_minus_half_q",
        S,
        "return np.maximum(p - np.asarray(q, dtype=np.float64), 0.0)",
        "return np.maximum(p - np.asarray(q, dtype=np.float64) / 2, 0.0)",
        tuple(SAMPLING_TESTS),
        "issue 8: caught only by tests/statistical",
    ),
    Mutant(
        "threads_never_skip_cancelled",
        "dsi_core/backends/threads.py",
        "ev = self.worker.handle(action, lambda i=ident: i in self.cancelled)",
        "ev = self.worker.handle(action, lambda: False)",
        tuple(BACKEND_TESTS),
        "issue 8: performance only (stale results are dropped by id)",
    ),
    Mutant(
        "kv_reuse_min",
        "dsi_core/backends/driver.py",
        "w = max(live, key=lambda s: _lcp(last_ctx.get(s, ()), ctx))",
        "w = min(live, key=lambda s: _lcp(last_ctx.get(s, ()), ctx))",
        tuple(BACKEND_TESTS),
        "issue 8: performance only (worst KV reuse)",
    ),
    Mutant(
        "simulator_delay_ignored",
        "dsi_core/backends/simulated.py",
        "job.finish = job.abort_at",
        "pass",
        ("tests/property/test_preemption_delay.py",),
    ),
]


def _copy_tree(dst: Path) -> None:
    for name in ("dsi_core", "tests", "proofs"):
        shutil.copytree(
            ROOT / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    for name in ("pyproject.toml",):
        shutil.copy2(ROOT / name, dst / name)


def run_mutant(m: Mutant, timeout: float) -> tuple[str, float, str]:
    """Apply ``m`` in a fresh copy, run its tests; returns (outcome, seconds, last line)."""
    with tempfile.TemporaryDirectory(prefix="dsi-mut-") as tmp:
        dst = Path(tmp)
        _copy_tree(dst)
        f = dst / m.path
        text = f.read_text()
        if text.count(m.old) != 1:
            return "STALE (pattern not found once)", 0.0, ""
        f.write_text(text.replace(m.old, m.new))
        env = dict(os.environ, PYTHONPATH=str(dst), DSI_NO_SHRINK="1", PYTHONDONTWRITEBYTECODE="1")
        cmd = [PY, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow", *m.tests]
        t0 = time.perf_counter()
        try:
            r = subprocess.run(
                cmd, cwd=dst, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return "killed (timeout)", time.perf_counter() - t0, ""
        secs = time.perf_counter() - t0
        last = (r.stdout.strip().splitlines() or [""])[-1]
        if r.returncode == 0:
            return "SURVIVED", secs, last
        if r.returncode == 1:
            return "killed", secs, last
        return f"error (pytest exit {r.returncode})", secs, last


def main(argv: list[str] | None = None) -> int:
    """Runs the selected mutants and prints a table; exit 1 if any survived."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="mutant names (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per mutant")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:<36} {m.path:<32} {m.note}")
        return 0
    killed = survived = 0
    for m in chosen:
        outcome, secs, last = run_mutant(m, args.timeout)
        killed += outcome.startswith("killed")
        survived += outcome == "SURVIVED"
        print(f"{m.name:<36} {outcome:<18} {secs:6.1f} s  {last}", flush=True)
    total = killed + survived
    print(f"\nscore: {killed}/{total} killed" + (f" = {killed / total:.0%}" if total else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
