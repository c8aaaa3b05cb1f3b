"""The code's rule, not a copy: `dsi_core/sampling.py` executed on symbolic rows, checked by z3.

`proofs/lossless.py` proves a z3 *transcription* of the rejection rule; a bug in the code that
the transcription does not share survives it. Here the real functions run: `DecisionRule.decide`
(greedy and rejection, with a draft and its row `q`, with a one-hot drafter `q = None`, and
without a draft), `DecisionRule.draft_token`, `residual`, `inverse_cdf`, `argmax` and
`check_row` are called on Python lists of `Sym`, a z3 real with Python's arithmetic and
comparison operators. Every comparison the code makes asks a path oracle which way to go; the
oracle records the branch and a depth-first search re-runs the function until every branch that
is feasible under the hypotheses (z3, exact real arithmetic) has been taken. A path ends in a
return value (z3 terms and Python constants) or in one of dsi_core's typed errors.

Checked per feasible path, by the standard `check()` of `proofs/theorem.py` (one conjunct per
path): `hypotheses AND path condition -> code output == spec output`, where the spec is the rule
of docs/design.md written here independently in z3 (lowest index of a maximum; accept iff
`u_a < p(x)/q(x)`; else the smallest `j` with `u_r * R < r_0 + .. + r_j`, `r = max(0, p - q)`,
`R = sum r`; a draft with `q(x) = 0` is a `DrafterError`; plain sampling is the same inverse CDF
on `p`), and every `residual()` call made inside `decide` equals the spec residual entrywise.
The hypotheses admit `p_i = 0`, `q_i = 0`, `p_i = q_i`, ties and `u = 0`; the `reach_*`
theorems show that these edge cases are reached (by a counterexample to "no path reaches it").

The float64 numpy path of the same functions has its own code (`np.maximum`, `np.cumsum`,
`np.argmax`). For every path, a dyadic witness (`p_i, q_i` multiples of `2**-10`, uniforms of
`2**-12`, and where possible every uniform at least `2**-12` away from each threshold it is
compared with) is run through the numpy path, which must give the spec's output there (the
helper theorems add witnesses on each branch boundary, `check_row` also one grid step from it:
the numpy path is tested at these points, not proved). On that
grid float64 is exact for these operations: sums and differences of the rows are exact, and a
threshold `c/R` (grid values, `R` the normaliser: 1 or less for `p`, `q` and the residual) that
differs from a uniform `k/2**12` differs from it by at least `2**-22 / R`, far above the
rounding of one division, while an equal one is computed exactly; so even a witness without
margin (a uniform on a threshold, a tie) is decided by numpy as in the reals. (The argument
only rules out false alarms: the float64 output is compared with the exact spec either way.)

The coupled mode (`argmax(log p + G)`) is checked with `sampling._log` replaced by a stand-in
(`_log_stand_in`: `log 0 = -inf`, other logarithms free reals, since z3 has no `log`) and the
Gumbel vector of position 0 as free reals: which row, which noise, the argmax, ties and zeros
are the code's; `np.log` itself is not checked. Not covered: vocabularies of 5 or more
tokens, float rows off the grid, `to_probs` / `temper`, compacted (`Decided`) rows and the keyed
noise itself. proofs/README.md, section "The
code's rule, checked symbolically", has the numbers.
"""

from __future__ import annotations
import __future__

import contextlib
import inspect
import math
import textwrap
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from typing import Any

import numpy as np
import z3

from dsi_core import sampling
from dsi_core.errors import DrafterError, InvalidDistributionError, InvalidInputError
from dsi_core.sampling import DecisionRule, ExactScalar, Stream
from proofs.theorem import Mutant, Problem, Theorem

__all__ = [
    "MUTANTS",
    "THEOREMS",
    "Sym",
    "build",
    "coverage",
    "enumerate_paths",
    "explore",
    "reach_problem",
    "scenario",
    "witnesses",
]

FAMILY = "code_rule"
P_GRID = 2**10  # witness rows: multiples of 2**-10
U_GRID = 2**12  # witness uniforms: multiples of 2**-12, and the margin
VOCABS = (2, 3, 4)
SOLVER_RLIMIT = 20_000_000

# ------------------------------------------------------------------ symbolic values


def _term(x: Any) -> Any:
    """An exact z3 real for a Sym or a finite number; NotImplemented for anything else."""
    if isinstance(x, Sym):
        return x.e
    if isinstance(x, bool):
        return NotImplemented
    if isinstance(x, int | Fraction | float | np.integer | np.floating):
        return _numeral(Fraction(x))  # exact (a float is a dyadic rational)
    return NotImplemented


@cache
def _numeral(f: Fraction) -> z3.ArithRef:
    return z3.RealVal(f"{f.numerator}/{f.denominator}")


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


class Sym:
    """A z3 real term with Python's operators; comparisons branch through the path oracle."""

    __slots__ = ("e",)
    __hash__ = None  # type: ignore[assignment]  # == is symbolic

    def __init__(self, e: z3.ArithRef) -> None:
        self.e = e

    def _bin(self, other: Any, f: Callable[[Any, Any], Any]) -> Any:
        t = _term(other)
        return NotImplemented if t is NotImplemented else Sym(f(self.e, t))

    def __add__(self, o: Any) -> Any:
        return self._bin(o, lambda a, b: a + b)

    def __radd__(self, o: Any) -> Any:
        return self._bin(o, lambda a, b: b + a)

    def __sub__(self, o: Any) -> Any:
        return self._bin(o, lambda a, b: a - b)

    def __rsub__(self, o: Any) -> Any:
        return self._bin(o, lambda a, b: b - a)

    def __mul__(self, o: Any) -> Any:
        return self._bin(o, lambda a, b: a * b)

    def __rmul__(self, o: Any) -> Any:
        return self._bin(o, lambda a, b: b * a)

    def __truediv__(self, o: Any) -> Any:
        t = _term(o)
        if t is not NotImplemented and SymBool("==", t, z3.RealVal(0)):
            raise ZeroDivisionError("symbolic division by zero")  # as Fraction and int do
        return self._bin(o, lambda a, b: a / b)

    def __rtruediv__(self, o: Any) -> Any:
        if _term(o) is not NotImplemented and SymBool("==", self.e, z3.RealVal(0)):
            raise ZeroDivisionError("symbolic division by zero")
        return self._bin(o, lambda a, b: b / a)

    def __neg__(self) -> Sym:
        return Sym(-self.e)

    def __pos__(self) -> Sym:
        return self

    def __abs__(self) -> Sym:
        return Sym(z3.If(self.e >= 0, self.e, -self.e))

    def _cmp(self, other: Any, op: str) -> Any:
        if isinstance(other, float) and not math.isfinite(other):
            if other != other:  # NaN: every comparison is False but !=
                return op == "!="
            # a Sym is a finite real: below +inf, above -inf
            return _OPS[op](0.0, other)
        t = _term(other)
        return NotImplemented if t is NotImplemented else SymBool(op, self.e, t)

    def __lt__(self, o: Any) -> Any:
        return self._cmp(o, "<")

    def __le__(self, o: Any) -> Any:
        return self._cmp(o, "<=")

    def __gt__(self, o: Any) -> Any:
        return self._cmp(o, ">")

    def __ge__(self, o: Any) -> Any:
        return self._cmp(o, ">=")

    def __eq__(self, o: Any) -> Any:  # type: ignore[override]
        return self._cmp(o, "==")

    def __ne__(self, o: Any) -> Any:  # type: ignore[override]
        return self._cmp(o, "!=")

    def __bool__(self) -> bool:
        # Python's truthiness of a number is `x != 0`: a branch point like any comparison.
        # (Without this, `if x:` / `x and ...` / `not x` on a Sym would silently be True on
        # every path: an object without __bool__ or __len__ is truthy, and no branch recorded.)
        return bool(SymBool("!=", self.e, _numeral(Fraction(0))))

    def __float__(self) -> float:
        raise TypeError("a symbolic real has no float value")

    def __repr__(self) -> str:
        return f"Sym({self.e})"


ExactScalar.register(Sym)  # check_row: an exact scalar, summed and compared with 1 exactly


