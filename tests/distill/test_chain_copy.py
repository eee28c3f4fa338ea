"""The chain-copy probe's data (benchmarks/chain_copy.py): its fictional chains are answerable
through hops of its own one-hop records, and its practice rows score the hop questions and
the end marker, never the answers."""

import sys
from pathlib import Path

import torch

from ghost.config import GhostConfig
from ghost.data.batches import IGNORE
from ghost.data.builtin import load_builtin
from ghost.data.template import STEP, QATemplate, chain_hops

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


def test_practice_rows_score_the_hop_questions_and_the_end_only():
    practice = chain_copy.ChainPractice()
    practice.template = QATemplate.from_config(GhostConfig.from_preset("tiny"))
    hops = [
        ("In which country is the Brelo Gate?", "Zorvania"),
        ("What is the capital of Zorvania?", "Quessaro"),
    ]
    ids, labels = practice.row("What is the capital of the country where the Brelo Gate is?", hops)
    scored = bytes(int(b) for b in ids[labels != IGNORE]).decode("utf-8")
    asked = "".join(STEP + practice.template.prompt(q).decode("utf-8") for q, _ in hops)
    assert scored == asked + chr(practice.template.marker)  # the answers: never
    assert bytes(ids.tolist()).endswith(b"Quessaro" + bytes([practice.template.marker]))
    assert torch.equal(ids[labels != IGNORE], labels[labels != IGNORE])
