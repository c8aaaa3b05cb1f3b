"""`python -m proofs [--only FAMILY] [--name SUBSTRING] [--json] [-j JOBS]` checks the theorems.

Prints, per theorem, the claim, its hypotheses in words, the expected and actual outcome, the
seconds taken, the mutants' outcomes and the witness of every counterexample; then a summary
table. Exits 1 when any result differs from its expectation (UNKNOWN and rlimit exhaustion
included), 0 otherwise.

With `-j JOBS` (default: the number of CPUs) the theorems are checked by that many worker
processes (spawned: each builds its own z3 context); the report keeps the registry's order and
is printed as soon as every earlier theorem is done. The outcome of each theorem does not depend
on `-j`: every solver call runs under the same deterministic `rlimit` on a fresh solver. A family
in `_PREPARE` (the simulator runs of `expect_servers`) first computes its cache in parallel
chunks; its theorems are then split into at most JOBS tasks that each install the whole cache, so
they run side by side (without a warm-up, e.g. `--name slower`, they run in one worker, in order,
filling the cache on demand). Heavy tasks are handed out first (`_COST`, measured CPU seconds: a
scheduling hint only). `-j 1` checks everything in this process.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from proofs import all_theorems
from proofs.theorem import Result, Theorem, check

# Families whose theorems share an in-process cache: without a warm-up, checked in one worker, in
# registry order.
_SHARED = frozenset({"expect_servers"})
# Families whose module warms that cache up in parallel: `prepare_chunks(names)` -> chunks,
# `prepare(chunk)` -> data (in any worker), `install(data)` (in each worker checking the family).
_PREPARE = {"expect_servers": "proofs.expectation_servers"}
# CPU seconds per theorem in a `-j 2` worker (time.process_time; the expect_servers theorems after
# the warm-up is installed), measured 2026-11-28 on the 2-core machine; a scheduling hint only
# (longest first). Unlisted: 1.0 (a new theorem may be heavy; the ~45 unlisted ones took 0.01 to
# 0.35 s each, 4 s together), so light work fills the end. Refresh when a theorem gets heavier.
_COST = {
    "latency/dsi1_le_si_any_lookahead_N12": 4.9,
    "expect_servers/dsi_kS_le_best_si_if_deg_N9": 4.3,
    "code_rule/coupled_v2_4": 4.0,
    "rejection/rejection_dsi12_le_si_any_k_N6": 3.3,
    "latency/dsi_le_nonsi_N32": 2.8,
    "code_rule/decide_rejection_v4": 2.8,
    "expectation/expect_dsi_k_le_best_si_N12": 2.4,
    "code_rule/decide_rejection_v3": 2.3,
    "lossless/rejection_law_n5": 2.2,
    "rejection/rejection_dsi_k_le_si_k_N6": 1.4,
    "latency/dsi4_le_si4_N16": 1.4,
    "latency/dsik_le_sik_inductive": 1.3,
    "code_rule/residual_nonempty_v2_4": 1.3,
    "expect_servers/dsi_kS_le_si_k_N9": 1.2,
    "expectation/expect_dsi_k_le_si_k_N12": 1.2,
    "code_rule/residual_v2_4": 1.1,
    "latency/dsi3_le_si3_N16": 1.1,
    "sp_degree/sp_degree_exact_k1_N7": 0.9,
    "latency/dsi2_le_si2_N16": 0.9,
    "latency/dsi5_le_si5_N14": 0.9,
    "sp_degree/sp_degree_exact_k2_N8": 0.8,
    "expect_servers/best_dsi_S3_7_le_best_si_N9": 0.8,
    "expect_servers/best_dsi_S2_slower_best_si_N9": 0.3,
    "expect_servers/dsi1_S7_slower_best_si_N9": 0.2,
    "code_rule/check_row_v1_4": 0.8,
    "code_rule/draft_token_v2_4": 0.6,
    "sp_degree/sp_degree_slow_blocks_le3_k2_N8": 0.6,
    "sp_degree/sp_degree_exact_k3_N8": 0.6,
    "sp_degree/sp_degree_slow_blocks_le3_k3_N8": 0.6,
    "code_rule/decide_greedy_v4": 0.5,
    "lossless/chain_k2_vocab2": 0.5,
    "latency/segment_cost_le_authors_k1": 0.4,
    "latency/dsi_eq_nonsi_if_c_gt_t_N32": 0.4,
}
_DEFAULT_COST = 1.0


@dataclass(frozen=True)
class _Done:
    """What a worker sends back for one theorem (plain data: a `Result` holds lambdas)."""

    index: int
    name: str
    claim: str
    hypotheses: str
    expected: str
    status: str
    ok: bool
    seconds: float
    witness: str
    report: str


def _done(index: int, res: Result) -> _Done:
    th = res.theorem
    return _Done(
        index,
        f"{th.family}/{th.name}",
        th.claim,
        th.hypotheses,
        th.expected,
        res.status,
        res.ok,
        res.seconds,
        res.witness,
        _report(res),
    )


def _check_indices(indices: list[int], installs: Sequence[tuple[str, Any]] = ()) -> list[_Done]:
    """Worker: installs prepared data (`(module, data)` pairs from `_prepare`), then checks the
    theorems at `indices` of `all_theorems()`, in order."""
    for module, data in installs:
        importlib.import_module(module).install(data)
    theorems = all_theorems()
    return [_done(i, check(theorems[i])) for i in indices]


def _prepare(module: str, chunk: Any) -> Any:
    """Worker: one chunk of a family's warm-up (`module.prepare(chunk)`)."""
    return importlib.import_module(module).prepare(chunk)