class SymBool:
    """The outcome of comparing Syms; `bool()` of it is a branch point."""

    __slots__ = ("op", "lhs", "rhs", "atom")

    def __init__(self, op: str, lhs: z3.ArithRef, rhs: z3.ArithRef) -> None:
        self.op, self.lhs, self.rhs = op, lhs, rhs
        self.atom = _OPS[op](lhs, rhs)

    def __bool__(self) -> bool:
        if _ORACLE is None:
            raise TypeError("a symbolic comparison outside a path exploration")
        return _ORACLE.branch(self)

    # `(a < b) == (c < d)` compares two bools in Python: branch on each. (The default would
    # compare the objects' identities: silently False, no branch.) Arithmetic, `&`, `|`, `~`
    # and int() on a SymBool are not defined: a TypeError, never a silent value.
    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, o: Any) -> Any:  # type: ignore[override]
        return bool(self) == o if isinstance(o, bool | SymBool) else NotImplemented

    def __ne__(self, o: Any) -> Any:  # type: ignore[override]
        return bool(self) != o if isinstance(o, bool | SymBool) else NotImplemented


# ------------------------------------------------------------------ path exploration


class UnknownError(RuntimeError):
    """z3 answered unknown: the check fails rather than guess."""


def _sat(formulas: Sequence[z3.BoolRef]) -> z3.ModelRef | None:
    """A model of the conjunction, or None if it is unsatisfiable (nlsat: complete for reals)."""
    solver = z3.Tactic("qfnra-nlsat").solver()
    solver.set("rlimit", SOLVER_RLIMIT)
    solver.add(*formulas)
    res = solver.check()
    if res == z3.unknown:
        raise UnknownError(solver.reason_unknown())
    return solver.model() if res == z3.sat else None


def _true_in(model: z3.ModelRef, formula: z3.BoolRef) -> bool:
    return z3.is_true(model.eval(formula, model_completion=True))


@dataclass
class Step:
    """One comparison the code made: its atom, the side taken, and whether it was a branch."""

    test: SymBool
    taken: bool
    branch: bool  # both sides feasible (then the side is in the path condition)
    uniforms: tuple[str, ...] | None = None  # the uniforms it mentions (filled when needed)


@dataclass
class Path:
    """One feasible path: its branch decisions, path condition, outcome and a model of it."""

    decisions: tuple[bool, ...]
    pc: list[z3.BoolRef]
    steps: list[Step]
    outcome: Any  # ("return", value) or ("raise", error class)
    model: z3.ModelRef
    calls: list[tuple[Any, Any]] = field(default_factory=list)  # residual() (arguments, result)


_CALL_LOG: list | None = None  # (arguments, result) of each residual() call of the current run


def _spy(fn: Callable) -> Callable:
    """`fn`, recording each call's arguments and result in `_CALL_LOG`."""

    def spied(*args: Any) -> Any:
        value = fn(*args)
        if _CALL_LOG is not None:
            _CALL_LOG.append((args, value))
        return value

    spied.__wrapped__ = fn  # type: ignore[attr-defined]
    return spied


class _Oracle:
    """Answers the code's comparisons: a prescribed prefix, then True first; prunes by z3."""

    def __init__(self, prescription: tuple[bool, ...], hyps: list, memo: dict, model: Any):
        self.pre = prescription
        self.hyps = hyps
        self.memo = memo
        self.model = model  # satisfies hyps AND pc so far
        self.decisions: list[bool] = []
        self.pc: list[z3.BoolRef] = []
        self.pc_key: tuple[tuple[int, bool], ...] = ()
        self.steps: list[Step] = []
        self.new_branches: list[int] = []

    def branch(self, test: SymBool) -> bool:
        # z3 terms are hash-consed: equal atoms have equal ids while alive, and the memo keeps
        # every atom it has seen alive (so an id is never reused for another term)
        atom_id = test.atom.get_id()
        key = (self.pc_key, atom_id)  # the memo is shared by every run with these hypotheses
        sides = self.memo.get(key)
        if sides is None:  # models of (hyps, pc, atom) and of (hyps, pc, not atom), or None
            simple = z3.simplify(test.atom)
            base = [*self.hyps, *self.pc]
            if z3.is_true(simple):
                sides = (self.model, None, test.atom)
            elif z3.is_false(simple):
                sides = (None, self.model, test.atom)
            elif _true_in(self.model, test.atom):
                sides = (self.model, _sat([*base, z3.Not(test.atom)]), test.atom)
            else:
                sides = (_sat([*base, test.atom]), self.model, test.atom)
            self.memo[key] = sides
        d = len(self.decisions)
        both = sides[0] is not None and sides[1] is not None
        if both:
            if d < len(self.pre):
                taken = self.pre[d]
            else:
                taken = True
                self.new_branches.append(d)
            self.pc.append(test.atom if taken else z3.Not(test.atom))
            self.pc_key = (*self.pc_key, (atom_id, taken))
        else:
            taken = sides[0] is not None
        self.model = sides[0] if taken else sides[1]
        self.decisions.append(taken)
        self.steps.append(Step(test, taken, both))
        return taken


_ORACLE: _Oracle | None = None
# how a path may end besides returning: dsi_core's typed errors, and a division by zero (which
# the code must never reach: an outcome, so that a mutant that reaches it is a counterexample)
_ERRORS = (DrafterError, InvalidDistributionError, InvalidInputError, ZeroDivisionError)


def explore(fn: Callable[[], Any], hyps: list[z3.BoolRef], memo: dict | None = None) -> list[Path]:
    """Every feasible path of `fn()` under `hyps` (depth first, re-running `fn` per path).

    Raises ValueError if the hypotheses are unsatisfiable, UnknownError if z3 cannot decide.
    """
    global _ORACLE, _CALL_LOG
    memo = {} if memo is None else memo
    if "root" not in memo:
        memo["root"] = _sat(hyps)
    root = memo["root"]
    if root is None:
        raise ValueError("the hypotheses are unsatisfiable")
    paths: list[Path] = []
    stack: list[tuple[bool, ...]] = [()]
    while stack:
        prescription = stack.pop()
        oracle = _Oracle(prescription, hyps, memo, root)
        _ORACLE, _CALL_LOG = oracle, []
        calls = _CALL_LOG
        try:
            outcome: Any = ("return", fn())
        except _ERRORS as exc:
            outcome = ("raise", type(exc))
        finally:
            _ORACLE, _CALL_LOG = None, None
        paths.append(
            Path(tuple(oracle.decisions), oracle.pc, oracle.steps, outcome, oracle.model, calls)
        )
        for d in reversed(oracle.new_branches):
            stack.append((*oracle.decisions[:d], False))
    return paths


# ------------------------------------------------------------------ the spec (docs/design.md)

ERR = {
    None: 0,
    DrafterError: 1,
    InvalidDistributionError: 2,
    InvalidInputError: 3,
    ZeroDivisionError: 4,
}
NONE = -1  # `accepted` when there was no draft


def _r(x: int) -> z3.ArithRef:
    return z3.RealVal(x)


def spec_argmax(row: Sequence[z3.ArithRef]) -> z3.ArithRef:
    """The lowest index of a maximum."""
    out: z3.ArithRef = _r(len(row) - 1)
    for j in reversed(range(len(row) - 1)):
        first_max = [row[j] > row[i] for i in range(j)]
        first_max += [row[j] >= row[i] for i in range(j + 1, len(row))]
        out = z3.If(z3.And(*first_max), _r(j), out)
    return out


def spec_inverse_cdf(w: Sequence[z3.ArithRef], u: z3.ArithRef) -> z3.ArithRef:
    """The smallest j with u * R < w_0 + .. + w_j, R = sum w (the last index if none)."""
    total = z3.Sum(*w)
    out: z3.ArithRef = _r(len(w) - 1)
    for j in reversed(range(len(w))):
        out = z3.If(u * total < z3.Sum(*w[: j + 1]), _r(j), out)
    return out


def spec_residual(p: Sequence[z3.ArithRef], q: Sequence[z3.ArithRef]) -> list[z3.ArithRef]:
    """max(0, p - q) entrywise."""
    return [z3.If(a - b > 0, a - b, _r(0)) for a, b in zip(p, q, strict=True)]


def _onehot(n: int, x: int) -> list[z3.ArithRef]:
    return [_r(1 if i == x else 0) for i in range(n)]


def spec_rejection(p: list, q: list | None, x: int, u_accept: Any, u_res: Any) -> list:
    """[error, token, accepted] of the rejection rule for a draft x sampled from q."""
    qv = _onehot(len(p), x) if q is None else q
    accept = u_accept * qv[x] < p[x]  # u < p(x)/q(x), given q(x) > 0
    token = z3.If(accept, _r(x), spec_inverse_cdf(spec_residual(p, qv), u_res))
    return [
        z3.If(qv[x] > 0, _r(ERR[None]), _r(ERR[DrafterError])),
        token,
        z3.If(accept, _r(1), _r(0)),
    ]


def spec_check_row(row: list) -> list:
    """[error]: InvalidDistributionError unless the row is non-empty, >= 0 and sums to 1."""
    valid = z3.And(*[v >= 0 for v in row], z3.Sum(*row) == 1) if row else z3.BoolVal(False)
    return [z3.If(valid, _r(ERR[None]), _r(ERR[InvalidDistributionError]))]


