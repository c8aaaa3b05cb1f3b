"""Command line: ``dsi generate "PROMPT" ...`` (see ``dsi generate --help``)."""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from typing import Any

from dsi_core.errors import DSIError


def _generate_args(g: argparse.ArgumentParser) -> None:
    g.add_argument(
        "prompt", help="the user message (a chat template is applied if the model has one)"
    )
    g.add_argument("--algorithm", choices=["dsi", "si", "nonsi"], default="dsi")
    g.add_argument("--lookahead", "-k", type=int, default=4, help="drafts per verification")
    g.add_argument(
        "--servers",
        "-S",
        type=int,
        default=2,
        help="target servers (SP degree); 2 suits a 2-core CPU, more for one device each",
    )
    g.add_argument(
        "--drafter",
        default="lookup",
        help="'lookup' (prompt n-gram), 'derived:int8' / 'derived:layers=N' (cheap copies of "
        "the target), or a path to a Hugging Face model with the target's vocabulary",
    )
    g.add_argument(
        "--target",
        default=None,
        help="path to a Hugging Face causal LM (default: SmolLM2-135M-Instruct)",
    )
    g.add_argument("--mode", choices=["greedy", "rejection", "coupled"], default="greedy")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--max-new-tokens", type=int, default=64)
    g.add_argument("--backend", choices=["threads", "simulated"], default="threads")
    g.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    g.add_argument(
        "--json", action="store_true", help="print one JSON object (tokens, text, stats)"
    )
    g.add_argument("--trace", action="store_true", help="include the event trace in --json output")
    g.add_argument("--sim-t", type=float, default=1.0, help="simulated target latency")
    g.add_argument("--sim-c", type=float, default=0.1, help="simulated drafter latency")
    g.add_argument("--timeline", default=None, help="also save the run's timeline PNG here")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dsi", description="Distributed Speculative Inference")
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    _generate_args(common)
    sub.add_parser("generate", parents=[common], help="generate text with DSI, SI or non-SI")
    tl = sub.add_parser(
        "timeline", parents=[common], help="generate, then draw the run's timeline as a PNG"
    )
    tl.add_argument("--out", default="timeline.png", help="PNG path (default timeline.png)")
    b = sub.add_parser("bench", help="DSI vs SI vs non-SI on SmolLM2, side by side")
    b.add_argument("--drafter", action="append", help="repeatable; default: lookup")
    b.add_argument("--lookahead", "-k", type=int, nargs="+", default=[1, 4])
    b.add_argument("--servers", "-S", type=int, nargs="+", default=[2, 4])
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--max-new-tokens", type=int, default=48)
    b.add_argument("--target", default=None, help="Hugging Face causal LM path (default SmolLM2)")
    b.add_argument(
        "--emulate",
        action="store_true",
        help="SYNTHETIC: sleep-emulated forwards (--t-ms, --c-ms) and a drafter accepted with "
        "probability --acceptance; replays each run through the simulator",
    )
    b.add_argument("--t-ms", type=float, default=30.0, help="emulated target forward (ms)")
    b.add_argument("--c-ms", type=float, default=3.0, help="emulated draft (ms)")
    b.add_argument("--acceptance", type=float, default=0.8)
    b.add_argument("--tokens", type=int, default=100, help="tokens per emulated run")
    sm = sub.add_parser("simulate", help="the paper's Figure 1 on the simulated backend")
    sm.add_argument("--cells", type=int, default=21, help="grid values per axis")
    sm.add_argument("--lookahead-max", type=int, default=20)
    sm.add_argument("--servers", type=int, default=7)
    sm.add_argument("--tokens", type=int, default=1000)
    sm.add_argument("--seeds", type=int, default=3)
    sm.add_argument("--jobs", type=int, default=1, help="worker processes")
    sm.add_argument("--out", default="figure1", help="writes OUT.csv and OUT.png")
    e = sub.add_parser("estimate", help="measure a target/drafter pair, predict DSI/SI/non-SI")
    e.add_argument("--target", default=None, help="Hugging Face causal LM path (default SmolLM2)")
    e.add_argument("--drafter", default="lookup", help="lookup | derived:... | PATH")
    e.add_argument("--tokens", type=int, default=32, help="greedy tokens per prompt")
    e.add_argument("--lookahead", "-k", type=int, nargs="+", default=[1, 2, 3, 4, 6, 8])
    e.add_argument("--max-servers", type=int, default=8)
    o = sub.add_parser("overhead", help="coordinator microseconds per committed token")
    o.add_argument("--tokens", type=int, default=2000)
    return p


def _load_target(path: str | None) -> Any:
    """A Hugging Face model from ``path``, or the default SmolLM2 target."""
    if path:
        from dsi_core.models.hf import HFModel

        return HFModel.from_pretrained(path)
    from dsi_core.models.smollm2 import load_smollm2

    return load_smollm2()


