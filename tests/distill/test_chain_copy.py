"""The chain-copy probe's data (benchmarks/chain_copy.py): its fictional chains are answerable
through hops of its own one-hop records, none of them a held-out question. (Its practice rows
are the chain-practice recipe's: tests/train/recipes/test_chain_practice.py.)"""

import sys
from pathlib import Path

from ghost.data.builtin import load_builtin
from ghost.data.template import chain_hops

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import chain_copy  # noqa: E402


def test_every_fictional_chain_goes_through_the_worlds_own_hops():
    records = chain_copy.world_records(5, seed=0)
    chained = [i for i, r in enumerate(records) if r.get("chain")]
    hops = chain_hops(records)
    assert sorted(hops) == chained and len(chained) == 5 * 10  # ten multi-hop shapes a country
    for i in chained:  # the last hop's answer is the record's
        assert hops[i][-1][1] == records[i]["answer"]
    held_out = {r["question"] for s in ("novel", "paraphrase", "test_hard") for r in
                load_builtin(f"facts200:{s}")}  # fmt: skip
    assert not held_out & {r["question"] for r in records}