# ------------------------------------------------------------------ scenarios: calls and specs


@dataclass(frozen=True)
class Case:
    """One call of a real function, on symbolic or float64 rows, and its spec."""

    label: str
    call: Callable[[dict[str, Any], bool], Any]  # (values by name, numpy?) -> the code's result
    spec: Callable[[dict[str, z3.ArithRef]], list[z3.ArithRef]]  # [error code, outputs..]
    encode: Callable[[Any], list]  # the code's result as the outputs of the spec's list
    draft: int | None = None  # decide: the draft token (None: no draft)
    with_q: bool = False  # decide: whether the drafter's row q is passed (else q = None)


@dataclass(frozen=True)
class Scenario:
    name: str
    n: int
    variables: dict[str, z3.ArithRef]
    hyps: list[z3.BoolRef]
    cases: list[Case]
    boundary: bool  # float64 witnesses also on each branch's boundary (ties, p = q, u = p/q)
    # float64 witnesses also one grid step from each branch's boundary, on the path's side,
    # with these constraints if they can hold there (None: no such witnesses)
    near: tuple[z3.BoolRef, ...] | None = None


def _val(x: Any) -> z3.ArithRef:
    if x is None:
        return _r(NONE)
    if isinstance(x, bool | np.bool_):
        return _r(int(x))
    t = _term(x)
    if t is NotImplemented:
        raise TypeError(f"cannot encode {x!r}")
    return t


def _enc_token_acc(value: Any) -> list:
    tok, acc = value
    if type(tok) is not int:
        raise TypeError(f"token {tok!r} is not an int")
    return [_val(tok), _val(acc)]


def _enc_token(value: Any) -> list:
    if type(value) is not int:
        raise TypeError(f"token {value!r} is not an int")
    return [_val(value)]


def _enc_vector(value: Any) -> list:
    return [_val(v) for v in value]


def _enc_none(value: Any) -> list:
    if value is not None:
        raise TypeError(f"check_row returned {value!r}")
    return []


class _Noise:
    """`uniform(pos, stream)` is the scenario's variable `u_<stream>`; no Gumbel noise."""

    def __init__(self, values: dict[str, Any], numpy: bool) -> None:
        self.values = {k: float(v) if numpy else v for k, v in values.items() if k[:2] == "u_"}

    def uniform(self, pos: int, stream: Stream) -> Any:
        return self.values[f"u_{stream.name.lower()}"]

    def gumbel(self, pos: int, size: int) -> Any:
        raise AssertionError("the coupled mode is not covered")


def _row(values: dict[str, Any], name: str, n: int, numpy: bool) -> Any:
    row = [values[f"{name}{i}"] for i in range(n)]
    return np.array([float(v) for v in row], dtype=np.float64) if numpy else row


def _vars(n: int, rows: str, uniforms: Sequence[str] = ()) -> dict[str, z3.ArithRef]:
    names = [f"{r}{i}" for r in rows for i in range(n)] + list(uniforms)
    return {k: z3.Real(f"{k}@{n}") for k in names}  # @n: one name per vocabulary size


def _prob_hyps(v: dict[str, z3.ArithRef], n: int, rows: str, strict: bool) -> list:
    hyps = []
    for r in rows:
        entries = [v[f"{r}{i}"] for i in range(n)]
        hyps += [(e > 0) if strict else (e >= 0) for e in entries]
        hyps.append(z3.Sum(*entries) == 1)
    return hyps + [z3.And(0 <= e, e < 1) for k, e in v.items() if k[:2] == "u_"]


def _decide_case(mode: str, n: int, draft: int | None, with_q: bool) -> Case:
    def call(values: dict[str, Any], numpy: bool) -> Any:
        rule = DecisionRule(mode, _Noise(values, numpy))
        q = _row(values, "q", n, numpy) if with_q else None
        return rule.decide(0, _row(values, "p", n, numpy), draft, q)

    def spec(v: dict[str, z3.ArithRef]) -> list:
        p = [v[f"p{i}"] for i in range(n)]
        q = [v[f"q{i}"] for i in range(n)] if with_q else None
        if mode == "greedy":
            tok = spec_argmax(p)
            acc = _r(NONE) if draft is None else z3.If(tok == draft, _r(1), _r(0))
            return [_r(ERR[None]), tok, acc]
        if draft is None:
            return [_r(ERR[None]), spec_inverse_cdf(p, v["u_plain"]), _r(NONE)]
        return spec_rejection(p, q, draft, v["u_accept"], v["u_residual"])

    label = f"decide({mode}, draft={draft}, q={'q' if with_q else 'None'})"
    return Case(label, call, spec, _enc_token_acc, draft, with_q)


def _call_case(label: str, fn: Callable, rows: str, n: int, spec: Callable, enc: Callable):
    """A Case for `fn(*rows)` (each a row of n entries; a uniform `u_plain` after them)."""

    def call(values: dict[str, Any], numpy: bool) -> Any:
        args = [_row(values, r, n, numpy) for r in rows]
        if "u_plain" in values:
            args.append(float(values["u_plain"]) if numpy else values["u_plain"])
        return fn(*args)

    return Case(label, call, spec, enc)


def _residual_case(n: int, x: int, with_q: bool) -> Case:
    def call(values: dict[str, Any], numpy: bool) -> Any:
        q = _row(values, "q", n, numpy) if with_q else None
        return sampling.residual(_row(values, "p", n, numpy), q, x)

    def spec(v: dict[str, z3.ArithRef]) -> list:
        p = [v[f"p{i}"] for i in range(n)]
        q = [v[f"q{i}"] for i in range(n)] if with_q else _onehot(n, x)
        return [_r(ERR[None]), *spec_residual(p, q)]

    return Case(f"residual(p, {'q' if with_q else 'None'}, {x})", call, spec, _enc_vector)


def _draft_case(mode: str, n: int) -> Case:
    def call(values: dict[str, Any], numpy: bool) -> Any:
        return DecisionRule(mode, _Noise(values, numpy)).draft_token(0, _row(values, "q", n, numpy))

    def spec(v: dict[str, z3.ArithRef]) -> list:
        q = [v[f"q{i}"] for i in range(n)]
        tok = spec_argmax(q) if mode == "greedy" else spec_inverse_cdf(q, v["u_draft"])
        return [_r(ERR[None]), tok]

    return Case(f"draft_token({mode})", call, spec, _enc_token)


class _NegInf:
    """`np.log(0)` on a symbolic row: below every real, absorbing under addition."""

    def __add__(self, other: Any) -> _NegInf:
        return self

    __radd__ = __add__

    def __lt__(self, other: Any) -> bool:
        return not isinstance(other, _NegInf)

    def __le__(self, other: Any) -> bool:
        return True

    def __gt__(self, other: Any) -> bool:
        return False

    def __ge__(self, other: Any) -> bool:
        return isinstance(other, _NegInf)

    def __repr__(self) -> str:
        return "-inf"


NEG_INF = _NegInf()


class _CoupledNoise(_Noise):
    """`gumbel(0, n)` is the scenario's vector `g`. Any other key has no vector here: it
    raises InvalidInputError, an outcome the spec never gives, so code that draws its draft or
    its token with another position's noise fails the check (the target's token and the draft
    must use the same vector, keyed by the position)."""

    def __init__(self, values: dict[str, Any], numpy: bool, n: int) -> None:
        super().__init__(values, numpy)
        g = [values[f"g{i}"] for i in range(n)]
        self.g = np.array([float(x) for x in g]) if numpy else np.array(g, dtype=object)

    def gumbel(self, pos: int, size: int) -> Any:
        if pos != 0 or size != len(self.g):
            raise InvalidInputError(f"gumbel({pos}, {size}): not the vector of position 0")
        return self.g.copy()


@contextlib.contextmanager
def _log_stand_in(values: dict[str, Any], rows: dict[int, str], numpy: bool) -> Iterator[None]:
    """`sampling._log` replaced for one call: on the row object registered as `lp` (`lq`) it
    returns the scenario's `lp_i` (`lq_i`), or `-inf` where the entry is 0 (a branch of the
    path); z3 has no `log`, so the logarithms are free reals and only `log 0 = -inf` is used.
    The check therefore covers what the code does *around* `np.log` (which row, which noise,
    which argmax, ties, zeros), not `np.log` itself."""
    saved = sampling._log

    def stand_in(row: Any) -> Any:
        name = rows.get(id(row))
        if name is None:
            raise AssertionError("_log() of a row that is neither p nor q")
        out = []
        for i, x in enumerate(row):
            if x == 0:
                out.append(-math.inf if numpy else NEG_INF)
            else:
                out.append(float(values[f"{name}{i}"]) if numpy else values[f"{name}{i}"])
        return np.array(out, dtype=np.float64 if numpy else object)

    sampling._log = stand_in
    try:
        yield
    finally:
        sampling._log = saved


