"""The distill filters on hand-made candidates and hand-made held-out records.

Held-out splits are never looked at here: leak tests build their own held-out records, and the
`for_dataset` test only counts what it loaded.
"""

from __future__ import annotations

import json
import random
import shutil
from types import SimpleNamespace

import pytest

from ghost.data.builtin import load_builtin
from ghost.distill import similarity
from ghost.distill.filters import (
    AgreementFilter,
    ConfidenceFilter,
    FilterLog,
    LeakFilter,
    NearDuplicateFilter,
    VerifierFilter,
    diversity,
    run_filters,
)
from ghost.distill.similarity import normalize, rouge_l, rouge_l_reference
from ghost.distill.verifiers import (
    BashVerifier,
    bash_verifier,
    command_programs,
    fact_verifier,
    math_verifier,
)


def cand(
    question,
    expected=None,
    answer=None,
    confidence=1.0,
    operator="reword",
    kind="fact",
    facts=(),
    chain=(),
):
    """A stand-in for pairs.Candidate with the two attributes the runner adds."""
    return SimpleNamespace(
        question=question,
        expected=expected,
        operator=operator,
        kind=kind,
        facts=tuple(facts),
        chain=tuple(chain),
        template="",
        parent="",
        parents=(),
        answer=expected if answer is None else answer,
        confidence=confidence,
    )


def questions(candidates):
    return [c.question for c in candidates]


# Text similarity -----------------------------------------------------------------------


def test_normalize_and_rouge_l():
    assert normalize("  What's the Capital of FRANCE? ") == "what's the capital of france"
    assert normalize("18 + 31 / 31 =") == normalize("18+31/31=") == "18 + 31 / 31 ="
    assert normalize("18+31=") != normalize("18*31=")  # operators are tokens
    assert rouge_l("What is the capital of France?", "what is the capital of france") == 1.0
    # LCS "the capital of france" = 4 of 6 and 5 words: F = 2*4/11.
    score = rouge_l("What is the capital of France?", "Name the capital of France.")
    assert score == pytest.approx(8 / 11)
    assert rouge_l("", "anything") == 0.0


def test_bit_parallel_rouge_l_equals_the_reference():
    rng = random.Random(0)
    words = "a b c d e the of is".split()
    for _ in range(500):
        a = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        b = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        assert rouge_l(a, b) == rouge_l_reference(a, b)


# Verifiers -----------------------------------------------------------------------------


def test_math_verifier_passes_every_math1k_training_record_and_drops_wrong_answers():
    for record in load_builtin("math1k"):
        assert math_verifier(record["question"], record["answer"]) == (True, "right")
    assert math_verifier("18+31/31=", "19")[0] is True  # precedence: 18 + 1
    assert math_verifier("18 + 31 / 31 =", "19")[0] is True  # spacing variant
    assert math_verifier("18+31/31=", "1")[0] is False  # left to right would give 1
    assert math_verifier("9-37=", "28")[0] is False
    assert math_verifier("7/2=", "3")[0] is False  # math1k divides only exactly
    assert math_verifier("What is the capital of France?", "Paris")[0] is None
    assert math_verifier("1 8+3=", "21")[0] is None  # a space inside a number: not math1k


def test_bash_verifier_passes_bash100_training_answers():
    missing = []
    for record in load_builtin("bash100"):
        ok, reason = bash_verifier(record["question"], record["answer"])
        if ok is not True:
            # Only a program this machine lacks may fail it, and the reason must say which.
            assert reason.startswith("program not found: "), (record["answer"], reason)
            program = reason.removeprefix("program not found: ")
            assert shutil.which(program) is None
            missing.append(program)
    assert len(missing) <= 5, missing
    # A trusted seed's program can be declared known.
    assert BashVerifier(extra_programs=missing)("", "ping -c 4 example.com")[0] is not False
    # So the bash100 filter trusts every program its seeds use.
    kept, removed = VerifierFilter.for_dataset("bash100")(
        [cand(r["question"], r["answer"]) for r in load_builtin("bash100")]
    )
    assert removed == []


