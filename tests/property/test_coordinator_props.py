"""Property tests of the coordinator on the simulated backend (hypothesis).

Random toy models and drafters (including always-wrong and perfect ones), lookaheads, server
counts, latencies and completion orders, with preemption that succeeds or fails. Invariants:

* the output equals a reference run (non-SI in greedy/coupled mode; DSI with k=1, S=1 in
  rejection mode, where the per-position rule makes the output timing-independent);
* the committed prefix only grows (commits come in position order and are never retracted);
* no stale result is ever committed: results of preempted work are *poisoned* by the backend
  (a target row that is one-hot on a token the true target never emits, a draft of that token),
  so using one would change the output;
* at most ``S`` target tasks physically run at once, stale ones included, and one draft.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from dsi_core.backends.simulated import SimulatedBackend
from dsi_core.coordinator import Config, Coordinator, DraftDone, TargetDone
from dsi_core.models.lookup import LookupDrafter
from dsi_core.sampling import DecisionRule, KeyedNoise
from dsi_core.testing.toy import ToyModel, adversarial_drafter, random_table_model

POISON = 0  # token 0 has probability 0 under every target built below


def _target(vocab: int, seed: int) -> ToyModel:
    base = random_table_model(vocab - 1, seed, zeros=True)

    def fn(tokens):
        r = base.row(tuple(x - 1 if x > 0 else 0 for x in tokens))
        return (Fraction(0),) + tuple(r)

    return ToyModel(vocab, fn, name="target-without-token-0")


class PoisoningBackend(SimulatedBackend):
    def complete(self, job, model, state, prompt, temperature):
        ev = super().complete(job, model, state, prompt, temperature)
        if not job.cancelled:
            return ev
        if job.kind == "draft":
            return DraftDone(ev.request_id, None, POISON)
        v = len(ev.rows[0])
        poison = tuple(Fraction(int(j == POISON)) for j in range(v))
        return TargetDone(ev.task_id, tuple(poison for _ in ev.rows))


def _drafter(kind: str, target: ToyModel, vocab: int, seed: int):
    if kind == "random":
        return random_table_model(vocab, seed + 1000)
    if kind == "adversarial":
        return adversarial_drafter(target)
    if kind == "perfect":
        return target
    return LookupDrafter(max_ngram=2)


def _run(target, drafter, algorithm, mode, k, servers, n_new, eos, seed, backend):
    cfg = Config(algorithm, k, servers, n_new, eos)
    coord = Coordinator(cfg, DecisionRule(mode, KeyedNoise(seed)))
    backend.run(coord, target, drafter, [1, 2])
    return coord, backend


schedules = st.one_of(
    st.builds(
        dict,
        draft_latency=st.sampled_from([Fraction(1, 10), Fraction(1, 3), Fraction(1), Fraction(2)]),
        target_latency=st.sampled_from([Fraction(1), Fraction(3, 2)]),
    ),
    st.builds(
        dict,
        order=st.one_of(
            st.sampled_from(["fifo", "lifo", "drafts_last", "targets_last"]),
            st.integers(0, 10**6).map(lambda s: f"random:{s}"),
        ),
    ),
)


@settings(max_examples=max(600, settings.default.max_examples))
@given(
    vocab=st.integers(3, 6),
    model_seed=st.integers(0, 10**6),
    drafter_kind=st.sampled_from(["random", "adversarial", "perfect", "lookup"]),
    algorithm=st.sampled_from(["dsi", "si"]),
    mode=st.sampled_from(["greedy", "rejection", "coupled"]),
    k=st.integers(1, 5),
    servers=st.integers(1, 6),
    n_new=st.integers(1, 12),
    use_eos=st.booleans(),
    seed=st.integers(0, 2**32),
    schedule=schedules,
    cancellation=st.sampled_from(["instant", "fails"]),
)
def test_invariants(
    vocab,
    model_seed,
    drafter_kind,
    algorithm,
    mode,
    k,
    servers,
    n_new,
    use_eos,
    seed,
    schedule,
    cancellation,
):
    target = _target(vocab, model_seed)
    drafter = _drafter(drafter_kind, target, vocab, model_seed)
    eos = vocab - 1 if use_eos else None
    backend = PoisoningBackend(
        schedule.get("target_latency", 1),
        schedule.get("draft_latency", Fraction(1, 3)),
        order=schedule.get("order"),
        cancellation=cancellation,
    )
    coord, backend = _run(target, drafter, algorithm, mode, k, servers, n_new, eos, seed, backend)

    if mode == "rejection":
        ref, _ = _run(target, drafter, "dsi", mode, 1, 1, n_new, eos, seed, SimulatedBackend())
    else:
        ref, _ = _run(target, None, "nonsi", mode, 1, 1, n_new, eos, seed, SimulatedBackend())
    assert coord.committed == ref.committed
    assert POISON not in coord.committed

    out = coord.committed
    assert 1 <= len(out) <= n_new
    if eos is not None and eos in out:
        assert out.index(eos) == len(out) - 1
    elif len(out) < n_new:
        raise AssertionError("stopped early without EOS")

    commits = [e for e in coord.trace if e.what == "commit"]
    assert [e.pos for e in commits] == list(range(len(out)))  # in order, never retracted
    assert [int(e.detail) for e in commits] == out
    times = [e.time for e in coord.trace]
    assert times == sorted(times)

    s = coord.stats
    assert s.drafts_accepted + s.drafts_rejected <= s.drafts_completed
    assert backend.max_in_flight["target"] <= (1 if algorithm == "si" else servers)
    assert backend.max_in_flight["draft"] <= 1
    if cancellation == "instant":
        assert s.stale_results_dropped == 0