def spec_coupled(row: Sequence[z3.ArithRef], logs: Sequence[z3.ArithRef], g: Sequence) -> Any:
    """The lowest index of a maximum of `log row_i + g_i` over the support (`row_i > 0`)."""
    n = len(row)
    v = [a + b for a, b in zip(logs, g, strict=True)]
    out: z3.ArithRef = _r(n - 1)
    for j in reversed(range(n)):
        first_max = [z3.Or(row[i] == 0, v[j] > v[i]) for i in range(j)]
        first_max += [z3.Or(row[i] == 0, v[j] >= v[i]) for i in range(j + 1, n)]
        out = z3.If(z3.And(row[j] > 0, *first_max), _r(j), out)
    return out


def _coupled_case(n: int, draft: int | None, with_q: bool, drafting: bool = False) -> Case:
    def call(values: dict[str, Any], numpy: bool) -> Any:
        rule = DecisionRule("coupled", _CoupledNoise(values, numpy, n))
        p, q = _row(values, "p", n, numpy), _row(values, "q", n, numpy)
        with _log_stand_in(values, {id(p): "lp", id(q): "lq"}, numpy):
            if drafting:
                return rule.draft_token(0, q)
            return rule.decide(0, p, draft, q if with_q else None)

    def spec(v: dict[str, z3.ArithRef]) -> list:
        g = [v[f"g{i}"] for i in range(n)]
        name = "q" if drafting else "p"
        row = [v[f"{name}{i}"] for i in range(n)]
        tok = spec_coupled(row, [v[f"l{name}{i}"] for i in range(n)], g)
        if drafting:
            return [_r(ERR[None]), tok]
        acc = _r(NONE) if draft is None else z3.If(tok == draft, _r(1), _r(0))
        return [_r(ERR[None]), tok, acc]

    if drafting:
        return Case("draft_token(coupled)", call, spec, _enc_token)
    label = f"decide(coupled, draft={draft}, q={'q' if with_q else 'None'})"
    return Case(label, call, spec, _enc_token_acc, draft, with_q)


SCENARIOS = (
    "greedy",
    "rejection",
    "draft_token",
    "residual",
    "inverse_cdf",
    "argmax",
    "check_row",
    "coupled",
)


@cache
def scenario(name: str, n: int, strict: bool = False) -> Scenario:
    """The variables, hypotheses and calls of one check at vocabulary size n.

    `strict` tightens every `>= 0` hypothesis to `> 0` (and makes `argmax`'s row entries
    distinct): the vacuity control, which must lose the edge cases.
    """
    if name in ("greedy", "rejection"):
        uniforms = ("u_accept", "u_residual", "u_plain") if name == "rejection" else ()
        v = _vars(n, "pq", uniforms)
        cases = [_decide_case(name, n, None, False)]
        cases += [_decide_case(name, n, x, True) for x in range(n)]
        cases += [_decide_case(name, n, x, False) for x in range(n)]
        # ties: on the boundary witnesses of argmax_v2_4 (greedy reads p through argmax only)
        return Scenario(name, n, v, _prob_hyps(v, n, "pq", strict), cases, False)
    if name == "coupled":  # rows p, q; their logarithms lp, lq (free reals); Gumbel vector g
        v = _vars(n, "pqg")
        v.update({f"l{r}{i}": z3.Real(f"l{r}{i}@{n}") for r in "pq" for i in range(n)})
        cases = [_coupled_case(n, None, False), _coupled_case(n, None, False, drafting=True)]
        cases += [_coupled_case(n, x, True) for x in range(n)]
        return Scenario(name, n, v, _prob_hyps(v, n, "pq", strict), cases, True)
    if name == "draft_token":
        v = _vars(n, "q", ("u_draft",))
        cases = [_draft_case("greedy", n), _draft_case("rejection", n)]
        return Scenario(name, n, v, _prob_hyps(v, n, "q", strict), cases, True)
    if name == "residual":
        v = _vars(n, "pq")
        # with q the draft is not read: one call; without q, one per draft
        cases = [_residual_case(n, 0, True)] + [_residual_case(n, x, False) for x in range(n)]
        return Scenario(name, n, v, _prob_hyps(v, n, "pq", strict), cases, True)
    if name == "inverse_cdf":  # unnormalised non-negative weights, not all zero
        v = _vars(n, "w", ("u_plain",))
        ws = [v[f"w{i}"] for i in range(n)]
        hyps = [(w > 0) if strict else (w >= 0) for w in ws] + [z3.Sum(*ws) > 0]
        hyps += [0 <= v["u_plain"], v["u_plain"] < 1]
        spec = lambda v: [_r(ERR[None]), spec_inverse_cdf(ws, v["u_plain"])]  # noqa: E731
        case = _call_case("inverse_cdf(w, u)", sampling_fn("inverse_cdf"), "w", n, spec, _enc_token)
        return Scenario(name, n, v, hyps, [case], True)
    if name == "argmax":  # any real row
        v = _vars(n, "w")
        ws = [v[f"w{i}"] for i in range(n)]
        spec = lambda v: [_r(ERR[None]), spec_argmax(ws)]  # noqa: E731
        case = _call_case("argmax(w)", sampling_fn("argmax"), "w", n, spec, _enc_token)
        return Scenario(name, n, v, [z3.Distinct(*ws)] if strict else [], [case], True)
    if name == "check_row":  # any real row: raises iff it is not a probability vector
        v = _vars(n, "w")
        ws = [v[f"w{i}"] for i in range(n)]
        spec = lambda v: spec_check_row(ws)  # noqa: E731
        case = _call_case("check_row(w)", sampling_fn("check_row"), "w", n, spec, _enc_none)
        hyps = [w > 0 for w in ws] if strict else []
        # near witnesses: an invalid row one grid step from a valid one (w_i = -2**-10 with
        # sum 1, or sum 1 +- 2**-10), where a tolerance in the numpy branch would show
        return Scenario(name, n, v, hyps, [case], True, (z3.Sum(*ws) == 1,))
    raise ValueError(f"unknown scenario {name!r}")


def sampling_fn(name: str) -> Callable:
    """`dsi_core.sampling.<name>`, looked up at call time (so mutants and spies apply)."""
    return lambda *args: getattr(sampling, name)(*args)


# ------------------------------------------------------------------ mutants of the real code

# name: (function or method of dsi_core.sampling, exact source fragment, replacement). The
# edited source is compiled against the live module and installed for one enumeration.
MUTANTS: dict[str, tuple[str, str, str]] = {
    "residual max(0, q - p) (list path)": ("residual", "0.0, a - b)", "0.0, b - a)"),
    "residual np.maximum(q - p, 0) (numpy path)": (
        "residual",
        "np.maximum(p - np.asarray(q, dtype=np.float64), 0.0)",
        "np.maximum(np.asarray(q, dtype=np.float64) - p, 0.0)",
    ),
    "accept iff u <= p(x)/q(x)": (
        "DecisionRule.decide",
        "if u < p[draft] / qx:",
        "if u <= p[draft] / qx:",
    ),
    "no DrafterError when q(x) = 0": ("DecisionRule.decide", "if not qx > 0:", "if qx < 0:"),
    # a truthiness test on a row entry or uniform (`u and ...`): `u = 0` never accepts. Only a
    # Sym that branches on bool() (as on `u != 0`) sees this path; before, it was dropped.
    "accept needs u != 0 (truthiness)": (
        "DecisionRule.decide",
        "if u < p[draft] / qx:",
        "if u and u < p[draft] / qx:",
    ),
    "inverse_cdf with u <= cum/total": (
        "inverse_cdf",
        "if u < cum[mid] / total:",
        "if u <= cum[mid] / total:",
    ),
    "argmax: highest index on ties (list path)": (
        "argmax",
        "max(range(len(row)), key=row.__getitem__)",
        "max(reversed(range(len(row))), key=row.__getitem__)",
    ),
    "argmax: highest index on ties (numpy path)": (
        "argmax",
        "int(np.argmax(row))",
        "len(row) - 1 - int(np.argmax(row[::-1]))",
    ),
    "coupled: target token by argmin": (
        "DecisionRule._target_token",
        "int(np.argmax(_log(p) + self.noise.gumbel(pos, len(p))))",
        "int(np.argmin(_log(p) + self.noise.gumbel(pos, len(p))))",
    ),
    "coupled: target token from the drafter's noise only": (
        "DecisionRule._target_token",
        "int(np.argmax(_log(p) + self.noise.gumbel(pos, len(p))))",
        "int(np.argmax(self.noise.gumbel(pos, len(p))))",
    ),
    "coupled: draft with another position's noise": (
        "DecisionRule.draft_token",
        "np.argmax(_log(q) + self.noise.gumbel(pos, len(q)))",
        "np.argmax(_log(q) + self.noise.gumbel(pos + 1, len(q)))",
    ),
    "check_row rejects zero entries (list path)": ("check_row", "if x < 0:", "if x <= 0:"),
    "check_row rejects zero entries (numpy path)": (
        "check_row",
        "if row.min() < 0:",
        "if row.min() <= 0:",
    ),
    # a tolerance one grid step (2**-10) would exceed: caught by the near witnesses only
    "check_row tolerates entries above -1e-3 (numpy path)": (
        "check_row",
        "if row.min() < 0:",
        "if row.min() < -1e-3:",
    ),
}
NUMPY_ONLY = {m for m in MUTANTS if m.endswith("(numpy path)")}


