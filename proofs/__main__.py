"""Runner: `python -m proofs [--only FAMILY] [--name SUBSTRING]` checks the theorems.

Prints, per theorem, the claim, its hypotheses in words, the expected and actual outcome, the
seconds taken, the mutants' outcomes and the witness of every counterexample; then a summary
table. Exits 1 when any result differs from its expectation (UNKNOWN and rlimit exhaustion
included), 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time

from proofs import all_theorems
from proofs.theorem import Result, check


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
    args = parser.parse_args(argv)
    theorems = all_theorems()
    if args.only:
        theorems = [th for th in theorems if th.family == args.only]
    if args.name:
        theorems = [th for th in theorems if args.name in th.name]
    if not theorems:
        print("no theorem selected", file=sys.stderr)
        return 2
    start = time.perf_counter()
    results = []
    for th in theorems:
        res = check(th)
        results.append(res)
        if not args.json:
            print(_report(res), flush=True)
    total = time.perf_counter() - start
    failed = [r for r in results if not r.ok]
    if args.json:
        print(
            json.dumps(
                {
                    "theorems": [
                        {
                            "name": f"{r.theorem.family}/{r.theorem.name}",
                            "claim": r.theorem.claim,
                            "hypotheses": r.theorem.hypotheses,
                            "expected": r.theorem.expected,
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
        name = f"{res.theorem.family}/{res.theorem.name}"
        print(
            f"{name:<44} {res.theorem.expected:<15} {res.status:<15} "
            f"{'yes' if res.ok else 'NO':<4} {res.seconds:7.2f}"
        )
    print(f"\n{len(results) - len(failed)}/{len(results)} as expected, total {total:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