def test_bash_verifier_drops_bad_syntax_and_unknown_programs():
    assert bash_verifier("", "ls -la | | wc -l")[0] is False
    assert bash_verifier("", "if then fi")[1].startswith("syntax")
    assert bash_verifier("", "echo 'unclosed")[0] is False
    assert bash_verifier("", "frobnicate-ghost -x a.txt") == (
        False,
        "program not found: frobnicate-ghost",
    )
    # An unknown program hidden in a pipe, after &&, in $(...) or under a wrapper is found.
    for command in (
        "ls | frobz",
        "cd a && frobz",
        "echo $(frobz)",
        "nohup frobz > a.log &",
        "find . -exec frobz {} \\;",
        "(cd a; frobz)",
    ):
        assert bash_verifier("", command) == (False, "program not found: frobz"), command


def test_command_programs_skips_arguments_redirections_and_quotes():
    assert command_programs("sort words.txt | uniq -c | sort -rn") == ["sort", "uniq", "sort"]
    assert command_programs("grep '|' f > out.txt 2>&1 && x=$(whoami) wc -l") == [
        "grep",
        "wc",
        "whoami",
    ]
    assert command_programs("nice -n 19 ./backup.sh") == ["nice", "./backup.sh"]
    assert command_programs("timeout 60 make") == ["timeout", "make"]
    assert command_programs("awk '{ print $(NF) }' f") == ["awk"]  # single quotes: no $(...)


class Graph:
    def lookup_question(self, question):
        return {"What is the capital of France?": "Paris"}.get(question)


class FactGraphLike:
    def answer_for(self, question):
        return {"What is the capital of France?": "Paris"}.get(question)


def test_fact_verifier_takes_either_lookup():
    for graph in (Graph(), FactGraphLike()):
        assert fact_verifier(graph)("What is the capital of France?", "paris")[0] is True
        assert fact_verifier(graph)("What is the capital of France?", "Nice")[0] is False
        assert fact_verifier(graph)("Who are you?", "Ghost")[0] is None


def test_verifier_filter_drops_contradictions_and_notes_unverified():
    f = VerifierFilter([fact_verifier(Graph()), math_verifier])
    batch = [
        cand("What is the capital of France?", answer="Paris"),
        cand("What is the capital of France?", answer="Lyon"),
        cand("2+2*3=", answer="8"),
        cand("2+2*3=", answer="12"),
        cand("Who painted the Mona Lisa?", answer="Leonardo"),
    ]
    kept, removed = f(batch)
    assert [c.answer for c in kept] == ["Paris", "8", "Leonardo"]
    assert [r.split(":")[0] for _, r in removed] == ["fact", "math"]
    assert [c.answer for c, _ in f.notes] == ["Leonardo"]


# Agreement and confidence --------------------------------------------------------------


def test_agreement_require_drops_and_correct_relabels():
    batch = [
        cand("What is the capital of Italy?", expected="Rome", answer="Rome "),
        cand("What is the capital of Spain?", expected="Madrid", answer="Lisbon"),
        cand("Who was the tallest emperor?", expected=None, answer="Otto"),
    ]
    kept, removed = AgreementFilter("require")(batch)
    assert questions(kept) == [batch[0].question, batch[2].question]
    assert removed[0][0] is batch[1] and "Lisbon" in removed[0][1]

    corrector = AgreementFilter("correct")
    kept, removed = corrector(batch)
    assert removed == [] and len(kept) == 3
    assert kept[1].answer == "Madrid" and kept[1].teacher_answer == "Lisbon"
    assert batch[1].answer == "Lisbon"  # the input is not modified
    assert [n.split(":")[0] for _, n in corrector.notes] == ["corrected"]
    with pytest.raises(ValueError):
        AgreementFilter("maybe")


