"""`python -m proofs [--only FAMILY] [--name SUBSTRING] [--json] [-j JOBS]` checks the theorems.

Prints, per theorem, the claim, its hypotheses in words, the expected and actual outcome, the
seconds taken, the mutants' outcomes and the witness of every counterexample; then a summary
table. Exits 1 when any result differs from its expectation (UNKNOWN and rlimit exhaustion
included), 0 otherwise.

With `-j JOBS` (default: the number of CPUs) the theorems are checked by that many worker
processes (spawned: each builds its own z3 context); the report keeps the registry's order and
is printed as soon as every earlier theorem is done. The outcome of each theorem does not depend
on `-j`: every solver call runs under the same deterministic `rlimit` on a fresh solver. The
theorems of a family in `_SHARED` run in one worker, in order, because they share a cache (the
simulator runs of `expect_servers`); heavy tasks are handed out first (`_COST`, a scheduling hint
only). `-j 1` checks everything in this process.
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

# Families whose theorems share an in-process cache: checked in one worker, in registry order.
_SHARED = frozenset({"expect_servers"})
# Families whose module warms that cache up in parallel: `prepare_chunks(names)` -> chunks,
# `prepare(chunk)` -> data (in any worker), `install(data)` (in the family's worker).
_PREPARE = {"expect_servers": "proofs.expectation_servers"}
# Rough seconds per task on one idle core (scheduling hint only: longest first); default 1.
_COST = {
    "expect_servers": 10.0,  # after its warm-up chunks (which go first)
    "latency/dsi1_le_si_any_lookahead_N12": 4.0,
    "code_rule/decide_rejection_v4": 3.0,
    "expectation/expect_dsi_k_le_best_si_N12": 3.0,
    "rejection/rejection_dsi12_le_si_any_k_N6": 3.0,
    "code_rule/decide_rejection_v3": 2.0,
    "lossless/rejection_law_n5": 2.0,
    "latency/dsi_le_nonsi_N32": 2.0,
    "latency/dsi4_le_si4_N16": 2.0,
    "latency/dsi3_le_si3_N16": 2.0,
}


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
        th = theorems[task[0]]
        if th.family in _SHARED:
            return _COST.get(th.family, float(len(task)))
        return _COST.get(f"{th.family}/{th.name}", 1.0)

    return sorted(tasks, key=lambda task: (-cost(task), task[0]))  # stable: registry order


def _results(theorems: list[Theorem], indices: list[int], jobs: int) -> Iterator[_Done]:
    """Yields the results in the order of `indices`, each as soon as it and all before it are
    done.

    With workers: a family in `_PREPARE` first runs its module's `prepare_chunks()` as separate
    tasks (first in line); its own task is queued at the front once they are all done, with
    their data to `install`. At most `jobs` tasks are in flight, so the queue order holds."""
    if jobs <= 1 or len(indices) <= 1:
        for i in indices:
            yield _done(i, check(theorems[i]))
        return
    queue: list[tuple[Callable[..., Any], tuple[Any, ...], str]] = []
    waiting: dict[str, tuple[list[int], list[Any], int]] = {}  # family -> (task, data, left)
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
        waiting[fam] = (task, [], len(chunks))
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
                    task, data, left = waiting[fam]
                    data.append(fut.result())
                    waiting[fam] = (task, data, left - 1)
                    if left == 1:
                        installs = [(_PREPARE[fam], d) for d in data]
                        queue.insert(0, (_check_indices, (task, installs), ""))
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


def main(argv: list[str] | None = None) -> int:
    """Checks the selected theorems, prints the report, returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m proofs", description=__doc__)
    parser.add_argument("--only", help="check only this family (e.g. lossless, latency)")
    parser.add_argument("--name", help="check only theorems whose name contains this")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
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