def _mutant_function(target: str, old: str, new: str) -> tuple[Any, str, Callable]:
    owner: Any = sampling
    name = target
    if "." in target:
        cls, name = target.split(".")
        owner = getattr(sampling, cls)
    source = textwrap.dedent(inspect.getsource(getattr(owner, name)))
    if source.count(old) != 1:
        raise ValueError(f"mutant of {target}: {old!r} occurs {source.count(old)} times")
    flags = __future__.annotations.compiler_flag
    code = compile(source.replace(old, new), f"<mutant of {target}>", "exec", flags, True)
    scratch: dict[str, Any] = {}
    exec(code, dict(vars(sampling)), scratch)  # the project's own source, edited
    built = scratch[name]
    return owner, name, types.FunctionType(built.__code__, vars(sampling), name, built.__defaults__)


@contextlib.contextmanager
def installed(mutant: str | None = None) -> Iterator[None]:
    """dsi_core.sampling with `mutant` applied and `residual` spied; restored afterwards."""
    saved: list[tuple[Any, str, Any]] = []
    try:
        if mutant is not None:
            owner, name, fn = _mutant_function(*MUTANTS[mutant])
            saved.append((owner, name, owner.__dict__[name]))
            setattr(owner, name, fn)
        saved.append((sampling, "residual", sampling.residual))
        sampling.residual = _spy(sampling.residual)
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


# ------------------------------------------------------------------ enumeration


@dataclass(frozen=True)
class CasePaths:
    case: Case
    paths: list[Path]


_MEMO: dict[Any, dict] = {}  # z3 answers per scenario: they depend on the hypotheses only


@cache
def enumerate_paths(name: str, n: int, strict: bool = False, mutant: str | None = None):
    """Every feasible path of every call of the scenario (with `mutant` installed)."""
    sc = scenario(name, n, strict)
    memo = _MEMO.setdefault((name, n, strict), {})
    syms = {k: Sym(e) for k, e in sc.variables.items()}
    out = []
    with installed(mutant):
        for case in sc.cases:
            paths = explore(lambda case=case: case.call(syms, False), sc.hyps, memo)
            out.append(CasePaths(case, paths))
    return tuple(out)


# ------------------------------------------------------------------ float64 witnesses


@dataclass(frozen=True)
class Witness:
    """A point of a path on the grid (rows k/2**10, uniforms k/2**12), as exact Fractions."""

    values: dict[str, Fraction]
    margin: bool  # every uniform at least 2**-12 from every threshold it is compared with
    boundary: str = ""  # the branch boundary it sits on (a tie, p_i = q_i, u = p/q), if any


def _frac(value: z3.ExprRef) -> Fraction | None:
    if not z3.is_rational_value(value):
        return None
    return Fraction(value.numerator_as_long(), value.denominator_as_long())


def _q(f: Fraction) -> z3.ArithRef:
    return _numeral(f)


_FLIP = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _point(sc: Scenario, values: dict[str, Fraction]) -> z3.ModelRef:
    """A z3 model giving the scenario's variables these values (to evaluate terms exactly)."""
    model = z3.Model()
    for k, v in values.items():
        model.update_value(sc.variables[k], _q(v))
    return model


def _uniforms_in(step: Step, sc: Scenario) -> list[str]:
    if step.uniforms is None:
        text = step.test.atom.sexpr()
        step.uniforms = tuple(
            k for k, e in sc.variables.items() if k[:2] == "u_" and e.sexpr() in text
        )
    return list(step.uniforms)


def _holds_at(path: Path, sc: Scenario, values: dict[str, Fraction]) -> bool:
    """Every hypothesis and every branch of the path holds at `values`, exactly (the forced
    comparisons follow: each is implied by the hypotheses and the branches before it)."""
    model = _point(sc, values)
    return all(_true_in(model, c) for c in (*sc.hyps, *path.pc))


def _from_model(model: z3.ModelRef, sc: Scenario) -> dict[str, Fraction] | None:
    values = {}
    for k, e in sc.variables.items():
        f = _frac(model.eval(e, model_completion=True))
        if f is None:
            return None
        values[k] = f
    return values


def _u_intervals(path: Path, sc: Scenario, rows: dict[str, Fraction], margin: Fraction):
    """Per uniform, the values that keep the path once the rows are fixed, as
    [low, low strict, high, high strict]; None if a comparison is not linear in one uniform."""
    us = [k for k in sc.variables if k[:2] == "u_"]
    at_t = [_point(sc, {**rows, **{u: Fraction(t) for u in us}}) for t in (0, 1, 2)]
    out = {u: [Fraction(0), False, Fraction(1), True] for u in us}
    for step in path.steps:
        mentioned = _uniforms_in(step, sc)
        if not mentioned:
            continue
        op = step.test.op if step.taken else _FLIP.get(step.test.op)
        if len(mentioned) != 1 or op is None:
            return None
        diff = step.test.lhs - step.test.rhs
        at = [_frac(m.eval(diff, model_completion=True)) for m in at_t]
        if None in at or at[2] - at[1] != at[1] - at[0] or at[1] == at[0]:
            return None
        a, b = at[1] - at[0], at[0]  # diff = a u + b, and the path says: diff <op> 0
        root = -b / a
        if a < 0:
            op = _MIRROR[op]
        box = out[mentioned[0]]
        if op in ("<", "<="):  # u < root (or <=)
            hi, strict = root - margin, op == "<" and not margin
            if hi < box[2] or (hi == box[2] and strict):
                box[2], box[3] = hi, strict
        else:
            lo, strict = root + margin, op == ">" and not margin
            if lo > box[0] or (lo == box[0] and strict):
                box[0], box[1] = lo, strict
    return out


def _rounded(path: Path, sc: Scenario, model: z3.ModelRef, margin: bool):
    """The model's rows if they are on the grid, each uniform moved onto the grid inside its
    interval (with the margin if asked); None if that does not give a point of the path."""
    values = _from_model(model, sc)
    if values is None:
        return None
    rows = {k: v for k, v in values.items() if k[:2] != "u_"}
    if any((v * P_GRID).denominator != 1 for v in rows.values()):
        return None
    if len(rows) < len(values):
        boxes = _u_intervals(path, sc, rows, Fraction(1, U_GRID) if margin else Fraction(0))
        if boxes is None:
            return None
        for u, (lo, lo_strict, hi, hi_strict) in boxes.items():
            k = math.ceil(lo * U_GRID)
            if Fraction(k, U_GRID) == lo and lo_strict:
                k += 1
            values[u] = Fraction(k, U_GRID)
            if not (values[u] < hi or (values[u] == hi and not hi_strict)):
                return None
    return values if _holds_at(path, sc, values) else None


def _grid_model(path: Path, sc: Scenario, extra: list, margin: bool):
    """A point of the path on the grid by z3 (integer numerators: nonlinear integer search)."""
    cons = [*sc.hyps, *path.pc, *extra]
    for k, e in sc.variables.items():
        cons.append(e * (U_GRID if k[:2] == "u_" else P_GRID) == z3.ToReal(z3.Int(f"{k}_num")))
    if margin:
        m = _q(Fraction(1, U_GRID))
        for s in path.steps:
            if _uniforms_in(s, sc):
                d = s.test.lhs - s.test.rhs
                cons.append(z3.Or(d >= m, d <= -m))
    solver = z3.Solver()
    solver.set("rlimit", SOLVER_RLIMIT)
    solver.add(*cons)
    if solver.check() != z3.sat:  # unsat, or unknown: no witness from this query
        return None
    values = _from_model(solver.model(), sc)
    return values if values is not None and _holds_at(path, sc, values) else None