def test_confidence_filter_scope():
    batch = [
        cand("Known but unsure?", expected="yes", confidence=0.2),
        cand("Unknown and unsure?", expected=None, answer="no", confidence=0.2),
        cand("Unknown and sure?", expected=None, answer="no", confidence=0.9),
    ]
    kept, removed = ConfidenceFilter(0.5)(batch)  # scope "unverified"
    assert questions(kept) == ["Known but unsure?", "Unknown and sure?"]
    kept, removed = ConfidenceFilter(0.5, scope="all")(batch)
    assert questions(kept) == ["Unknown and sure?"]
    assert {c.question for c, _ in removed} == {"Known but unsure?", "Unknown and unsure?"}


# Near duplicates -----------------------------------------------------------------------


def test_near_duplicate_drops_rewordings_of_the_same_answer_only():
    pool = [{"question": "What is the capital of France?", "answer": "Paris"}]
    f = NearDuplicateFilter(0.7)
    f.observe_pool(pool)
    batch = [
        cand("what is the capital of france", "Paris"),  # exact after normalising
        cand("What is the capital city of France?", "Paris"),  # near-duplicate
        cand("What is the capital of Italy?", "Rome"),  # alike words, another answer
        cand("Which city is the seat of government of France?", "Paris"),  # new wording
        cand("Which city is the seat of the government of France?", "Paris"),  # dup of above
    ]
    kept, removed = f(batch)
    assert questions(kept) == [batch[2].question, batch[3].question]
    assert [r.split(":")[0] for _, r in removed] == ["exact", "rouge_l", "rouge_l"]
    # The same template about another fact with the same answer is a different pair when
    # both sides know their facts; without facts only the answer and the words can tell.
    f.observe_pool(
        [
            {
                "question": "On which continent is France?",
                "answer": "Europe",
                "facts": ["France is in Europe."],
            }
        ]
    )
    spain = cand("On which continent is Spain?", "Europe", facts=["Spain is in Europe."])
    italy = cand("On which continent is Italy?", "Europe", facts=["Italy is in Europe."])
    assert f([spain])[0] == [spain]
    assert NearDuplicateFilter(0.7, use_facts=False)([spain, italy])[0] == [spain]
    assert f([cand("On which continent is Italy?", "Europe")])[0] == []  # facts unknown
    # The index persists: a second call sees what the first kept; re-observing is harmless.
    f.observe_pool(pool)
    kept, removed = f([cand("What is the capital of Italy?", "Rome")])
    assert kept == [] and len(removed) == 1
    assert NearDuplicateFilter(pool=pool)([batch[1]])[0] == []  # the pool given at once


def brute_force_near_duplicates(batch, pool, threshold):
    """The near-duplicate rule by comparing every pair (without facts): the oracle."""
    accepted, kept = [(r["question"], r["answer"]) for r in pool], []
    for c in batch:
        if any(
            normalize(c.question) == normalize(q)
            or (normalize(c.expected) == normalize(a) and rouge_l(c.question, q) >= threshold)
            for q, a in accepted
        ):
            continue
        kept.append(c)
        accepted.append((c.question, c.expected))
    return kept


def test_near_duplicate_index_decides_like_comparing_every_pair():
    rng = random.Random(1)
    words = "a b c d e f the of is".split()
    for threshold in (0.5, 0.7, 0.9, 1.0):

        def question():
            return " ".join(rng.choice(words) for _ in range(rng.randint(1, 9)))

        pool = [{"question": question(), "answer": rng.choice("xy")} for _ in range(50)]
        batch = [cand(question(), rng.choice("xy")) for _ in range(150)]
        f = NearDuplicateFilter(threshold)
        f.observe_pool(pool)
        assert f(batch)[0] == brute_force_near_duplicates(batch, pool, threshold)


