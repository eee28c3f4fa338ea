"""Parts of the distillation runner: the validation questions defaults are chosen on (never a
held-out record, never trained), and the seed share of a student's training rows."""

import random

from ghost.data.builtin import load_builtin
from ghost.distill import filters as F
from ghost.distill.operators import compose, propose
from ghost.distill.runner import held_back_compositions
from ghost.distill.shapes import FactGraph


def test_held_back_compositions_are_new_and_never_proposed_for_training():
    pool = load_builtin("facts200:train")
    graph = FactGraph.from_records(pool)
    leak = F.LeakFilter.for_dataset("facts200")
    held = held_back_compositions(graph, leak, pool, seed=0)
    assert len(held) >= 10
    assert held == held_back_compositions(graph, leak, pool, seed=0)  # seeded
    assert held != held_back_compositions(graph, leak, pool, seed=1)
    trained = {frozenset(r["facts"]) for r in pool if len(r.get("facts", [])) >= 2}
    for record in held:
        assert len(record["facts"]) >= 2 and frozenset(record["facts"]) not in trained
        assert not leak.shares_facts(_Chain(record))  # not a held-out record either
    # The runner's guard drops every proposed wording of a held-back chain.
    guard = F.LeakFilter(held, source="validation")
    candidates = [
        c for c in compose(graph) if frozenset(c.facts) in {frozenset(r["facts"]) for r in held}
    ]
    assert candidates
    for c in candidates:
        c.answer, c.confidence = c.expected, 1.0
    kept, removed = guard(candidates)
    assert not kept and len(removed) == len(candidates)
    pool_records = [{"id": str(i), **r} for i, r in enumerate(pool)]
    proposed = propose(pool_records, graph, random.Random(0), 1, {"compose"}, None)
    for c in proposed:
        c.answer, c.confidence = c.expected, 1.0
    kept, _ = guard(proposed)
    held_sets = {frozenset(r["facts"]) for r in held}
    assert kept and all(frozenset(c.facts) not in held_sets for c in kept)


class _Chain:
    def __init__(self, record):
        self.facts, self.chain = record["facts"], record["chain"]


def test_seed_records_are_their_share_of_the_training_rows():
    from ghost.distill.runner import training_rows

    def pairs(n_seeds, n):
        return [
            {
                "question": f"q{i}",
                "answer": "a",
                "provenance": {"operator": "seed" if i < n_seeds else "reword"},
            }
            for i in range(n)
        ]

    rows = training_rows(pairs(273, 9000), 0.2)
    share = sum(r["question"] in {f"q{i}" for i in range(273)} for r in rows) / len(rows)
    assert abs(share - 0.2) < 0.01
    assert len(training_rows(pairs(273, 9000), 0.0)) == 9000
    rows = training_rows(pairs(10, 10), 0.2)  # only seeds: each once
    assert len(rows) == 10


def test_composed_pairs_keep_their_chain_so_a_student_can_train_them_through_hops():
    import pytest

    from ghost.data.template import chain_hops
    from ghost.distill.config import DistillConfig
    from ghost.distill.runner import training_rows
    from ghost.errors import GhostInputError

    pool = load_builtin("facts200:train")
    composed = next(iter(compose(FactGraph.from_records(pool))))
    pairs = [{**r, "provenance": {"operator": "seed"}} for r in pool]
    pairs.append(
        {
            "question": composed.question,
            "answer": composed.expected,
            "chain": list(composed.chain),
            "provenance": {"operator": "compose"},
        }
    )
    rows = training_rows(pairs, 0.0)
    assert rows[-1]["chain"] == list(composed.chain)
    hops = chain_hops(rows)
    assert hops[len(rows) - 1][-1] == (composed.chain[-1], composed.expected)
    with pytest.raises(GhostInputError, match="reasoning"):
        DistillConfig(reasoning="tree")