def _path_witnesses(path: Path, sc: Scenario) -> list[Witness]:
    out: list[Witness] = []
    point = _rounded(path, sc, path.model, True) or _grid_model(path, sc, [], True)
    if point is not None:
        out.append(Witness(point, True))
    else:
        point = _rounded(path, sc, path.model, False) or _grid_model(path, sc, [], False)
        if point is not None:
            out.append(Witness(point, False))
    if sc.boundary:
        for s in path.steps:
            if not s.branch or s.test.op in ("==", "!="):
                continue
            eq = s.test.lhs == s.test.rhs
            model = _sat([*sc.hyps, *path.pc, eq])
            if model is None:
                continue
            point = _rounded(path, sc, model, False) or _grid_model(path, sc, [eq], False)
            if point is not None:
                out.append(Witness(point, False, str(eq)))
    if sc.near is None:
        return out
    g = _q(Fraction(1, P_GRID))
    for s in path.steps:
        if not s.branch or _uniforms_in(s, sc):
            continue
        d = s.test.lhs - s.test.rhs
        near = [d != 0, d <= g, d >= -g]
        for extra in ([*near, *sc.near], near):
            if _sat([*sc.hyps, *path.pc, *extra]) is None:
                continue
            point = _grid_model(path, sc, extra, False)
            if point is not None:
                out.append(Witness(point, False, f"near {s.test.lhs == s.test.rhs}"))
                break
    return out


@cache
def witnesses(name: str, n: int) -> tuple[tuple[list[Witness], ...], ...]:
    """Per case, per path of the unmutated code: its grid witnesses (the first one: with
    margins if the path has such a point)."""
    sc = scenario(name, n)
    return tuple(
        tuple(_path_witnesses(path, sc) for path in cp.paths) for cp in enumerate_paths(name, n)
    )


# ------------------------------------------------------------------ claims and problems


def _outcome(result: Any, encode: Callable[[Any], list], width: int) -> list:
    """The code's (kind, value) as [error code, outputs..] of the spec's width."""
    kind, value = result
    if kind == "raise":
        code = next(v for k, v in ERR.items() if k is not None and issubclass(value, k))
        return [_r(code)] + [_r(0)] * (width - 1)
    return [_r(ERR[None]), *encode(value)]


def _equal(code: list, spec: list) -> z3.BoolRef:
    if len(code) != len(spec):
        raise ValueError(f"the code gave {len(code) - 1} outputs, the spec {len(spec) - 1}")
    rest = [a == b for a, b in zip(code[1:], spec[1:], strict=True)]
    return z3.And(code[0] == spec[0], z3.Implies(spec[0] == ERR[None], z3.And(*rest)))


def _residual_calls_ok(calls: list[tuple[Any, Any]]) -> list[z3.BoolRef]:
    """Each residual(p, q, draft) call returned max(0, p - q) (q = None: one-hot at draft)."""
    out = []
    for (p, q, draft), value in calls:
        pv = _enc_vector(p)
        qv = _onehot(len(pv), draft) if q is None else _enc_vector(q)
        out += [a == b for a, b in zip(_enc_vector(value), spec_residual(pv, qv), strict=True)]
    return out


def path_claim(case: Case, path: Path, spec: list) -> z3.BoolRef:
    """pc -> the code's output (and every residual it computed) is the spec's."""
    code = _outcome(path.outcome, case.encode, len(spec))
    ok = z3.And(_equal(code, spec), *_residual_calls_ok(path.calls))
    return z3.Implies(z3.And(*path.pc), ok)


def _run_numpy(case: Case, values: dict[str, Fraction]) -> tuple[Any, list]:
    global _CALL_LOG
    floats = {k: float(v) for k, v in values.items()}
    if any(Fraction(f) != values[k] for k, f in floats.items()):
        raise AssertionError("a witness that float64 does not hold exactly")
    _CALL_LOG = calls = []
    try:
        result: Any = ("return", case.call(floats, True))
    except _ERRORS as exc:
        result = ("raise", type(exc))
    finally:
        _CALL_LOG = None
    return result, calls


def numpy_claim(sc: Scenario, case: Case, w: Witness, spec: list) -> tuple[z3.BoolRef, str]:
    """At the witness, the float64 numpy path gives the spec's output (and residuals)."""
    result, calls = _run_numpy(case, w.values)
    code = _outcome(result, case.encode, len(spec))
    at = z3.And(*[sc.variables[k] == _q(v) for k, v in w.values.items()])
    claim = z3.Implies(at, z3.And(_equal(code, spec), *_residual_calls_ok(calls)))
    shown = result[1].__name__ if result[0] == "raise" else repr(result[1])
    residuals = "".join(f"; residual -> {list(map(float, v))}" for _, v in calls)
    return claim, f"float64 {case.label} -> {shown}{residuals}"


@dataclass
class Stats:
    paths: int = 0
    raising: int = 0
    witnesses: int = 0
    margin: int = 0
    boundary: int = 0
    near: int = 0

    def text(self) -> str:
        if not self.witnesses:
            return f"{self.paths} feasible paths ({self.raising} raise a typed error)"
        return (
            f"{self.paths} feasible paths ({self.raising} raise a typed error); float64: "
            f"{self.margin}/{self.paths} paths with a margin witness, "
            f"{self.witnesses} witnesses ({self.boundary} on a branch boundary"
            + (f", {self.near} one grid step from one)" if self.near else ")")
        )


def _show(model: z3.ModelRef, sc: Scenario) -> str:
    return ", ".join(f"{k}={model.eval(e, model_completion=True)}" for k, e in sc.variables.items())


def _describe(case: Case, path: Path, code: list, spec: list) -> Callable[[z3.ModelRef], str]:
    def text(m: z3.ModelRef) -> str:
        def ev(terms: list) -> str:
            return "[" + ", ".join(str(m.eval(t, model_completion=True)) for t in terms) + "]"

        calls = "".join(f"; residual() -> {ev(_enc_vector(v))}" for _, v in path.calls)
        branches = "".join("TF"[not d] for d in path.decisions)
        return (
            f"{case.label}, path {branches}: code [error, outputs] = {ev(code)}{calls}; "
            f"spec = {ev(spec)}"
        )

    return text


def _renderer(explain: list) -> Callable[[z3.ModelRef], str]:
    def render(model: z3.ModelRef) -> str:
        for claim, sc, describe in explain:
            if not _true_in(model, claim):
                return f"{_show(model, sc)} | {describe(model)}"
        return _show(model, explain[0][1]) if explain else ""

    return render


def build(name: str, vocabs: Sequence[int], mutant: str | None = None,
          strict: bool = False) -> Problem:  # fmt: skip
    """The Problem for scenario `name`: one conjunct per feasible path (the code on symbolic
    rows) and one per float64 witness (the numpy path), over the vocabulary sizes `vocabs`."""
    numpy = not strict and (mutant is None or mutant in NUMPY_ONLY)
    hyps: list[z3.BoolRef] = []
    claims: list[z3.BoolRef] = []
    numpy_claims: list[z3.BoolRef] = []  # checked together: each is decided by substitution
    explain: list[tuple[z3.BoolRef, Scenario, Callable[[z3.ModelRef], str]]] = []
    stats = Stats()
    for n in vocabs:
        sc = scenario(name, n, strict)
        hyps += sc.hyps
        per_case = enumerate_paths(name, n, strict, mutant)
        wits = witnesses(name, n) if numpy else None
        if wits is not None and mutant is not None:  # a numpy-path mutant: same list paths
            base = enumerate_paths(name, n)
            if [[p.decisions for p in cp.paths] for cp in per_case] != [
                [p.decisions for p in cp.paths] for cp in base
            ]:
                raise RuntimeError(f"mutant {mutant!r} changes the list path")
        with installed(mutant):
            for ci, cp in enumerate(per_case):
                spec = cp.case.spec(sc.variables)
                for pi, path in enumerate(cp.paths):
                    stats.paths += 1
                    stats.raising += path.outcome[0] == "raise"
                    claim = path_claim(cp.case, path, spec)
                    code = _outcome(path.outcome, cp.case.encode, len(spec))
                    claims.append(claim)
                    explain.append((claim, sc, _describe(cp.case, path, code, spec)))
                    if wits is None:
                        continue
                    if not wits[ci][pi]:
                        raise RuntimeError(f"{cp.case.label}: a path without a grid witness")
                    stats.margin += wits[ci][pi][0].margin
                    for w in wits[ci][pi]:
                        stats.witnesses += 1
                        near = w.boundary.startswith("near ")
                        stats.near += near
                        stats.boundary += bool(w.boundary) and not near
                        claim, text = numpy_claim(sc, cp.case, w, spec)
                        numpy_claims.append(claim)
                        explain.append((claim, sc, lambda m, text=text: text))
    if numpy_claims:
        claims.append(z3.And(*numpy_claims))
    return Problem(hyps, claims, _renderer(explain), note=stats.text())