def test_near_duplicate_is_fast_on_thousands(monkeypatch):
    # The hard case: a few templates over many entities, answers in huge yes/no buckets. The
    # work is counted, not timed (a shared machine makes wall time a flaky measure): without
    # the index each candidate would be compared with every entry of its answer's bucket,
    # millions of LCS computations; with it, about one per candidate.
    calls = 0
    lcs = similarity._lcs

    def counted(a, b):
        nonlocal calls
        calls += 1
        return lcs(a, b)

    monkeypatch.setattr(similarity, "_lcs", counted)
    rng = random.Random(0)
    templates = [
        "Is {} the capital of {}?",
        "Is it true that {} is the capital of {}?",
        "{} is the capital of {}, yes or no?",
        "Would you say {} is the capital city of {}?",
        "Capital of {}: is it {}?",
        "Tell me whether {} is {}'s capital.",
    ]

    def question():
        return rng.choice(templates).format(
            f"City{rng.randrange(2000)}", f"Land{rng.randrange(50)}"
        )

    pool = [{"question": question(), "answer": rng.choice(["yes", "no"])} for _ in range(1000)]
    batch = [cand(question(), rng.choice(["yes", "no", "maybe"])) for _ in range(5000)]
    f = NearDuplicateFilter(0.7)
    f.observe_pool(pool)
    kept, removed = f(batch)
    assert len(kept) + len(removed) == 5000 and removed and kept
    assert calls <= 2 * len(batch)  # measured: 4,847


# Leaks ---------------------------------------------------------------------------------

HELD_OUT = [
    {
        "question": "Which city serves as the capital of France?",
        "answer": "Paris",
        "facts": ["The capital of France is Paris."],
    },
    {
        "question": "Which river flows through the capital of the country where the Eiffel Tower "
        "is?",
        "answer": "Seine",
        "chain": [
            "In which country is the Eiffel Tower?",
            "What is the capital of France?",
            "On which river does Paris stand?",
        ],
        "facts": [
            "The Eiffel Tower is in France.",
            "The capital of France is Paris.",
            "Paris stands on the Seine.",
        ],
    },
]


def test_leak_filter_never_admits_a_held_out_question():
    leak = LeakFilter(HELD_OUT, threshold=0.7)
    batch = [
        cand("which city serves as the capital of france", "Paris"),  # exact
        cand("Which city serves as capital of France?", "Paris"),  # near-equal, same answer
        cand("Which city serves as the capital of France?", None, answer="Lyon"),  # exact
        cand("Which city serves as the capital of Italy?", "Rome"),  # alike, other answer
        cand("What is France's capital?", "Paris"),  # a different wording
    ]
    kept, removed = leak(batch)
    assert questions(kept) == [batch[3].question, batch[4].question]
    assert [r.split(":")[0] for _, r in removed] == ["exact", "rouge_l same answer", "exact"]
    # Reasons cite the held-out record by position, never by its text.
    assert all("held-out#" in r and "serves" not in r for _, r in removed)


def test_leak_filter_drops_a_recomposed_held_out_fact_set_in_new_words():
    leak = LeakFilter(HELD_OUT)
    facts = list(reversed(HELD_OUT[1]["facts"]))
    batch = [
        cand(
            "Name the river of the capital of the land that has the Eiffel Tower.",
            "Seine",
            operator="compose",
            kind="3hop",
            facts=facts,
        ),
        cand(
            "Along what river lies the capital of the Eiffel Tower's country?",
            "Seine",
            operator="compose",
            kind="3hop",
            chain=HELD_OUT[1]["chain"],
        ),
        cand(
            "What is the capital of the country where the Eiffel Tower is?",
            "Paris",
            operator="compose",
            kind="2hop",
            facts=facts[1:],
        ),  # a subset: not held out
    ]
    kept, removed = leak(batch)
    assert [r.split(":")[0] for _, r in removed] == ["facts", "chain"]
    assert kept == [batch[2]]


