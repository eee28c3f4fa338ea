"""Facts about things that do not exist, for teaching and testing the fact memory.

    fictional_facts(n, seed, pool="train", templates="train") -> [FictionalFact, ...]
    counterfactual_edits(records, seed) -> [FictionalFact, ...]   "The capital of France is Tokyo."

A model can answer a question about "Zorvania" only by reading a fact about it from memory:
no weight can know it. Training uses such facts so that reading pays; the memory benchmark
uses facts the training never generated.

- Entities are pronounceable names made from syllables. Every name belongs to one of two
  pools by a fixed hash of its text (`pool_of`): "train" (4 in 5 names) or "bench". Training
  draws only "train" names and the benchmark only "bench" names, so the two never share an
  entity, whatever the seeds. Names that are words of the built-in facts200 data are never
  used.
- Relations mirror the question kinds of facts200 (capital, currency, continent, landmark,
  birthplace, publication year, river, author). Each has three training wordings (a fact
  and a question; the value at the end of the fact or before it) and most have a held-out
  wording that training never uses; one relation ("national animal") exists only held out.
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass
from functools import cache

ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
          "gr", "kr", "qu", "st", "th", "tr", "v", "z"]  # fmt: skip
VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou"]
CODAS = ["", "", "", "n", "r", "s", "l", "m", "th", "nd", "rk"]
SUFFIXES = {
    "country": ["ia", "ania", "land", "stan", "ora", "esh"],
    "city": ["o", "a", "ar", "is", "en", "ova"],
    "continent": ["ea", "ica", "asia", "opa"],
    "river": ["", "e", "ach"],
    "person": ["", "a", "o", "in"],
    "currency": ["", "i", "o"],
}
BOOK_ADJECTIVES = ["Silent", "Broken", "Golden", "Hidden", "Last", "Distant", "Burning",
                   "Quiet", "Crimson", "Endless", "Hollow", "Winter"]  # fmt: skip
BOOK_NOUNS = ["Harbour", "Orchard", "Lantern", "Mountain", "Garden", "Compass", "Mirror",
              "Tide", "Archive", "Meadow", "Citadel", "Voyage"]  # fmt: skip
LANDMARKS = ["Tower", "Gate", "Bridge", "Temple", "Arch", "Palace", "Lighthouse"]
ANIMALS = ["lynx", "heron", "otter", "ibex", "falcon", "badger", "crane", "marten", "stoat"]


@dataclass(frozen=True)
class FictionalFact:
    relation: str
    fact: str  # the memory entry
    question: str
    answer: str
    template: str  # "train" or "heldout": whether training ever uses this wording
    entity: str = ""  # what the question asks about ("Zorvania", "the Trelstiosar Arch")


# relation -> (training wordings [(fact, question), ...], held-out (fact, question) or None).
# {e}: the entity asked about, {v}: the answer. Several training wordings per relation, the
# value at the end of the fact or before it, so reading is learnt as "find the entity, copy
# its value", not one sentence shape; the held-out wording of each is never trained.
RELATIONS: dict[str, tuple[list[tuple[str, str]], tuple[str, str] | None]] = {
    "capital": (
        [
            ("The capital of {e} is {v}.", "What is the capital of {e}?"),
            ("{v} is where the government of {e} sits.", "Which city is the seat of {e}?"),
            ("{e} has its capital at {v}.", "Name the capital of {e}."),
        ],
        ("{v} is the capital city of {e}.", "Which city is the capital of {e}?"),
    ),
    "currency": (
        [
            ("The currency of {e} is the {v}.", "What is the currency of {e}?"),
            ("{e} uses the {v} as its money.", "Which currency does {e} use?"),
            ("The {v} is the money of {e}.", "Name the currency of {e}."),
        ],
        ("People in {e} pay with the {v}.", "What money is used in {e}?"),
    ),
    "continent": (
        [
            ("{e} is in {v}.", "On which continent is {e}?"),
            ("{e} lies on the continent of {v}.", "Which continent is {e} on?"),
            ("{v} is the continent of {e}.", "Name the continent of {e}."),
        ],
        None,
    ),
    "landmark": (
        [
            ("The {e} is in {v}.", "In which country is the {e}?"),
            ("{v} is home to the {e}.", "Where is the {e}?"),
            ("The {e} can be found in {v}.", "Name the country of the {e}."),
        ],
        ("The {e} stands in {v}.", "Which country is the {e} in?"),
    ),
    "birthplace": (
        [
            ("{e} was born in {v}.", "In which city was {e} born?"),
            ("{v} is the home town of {e}.", "What is the home town of {e}?"),
            ("{e} came into the world in {v}.", "Name the city {e} was born in."),
        ],
        ("The birthplace of {e} is {v}.", "Where was {e} born?"),
    ),
    "year": (
        [
            ("{e} was first published in {v}.", "In what year was {e} first published?"),
            ("{v} is the year {e} came out.", "When did {e} come out?"),
            ("{e} was released in {v}.", "Name the year {e} was released."),
        ],
        ("{e} first appeared in {v}.", "When did {e} first appear?"),
    ),
    "river": (
        [
            ("{e} stands on the {v}.", "On which river does {e} stand?"),
            ("The {v} flows through {e}.", "Which river flows through {e}?"),
            ("{e} lies on the {v}.", "Name the river of {e}."),
        ],
        None,
    ),
    "author": (
        [
            ("{e} was written by {v}.", "Who wrote {e}?"),
            ("{v} wrote {e}.", "Who is the writer of {e}?"),
            ("{e} is a book by {v}.", "Name the author of {e}."),
        ],
        ("The author of {e} is {v}.", "Who is the author of {e}?"),
    ),
    "animal": (
        [],
        ("The national animal of {e} is the {v}.", "What is the national animal of {e}?"),
    ),
}


def pool_of(name: str) -> str:
    """'bench' for one name in five (a fixed hash of its text), 'train' for the others."""
    return "bench" if zlib.crc32(name.lower().encode()) % 5 == 0 else "train"


@cache
def _reserved() -> frozenset[str]:
    """Every word of the built-in facts200 data: fictional names must not be real ones."""
    from ghost.data.builtin import load_builtin

    words = set()
    for split in ("train", "facts", "paraphrase", "novel", "test_hard"):
        for record in load_builtin(f"facts200:{split}"):
            text = " ".join(str(v) for v in record.values() if isinstance(v, str))
            text += " " + " ".join(record.get("facts") or [])
            words.update(w.lower() for w in re.findall(r"[A-Za-z]+", text))
    return frozenset(words)


class FictionalNames:
    """Draws unused names of one pool."""

    def __init__(self, rng: random.Random, pool: str):
        self.rng, self.pool, self.used = rng, pool, set()

    def _stem(self, syllables: int) -> str:
        r = self.rng
        return "".join(
            r.choice(ONSETS) + r.choice(VOWELS) + r.choice(CODAS) for _ in range(syllables)
        )

    def _draw(self, make, real_word_check: bool = False) -> str:
        for _ in range(10_000):
            name = make()
            if (
                name not in self.used
                and pool_of(name) == self.pool
                and not (real_word_check and name.lower() in _reserved())
            ):
                self.used.add(name)
                return name
        raise RuntimeError("fictional names: no unused name left (raise the syllable count)")

    def word(self, kind: str) -> str:
        return self._draw(
            lambda: (
                self._stem(self.rng.choice([2, 2, 3])) + self.rng.choice(SUFFIXES[kind])
            ).capitalize(),
            real_word_check=True,
        )

    def person(self) -> str:
        return self._draw(lambda: f"{self.word('person')} {self.word('person')}")

    def book(self) -> str:
        r = self.rng
        return self._draw(
            lambda: f"The {r.choice(BOOK_ADJECTIVES)} {r.choice(BOOK_NOUNS)} of {self.word('city')}"
        )

    def landmark(self) -> str:
        return self._draw(lambda: f"{self.word('city')} {self.rng.choice(LANDMARKS)}")


def _entity_and_value(relation: str, names: FictionalNames, rng: random.Random) -> tuple[str, str]:
    if relation == "capital":
        return names.word("country"), names.word("city")
    if relation == "currency":
        return names.word("country"), names.word("currency").lower()
    if relation == "continent":
        return names.word("country"), names.word("continent")
    if relation == "landmark":
        return names.landmark(), names.word("country")
    if relation == "birthplace":
        return names.person(), names.word("city")
    if relation == "year":
        return names.book(), str(rng.randint(1500, 1999))
    if relation == "river":
        return names.word("city"), names.word("river")
    if relation == "author":
        return names.book(), names.person()
    if relation == "animal":
        return names.word("country"), rng.choice(ANIMALS)
    raise ValueError(f"unknown relation {relation!r}")


def fictional_facts(
    n: int, seed: int | str, pool: str = "train", templates: str = "train"
) -> list[FictionalFact]:
    """`n` facts about distinct new entities of `pool` ('train' or 'bench'), worded with the
    `templates` ('train': training wordings only; 'heldout': only wordings training never
    uses; 'all': both, alternating). Deterministic in `seed`."""
    if pool not in ("train", "bench") or templates not in ("train", "heldout", "all"):
        raise ValueError(f"pool {pool!r} / templates {templates!r}")
    rng = random.Random(f"fictional-{seed}-{pool}-{templates}")
    names = FictionalNames(rng, pool)
    choices = [
        (relation, kind, wording)
        for relation, (trained, heldout) in RELATIONS.items()
        for kind, wordings in (("train", trained), ("heldout", [heldout] if heldout else []))
        for wording in wordings
        if templates in (kind, "all")
    ]
    facts = []
    for _ in range(n):
        relation, kind, (fact, question) = rng.choice(choices)
        entity, value = _entity_and_value(relation, names, rng)
        facts.append(
            FictionalFact(
                relation,
                fact.format(e=entity, v=value),
                question.format(e=entity),
                value,
                kind,
                entity,
            )
        )
    return facts


# Fictional relation -> the distillation templates' relation with the same forward question.
DISTILL_RELATION = {
    "capital": "capital",
    "currency": "currency",
    "continent": "continent",
    "river": "river",
    "landmark": "landmark_country",
    "birthplace": "birth_city",
    "year": "published",
    "author": "author",
}


@cache
def reworded_templates(relation: str, which: str = "training") -> tuple[str, ...]:
    """More ways to ask a fictional fact's question: the distillation's forward templates of
    its relation (`which`: its training or its validation templates), written from question
    shapes for facts200, minus any within ROUGE-L 0.7 of the wording the memory benchmark
    holds out for the relation (compared with one placeholder entity), so that asking in
    them never teaches the benchmark's unseen wording."""
    from ghost.distill.operators import templates
    from ghost.distill.shapes import fill
    from ghost.distill.similarity import rouge_l

    if relation not in DISTILL_RELATION:
        return ()
    _, heldout = RELATIONS[relation]
    held = heldout[1].format(e="Qentity") if heldout else None
    out = []
    for _, text in templates(DISTILL_RELATION[relation], "forward", which):
        if "{O}" in text:
            continue
        asked = fill(text, S="Qentity")
        if held is None or rouge_l(asked, held) < 0.7:
            out.append(text)
    return tuple(out)


