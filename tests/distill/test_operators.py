"""Operators and shapes: facts200's training records parse into a fact graph that words them
back exactly; the templates of one fact are different pairs (ROUGE-L < 0.7); validation
templates never reach training; answers known by construction are right; seed10 yields only
its own entities, and enough candidates (counts printed: pytest -s)."""

from __future__ import annotations

import ast
import json
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ghost.distill.operators import (
    compose,
    generic_candidates,
    is_validation_template,
    math_candidates,
    propose,
    surface_variants,
    templates,
    validation_candidates,
)
from ghost.distill.pairs import pair_id
from ghost.distill.shapes import RELATIONS, FactGraph, fill, parse_question
from ghost.distill.similarity import rouge_l_reference

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "src" / "ghost" / "data" / "datasets"
TRAINING_OPERATORS = {"reword", "invert", "yesno", "cloze", "compose", "generic", "swap"}


def _read(path: Path) -> list[dict]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def _with_ids(records: list[dict]) -> list[dict]:
    return [
        {**r, "id": f"seed-{i:04d}", "provenance": {"operator": "seed"}}
        for i, r in enumerate(records)
    ]


TRAIN = _read(DATA / "facts200" / "train.jsonl")
FACT_RECORDS = [r for r in TRAIN if r["kind"] == "fact"]
MULTIHOP = [r for r in TRAIN if r["kind"] in ("2hop", "3hop")]
SEED10 = _with_ids(_read(DATA / "facts200" / "seed10.jsonl"))


@pytest.fixture(scope="module")
def graph200() -> FactGraph:
    return FactGraph.from_records(FACT_RECORDS)


@pytest.fixture(scope="module")
def seed_candidates() -> list:
    graph = FactGraph.from_records(SEED10)
    return propose(SEED10, graph, random.Random(0), 1, TRAINING_OPERATORS, None)


# --- shapes ----------------------------------------------------------------------------------


def test_every_training_fact_record_parses():
    parsed = [r for r in FACT_RECORDS if len(FactGraph().add_record(r)) == 1]
    assert len(FACT_RECORDS) == 200 and len(parsed) == 200
    assert all(len(FactGraph().add_record(r)) == 1 for r in SEED10) and len(SEED10) == 10


def test_graph_words_each_fact_as_the_training_data_does(graph200):
    """The canonical question, answer and sentence the graph makes for a record's triple are
    the record's own: so chains and facts of composed questions read like facts200's."""
    for record in FACT_RECORDS:
        shape = parse_question(record["question"])
        (triple,) = FactGraph().add_record(record)
        assert graph200.question(triple, shape.inverse) == record["question"]
        asked = triple.subject if shape.inverse else triple.object
        assert graph200.answer_text(asked) == record["answer"]
        assert graph200.sentence(triple, shape.inverse) == record["facts"][0]
        assert graph200.lookup_question(record["question"]) == record["answer"]


def test_multihop_records_add_only_their_hop_facts(graph200):
    """ "What is the capital of the country where X is?" has a one-hop shape but is not one."""
    assert all(parse_question(r["question"]) is None for r in MULTIHOP)
    assert set(FactGraph.from_records(TRAIN).triples) == set(graph200.triples)


def test_articles_and_types(graph200):
    assert graph200.phrase("United Kingdom") == "the United Kingdom"
    assert graph200.phrase("Eiffel Tower") == "the Eiffel Tower"
    assert graph200.phrase("The Great Gatsby") == "The Great Gatsby"  # a title's own "The"
    assert graph200.answer_text("sodium") == "Sodium"
    assert graph200.type_of("Stonehenge") == "landmark" and graph200.type_of("Danube") == "river"
    assert graph200.inverse_lookup("capital", "Ottawa") == "Canada"
    assert graph200.inverse_lookup("currency", "euro") is None  # several countries: never asked
    assert graph200.inverse_lookup("author", "Bram Stoker") is None  # not one-to-one


# --- composition -------------------------------------------------------------------------------