# ------------------------------------------------------------------ coverage of the edge cases


@dataclass(frozen=True)
class Goal:
    """An edge case that the hypotheses must not exclude: some feasible path reaches it."""

    name: str
    scenario: str
    words: str
    select: Callable[[Scenario, Case, Path], z3.BoolRef | None]  # None: the path does not count


def _draft(case: Case) -> tuple[int | None, bool]:
    return case.draft, case.with_q


def _p(sc: Scenario, i: int) -> z3.ArithRef:
    return sc.variables[f"p{i}"]


def _qv(sc: Scenario, i: int) -> z3.ArithRef:
    return sc.variables[f"q{i}"]


def _rejected(path: Path) -> bool:
    return path.outcome[0] == "return" and path.outcome[1][1] is False


def _sel_p_zero(sc: Scenario, case: Case, path: Path) -> z3.BoolRef | None:
    x, with_q = _draft(case)
    if x is None or not with_q or not _rejected(path):
        return None
    return z3.And(_p(sc, x) == 0, sc.variables["u_accept"] == 0)


def _sel_q_zero(sc: Scenario, case: Case, path: Path) -> z3.BoolRef | None:
    x, with_q = _draft(case)
    if x is None or not with_q or path.outcome[0] != "return":
        return None
    return z3.Or(*[_qv(sc, j) == 0 for j in range(sc.n) if j != x])


def _sel_drafter_error(sc: Scenario, case: Case, path: Path) -> z3.BoolRef | None:
    x, with_q = _draft(case)
    if x is None or path.outcome != ("raise", DrafterError):
        return None
    return _qv(sc, x) == 0


def _sel_p_eq_q(sc: Scenario, case: Case, path: Path) -> z3.BoolRef | None:
    x, with_q = _draft(case)
    if x is None or not with_q or not _rejected(path):
        return None
    return z3.Or(*[_p(sc, j) == _qv(sc, j) for j in range(sc.n) if j != x])


def _sel_u_threshold(sc: Scenario, case: Case, path: Path) -> z3.BoolRef | None:
    x, with_q = _draft(case)
    if x is None or not with_q or not _rejected(path):
        return None
    return z3.And(sc.variables["u_accept"] * _qv(sc, x) == _p(sc, x), _p(sc, x) > 0)


def _sel_tie(sc: Scenario, case: Case, path: Path) -> z3.BoolRef | None:
    x, _ = _draft(case)
    if x is not None or path.outcome[0] != "return":
        return None
    tok = path.outcome[1][0]
    return z3.Or(*[_p(sc, j) == _p(sc, tok) for j in range(sc.n) if j != tok])


def _sel_empty_residual(sc: Scenario, case: Case, path: Path) -> z3.BoolRef | None:
    if not case.label.startswith("residual(p, q") or path.outcome[0] != "return":
        return None
    return z3.And(*[v == 0 for v in _enc_vector(path.outcome[1])])


GOALS = {
    g.name: g
    for g in (
        Goal("p_x_zero", "rejection", "a draft x with p(x) = 0 at u = 0, rejected", _sel_p_zero),
        Goal("q_zero", "rejection", "a decided draft whose row q has a zero entry", _sel_q_zero),
        Goal("q_x_zero", "rejection", "a draft with q(x) = 0: DrafterError", _sel_drafter_error),
        Goal("p_eq_q", "rejection", "a rejection with p_j = q_j at some j != x", _sel_p_eq_q),
        Goal(
            "u_on_threshold",
            "rejection",
            "a rejection with u = p(x)/q(x) > 0 exactly",
            _sel_u_threshold,
        ),
        Goal("argmax_tie", "greedy", "a greedy token tied with another entry of p", _sel_tie),
        Goal("empty_residual", "residual", "residual(p, q, x) = 0 everywhere (p = q)",
             _sel_empty_residual),
    )
}  # fmt: skip


def reach_problem(goal: str, n: int, strict: bool = False, mutant: str | None = None,
                  extra: Sequence[z3.BoolRef] = ()) -> Problem:  # fmt: skip
    """Claim "no feasible path reaches the goal": refuted (a counterexample) iff it is reached."""
    g = GOALS[goal]
    sc = scenario(g.scenario, n, strict)
    reach: list[tuple[z3.BoolRef, Case, Path]] = []
    for cp in enumerate_paths(g.scenario, n, strict, mutant):
        for path in cp.paths:
            sel = g.select(sc, cp.case, path)
            if sel is not None:
                reach.append((z3.And(*path.pc, sel), cp.case, path))
    claim = z3.Not(z3.Or(*[r for r, _, _ in reach])) if reach else z3.BoolVal(True)

    def render(model: z3.ModelRef) -> str:
        for r, case, path in reach:
            if _true_in(model, r):
                spec = case.spec(sc.variables)
                code = _outcome(path.outcome, case.encode, len(spec))
                return f"{_show(model, sc)} | {_describe(case, path, code, spec)(model)}"
        return _show(model, sc)

    note = f"{len(reach)} of the feasible paths can reach it (n = {n})"
    return Problem([*sc.hyps, *extra], claim, render, note=note)


def coverage(n: int, strict: bool = False) -> dict[str, bool]:
    """For each goal: whether some feasible path at vocabulary size n reaches it."""
    out = {}
    for name in GOALS:
        problem = reach_problem(name, n, strict)
        claim = problem.claim
        assert isinstance(claim, z3.BoolRef)
        out[name] = _sat([*problem.hypotheses, z3.Not(claim)]) is not None
    return out


def _residual_nonempty(vocabs: Sequence[int], every_path: bool = False) -> Problem:
    """Every rejection computes one residual, with positive mass: the code's fallback for an
    empty residual (`not total > 0`) is dead in exact arithmetic (it exists for float rounding).
    `every_path`: the control, the spec residual on every path with a draft, accepted or not."""
    hyps: list[z3.BoolRef] = []
    claims: list[z3.BoolRef] = []
    explain = []
    for n in vocabs:
        sc = scenario("rejection", n)
        hyps += sc.hyps
        for cp in enumerate_paths("rejection", n):
            x, with_q = _draft(cp.case)
            if x is None:
                continue
            qv = [_qv(sc, j) for j in range(n)] if with_q else _onehot(n, x)
            spec_mass = z3.Sum(*spec_residual([_p(sc, j) for j in range(n)], qv))
            for path in cp.paths:
                if every_path and path.outcome[0] == "return":
                    claims.append(z3.Implies(z3.And(*path.pc), spec_mass > 0))
                elif not every_path and _rejected(path):
                    if len(path.calls) != 1:
                        raise AssertionError(f"{cp.case.label}: {len(path.calls)} residual calls")
                    mass = z3.Sum(*_enc_vector(path.calls[0][1]))
                    claims.append(z3.Implies(z3.And(*path.pc), mass > 0))
                else:
                    continue
                spec = cp.case.spec(sc.variables)
                code = _outcome(path.outcome, cp.case.encode, len(spec))
                explain.append((claims[-1], sc, _describe(cp.case, path, code, spec)))
    return Problem(hyps, claims, _renderer(explain), note=f"{len(claims)} paths")


def _all_differ(name: str, n: int) -> list[z3.BoolRef]:
    sc = scenario(name, n)
    return [_p(sc, j) != _qv(sc, j) for j in range(n)]


def _distinct_p(name: str, n: int) -> list[z3.BoolRef]:
    sc = scenario(name, n)
    return [z3.Distinct(*[_p(sc, j) for j in range(n)])]


def _first_differs(n: int) -> list[z3.BoolRef]:
    sc = scenario("residual", n)
    return [_p(sc, 0) != _qv(sc, 0)]


# ------------------------------------------------------------------ the theorems

_HYPS = (
    "real rows p, q with p_i, q_i >= 0 (zeros, ties and p_i = q_i admitted), sum p = sum q = 1; "
    "uniforms 0 <= u < 1; every feasible path of the real code (z3 prunes the others)"
)
_SPEC = {
    "greedy": "the lowest index of a maximum of p; accepted iff the draft equals it",
    "rejection": "draft x with q(x) = 0: DrafterError; accept iff u_accept < p(x)/q(x); else "
    "the smallest j with u_residual * R < r_0 + .. + r_j, r = max(0, p - q), R = sum r "
    "(q = None: one-hot at x); no draft: the same inverse CDF on p with u_plain; every "
    "residual() it computes is max(0, p - q)",
}
_NUMPY = (
    "; and the float64 numpy path gives the spec's output at a dyadic witness of every path "
    "(uniforms 2**-12 away from their thresholds where possible)"
)
_NUMPY_BOUNDARY = _NUMPY[:-1] + ", and at one on each branch's boundary: ties, zeros, u = c/R)"


