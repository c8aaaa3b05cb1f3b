"""Command line: ``dsi {generate,bench,estimate,simulate,overhead,prove} ...`` (``--help`` each).

A thin face: argparse types check every value (exit 2 with one line on a user error), one
:class:`~dsi_core.config.Config` is built from them, and each subcommand calls the library.
Every subcommand takes ``--json``. User errors (any :class:`~dsi_core.errors.DSIError`) print
one line on stderr and exit 2; Ctrl-C exits 130 with one line. Output paths are checked
before any model loads, and generated text is printed before any picture is saved.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from dsi_core.config import (
    ALGORITHMS,
    BACKENDS,
    MAX_NEW_TOKENS_LIMIT,
    MAX_SERVERS,
    MODES,
    Config,
)
from dsi_core.errors import DSIError, InvalidInputError

# ----------------------------------------------------------------------------- argparse types


def _int_in(lo: int, hi: int | None = None):  # noqa: ANN202 - argparse type factory
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {v}")
        return v

    parse.__name__ = "int"
    return parse


def _number(text: str, ok: Callable[[float], bool], wanted: str) -> float:
    """``text`` as a float satisfying ``ok``, else an argparse error saying what is wanted."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not ok(v):
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
    return v


def _positive_float(text: str) -> float:
    return _number(text, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def _nonneg_float(text: str) -> float:
    return _number(text, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


def _probability(text: str) -> float:
    return _number(text, lambda v: 0 <= v <= 1, "in [0, 1]")


def _writable_path(text: str) -> str:
    """An output file path whose directory exists and is writable (checked before running)."""
    d = os.path.dirname(os.path.abspath(text)) or "."
    if not os.path.isdir(d):
        raise argparse.ArgumentTypeError(f"directory {d!r} does not exist")
    if not os.access(d, os.W_OK):
        raise argparse.ArgumentTypeError(f"directory {d!r} is not writable")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory")
    return text


def _drafter_spec(text: str) -> str:
    from dsi_core.models.resolve import check_drafter_spec

    try:
        check_drafter_spec(text)
    except DSIError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _target_path(text: str) -> str:
    """A model directory or a cached hub id (checked without loading; offline-safe)."""
    from dsi_core.models.resolve import check_model_source

    try:
        return check_model_source(text, "target")
    except DSIError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


K = _int_in(1)
SERVERS = _int_in(1, MAX_SERVERS)
TOKENS = _int_in(1, MAX_NEW_TOKENS_LIMIT)
SEED = _int_in(0, (1 << 64) - 1)

# ----------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``dsi generate: error: ...``, exit 2), no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _generate_args(g: argparse.ArgumentParser) -> None:
    g.add_argument(
        "prompt", help="the user message (a chat template is applied if the model has one)"
    )
    g.add_argument(
        "--algorithm",
        choices=ALGORITHMS,
        default="dsi",
        help="dsi: speculation parallelism; si: speculative inference; nonsi: plain decoding",
    )
    g.add_argument("--lookahead", "-k", type=K, default=4, help="drafts per verification (k)")
    g.add_argument(
        "--servers",
        "-S",
        type=SERVERS,
        default=2,
        help="target servers (SP degree); 2 suits a 2-core CPU, more for one device each",
    )
    g.add_argument(
        "--drafter",
        type=_drafter_spec,
        default="lookup",
        help="'lookup' (prompt n-gram), 'derived:int8|bf16|fp16|layers=N' (cheap copies of the "
        "target), or a path to a Hugging Face model with the target's vocabulary",
    )
    g.add_argument(
        "--target",
        type=_target_path,
        default=None,
        help="path to a Hugging Face causal LM; None: SmolLM2-135M-Instruct",
    )
    g.add_argument(
        "--mode",
        choices=MODES,
        default="greedy",
        help="greedy: argmax; rejection: Leviathan/Chen sampling; coupled: shared Gumbel noise",
    )
    g.add_argument(
        "--temperature",
        type=_positive_float,
        default=1.0,
        help="applied to both models' rows; ignored in greedy mode",
    )
    g.add_argument("--seed", type=SEED, default=0, help="key of the counter-based randomness")
    g.add_argument("--max-new-tokens", type=TOKENS, default=64, help="tokens to generate (N)")
    g.add_argument(
        "--backend",
        choices=BACKENDS,
        default="threads",
        help="who runs the forwards: real workers, or a virtual clock (simulated)",
    )
    _placement_args(g)
    g.add_argument(
        "--timeout", type=_positive_float, default=None, help="deadline of the whole run (s)"
    )
    g.add_argument(
        "--task-timeout",
        type=_positive_float,
        default=None,
        help="deadline of each draft and target task (s); a hung model ends the run",
    )
    g.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    _add_json(g)
    g.add_argument("--trace", action="store_true", help="include the event trace in --json output")
    g.add_argument(
        "--sim-t", type=_positive_float, default=1.0, help="simulated target latency (t)"
    )
    g.add_argument(
        "--sim-c", type=_positive_float, default=0.1, help="simulated drafter latency (c)"
    )
    g.add_argument(
        "--timeline",
        type=_writable_path,
        default=None,
        help="also save the run's timeline as a PNG at this path (after printing the text)",
    )


def _devices(text: str) -> list[str]:
    devs = [d.strip() for d in text.split(",") if d.strip()]
    if not devs:
        raise argparse.ArgumentTypeError("give at least one device, e.g. cuda:0,cuda:1")
    for d in devs:
        if d != "cpu" and not d.startswith("cuda") and not d.startswith("mps"):
            raise argparse.ArgumentTypeError(f"unknown device {d!r} (cpu, cuda, cuda:N)")
    return devs


def _placement_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ray-address",
        default=None,
        help="ray backend: the cluster to join (None: $RAY_ADDRESS, else a local Ray)",
    )
    p.add_argument(
        "--num-gpus",
        type=_nonneg_float,
        default=0.0,
        help="ray backend: GPUs per server actor (fractional packs several on one GPU)",
    )
    p.add_argument(
        "--num-cpus", type=_nonneg_float, default=0.0, help="ray backend: CPUs per server actor"
    )
    p.add_argument(
        "--devices",
        type=_devices,
        default=None,
        help="processes backend: one device per target server, comma-separated (e.g. "
        "cuda:0,cuda:0,cuda:1 packs two servers on one GPU), or one for all; None: the model's",
    )
    p.add_argument(
        "--threads-per-server",
        type=_int_in(1, 256),
        default=None,
        help="processes backend: torch intra-op threads per worker process (None: 1)",
    )


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = _Parser(prog="dsi", description="Distributed Speculative Inference", formatter_class=fmt)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    g = sub.add_parser("generate", help="generate text with DSI, SI or non-SI", formatter_class=fmt)
    _generate_args(g)
    b = sub.add_parser("bench", help="DSI vs SI vs non-SI, side by side", formatter_class=fmt)
    b.add_argument(
        "--drafter", type=_drafter_spec, action="append", help="repeatable; None: lookup"
    )
    b.add_argument("--lookahead", "-k", type=K, nargs="+", default=[1, 4], help="lookaheads")
    b.add_argument(
        "--backend",
        choices=BACKENDS,
        default="threads",
        help="backend of SI and DSI: threads, processes or ray (non-SI always runs in-process "
        "with every thread)",
    )
    _placement_args(b)
    b.add_argument("--servers", "-S", type=SERVERS, nargs="+", default=[2, 4], help="SP degrees")
    b.add_argument("--repeats", type=_int_in(1), default=3, help="repetitions (medians)")
    b.add_argument("--max-new-tokens", type=TOKENS, default=48, help="tokens per prompt")
    b.add_argument(
        "--target",
        type=_target_path,
        default=None,
        help="Hugging Face causal LM path; None: SmolLM2-135M-Instruct",
    )
    b.add_argument(
        "--emulate",
        action="store_true",
        help="SYNTHETIC: sleep-emulated forwards (--t-ms, --c-ms) and a drafter accepted with "
        "probability --acceptance; replays each run through the simulator",
    )
    b.add_argument("--t-ms", type=_positive_float, default=30.0, help="emulated target forward")
    b.add_argument("--c-ms", type=_positive_float, default=3.0, help="emulated draft (ms)")
    b.add_argument("--acceptance", type=_probability, default=0.8, help="emulated acceptance")
    b.add_argument("--tokens", type=TOKENS, default=100, help="tokens per emulated run")
    _add_json(b)
    sm = sub.add_parser(
        "simulate", help="the paper's Figure 1 on the simulated backend", formatter_class=fmt
    )
    sm.add_argument("--cells", type=_int_in(2), default=21, help="grid values per axis")
    sm.add_argument("--lookahead-max", type=K, default=20, help="lookaheads 1..this")
    sm.add_argument("--servers", type=SERVERS, default=7, help="SP degree")
    sm.add_argument("--tokens", type=TOKENS, default=1000, help="tokens per pattern")
    sm.add_argument("--seeds", type=_int_in(1), default=3, help="patterns per cell")
    sm.add_argument("--jobs", type=_int_in(1, 64), default=1, help="worker processes")
    sm.add_argument("--out", default="figure1", help="writes OUT.csv and OUT.png")
    _add_json(sm)
    e = sub.add_parser(
        "estimate",
        help="measure a target/drafter pair, predict DSI/SI/non-SI",
        formatter_class=fmt,
    )
    e.add_argument(
        "--target",
        type=_target_path,
        default=None,
        help="Hugging Face causal LM path; None: SmolLM2-135M-Instruct",
    )
    e.add_argument("--drafter", type=_drafter_spec, default="lookup", help="lookup | derived:..")
    e.add_argument("--tokens", type=_int_in(2), default=32, help="greedy tokens per prompt")
    e.add_argument(
        "--lookahead", "-k", type=K, nargs="+", default=[1, 2, 3, 4, 6, 8], help="lookaheads"
    )
    e.add_argument("--max-servers", type=SERVERS, default=8, help="largest SP degree tried")
    _add_json(e)
    o = sub.add_parser(
        "overhead", help="coordinator microseconds per committed token", formatter_class=fmt
    )
    o.add_argument("--tokens", type=_int_in(10), default=2000, help="tokens per run")
    _add_json(o)
    ck = sub.add_parser(
        "check",
        help="check a run's trace (dsi generate --json --trace) against the invariants",
        formatter_class=fmt,
    )
    ck.add_argument("trace", help="JSON file: a Result.to_dict() with 'trace', or a bare list")
    _add_json(ck)
    pr = sub.add_parser(
        "prove", help="check the z3 theorems (same as python -m proofs)", formatter_class=fmt
    )
    pr.add_argument("--only", default=None, help="one family (lossless, latency, ...)")
    pr.add_argument("--name", default=None, help="theorems whose name contains this")
    pr.add_argument(
        "-j",
        "--jobs",
        type=_int_in(1),
        default=os.cpu_count() or 1,
        help="worker processes (1: no workers; the outcomes do not depend on it)",
    )
    _add_json(pr)
    cf = sub.add_parser(
        "conform",
        help="certify a speculative sampler: exact law and statistical tests (docs/conformance.md)",
        formatter_class=fmt,
    )
    cf.add_argument(
        "function",
        help="MODULE:FUNCTION: a rule (p_rows, q_rows, drafts, uniform), a sampler (p_rows, "
        "q_rows, drafts) or transformers' _speculative_sampling signature",
    )
    cf.add_argument(
        "--vocab",
        type=_int_in(2, 8),
        nargs="+",
        default=[2, 3, 4, 5],
        help="vocabulary sizes of the exact cases",
    )
    cf.add_argument(
        "--max-drafts",
        type=_int_in(1, 3),
        default=3,
        help="longest draft chain of the exact cases",
    )
    cf.add_argument(
        "--resolution",
        type=_int_in(1),
        default=None,
        help="grid size M of the uniforms (e.g. 16777216 = float32 rand); default: "
        "the lcm of the thresholds per case, where u < p/q is exactly lossless",
    )
    cf.add_argument(
        "--samples",
        type=_int_in(100),
        default=20000,
        help="samples per case of the statistical check",
    )
    cf.add_argument(
        "--alpha",
        type=_probability,
        default=1e-3,
        help="total false-failure rate of the statistical check",
    )
    cf.add_argument("--no-statistical", action="store_true", help="skip the statistical check")
    cf.add_argument("--seed", type=SEED, default=0, help="seed of the statistical check")
    _add_json(cf)
    return p


# ----------------------------------------------------------------------------- commands


def _load_target(path: str | None) -> Any:
    from dsi_core.models.resolve import resolve_target

    return resolve_target(path)


def _emit(args: argparse.Namespace, obj: Any, text: str) -> None:
    print(json.dumps(obj) if args.json else text)


def cmd_bench(args: argparse.Namespace) -> int:
    from dsi_core.models.resolve import resolve_drafter

    settings = [("si", k, 1) for k in args.lookahead] + [
        ("dsi", k, s) for k in args.lookahead for s in args.servers
    ]
    if args.emulate:
        from dsi_core.experiments.emulate import bench_emulated, format_emulated

        t, c = args.t_ms / 1e3, args.c_ms / 1e3
        rows = bench_emulated(
            t, c, args.acceptance, settings, args.tokens, args.repeats, progress=not args.json
        )
        data = {
            "synthetic": True,
            "t_s": t,
            "c_s": c,
            "acceptance": args.acceptance,
            "tokens": args.tokens,
            "rows": [r.as_dict() for r in rows],
        }
        _emit(args, data, format_emulated(rows, t, c, args.acceptance, args.tokens))
        return 0
    from dsi_core.experiments.bench import (
        PROMPTS,
        format_bench,
        machine,
        replay_rows,
        replay_table,
        run_bench,
    )
    from dsi_core.experiments.estimate import profile_pair

    if args.backend == "simulated":
        raise InvalidInputError("bench measures wall time: use --backend threads or processes")
    target = _load_target(args.target)
    names = args.drafter or ["lookup"]
    drafters = {n: resolve_drafter(n, target) for n in names}
    rows, speedups = run_bench(
        target,
        drafters,
        settings,
        repeats=args.repeats,
        max_new_tokens=args.max_new_tokens,
        progress=not args.json,
        backend=args.backend,
        devices=args.devices,
        threads_per_server=args.threads_per_server,
        ray_options={
            "address": args.ray_address,
            "num_gpus": args.num_gpus,
            "num_cpus": args.num_cpus,
        },
    )
    profiles = {
        n: profile_pair(target, d, PROMPTS, n_tokens=args.max_new_tokens)
        for n, d in drafters.items()
    }
    text = (
        format_bench(rows, speedups, args.repeats)
        + "\n\nreplay through the simulator (measured pair profile, one device per server):\n"
        + replay_table(rows, profiles)
    )
    data = {
        "machine": machine(),
        "repeats": args.repeats,
        "rows": [r.as_dict() for r in rows],
        "speedups": {"/".join(map(str, k)): v for k, v in speedups.items()},
        "replay": replay_rows(rows, profiles),
    }
    _emit(args, data, text)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import numpy as np

    from dsi_core.experiments.simulate import plot, run_grid, summary, summary_dict, write_csv

    _writable_path(args.out + ".csv")
    c_values = [round(float(x), 4) for x in np.linspace(0.01, 1.0, args.cells)]
    a_values = [round(float(x), 4) for x in np.linspace(0.01, 0.99, args.cells)]
    cells = run_grid(
        c_values,
        a_values,
        range(1, args.lookahead_max + 1),
        args.servers,
        args.tokens,
        range(args.seeds),
        args.jobs,
        progress=not args.json,
    )
    write_csv(cells, args.out + ".csv")
    plot(
        cells,
        args.out + ".png",
        f"simulated, S={args.servers}, {args.tokens} tokens, {args.seeds} seeds, "
        f"lookahead 1..{args.lookahead_max} (each algorithm at its best)",
    )
    data = {"cells": len(cells), "summary": summary_dict(cells), "csv": args.out + ".csv"}
    _emit(args, data, summary(cells) + f"\nwrote {args.out}.csv and {args.out}.png")
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from dsi_core.errors import VocabularyMismatchError
    from dsi_core.experiments.bench import PROMPTS, machine
    from dsi_core.experiments.estimate import estimate_data, format_estimate, profile_pair
    from dsi_core.models.resolve import resolve_drafter

    target = _load_target(args.target)
    drafter = resolve_drafter(args.drafter, target)
    dv = getattr(drafter, "vocab_size", None)
    if dv is not None and dv != target.vocab_size:
        raise VocabularyMismatchError(f"drafter vocabulary {dv} != target's {target.vocab_size}")
    prof = profile_pair(target, drafter, PROMPTS, n_tokens=args.tokens)
    data = estimate_data(prof, sorted(set(args.lookahead)), args.max_servers)
    data["machine"] = machine()
    text = f"machine: {machine()}; prompts: {', '.join(PROMPTS)}\n" + format_estimate(data)
    _emit(args, data, text)
    return 0


def cmd_overhead(args: argparse.Namespace) -> int:
    from dsi_core.experiments.bench import coordinator_overhead

    out = coordinator_overhead(args.tokens)
    lines = [
        f"{mode:<10} drafter={drafter:<8} acceptance={acc:.2f}  {us:8.1f} us/token"
        for (mode, drafter), (us, acc) in out.items()
    ]
    data = {
        "tokens": args.tokens,
        "rows": [
            {"mode": m, "drafter": d, "us_per_token": us, "acceptance": acc}
            for (m, d), (us, acc) in out.items()
        ],
    }
    _emit(args, data, "\n".join(lines))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0: the trace passes; 1: violations (listed); 2: not a readable trace."""
    from dsi_core.checker import check_trace, load_trace

    try:
        found = check_trace(load_trace(args.trace))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{args.trace}: not a readable trace ({exc})") from None
    lines = [str(v) for v in found] or ["ok: no violation"]
    _emit(args, {"ok": not found, "violations": lines if found else []}, "\n".join(lines))
    return 1 if found else 0


def cmd_prove(args: argparse.Namespace) -> int:
    try:
        import proofs.__main__ as runner
    except ImportError as exc:
        raise InvalidInputError(
            f"the proofs need z3: pip install 'dsi-core[proofs]' ({exc})"
        ) from None
    argv = []
    if args.only:
        argv += ["--only", args.only]
    if args.name:
        argv += ["--name", args.name]
    argv += ["-j", str(args.jobs)]
    if args.json:
        argv.append("--json")
    return runner.main(argv)


def cmd_conform(args: argparse.Namespace) -> int:
    from dsi_core.testing.conformance import conform, format_report

    rep = conform(
        args.function,
        vocabs=args.vocab,
        max_drafts=args.max_drafts,
        resolution=args.resolution,
        samples=args.samples,
        alpha=args.alpha,
        statistical=not args.no_statistical,
        seed=args.seed,
    )
    _emit(args, rep, format_report(rep))
    return 0 if rep["passed"] else 1


def cmd_generate(args: argparse.Namespace) -> int:
    from dsi_core.api import generate

    cfg = Config(
        algorithm=args.algorithm,
        lookahead=args.lookahead,
        servers=args.servers,
        max_new_tokens=args.max_new_tokens,
        mode=args.mode,
        temperature=args.temperature,
        seed=args.seed,
        backend=args.backend,
    )
    res = generate(
        args.prompt,
        target=args.target,
        drafter=args.drafter,
        chat=not args.no_chat,
        devices=args.devices,
        threads_per_server=args.threads_per_server,
        timeout_s=args.timeout,
        task_timeout_s=args.task_timeout,
        ray_address=args.ray_address,
        num_gpus=args.num_gpus,
        num_cpus=args.num_cpus,
        sim_target_latency=Fraction(args.sim_t).limit_denominator(10**6),
        sim_draft_latency=Fraction(args.sim_c).limit_denominator(10**6),
        config=cfg,
    )
    if args.json:
        print(json.dumps(res.to_dict(trace=args.trace)), flush=True)
    else:
        s = res.stats
        unit = "s" if args.backend != "simulated" else " virtual time units (t = --sim-t)"
        print(res.text, flush=True)
        print(
            f"\n[{args.algorithm} k={args.lookahead} S={cfg.effective_servers} {args.mode}] "
            f"{len(res.tokens)} tokens in {s.wall_time:.2f}{unit}, "
            f"acceptance {s.acceptance_rate:.2f}, "
            f"target forwards {s.target_started} ({s.target_preempted} preempted), "
            f"drafts {s.drafts_started}",
            file=sys.stderr,
        )
    if args.timeline:  # after printing: a failing plot never loses the generated text
        from dsi_core.experiments.timeline import plot_timeline

        try:
            plot_timeline(res, args.timeline)
        except OSError as exc:
            raise InvalidInputError(f"cannot save the timeline to {args.timeline}: {exc}") from None
        print(f"timeline saved to {args.timeline}", file=sys.stderr)
    return 0


COMMANDS = {
    "generate": cmd_generate,
    "bench": cmd_bench,
    "simulate": cmd_simulate,
    "estimate": cmd_estimate,
    "overhead": cmd_overhead,
    "check": cmd_check,
    "prove": cmd_prove,
    "conform": cmd_conform,
}


def main(argv: list[str] | None = None) -> int:
    """Runs one subcommand; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, one line printed)
        return int(exc.code or 0)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return COMMANDS[args.command](args)
    except (DSIError, argparse.ArgumentTypeError) as exc:  # a value checked after parsing
        print(f"dsi: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        partial = getattr(exc, "partial_tokens", None)
        if partial:  # nothing generated is lost: what was committed before Ctrl-C is printed
            if getattr(args, "json", False):
                out = {"tokens": partial, "text": getattr(exc, "partial_text", None)}
                print(json.dumps({**out, "interrupted": True}), flush=True)
            else:
                text = getattr(exc, "partial_text", None)
                print(text if text is not None else " ".join(map(str, partial)), flush=True)
        print("dsi: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dsi ... | head`: the reader left; not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        return 0


def _one_line_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    """Warnings (e.g. a repaired model cache) as one line on stderr, like errors."""
    print(f"dsi: warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