def test_compose_rebuilds_every_training_multihop_record(graph200):
    made = {}
    for c in compose(graph200, which="all"):
        made.setdefault((c.expected, frozenset(c.facts)), []).append(c)
    worded = 0
    for record in MULTIHOP:
        found = made.get((record["answer"], frozenset(record["facts"])))
        assert found, record["question"]
        assert any(list(c.chain) == record["chain"] for c in found)
        worded += any(c.question == record["question"] for c in found)
    assert len(MULTIHOP) == 73 and worded >= 0.9 * len(MULTIHOP)


def test_composed_candidates_carry_their_facts_and_chain(graph200):
    pool = _with_ids(FACT_RECORDS)
    candidates = propose(pool, graph200, random.Random(0), 1, {"compose"}, None)
    assert candidates and all(c.operator == "compose" for c in candidates)
    for c in candidates:
        hops = len(c.facts)
        assert hops in (2, 3) and len(c.chain) == hops and len(c.parents) == hops
        assert c.kind == f"{hops}hop" and c.parent == c.parents[0]
        assert set(c.parents) <= {r["id"] for r in pool}
        assert graph200.lookup_question(c.chain[-1]) == c.expected
    print(
        f"\nfacts200 train pool: {len(candidates)} composed training candidates "
        f"({len({c.chain for c in candidates})} chains)"
    )


# --- templates -------------------------------------------------------------------------------


def _test_triples(graph200: FactGraph) -> list:
    """Every seed10 fact, and per relation the fact with the shortest names."""
    seed_graph = FactGraph.from_records(SEED10)
    out = [(seed_graph, t) for t in seed_graph.triples]
    for relation in RELATIONS:
        shortest = min(
            graph200.by_relation(relation),
            key=lambda t: len(
                (graph200.phrase(t.subject) + " " + graph200.phrase(t.object)).split()
            ),
        )
        out.append((graph200, shortest))
    return out


def _assert_pairwise_below(questions: list[str], limit: float = 0.7) -> None:
    for i, a in enumerate(questions):
        for b in questions[i + 1 :]:
            assert rouge_l_reference(a, b) < limit, (a, b, rouge_l_reference(a, b))


def test_templates_of_one_fact_are_different_pairs(graph200):
    """Same fact, same answer: every pair of filled templates is below ROUGE-L 0.7."""
    for graph, t in _test_triples(graph200):
        rel = RELATIONS[t.relation]
        s, o = graph.phrase(t.subject), graph.phrase(t.object)
        asking_object = [graph.question(t)] + [
            fill(text, s, o)
            for form in ("forward", "cloze")
            for _, text in templates(t.relation, form, "all")
        ]
        _assert_pairwise_below(asking_object)
        if rel.inverse_question:
            _assert_pairwise_below(
                [graph.question(t, True)]
                + [fill(x, s, o) for _, x in templates(t.relation, "inverse", "all")]
            )
        _assert_pairwise_below([fill(x, s, o) for _, x in templates(t.relation, "yesno", "all")])


def test_template_counts_and_validation_share():
    for relation in RELATIONS:
        forward = templates(relation, "forward", "all")
        assert 25 <= len(forward) <= 40, relation
        held = [tid for tid, _ in forward if is_validation_template(tid)]
        assert 0.15 <= len(held) / len(forward) <= 0.25
        if RELATIONS[relation].inverse_question:
            assert 6 <= len(templates(relation, "inverse", "all")) <= 12
    assert is_validation_template("capital/f04") and not is_validation_template("capital/f05")
    assert not is_validation_template("generic/prefix") and not is_validation_template("")


def test_validation_templates_are_never_proposed(graph200, seed_candidates):
    pool = _with_ids(FACT_RECORDS)
    proposed = seed_candidates + propose(
        pool, graph200, random.Random(1), 1, TRAINING_OPERATORS, None
    )
    assert not [c for c in proposed if is_validation_template(c.template)]
    held = validation_candidates(graph200)
    assert held and all(is_validation_template(c.template) for c in held)
    assert {c.question for c in held}.isdisjoint(c.question for c in proposed)
    assert Counter(c.operator for c in held).keys() >= {
        "reword",
        "invert",
        "yesno",
        "cloze",
        "compose",
    }


# --- propose ---------------------------------------------------------------------------------