def _cost(theorem: Theorem) -> float:
    return _COST.get(f"{theorem.family}/{theorem.name}", _DEFAULT_COST)


def _tasks(theorems: list[Theorem], indices: list[int]) -> list[list[int]]:
    """Groups the selected theorems into tasks (a `_SHARED` family is one task), heaviest first."""
    tasks: list[list[int]] = []
    shared: dict[str, list[int]] = {}
    for i in indices:
        fam = theorems[i].family
        if fam in _SHARED:
            if fam not in shared:
                shared[fam] = []
                tasks.append(shared[fam])
            shared[fam].append(i)
        else:
            tasks.append([i])

    def cost(task: list[int]) -> float:
        return sum(_cost(theorems[i]) for i in task)

    return sorted(tasks, key=lambda task: (-cost(task), task[0]))  # stable: registry order


def _split(theorems: list[Theorem], task: list[int], parts: int) -> list[list[int]]:
    """Splits a task into at most `parts` non-empty tasks of about equal `_COST` (each theorem,
    heaviest first, to the least loaded part; each part in registry order), heaviest first."""
    loads = [0.0] * min(parts, len(task))
    groups: list[list[int]] = [[] for _ in loads]
    for i in sorted(task, key=lambda i: (-_cost(theorems[i]), i)):
        g = loads.index(min(loads))
        loads[g] += _cost(theorems[i])
        groups[g].append(i)
    order = sorted(range(len(groups)), key=lambda g: (-loads[g], min(groups[g])))
    return [sorted(groups[g]) for g in order]


def _results(theorems: list[Theorem], indices: list[int], jobs: int) -> Iterator[_Done]:
    """Yields the results in the order of `indices`, each as soon as it and all before it are
    done.

    With workers: a family in `_PREPARE` first runs its module's `prepare_chunks()` as separate
    tasks (first in line); once they are all done its theorems are queued at the front, split
    into at most `jobs` tasks (`_split`), each with all their data to `install`. At most `jobs`
    tasks are in flight, so the queue order holds."""
    if jobs <= 1 or len(indices) <= 1:
        for i in indices:
            yield _done(i, check(theorems[i]))
        return
    queue: list[tuple[Callable[..., Any], tuple[Any, ...], str]] = []
    # family -> (its tasks after the warm-up, the chunks' data so far, chunks left)
    waiting: dict[str, tuple[list[list[int]], list[Any], int]] = {}
    for task in _tasks(theorems, indices):
        fam = theorems[task[0]].family
        module = _PREPARE.get(fam)
        if module is None:
            queue.append((_check_indices, (task,), ""))
            continue
        chunks = importlib.import_module(module).prepare_chunks([theorems[i].name for i in task])
        if not chunks:
            queue.append((_check_indices, (task,), ""))
            continue
        waiting[fam] = (_split(theorems, task, jobs), [], len(chunks))
        queue[:0] = [(_prepare, (module, chunk), fam) for chunk in chunks]
    ctx = multiprocessing.get_context("spawn")
    ready: dict[int, _Done] = {}
    order = iter(indices)
    nxt = next(order, None)
    workers = min(jobs, len(queue))
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        running: dict[Future[Any], str] = {}
        while queue or running:
            while queue and len(running) < workers:
                fn, args, fam = queue.pop(0)
                running[pool.submit(fn, *args)] = fam if fn is _prepare else ""
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                fam = running.pop(fut)
                if fam:  # a warm-up chunk
                    groups, data, left = waiting[fam]
                    data.append(fut.result())
                    waiting[fam] = (groups, data, left - 1)
                    if left == 1:
                        installs = [(_PREPARE[fam], d) for d in data]
                        queue[:0] = [(_check_indices, (g, installs), "") for g in groups]
                    continue
                for done in fut.result():
                    ready[done.index] = done
            while nxt is not None and nxt in ready:
                yield ready.pop(nxt)
                nxt = next(order, None)


