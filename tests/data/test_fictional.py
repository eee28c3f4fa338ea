"""Fictional facts: new entities the weights cannot know, disjoint between training and the
memory benchmark, with wordings the training never sees."""

import re

from ghost.data.builtin import load_builtin
from ghost.data.fictional import RELATIONS, counterfactual_edits, fictional_facts, pool_of


def entity_names(facts):
    names = set()
    for f in facts:
        names.update(re.findall(r"[A-Z][a-z]+", f.fact))
    return names


def test_training_and_benchmark_entities_never_meet():
    train = fictional_facts(600, seed=0, pool="train")
    bench = fictional_facts(300, seed=0, pool="bench", templates="all")
    assert all(
        pool_of(f.answer) == "train" for f in train if f.relation in ("capital", "birthplace")
    )
    common_words = {"The", "What", "Who", "People", "Which"}
    shared = (entity_names(train) & entity_names(bench)) - common_words
    # Only the fixed words of book titles and landmarks may repeat ("Silent", "Tower").
    assert all(not re.fullmatch(r"[A-Z][a-z]+", n) or n in fixed_words() for n in shared)


def fixed_words():
    from ghost.data import fictional

    return set(fictional.BOOK_ADJECTIVES + fictional.BOOK_NOUNS + fictional.LANDMARKS)


def test_facts_are_deterministic_distinct_and_state_their_answer_once():
    facts = fictional_facts(300, seed=3)
    assert facts == fictional_facts(300, seed=3) and facts != fictional_facts(300, seed=4)
    assert len({f.question for f in facts}) == len(facts)
    for f in facts:
        assert f.fact.count(f.answer) == 1 and f.answer not in f.question


def test_heldout_wordings_and_relations_never_appear_in_training_facts():
    train = fictional_facts(500, seed=0)
    heldout = fictional_facts(200, seed=0, pool="bench", templates="heldout")
    assert {f.template for f in train} == {"train"} and {f.template for f in heldout} == {"heldout"}
    assert "animal" not in {f.relation for f in train} and "animal" in {f.relation for f in heldout}
    trained = {wording for wordings, _ in RELATIONS.values() for wording in wordings}
    held = {pair for _, pair in RELATIONS.values() if pair}
    assert not {w for pair in held for w in pair} & {w for pair in trained for w in pair}
    prefixes = {q.split("{e}")[0] for _, q in trained}
    assert not any(h.question.startswith(p) and p for h in heldout for p in prefixes if len(p) > 12)
    # Several training wordings per relation, some with the value before the end.
    assert all(len(wordings) >= 3 for r, (wordings, _) in RELATIONS.items() if r != "animal")
    assert any(not f.fact.endswith(f"{f.answer}.") for f in train)


def test_names_are_not_words_of_the_real_facts():
    real = " ".join(r["question"] + " " + r["answer"] for r in load_builtin("facts200:train"))
    real_words = {w.lower() for w in re.findall(r"[A-Za-z]+", real)}
    for f in fictional_facts(300, seed=1):
        assert f.answer.lower() not in real_words or f.relation == "year"


def test_counterfactual_edits_change_the_answer_and_say_it():
    records = load_builtin("facts200:train")
    edits = counterfactual_edits(records, seed=0)
    originals = {r["question"]: r["answer"] for r in records}
    assert len(edits) >= 100
    for e in edits:
        assert e.answer != originals[e.question] and e.answer in e.fact