def test_propose_is_deterministic_and_budget_caps():
    graph = FactGraph.from_records(SEED10)

    def run(seed, budget):
        out = propose(SEED10, graph, random.Random(seed), 1, TRAINING_OPERATORS, budget)
        return [(c.question, c.expected, c.template) for c in out]

    assert run(3, None) == run(4, None)  # without a budget the rng is not used
    assert run(3, 50) == run(3, 50) and len(run(3, 50)) == 50
    assert run(3, 50) != run(4, 50)
    assert set(run(3, 50)) <= set(run(3, None))


def test_seed10_candidates_use_only_seed10_entities(seed_candidates):
    def words(text):
        return set(re.findall(r"\b(?:[A-Z][\w-]*|\d+)", text))  # "Italy's" -> "Italy"

    allowed = set()
    for r in SEED10:
        for text in [r["question"], r["answer"], *r["facts"]]:
            allowed |= words(text) | set(re.findall(r"[\w'-]+", text))
    for relation in RELATIONS:
        for form in ("forward", "inverse", "yesno", "cloze", "compose"):
            for _, text in templates(relation, form, "all"):
                allowed |= words(text)
    for c in seed_candidates:
        stray = {w for w in words(c.question) if w not in allowed and w.lower() not in allowed}
        assert not stray, (c.question, stray)


def test_answers_known_by_construction_are_right(seed_candidates):
    by_question = {c.question: c for c in seed_candidates}
    expected = {
        "Which country has Ottawa as its capital?": "Canada",
        "Name the element with the symbol Na.": "Sodium",
        "Which city is the capital of Italy?": None,  # the near-canonical form is not kept
        "Is Rome the capital of Italy?": "yes",
        "Is Ottawa the capital of Italy?": "no",
        "Is Rome the capital of Canada?": "no",
        "Is Machu Picchu in Italy?": "no",
        "Is Machu Picchu in Peru?": "yes",
        "Is the atomic number of sodium 8?": "no",
        "Dracula was written by whom?": "Bram Stoker",
        "Complete the sentence: The capital of Italy is ...": "Rome",
        "Fill in the blank: people in Thailand pay with the ___.": "baht",
    }
    for question, answer in expected.items():
        if answer is None:
            assert question not in by_question
        else:
            assert by_question[question].expected == answer, question
    inverse_capital = [
        c for c in seed_candidates if c.operator == "invert" and "Ottawa" in c.question
    ]
    assert inverse_capital and all(c.expected == "Canada" for c in inverse_capital)
    yes = {c.question for c in seed_candidates if c.expected == "yes"}
    no = {c.question for c in seed_candidates if c.expected == "no"}
    assert yes and no and yes.isdisjoint(no)


def test_seed10_candidate_count(seed_candidates):
    """Enough distinct pairs that >= 379 remain after filtering; also after a near-duplicate
    pass like the filter's (same answer, ROUGE-L >= 0.7 to one kept earlier)."""
    distinct = {(c.question, c.expected) for c in seed_candidates}
    kept = [(r["question"], r["answer"]) for r in SEED10]
    for c in seed_candidates:
        if not any(a == c.expected and rouge_l_reference(q, c.question) >= 0.7 for q, a in kept):
            kept.append((c.question, c.expected))
    by_operator = Counter(c.operator for c in seed_candidates)
    print(
        f"\nseed10: {len(distinct)} distinct candidates {dict(by_operator)}; "
        f"{len(kept) - len(SEED10)} after a near-duplicate pass"
    )
    assert len(distinct) >= 420 and len(kept) - len(SEED10) >= 420


def test_the_pool_decides_what_is_new():
    graph = FactGraph.from_records(SEED10)
    first = propose(SEED10, graph, random.Random(0), 1, {"reword"}, None)
    grown = SEED10 + [
        {
            "id": pair_id(c.question, c.expected),
            "question": c.question,
            "answer": c.expected,
            "kind": c.kind,
            "facts": list(c.facts),
            "provenance": {"operator": c.operator},
        }
        for c in first[:100]
    ]
    second = propose(grown, graph, random.Random(0), 2, {"reword"}, None)
    assert {c.question for c in second} == {c.question for c in first[100:]}