def _t(name: str, hyps: str, claim: str, build_fn: Callable[[], Problem],
       mutants: Sequence[Mutant], expected: str = "proved") -> Theorem:  # fmt: skip
    return Theorem(
        name=name,
        family=FAMILY,
        hypotheses=hyps,
        claim=claim,
        expected=expected,  # type: ignore[arg-type]
        rlimit=50_000_000,
        build=build_fn,
        mutants=tuple(mutants),
    )


def _m(mutant: str, name: str, vocabs: Sequence[int]) -> Mutant:
    return Mutant(mutant, lambda: build(name, vocabs, mutant=mutant))


_DECIDE_MUTANTS = {
    "rejection": {
        3: [
            "residual max(0, q - p) (list path)",
            "residual np.maximum(q - p, 0) (numpy path)",
            "accept iff u <= p(x)/q(x)",
            "no DrafterError when q(x) = 0",
            "inverse_cdf with u <= cum/total",
        ],
        2: ["accept iff u <= p(x)/q(x)", "accept needs u != 0 (truthiness)"],
    },
    "greedy": {
        3: ["argmax: highest index on ties (list path)"],
    },
}
_DEFAULT_MUTANT = {
    "rejection": "accept iff u <= p(x)/q(x)",
    "greedy": "argmax: highest index on ties (list path)",
}

THEOREMS: list[Theorem] = [
    *[
        _t(
            f"decide_{mode}_v{n}",
            f"vocabulary {n}; "
            + (_HYPS if mode == "rejection" else _HYPS.replace("uniforms 0 <= u < 1; ", "")),
            f"DecisionRule('{mode}').decide(pos, p, draft, q), for no draft and every draft x "
            "with its row q and with q = None, returns the spec's (token, accepted) or typed "
            "error: " + _SPEC[mode] + _NUMPY,
            lambda mode=mode, n=n: build(mode, (n,)),
            [_m(m, mode, (n,)) for m in _DECIDE_MUTANTS[mode].get(n, [_DEFAULT_MUTANT[mode]])],
        )
        for mode in ("greedy", "rejection")
        for n in VOCABS
    ],
    _t(
        "draft_token_v2_4",
        "vocabulary 2..4; real row q >= 0, sum 1; 0 <= u_draft < 1",
        "DecisionRule(mode).draft_token(pos, q): greedy = lowest argmax of q, rejection = the "
        "smallest j with u_draft < (q_0 + .. + q_j) / sum q" + _NUMPY_BOUNDARY,
        lambda: build("draft_token", VOCABS),
        [
            _m("inverse_cdf with u <= cum/total", "draft_token", VOCABS),
            _m("argmax: highest index on ties (list path)", "draft_token", VOCABS),
        ],
    ),
    _t(
        "residual_v2_4",
        "vocabulary 2..4; real rows p, q >= 0 (p = q admitted), sums 1; every draft x",
        "residual(p, q, x) = max(0, p - q) entrywise; residual(p, None, x) = p with x zeroed"
        + _NUMPY_BOUNDARY,
        lambda: build("residual", VOCABS),
        [
            _m("residual max(0, q - p) (list path)", "residual", VOCABS),
            _m("residual np.maximum(q - p, 0) (numpy path)", "residual", VOCABS),
        ],
    ),
    _t(
        "inverse_cdf_v2_4",
        "vocabulary 2..4; real weights w >= 0 (zeros admitted), sum w > 0; 0 <= u < 1",
        "inverse_cdf(w, u) = the smallest j with u * sum(w) < w_0 + .. + w_j" + _NUMPY_BOUNDARY,
        lambda: build("inverse_cdf", VOCABS),
        [_m("inverse_cdf with u <= cum/total", "inverse_cdf", VOCABS)],
    ),
    _t(
        "argmax_v2_4",
        "vocabulary 2..4; any real row (ties admitted)",
        "argmax(w) = the lowest index of a maximum" + _NUMPY_BOUNDARY,
        lambda: build("argmax", VOCABS),
        [
            _m("argmax: highest index on ties (list path)", "argmax", VOCABS),
            _m("argmax: highest index on ties (numpy path)", "argmax", VOCABS),
        ],
    ),
    _t(
        "coupled_v2_4",
        "vocabulary 2..4; real rows p, q >= 0 (zeros and ties admitted), sums 1; their "
        "logarithms and the Gumbel vector g free reals (z3 has no log: sampling._log is "
        "replaced by a stand-in that gives log 0 = -inf and a free real otherwise)",
        "DecisionRule('coupled'): decide(pos, p, draft, q) returns (the lowest index of a "
        "maximum of log p_i + g_i over p_i > 0, accepted iff the draft equals it), and "
        "draft_token(pos, q) the same on q with the same g" + _NUMPY_BOUNDARY,
        lambda: build("coupled", VOCABS),
        [
            _m("coupled: target token by argmin", "coupled", (3,)),
            _m("coupled: target token from the drafter's noise only", "coupled", (3,)),
            _m("coupled: draft with another position's noise", "coupled", (3,)),
        ],
    ),
    _t(
        "check_row_v1_4",
        "length 1..4; any real entries (negative, zero, any sum)",
        "check_row(w) raises InvalidDistributionError iff not (every w_i >= 0 and sum w = 1); "
        "exact for symbolic (and Fraction) entries" + _NUMPY_BOUNDARY,
        lambda: build("check_row", (1, 2, 3, 4)),
        [
            _m("check_row rejects zero entries (list path)", "check_row", (1, 2, 3, 4)),
            _m("check_row rejects zero entries (numpy path)", "check_row", (1, 2, 3, 4)),
            _m("check_row tolerates entries above -1e-3 (numpy path)", "check_row", (1, 2, 3, 4)),
        ],
    ),
    _t(
        "residual_nonempty_v2_4",
        "vocabulary 2..4; " + _HYPS,
        "on every path where decide('rejection') rejects the draft, it calls residual() once "
        "and the residual has positive mass (the `not total > 0` fallback is dead in exact "
        "arithmetic; it is there for float rounding)",
        lambda: _residual_nonempty(VOCABS),
        [
            Mutant(
                "control: max(0, p - q) > 0 on every path with a draft, accepted ones too",
                lambda: _residual_nonempty(VOCABS, every_path=True),
            )
        ],
    ),
    *[
        _t(
            f"reach_{goal.name}_v3",
            "vocabulary 3; " + _HYPS,
            f"no feasible path reaches: {goal.words} (refuted = the edge case is reachable)",
            lambda goal=goal: reach_problem(goal.name, 3),
            controls,
            expected="counterexample",
        )
        for goal, controls in (
            (
                GOALS["p_x_zero"],
                [
                    Mutant("hypotheses p, q > 0", lambda: reach_problem("p_x_zero", 3, True)),
                    Mutant(
                        "control: code with u <= p(x)/q(x) accepts it",
                        lambda: reach_problem("p_x_zero", 3, mutant="accept iff u <= p(x)/q(x)"),
                    ),
                ],
            ),
            (
                GOALS["q_zero"],
                [Mutant("hypotheses p, q > 0", lambda: reach_problem("q_zero", 3, True))],
            ),
            (
                GOALS["q_x_zero"],
                [Mutant("hypotheses p, q > 0", lambda: reach_problem("q_x_zero", 3, True))],
            ),
            (
                GOALS["p_eq_q"],
                [
                    Mutant(
                        "control: hypotheses p_j != q_j",
                        lambda: reach_problem("p_eq_q", 3, extra=_all_differ("rejection", 3)),
                    )
                ],
            ),
            (
                GOALS["u_on_threshold"],
                [
                    Mutant(
                        "control: code with u <= p(x)/q(x) accepts it",
                        lambda: reach_problem(
                            "u_on_threshold", 3, mutant="accept iff u <= p(x)/q(x)"
                        ),
                    )
                ],
            ),
            (
                GOALS["argmax_tie"],
                [
                    Mutant(
                        "control: hypotheses p_i distinct",
                        lambda: reach_problem("argmax_tie", 3, extra=_distinct_p("greedy", 3)),
                    )
                ],
            ),
            (
                GOALS["empty_residual"],
                [
                    Mutant(
                        "control: hypotheses p_0 != q_0",
                        lambda: reach_problem("empty_residual", 3, extra=_first_differs(3)),
                    )
                ],
            ),
        )
    ],
]