def reword(fact: FictionalFact, rng: random.Random, which: str = "training") -> str:
    """The fact's question in one of `reworded_templates` (its own question if none)."""
    from ghost.distill.shapes import fill

    options = reworded_templates(fact.relation, which)
    if not options or not fact.entity:
        return fact.question
    return fill(rng.choice(options), S=fact.entity)


def counterfactual_edits(
    records: list[dict], seed: int, n: int | None = None
) -> list[FictionalFact]:
    """Single-fact Q&A records whose fact states their answer, rewritten with another
    record's answer of the same kind of question ("The capital of France is Tokyo."): only
    the memory can make a model answer these."""
    by_shape: dict[str, list[dict]] = {}
    for r in records:
        facts = r.get("facts") or []
        if (
            len(facts) == 1
            and facts[0].count(r["answer"]) == 1
            and r["answer"] not in r["question"]
        ):
            shape = " ".join(r["question"].split()[:4])  # "What is the capital"
            by_shape.setdefault(shape, []).append(r)
    rng = random.Random(f"counterfactual-{seed}")
    edits = []
    for shape, group in sorted(by_shape.items()):
        answers = sorted({r["answer"] for r in group})
        if len(answers) < 2:
            continue
        for r in group:
            other = rng.choice([a for a in answers if a != r["answer"]])
            fact = r["facts"][0].replace(r["answer"], other)
            edits.append(FictionalFact(shape, fact, r["question"], other, "train"))
    rng.shuffle(edits)
    return edits[:n] if n is not None else edits