def cmd_bench(args: argparse.Namespace) -> int:
    from dsi_core.api import resolve_drafter
    from dsi_core.bench import format_bench, run_bench
    from dsi_core.errors import InvalidInputError

    if args.repeats < 1 or args.max_new_tokens < 1:
        raise InvalidInputError("--repeats and --max-new-tokens must be >= 1")
    if min(args.lookahead) < 1 or min(args.servers) < 1:
        raise InvalidInputError("lookaheads and servers must be >= 1")
    settings = [("si", k, 1) for k in args.lookahead] + [
        ("dsi", k, s) for k in args.lookahead for s in args.servers
    ]
    if args.emulate:
        from dsi_core.emulate import bench_emulated, format_emulated

        if not (args.t_ms > 0 and args.c_ms > 0 and 0 <= args.acceptance <= 1):
            raise InvalidInputError("need --t-ms > 0, --c-ms > 0 and 0 <= --acceptance <= 1")
        if args.tokens < 1:
            raise InvalidInputError("--tokens must be >= 1")
        t, c = args.t_ms / 1e3, args.c_ms / 1e3
        rows = bench_emulated(t, c, args.acceptance, settings, args.tokens, args.repeats)
        print(format_emulated(rows, t, c, args.acceptance, args.tokens))
        return 0
    target = _load_target(args.target)
    names = args.drafter or ["lookup"]
    drafters = {n: resolve_drafter(n, target) for n in names}
    rows, speedups = run_bench(
        target, drafters, settings, repeats=args.repeats, max_new_tokens=args.max_new_tokens
    )
    print(format_bench(rows, speedups, args.repeats))
    from dsi_core.bench import PROMPTS, replay_table
    from dsi_core.estimate import profile_pair

    profiles = {
        n: profile_pair(target, d, PROMPTS, n_tokens=args.max_new_tokens)
        for n, d in drafters.items()
    }
    print("\nreplay through the simulator (measured pair profile, one device per server):")
    print(replay_table(rows, profiles))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import numpy as np

    from dsi_core.errors import InvalidInputError
    from dsi_core.simulate import plot, run_grid, summary, write_csv

    for name in ("cells", "lookahead_max", "servers", "tokens", "seeds", "jobs"):
        if getattr(args, name) < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 1")
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
    )
    write_csv(cells, args.out + ".csv")
    plot(
        cells,
        args.out + ".png",
        f"simulated, S={args.servers}, {args.tokens} tokens, {args.seeds} seeds, "
        f"lookahead 1..{args.lookahead_max} (each algorithm at its best)",
    )
    print(summary(cells))
    print(f"wrote {args.out}.csv and {args.out}.png")
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from dsi_core.api import resolve_drafter
    from dsi_core.bench import PROMPTS, machine
    from dsi_core.errors import InvalidInputError
    from dsi_core.estimate import estimate_table, profile_pair

    if args.tokens < 2 or args.max_servers < 1 or min(args.lookahead) < 1:
        raise InvalidInputError("need --tokens >= 2, --max-servers >= 1, lookaheads >= 1")
    target = _load_target(args.target)
    drafter = resolve_drafter(args.drafter, target)
    dv = getattr(drafter, "vocab_size", None)
    if dv is not None and dv != target.vocab_size:
        from dsi_core.errors import VocabularyMismatchError

        raise VocabularyMismatchError(f"drafter vocabulary {dv} != target's {target.vocab_size}")
    prof = profile_pair(target, drafter, PROMPTS, n_tokens=args.tokens)
    print(f"machine: {machine()}; prompts: {', '.join(PROMPTS)}")
    print(estimate_table(prof, sorted(set(args.lookahead)), args.max_servers))
    return 0


def cmd_overhead(args: argparse.Namespace) -> int:
    from dsi_core.bench import coordinator_overhead

    for (mode, drafter), (us, acc) in coordinator_overhead(args.tokens).items():
        print(f"{mode:<10} drafter={drafter:<8} acceptance={acc:.2f}  {us:8.1f} us/token")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from dsi_core.api import generate, validate

    validate(
        algorithm=args.algorithm,
        lookahead=args.lookahead,
        servers=args.servers,
        mode=args.mode,
        temperature=args.temperature,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        backend=args.backend,
    )
    target: Any = _load_target(args.target) if args.target else None
    res = generate(
        args.prompt,
        target=target,
        drafter=args.drafter,
        algorithm=args.algorithm,
        lookahead=args.lookahead,
        servers=args.servers,
        mode=args.mode,
        temperature=args.temperature,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        backend=args.backend,
        chat=not args.no_chat,
        sim_target_latency=Fraction(args.sim_t).limit_denominator(10**6),
        sim_draft_latency=Fraction(args.sim_c).limit_denominator(10**6),
    )
    out = getattr(args, "out", None) or args.timeline
    if out:
        from dsi_core.timeline import plot_timeline

        plot_timeline(res, out)
        print(f"timeline saved to {out}", file=sys.stderr)
    if args.json:
        print(json.dumps(res.to_dict(trace=args.trace)))
    else:
        s = res.stats
        unit = "s" if args.backend == "threads" else " virtual time units (t = --sim-t)"
        print(res.text)
        print(
            f"\n[{args.algorithm} k={args.lookahead} S={args.servers} {args.mode}] "
            f"{len(res.tokens)} tokens in {s.wall_time:.2f}{unit}, "
            f"acceptance {s.acceptance_rate:.2f}, "
            f"target forwards {s.target_started} ({s.target_preempted} preempted), "
            f"drafts {s.drafts_started}",
            file=sys.stderr,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command in ("generate", "timeline"):
            return cmd_generate(args)
        if args.command == "bench":
            return cmd_bench(args)
        if args.command == "simulate":
            return cmd_simulate(args)
        if args.command == "estimate":
            return cmd_estimate(args)
        if args.command == "overhead":
            return cmd_overhead(args)
    except DSIError as exc:
        print(f"dsi: error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