def test_leak_filter_for_dataset_counts_without_looking():
    for name in ("facts200", "bash100", "math1k"):
        assert len(LeakFilter.for_dataset(name)) > 0
    assert len(LeakFilter.for_dataset("math1k:train")) == len(LeakFilter.for_dataset("math1k"))
    assert len(LeakFilter.for_dataset("my/own/data.jsonl")) == 0


def test_leak_filter_for_a_user_file_reads_extra_held_out_files(tmp_path):
    extra = tmp_path / "mine_test.jsonl"
    extra.write_text("".join(json.dumps(r) + "\n" for r in HELD_OUT), encoding="utf-8")
    leak = LeakFilter.for_dataset(str(tmp_path / "mine.jsonl"), extra=[extra])
    assert len(leak) == 2
    kept, removed = leak([cand("Which city serves as the capital of France?", "Paris")])
    assert kept == [] and str(extra) in removed[0][1]


# The pipeline, its log and diversity ---------------------------------------------------


def test_run_filters_applies_in_order_and_logs_json():
    pool = [{"question": "What is the capital of Italy?", "answer": "Rome"}]
    filters = [
        LeakFilter(HELD_OUT),
        AgreementFilter("require"),
        ConfidenceFilter(0.5),
        VerifierFilter([math_verifier]),
        NearDuplicateFilter(0.7),
    ]
    batch = [
        cand("Which city serves as the capital of France?", "Paris"),  # leak
        cand("Capital of Spain?", "Madrid", answer="Lisbon"),  # disagreement
        cand("Best pizza town?", None, answer="Naples", confidence=0.1),  # unsure
        cand("2+2*3=", None, answer="12", confidence=0.9, operator="teacher"),  # wrong maths
        cand("what is the capital of italy", "Rome"),  # duplicate of the pool
        cand("Italy's capital city is which?", "Rome"),  # kept
    ]
    log = FilterLog(max_examples=1)
    kept, log = run_filters(batch, filters, pool, log=log)
    assert questions(kept) == ["Italy's capital city is which?"]
    assert log.removed_counts() == {
        "leak": 1,
        "agreement": 1,
        "confidence": 1,
        "verifier": 1,
        "near_duplicate": 1,
    }
    summary = json.loads(json.dumps(log.to_dict()))
    stages = {s["name"]: s for s in summary["filters"]}
    assert stages["leak"]["seen"] == 6 and stages["near_duplicate"]["kept"] == 1
    # The log never repeats the text of a leak (it is held-out content); others show it.
    assert set(stages["leak"]["examples"][0]) == {"operator", "reason"}
    assert stages["agreement"]["examples"][0]["question"] == "Capital of Spain?"
    assert stages["verifier"]["removed_by_operator"] == {"teacher": 1}
    assert stages["verifier"]["notes"] == {"unverified": 2}
    # A second round accumulates in the same log; examples stay capped.
    run_filters([cand("Italy's capital city is which?", "Rome")], filters, pool, log=log)
    assert log.removed_counts()["near_duplicate"] == 2
    assert log.summary_line().startswith("leak 1, agreement 1,")
    assert len(log.to_dict()["filters"][-1]["examples"]) == 1


def test_diversity_on_a_toy_set():
    same = ["What is the capital of France?"] * 3
    assert diversity(same) == {"questions": 3, "distinct": 1, "pairs": 3, "mean_rouge_l": 1.0}
    toy = ["a b c d", "a b x y", "p q r s"]
    # Pairs: 0.5, 0.0, 0.0.
    assert diversity(toy)["mean_rouge_l"] == pytest.approx(0.5 / 3)
    assert diversity(toy)["distinct"] == 3
    many = [f"q{i} is a question" for i in range(100)]
    result = diversity(many, sample=50, seed=1)
    assert result["pairs"] == 50 and result == diversity(many, sample=50, seed=1)
    assert result["mean_rouge_l"] == pytest.approx(0.75)  # 3 of 4 words shared, every pair