def _wrap(label: str, text: str) -> str:
    return textwrap.fill(
        text,
        width=100,
        initial_indent=f"    {label}: ",
        subsequent_indent=" " * 8,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _report(res: Result) -> str:
    th = res.theorem
    mark = "PASS" if res.ok else "FAIL"
    lines = [
        f"[{mark}] {th.family}/{th.name}: expected {th.expected}, got {res.status} "
        f"({res.seconds:.2f} s, rlimit {res.rlimit_used}/{th.rlimit})",
        _wrap("claim", th.claim),
        _wrap("hypotheses", th.hypotheses),
    ]
    for name, status, ok, witness in res.mutants:
        text = f"{name} -> {status} ({'as expected' if ok else 'NOT AS EXPECTED'})"
        if witness and status == "counterexample":
            text += f"; witness: {witness}"
        lines.append(_wrap("mutant", text))
    if res.witness:
        for i, chunk in enumerate(res.witness.splitlines()):
            lines.append(_wrap("witness" if i == 0 else "       ", chunk))
    if res.detail:
        lines.append(_wrap("detail", res.detail))
    return "\n".join(lines)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Checks the selected theorems, prints the report, returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m proofs", description=__doc__)
    parser.add_argument("--only", help="check only this family (e.g. lossless, latency)")
    parser.add_argument("--name", help="check only theorems whose name contains this")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument(
        "-j",
        "--jobs",
        type=_positive,
        default=os.cpu_count() or 1,
        help="worker processes (default: the number of CPUs; 1: no workers)",
    )
    args = parser.parse_args(argv)
    theorems = all_theorems()
    indices = [
        i
        for i, th in enumerate(theorems)
        if (not args.only or th.family == args.only) and (not args.name or args.name in th.name)
    ]
    if not indices:
        print("no theorem selected", file=sys.stderr)
        return 2
    start = time.perf_counter()
    results = []
    for res in _results(theorems, indices, args.jobs):
        results.append(res)
        if not args.json:
            print(res.report, flush=True)
    total = time.perf_counter() - start
    failed = [r for r in results if not r.ok]
    if args.json:
        print(
            json.dumps(
                {
                    "theorems": [
                        {
                            "name": r.name,
                            "claim": r.claim,
                            "hypotheses": r.hypotheses,
                            "expected": r.expected,
                            "result": r.status,
                            "ok": r.ok,
                            "seconds": r.seconds,
                            "witness": r.witness,
                        }
                        for r in results
                    ],
                    "passed": len(results) - len(failed),
                    "total": len(results),
                    "seconds": total,
                }
            )
        )
        return 1 if failed else 0
    print()
    header = f"{'theorem':<44} {'expected':<15} {'result':<15} {'ok':<4} {'seconds':>7}"
    print(header)
    print("-" * len(header))
    for res in results:
        print(
            f"{res.name:<44} {res.expected:<15} {res.status:<15} "
            f"{'yes' if res.ok else 'NO':<4} {res.seconds:7.2f}"
        )
    print(f"\n{len(results) - len(failed)}/{len(results)} as expected, total {total:.1f} s")
    return 1 if failed else 0
