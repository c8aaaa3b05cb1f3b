"""A small, self-contained mutant runner for the trusted core and the backends.

Why not mutmut: mutmut 3 installs, but it first runs the whole suite for its statistics and then
every generated mutant against every covering test; on this project's shared 2-core machine that
is hours. Here each mutant is a named, hand-written edit (the issue's list and a few more), each
runs only the fast test files that could see it, in a *copy* of the repository (the shared
checkout is never edited), with ``pytest -x`` and hypothesis shrinking off (``DSI_NO_SHRINK=1``).

    .venv/bin/python scripts/mutation.py            # every mutant, a table and the score
    .venv/bin/python scripts/mutation.py --list     # names only
    .venv/bin/python scripts/mutation.py NAME ...   # some of them

    # generated (unbiased) mutants: the classic operators applied by the ``ast`` module
    .venv/bin/python scripts/mutation.py --generated --file coordinator.py --sample 120 --seed 1
    .venv/bin/python scripts/mutation.py --generated --file sampling.py --all --list
    .venv/bin/python scripts/mutation.py --generated --ids ID ... --out results.json
    .venv/bin/python scripts/mutation.py --generated --file threads.py --all   # a transport

Every run first checks that its test files pass on the unmodified code in a copy
(``--skip-baseline`` skips that); otherwise a test that fails for a reason of its own would
count every mutant as killed.

A mutant is *killed* when the tests fail (exit status 1) within the time limit, *survives* when
they pass, and is a *timeout* (counted as killed: the mutant hangs a run) past ``--timeout``.
The score is killed / (killed + survived); docs/mutation.md records a run and argues the
survivors.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import re
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
    "tests/unit/test_coordinator_stats.py",  # added for the generated mutants (docs/mutation.md)
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
    "tests/unit/test_sampling_edges.py",  # added for the generated mutants (docs/mutation.md)
    "tests/property/test_residual_paths.py",
    "tests/unit/test_sampling.py",
    "tests/unit/test_device_greedy.py",  # the torch fast path of greedy_logits_token (added)
    "tests/unit/test_exact_lossless.py",
    "tests/unit/test_bad_inputs.py",
    "tests/unit/test_bad_inputs_table.py",  # low-precision tensor rows (added, held-out run)
]
BACKEND_TESTS = [
    "tests/unit/test_worker.py",  # added for the generated worker.py mutants (docs/mutation.md)
    "tests/unit/test_threads_skip.py",
    "tests/unit/test_threads_kv_choice.py",
    "tests/unit/test_threads_determinism.py",
    "tests/unit/test_bad_inputs.py",
]
# The transports (threads, processes) and the event loop they share: the backend tests plus the
# ones that run whole generations through them (tiny random HF models included, no `slow`).
TRANSPORT_TESTS = [
    "tests/unit/test_driver.py",  # added for the generated mutants of driver.py (docs/mutation.md)
    "tests/unit/test_threads_transport.py",  # added for those of threads.py
    *BACKEND_TESTS,
    "tests/unit/test_interrupt_keeps_tokens.py",
    "tests/integration/test_threads_deadline.py",
    "tests/integration/test_processes.py",
    "tests/integration/test_processes_workers.py",  # added for those of processes.py
    "tests/integration/test_hf_tiny.py",
    "tests/unit/test_bad_inputs_table.py",
]

# The simulated backend (virtual clock, forced orders, cancellation delays): the coordinator's
# tests drive it, and these check its timing against the latency model and its orders.
SIMULATED_TESTS = [
    "tests/unit/test_simulated_backend.py",  # added for the generated mutants (docs/mutation.md)
    "tests/unit/test_simulate.py",
    "tests/property/test_preemption_delay.py",
    "tests/property/test_latency_differential.py",
    "tests/property/test_rejection_latency.py",
    "tests/property/test_schedule_fuzz.py",
    *CORE_TESTS,
    "tests/unit/test_exact_lossless.py",
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
    for name in ("docs",):  # tests/unit/test_bad_inputs_table.py reads docs/reliability.md
        shutil.copytree(ROOT / name, dst / name, ignore=shutil.ignore_patterns("*.png", "*.csv"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dst / name)


def baseline(tests: tuple[str, ...], timeout: float) -> None:
    """Run ``tests`` on the unmodified code in a copy; exit if they do not pass there.

    A test that fails in the copy for a reason of its own (a file the copy lacks, a flaky
    timing) would count every mutant as killed; this check makes that an error instead.
    """
    path = "dsi_core/__init__.py"
    outcome, secs, last = run_text(path, (ROOT / path).read_text(), tests, timeout)
    print(f"baseline (unmodified code, {len(tests)} test files): {last} [{secs:.0f} s]", flush=True)
    if outcome != "SURVIVED":
        raise SystemExit(f"the tests fail on the unmodified code in a copy ({outcome}): {last}")


def run_mutant(m: Mutant, timeout: float) -> tuple[str, float, str]:
    """Apply ``m`` in a fresh copy, run its tests; returns (outcome, seconds, last line)."""
    text = (ROOT / m.path).read_text()
    if text.count(m.old) != 1:
        return "STALE (pattern not found once)", 0.0, ""
    return run_text(m.path, text.replace(m.old, m.new), m.tests, timeout)


def run_text(
    path: str, text: str, tests: tuple[str, ...], timeout: float
) -> tuple[str, float, str]:
    """Run ``tests`` in a fresh copy whose file ``path`` reads ``text``; (outcome, s, last line)."""
    with tempfile.TemporaryDirectory(prefix="dsi-mut-") as tmp:
        dst = Path(tmp)
        _copy_tree(dst)
        (dst / path).write_text(text)
        env = dict(os.environ, PYTHONPATH=str(dst), DSI_NO_SHRINK="1", PYTHONDONTWRITEBYTECODE="1")
        # a test still running after 3/4 of the timeout dumps every thread's stack to stderr,
        # so a hang is reported with where it hung, not only as a timeout
        dump = f"faulthandler_timeout={max(1, int(timeout * 0.75))}"
        cmd = [PY, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", dump]
        cmd += ["-m", "not slow", *tests]
        t0 = time.perf_counter()
        try:
            r = subprocess.run(
                cmd, cwd=dst, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            err = exc.stderr or b""
            err = err.decode(errors="replace") if isinstance(err, bytes) else err
            where = [ln.strip() for ln in err.splitlines() if ln.strip().startswith("File ")]
            return "killed (timeout)", time.perf_counter() - t0, " | ".join(where[:3])
        secs = time.perf_counter() - t0
        last = (r.stdout.strip().splitlines() or [""])[-1]
        if r.returncode == 0 and not re.search(r"\d+ passed", last):
            # status 0 without pytest's summary: something called os._exit(0) mid-run (a
            # mutated worker-exit path reaching the test process); the tests did not pass
            return "killed (exit 0 without a summary)", secs, last
        if r.returncode == 0:
            return "SURVIVED", secs, last
        if r.returncode == 1:
            return "killed", secs, last
        if r.returncode < 0:  # the test process died of a signal (an abort at exit, say): the
            return f"killed (crash: signal {-r.returncode})", secs, last  # run fails, as in CI
        return f"error (pytest exit {r.returncode})", secs, last


# ----------------------------------------------------------------------------- generated mutants
#
# ``--generated``: the classic operators applied mechanically (Python ``ast``) to every eligible
# node of the trusted core, so the score is over mutants nobody chose. Excluded, because no test
# could observe them or they are not code: docstrings and other string constants, everything
# under a ``raise`` statement (the exception type and its message), f-strings (messages and
# trace details), type annotations, ``__repr__``, ``__all__`` and module-level ``__doc__``.

GEN_FILES = {
    "coordinator.py": ("dsi_core/coordinator.py", tuple(CORE_TESTS)),
    "sampling.py": ("dsi_core/sampling.py", tuple(SAMPLING_TESTS)),
    "worker.py": ("dsi_core/backends/worker.py", tuple(BACKEND_TESTS)),
    "threads.py": ("dsi_core/backends/threads.py", tuple(TRANSPORT_TESTS)),
    "driver.py": ("dsi_core/backends/driver.py", tuple(TRANSPORT_TESTS)),
    "simulated.py": ("dsi_core/backends/simulated.py", tuple(SIMULATED_TESTS)),
    # the same tests, the processes backend's own first: a kill then costs seconds, not a
    # whole run of the list (pytest -x stops at the first failure; order changes no outcome)
    "processes.py": (
        "dsi_core/backends/processes.py",
        tuple(
            dict.fromkeys(
                [
                    "tests/integration/test_processes_workers.py",
                    "tests/integration/test_processes.py",
                    *TRANSPORT_TESTS,
                ]
            )
        ),
    ),
}
_CMP_FLIP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_SKIP_FUNCS = {"__repr__"}


@dataclass(frozen=True)
class GenMutant:
    id: str  # "<file>:<line>:<col>:<operator>[.k]", stable while the file is unchanged
    file: str  # key of GEN_FILES
    line: int
    col: int
    op: str
    old: str  # source snippet replaced
    new: str  # its replacement
    text: str  # the whole mutated file


def _is_docstring(parent: ast.AST, field: str, idx: int | None, node: ast.AST) -> bool:
    return (
        field == "body"
        and idx == 0
        and isinstance(parent, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _eligible(tree: ast.AST):
    """Yield (path, node) for every node outside the excluded regions, in source order."""

    def walk(node: ast.AST, path: tuple):
        yield path, node
        for field, value in ast.iter_fields(node):
            if field in ("annotation", "returns", "type_comment"):
                continue
            items = value if isinstance(value, list) else [value]
            for i, child in enumerate(items):
                if not isinstance(child, ast.AST):
                    continue
                idx = i if isinstance(value, list) else None
                if _is_docstring(node, field, idx, child):
                    continue
                if isinstance(child, ast.Raise | ast.JoinedStr):
                    continue
                if isinstance(child, ast.FunctionDef) and child.name in _SKIP_FUNCS:
                    continue
                if (
                    isinstance(child, ast.Assign)
                    and len(child.targets) == 1
                    and isinstance(child.targets[0], ast.Name)
                    and child.targets[0].id in ("__all__", "__doc__")
                ):
                    continue
                yield from walk(child, (*path, (field, idx)))

    yield from walk(tree, ())


def _get(tree: ast.AST, path: tuple) -> ast.AST:
    node = tree
    for field, idx in path:
        node = getattr(node, field) if idx is None else getattr(node, field)[idx]
    return node


def _put(tree: ast.AST, path: tuple, new: ast.AST) -> None:
    parent = _get(tree, path[:-1])
    field, idx = path[-1]
    if idx is None:
        setattr(parent, field, new)
    else:
        getattr(parent, field)[idx] = new


def _candidates(tree: ast.AST):
    """(path of the node to replace, operator name, replacement node builder) for every mutant.

    The builder takes the node (a deep copy) and returns its replacement.
    """
    for path, node in _eligible(tree):
        if isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                flip = _CMP_FLIP.get(type(op))
                if flip is None:
                    continue

                def build(n, k=k, flip=flip):
                    n.ops[k] = flip()
                    return n

                name = f"cmp_{type(op).__name__}_{flip.__name__}".lower()
                yield path, name + (f".{k}" if len(node.ops) > 1 else ""), build
        elif isinstance(node, ast.BinOp | ast.AugAssign) and isinstance(node.op, ast.Add | ast.Sub):
            flip = ast.Sub if isinstance(node.op, ast.Add) else ast.Add

            def build(n, flip=flip):
                n.op = flip()
                return n

            kind = "arith_" if isinstance(node, ast.BinOp) else "aug_"
            yield path, kind + ("add_sub" if flip is ast.Sub else "sub_add"), build
        elif isinstance(node, ast.BoolOp):
            flip = ast.Or if isinstance(node.op, ast.And) else ast.And

            def build(n, flip=flip):
                n.op = flip()
                return n

            yield path, "bool_" + ("and_or" if flip is ast.Or else "or_and"), build
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield path, "not_drop", lambda n: n.operand
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            yield path, "const_plus1", lambda n: ast.Constant(n.value + 1)
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            yield path, "bool_const", lambda n: ast.Constant(not n.value)
        elif isinstance(node, ast.Name) and node.id in ("min", "max"):
            other = "max" if node.id == "min" else "min"
            yield path, f"{node.id}_{other}", lambda n, o=other: ast.Name(o, ast.Load())
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            yield path, "del_call", lambda n: ast.Pass()
        elif (
            isinstance(node, ast.Return)
            and node.value is not None
            and not (isinstance(node.value, ast.Constant) and node.value.value is None)
        ):
            yield path, "return_none", lambda n: ast.Return(ast.Constant(None))


def _line_offsets(src: str) -> list[int]:
    """Byte offset of each line start in ``src`` encoded as UTF-8 (ast columns are bytes)."""
    offs, total = [0], 0
    for line in src.encode().splitlines(keepends=True):
        total += len(line)
        offs.append(total)
    return offs


def _same_code(a, b) -> bool:
    """Whether two code objects compile to the same instructions, constants and names."""
    if a.co_code != b.co_code or a.co_names != b.co_names or a.co_varnames != b.co_varnames:
        return False
    if len(a.co_consts) != len(b.co_consts):
        return False
    for x, y in zip(a.co_consts, b.co_consts, strict=True):
        if hasattr(x, "co_code") and hasattr(y, "co_code"):
            if not _same_code(x, y):
                return False
        elif type(x) is not type(y) or x != y:
            return False
    return True


def generate(file: str) -> tuple[list[GenMutant], list[str]]:
    """All mutants of ``file`` (a GEN_FILES key), and the ids skipped as bytecode-identical."""
    rel = GEN_FILES[file][0]
    src = (ROOT / rel).read_text()
    raw = src.encode()
    tree = ast.parse(src)
    offs = _line_offsets(src)
    base_code = compile(src, rel, "exec")
    out: list[GenMutant] = []
    same: list[str] = []
    seen: dict[str, int] = {}
    for path, op, build in _candidates(tree):
        node = _get(tree, path)
        new_node = build(copy.deepcopy(node))
        mtree = copy.deepcopy(tree)
        _put(mtree, path, new_node)
        a = offs[node.lineno - 1] + node.col_offset
        b = offs[node.end_lineno - 1] + node.end_col_offset
        old = raw[a:b].decode()
        if isinstance(node, ast.stmt) or isinstance(new_node, ast.Name | ast.Constant):
            new = ast.unparse(new_node)
        else:
            new = "(" + ast.unparse(new_node) + ")"
        text = (raw[:a] + new.encode() + raw[b:]).decode()
        # the splice must parse to exactly the mutated tree
        if ast.dump(ast.parse(text)) != ast.dump(ast.fix_missing_locations(mtree)):
            raise AssertionError(f"{file}:{node.lineno}: splice of {op} does not match its AST")
        base = f"{file}:{node.lineno}:{node.col_offset}:{op}"
        seen[base] = seen.get(base, 0) + 1
        mid = base if seen[base] == 1 else f"{base}#{seen[base]}"
        if _same_code(base_code, compile(text, rel, "exec")):
            same.append(mid)
            continue
        out.append(GenMutant(mid, file, node.lineno, node.col_offset, op, old, new, text))
    return out, same


# Generated mutants argued equivalent in docs/mutation.md: id -> (the original snippet, the reason
# in brief). The snippet guards against a stale id after the file changed.
EQUIVALENT: dict[str, tuple[str, str]] = {
    "simulated.py:53:35:const_plus1": (
        "-1",
        "range stop -2 adds i = -1, the last job, already seen: the loop returned if a target",
    ),
    "simulated.py:123:25:const_plus1": (
        "10_000_000",
        "the default step guard: no run in reach of a test takes 10**7 completions",
    ),
    "simulated.py:137:58:const_plus1": (
        "1",
        "check_order let only digits follow 'random:', so maxsplit 1 or 2 splits alike",
    ),
    "simulated.py:161:52:const_plus1": (
        "0",
        "every finished run started a target task, which raises the count to >= 1",
    ),
    "simulated.py:163:14:const_plus1": ("0", "seq only orders jobs: an offset orders them alike"),
    "simulated.py:179:27:const_plus1": ("1", "seq += 2 is still strictly increasing"),
    "simulated.py:210:85:const_plus1": ("1", "tie key 0 vs 2 orders drafts before targets alike"),
    "coordinator.py:148:24:const_plus1": ("0", "ids start at 2: still unique and positive"),
    "coordinator.py:150:31:const_plus1": ("1", "start() sets _verified_upto before any read"),
    "coordinator.py:153:24:bool_const": ("False", "every wait check follows a task start"),
    "coordinator.py:295:12:del_call": (
        "self._cancel_all(actions)",
        "at done, _drop_useless or _new_segment has already cancelled everything in flight",
    ),
    "coordinator.py:305:8:del_call": (
        "self._row_src.clear()",
        "_row_src[pos] is written with every _rows[pos] and read only where _rows[pos] exists",
    ),
    "coordinator.py:425:19:not_drop": (
        "not t.cancelled",
        "SI has one server, and nothing is due while its block runs: the guard is a shortcut",
    ),
    "coordinator.py:428:61:cmp_gt_gte": (
        "last > self._verified_upto",
        "at last == _verified_upto, lo = max(_verified_upto + 1, n) > last returns None anyway",
    ),
    "coordinator.py:438:25:const_plus1": ("1", "ids step by 2: still unique and positive"),
    "coordinator.py:453:8:del_call": ("a.byteswap()", "runs on big-endian machines only"),
    "driver.py:159:12:return_none": (
        "return False",
        "both callers only test the result for truth",
    ),
    "driver.py:190:20:del_call": (
        "cancelled_at.pop(a.id, None)",
        "read only when that task acks, and a task cancelled while waiting never started",
    ),
    "driver.py:235:24:del_call": (
        "free.remove(w)",
        "start_target skips dead servers in free, and a dead server is never appended again",
    ),
    "driver.py:245:20:del_call": (
        "task_server.pop(jid, None)",
        "a dead worker acks nothing later, and line 262 skips dead servers anyway",
    ),
    "driver.py:246:20:del_call": (
        "cancelled_at.pop(jid, None)",
        "read only when that job acks, and a dead worker's jobs never do",
    ),
    "driver.py:249:20:del_call": (
        "pending.popleft()",
        "unreachable: a task waits only when no live server is free, and a death frees none",
    ),
    "driver.py:262:19:bool_and_or": (
        "srv is not None and srv not in dead",
        "a dead server's tasks left task_server when it died (line 245): srv is None then",
    ),
    "processes.py:124:41:const_plus1": (
        "1",
        "the flag's first value is never read: submit() sets it to -1 before every job",
    ),
    "processes.py:284:11:cmp_isnot_is": (
        "old is not None",
        "_restart follows a death: old exists and is dead, and _stop would only reap it",
    ),
    "processes.py:285:12:del_call": (
        "_stop([old], 0.5)",
        "old is dead; the new worker's start reaps finished children, dropping old closes its pipe",
    ),
    "processes.py:286:75:const_plus1": (
        "0",
        "unreachable: only the drafter is restarted (dead target servers are retired)",
    ),
    "processes.py:330:38:const_plus1": (
        "1",
        "the flag's value before a run's first job is never read: submit() sets -1 first",
    ),
    "sampling.py:275:14:const_plus1": ("5", "buf has 5 entries: buf[3:6] is buf[3:5]"),
    "sampling.py:61:54:const_plus1": ("64", "the Gumbel cache's size: memory and speed only"),
    "sampling.py:118:42:const_plus1": ("1", "a torch dtype's name has one dot: same last part"),
    "sampling.py:277:22:const_plus1": (
        "1",
        "at T = 2 the fast path also answers gaps in (0.5e-9, 1e-9]: float64 still separates them",
    ),
    "worker.py:31:12:const_plus1": ("2", "STOP_ALL -3: still no job id (> 0) and not idle (-1)"),
    "sampling.py:279:42:cmp_gt_gte": (
        "v1 - v2 > LOGIT_MARGIN",
        "at a gap of exactly 1e-9 the fast token is still exact",
    ),
}


def _select(args: argparse.Namespace) -> list[GenMutant]:
    files = args.file or list(GEN_FILES)
    chosen: list[GenMutant] = []
    for f in files:
        if f not in GEN_FILES:
            raise SystemExit(f"--file must be one of {sorted(GEN_FILES)}, got {f!r}")
        ms, same = generate(f)
        if same:
            print(f"{f}: {len(same)} mutants skipped, bytecode identical: {', '.join(same)}")
        if args.ids:
            ms = [m for m in ms if m.id in args.ids]
        elif not args.all:
            rng = random.Random(f"{args.seed}:{f}")
            order = list(range(len(ms)))
            rng.shuffle(order)  # a prefix of one order: a larger sample contains a smaller one
            keep = set(order[: args.sample])
            ms = [m for k, m in enumerate(ms) if k in keep]
        chosen += ms
    return chosen


def _write_json(path: Path, meta: dict, results: list[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    os.replace(tmp, path)


def _score(results: list[dict]) -> str:
    killed = sum(r["outcome"].startswith("killed") for r in results)
    survived = [r for r in results if r["outcome"] == "SURVIVED"]
    equiv = [r for r in survived if r["id"] in EQUIVALENT]
    total = killed + len(survived)
    lines = [f"raw score: {killed}/{total} killed" + (f" = {killed / total:.1%}" if total else "")]
    if equiv:
        ne = total - len(equiv)
        lines.append(
            f"argued equivalent: {len(equiv)}; score over non-equivalent mutants: "
            f"{killed}/{ne}" + (f" = {killed / ne:.1%}" if ne else "")
        )
    return "\n".join(lines)


def main_generated(args: argparse.Namespace) -> int:
    """``--generated``: run mechanically generated mutants; results go to ``--out`` as they come."""
    chosen = _select(args)
    if args.list:
        for m in chosen:
            old = " ".join(m.old.split())
            print(f"{m.id:<44} {old[:50]} -> {m.new[:50]}")
        print(f"{len(chosen)} mutants")
        return 0
    out = Path(args.out)
    results: list[dict] = []
    done: dict[str, dict] = {}
    if args.resume and out.exists():
        done = {r["id"]: r for r in json.loads(out.read_text())["results"]}
    meta = {
        "argv": sys.argv[1:],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "timeout_s": args.timeout,
    }
    print(f"{len(chosen)} mutants; results in {out}", flush=True)
    if not args.skip_baseline:
        for tests in dict.fromkeys(GEN_FILES[m.file][1] for m in chosen):
            baseline(tests, args.timeout)
    for m in chosen:
        prev = done.get(m.id)
        if prev is not None and prev["old"] == m.old and prev["new"] == m.new:
            results.append(prev)
            continue
        rel, tests = GEN_FILES[m.file]
        outcome, secs, last = run_text(rel, m.text, tests, args.timeout)
        r = {
            "id": m.id,
            "file": m.file,
            "line": m.line,
            "col": m.col,
            "op": m.op,
            "old": m.old,
            "new": m.new,
            "outcome": outcome,
            "secs": round(secs, 1),
            "last": last,
        }
        results.append(r)
        _write_json(out, meta, results)
        old = " ".join(m.old.split())
        print(f"{m.id:<44} {outcome:<17} {secs:6.1f} s  {old[:40]} -> {m.new[:40]}", flush=True)
    _write_json(out, meta, results)
    ops: dict[str, list[int]] = {}
    for r in results:
        k = ops.setdefault(r["op"].split(".")[0], [0, 0])
        k[0] += r["outcome"].startswith("killed")
        k[1] += r["outcome"] == "SURVIVED"
    print("\noperator              killed survived")
    for op, (k, s) in sorted(ops.items()):
        print(f"{op:<22} {k:6d} {s:8d}")
    survivors = [r for r in results if r["outcome"] == "SURVIVED"]
    if survivors:
        print("\nsurvivors:")
        for r in survivors:
            eq = EQUIVALENT.get(r["id"])
            if eq is not None and eq[0] != r["old"]:
                note = "  (STALE equivalence entry: snippet changed)"
            else:
                note = f"  [equivalent: {eq[1]}]" if eq else ""
            print(f"  {r['id']:<44} {' '.join(r['old'].split())[:50]} -> {r['new'][:50]}{note}")
    print("\n" + _score(results))
    errors = [r for r in results if r["outcome"].startswith(("error", "STALE"))]
    return 1 if errors or any(r["id"] not in EQUIVALENT for r in survivors) else 0


def main(argv: list[str] | None = None) -> int:
    """Runs the selected mutants and prints a table; exit 1 if any survived."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="mutant names (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per mutant")
    ap.add_argument(
        "--skip-baseline",
        action="store_true",
        help="do not first check that the selected tests pass on the unmodified code",
    )
    g = ap.add_argument_group("generated mutants (--generated)")
    g.add_argument("--generated", action="store_true", help="AST-generated mutants, not named")
    g.add_argument("--file", action="append", help=f"one of {sorted(GEN_FILES)} (repeatable)")
    g.add_argument("--all", action="store_true", help="every generated mutant of the files")
    g.add_argument("--sample", type=int, default=20, help="random sample size per file")
    g.add_argument("--seed", type=int, default=0, help="seed of the sample")
    g.add_argument("--ids", nargs="+", help="these generated mutant ids only")
    g.add_argument(
        "--out",
        default=str(Path(tempfile.gettempdir()) / "dsi-mutation-generated.json"),
        help="JSON results file, rewritten after each mutant",
    )
    g.add_argument("--resume", action="store_true", help="reuse results already in --out")
    args = ap.parse_args(argv)
    if args.generated:
        return main_generated(args)
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:<36} {m.path:<32} {m.note}")
        return 0
    if not args.skip_baseline:  # one run over every selected test file
        baseline(tuple(dict.fromkeys(f for m in chosen for f in m.tests)), args.timeout)
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