def test_teacher_asks_only_what_the_graph_does_not_know(seed_candidates):
    graph = FactGraph.from_records(SEED10)
    assert all(c.expected is not None for c in seed_candidates)
    asked = propose(SEED10, graph, random.Random(0), 1, {"teacher"}, None)
    assert asked and all(c.expected is None and c.operator == "teacher" for c in asked)
    assert "What is the capital of Brazil?" in {c.question for c in asked}
    assert "What is the capital of Italy?" not in {c.question for c in asked}


# --- generic, math, noise ----------------------------------------------------------------------


def test_generic_rewordings_keep_the_answer():
    record = {
        "question": "Search log.txt for lines containing error, ignoring case.",
        "answer": "grep -i error log.txt",
    }
    out = {c.template: c for c in generic_candidates(record, "p", 0)}
    assert (
        out["generic/reorder"].question
        == "Ignoring case, search log.txt for lines containing error."
    )
    assert all(
        c.expected == record["answer"] and c.question != record["question"] for c in out.values()
    )
    synonym = generic_candidates(
        {"question": "List the files in the directory docs.", "answer": "ls docs"}, "p", 0
    )
    assert "Show the files in the folder docs." in {c.question for c in synonym}
    bash = _read(DATA / "bash100" / "train.jsonl")
    proposed = propose(
        bash, FactGraph.from_records(bash), random.Random(0), 1, TRAINING_OPERATORS, None
    )
    assert proposed and {c.operator for c in proposed} == {"generic"}


def test_math_operand_swap():
    swap = {"swap"}
    assert [
        c.question for c in math_candidates({"question": "18+31=", "answer": "49"}, "p", swap)
    ] == ["31+18="]
    assert math_candidates({"question": "18+31/31=", "answer": "19"}, "p", swap) == []
    assert math_candidates({"question": "96-35=", "answer": "61"}, "p", swap) == []
    (c,) = math_candidates({"question": "4*5*6=", "answer": "120"}, "p", swap)
    assert c.question == "5*4*6=" and c.expected == "120" and c.operator == "swap"


def test_surface_variants_are_casual_forms():
    question = "What is the capital of Italy?"
    variants = surface_variants(question, random.Random(0), answer="Rome")
    assert (
        "what is the capital of italy?" in variants and "What is the capital of Italy" in variants
    )
    assert variants == surface_variants(question, random.Random(0), answer="Rome")
    typos = [
        v
        for v in variants
        if v.replace(" ", "").lower() != question.replace(" ", "").lower()
        and v.rstrip("?") != question.rstrip("?")
    ]
    assert typos and all("Italy" in v for v in typos)  # the typo hits "capital", never the answer


def test_pair_id_is_short_and_stable():
    assert pair_id("What is the capital of Italy?", "Rome") == pair_id(
        "What is the capital of Italy?", "Rome"
    )
    assert len(pair_id("q", "a")) == 10 and pair_id("q", "a") != pair_id("q", "b")


def test_operators_do_not_import_torch():
    source = ROOT / "src" / "ghost" / "distill"
    for name in ("pairs.py", "shapes.py", "operators.py"):
        tree = ast.parse((source / name).read_text(encoding="utf-8"))
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any(m.split(".")[0] == "torch" for m in imported), name
    code = "import sys, ghost.distill.operators; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "src")},
    )
    assert out.stdout.strip() == "False"


def test_budget_is_shared_equally_among_operators():
    from collections import Counter

    from ghost.distill.operators import _share_budget
    from ghost.distill.pairs import Candidate

    def cand(op, i):
        return Candidate(f"{op} {i}?", "x", op, "", "p", ("p",), "fact", ())

    pool = [cand("reword", i) for i in range(100)] + [cand("compose", i) for i in range(10)]
    pool += [cand("yesno", i) for i in range(50)]
    chosen = _share_budget(pool, 70, random.Random(0))
    counts = Counter(c.operator for c in chosen)
    assert counts == {"compose": 10, "reword": 30, "yesno": 30}
    assert chosen == [c for c in pool if c in chosen]  # original order kept
    assert _share_budget(pool, 70, random.Random(0)) == chosen  # seeded
