"""Operators: new questions, with answers known by construction, from the facts of a pool.

    propose(pool, graph, rng, round_index, operators, budget) -> [Candidate]

Each operator turns what the pool already states into questions the pool does not have:

    reword    a fact asked forwards in another wording   "Which city is the capital of Italy?"
    invert    a one-to-one fact asked backwards          "Which country has Rome as its capital?"
    yesno     a fact, or a provably false variant        "Is Ottawa the capital of Italy?" -> no
    cloze     the fact as a sentence to complete         "Italy's capital city is ___."
    compose   two or three facts chained through bridge phrases ("the country where X is")
    generic   shapes the graph does not know (bash, user files): polite prefixes and
              suffixes, synonyms, clause order
    swap      math1k: the operands of + and * swapped (same answer)
    teacher   entity x relation pairs no fact states: expected None, only the teacher answers

Templates are data (the tables at the end of this file), written from the question shapes of
the training splits only. Each has a stable id "relation/<form><NN>" (f forward, i inverse,
y yes/no, c cloze, m composition); every fifth of each list (NN = 4, 9, 14, ...) is kept back
for validation: `propose` never emits it, `validation_candidates` emits only those.
The filled templates of one fact are pairwise below 0.7 word-level ROUGE-L (the near-duplicate
threshold), so they are different pairs, not one pair five times (tested on the seed10 facts
and the shortest-named fact of each relation; long names such as "One Hundred Years of
Solitude" raise the overlap, and the near-duplicate filter then keeps fewer of them).

`surface_variants` (noise: case, a dropped "?", one typo, spacing) makes near-duplicates on
purpose; it is offered for training-time augmentation, not as pairs.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

from ghost.distill.pairs import Candidate, pair_id
from ghost.distill.shapes import RELATIONS, FactGraph, Triple, fill

FORM_LETTERS = {"forward": "f", "inverse": "i", "yesno": "y", "cloze": "c", "compose": "m"}
VALIDATION_EVERY = 5  # template NN with NN % 5 == 4 is validation-only (a fixed 20%)
TEACHER_TEMPLATES = 2  # wordings per unknown (entity, relation), besides the canonical one


# --- template ids -------------------------------------------------------------------------


def template_id(relation: str, form: str, index: int) -> str:
    return f"{relation}/{FORM_LETTERS[form]}{index:02d}"


def is_validation_template(template: str) -> bool:
    """True for the templates reserved for validation (never used to make training pairs)."""
    _, _, tail = template.rpartition("/")
    if len(tail) != 3 or tail[0] not in FORM_LETTERS.values() or not tail[1:].isdigit():
        return False
    return int(tail[1:]) % VALIDATION_EVERY == VALIDATION_EVERY - 1


def templates(relation: str, form: str, which: str = "training") -> list[tuple[str, str]]:
    """(id, text) of one relation's templates of one form; which: training|validation|all."""
    texts = (
        COMPOSE.get(relation, [])
        if form == "compose"
        else TEMPLATES.get(relation, {}).get(form, [])
    )
    out = []
    for i, text in enumerate(texts):
        tid = template_id(relation, form, i)
        held = is_validation_template(tid)
        if which == "all" or (which == "validation") == held:
            out.append((tid, text))
    return out


# --- one fact: reword, invert, yes/no, cloze ----------------------------------------------


def fact_candidates(
    graph: FactGraph, triple: Triple, parent: str, operators: set[str], which: str = "training"
) -> list[Candidate]:
    """Every question the one-fact operators make from one triple."""
    rel = RELATIONS[triple.relation]
    s, o = graph.phrase(triple.subject), graph.phrase(triple.object)
    forward_fact = (graph.sentence(triple),)

    def make(question, expected, operator, tid, kind, facts):
        return Candidate(question, expected, operator, tid, parent, (parent,), kind, facts)

    out = []
    if "reword" in operators:
        for tid, text in templates(rel.name, "forward", which):
            out.append(
                make(
                    fill(text, s, o),
                    graph.answer_text(triple.object),
                    "reword",
                    tid,
                    "fact",
                    forward_fact,
                )
            )
    if "invert" in operators and graph.inverse_lookup(rel.name, triple.object) == triple.subject:
        inverse_fact = (graph.sentence(triple, inverse=True),)
        for tid, text in templates(rel.name, "inverse", which):
            out.append(
                make(
                    fill(text, s, o),
                    graph.answer_text(triple.subject),
                    "invert",
                    tid,
                    "fact",
                    inverse_fact,
                )
            )
    if "cloze" in operators:
        for tid, text in templates(rel.name, "cloze", which):
            out.append(
                make(
                    fill(text, s, o),
                    graph.answer_text(triple.object),
                    "cloze",
                    tid,
                    "cloze",
                    forward_fact,
                )
            )
    if "yesno" in operators:
        wrong = false_variants(graph, triple)
        for j, (tid, text) in enumerate(templates(rel.name, "yesno", which)):
            out.append(make(fill(text, s, o), "yes", "yesno", tid, "yesno", forward_fact))
            if (
                wrong
            ):  # one wrong variant per template: two "no"s differing in one name are one pair
                ws, wo = wrong[j % len(wrong)]
                out.append(
                    make(
                        fill(text, graph.phrase(ws), graph.phrase(wo)),
                        "no",
                        "yesno",
                        tid,
                        "yesno",
                        forward_fact,
                    )
                )
    return out


def false_variants(graph: FactGraph, triple: Triple) -> list[tuple[str, str]]:
    """(subject, object) pairs the triple proves false, from entities of the right types.

    A functional relation gives each subject one object, so (S, O') is false for any other
    O' of the object's type; a one-to-one relation gives each object one subject, so
    (S', O) is false too. Alternated, so that the "no" questions vary in both slots.
    """
    rel = RELATIONS[triple.relation]
    objects = [(triple.subject, x) for x in graph.entities(rel.object_type) if x != triple.object]
    subjects = [(x, triple.object) for x in graph.entities(rel.subject_type) if x != triple.subject]
    out = []
    for i in range(max(len(objects), len(subjects))):
        if rel.functional and i < len(objects):
            out.append(objects[i])
        if rel.one_to_one and i < len(subjects):
            out.append(subjects[i])
    return out


# --- composition --------------------------------------------------------------------------

# A hop is (relation, inverse): forwards it maps a subject to its object, backwards (only for
# relations with an inverse question) an object to its one subject.
Hop = tuple[str, bool]


def _step(graph: FactGraph, entity: str, hop: Hop) -> tuple[str, Triple] | None:
    relation, inverse = hop
    if inverse:
        subject = graph.inverse_lookup(relation, entity)
        return (subject, Triple(subject, relation, entity)) if subject is not None else None
    obj = graph.lookup(entity, relation)
    return (obj, Triple(entity, relation, obj)) if obj is not None else None


def _paths(graph: FactGraph, max_hops: int) -> Iterable[tuple[list[Hop], list[Triple], list[str]]]:
    """Chains of 2..max_hops hops whose middle hops have a bridge phrase and whose last hop
    is a forward relation with composition templates; no entity is visited twice and no
    relation follows itself (which would only undo the previous hop)."""
    hops = [(r, inv) for r in RELATIONS for inv in (False, True)]
    starts = dict.fromkeys(n for t in graph.triples for n in (t.subject, t.object))

    def extend(hop_list, triples, entities):
        if len(hop_list) >= 2 and not hop_list[-1][1] and hop_list[-1][0] in COMPOSE:
            yield list(hop_list), list(triples), list(entities)
        if len(hop_list) == max_hops or (hop_list and hop_list[-1] not in BRIDGES):
            return
        for hop in hops:
            if hop_list and hop[0] == hop_list[-1][0]:
                continue
            step = _step(graph, entities[-1], hop)
            if step is None or step[0] in entities:
                continue
            yield from extend(hop_list + [hop], triples + [step[1]], entities + [step[0]])

    for start in starts:
        yield from extend([], [], [start])


def compose(
    graph: FactGraph,
    parent_of: dict[Triple, str] | None = None,
    which: str = "all",
    max_hops: int = 3,
) -> list[Candidate]:
    """Multi-hop questions: the last relation's composition template, its subject slot filled
    by bridge phrases built inwards from the first entity ("On which river is the capital of
    the country where the Eiffel Tower is?"). Template mNN uses bridge variant NN % 2 of every
    hop, so m00 is the training data's own wording. Facts are the hop sentences in the
    direction of each hop; chain the canonical one-hop questions, as facts200 writes them.
    """
    parent_of = parent_of or {}
    out = []
    for hop_list, triples, entities in _paths(graph, max_hops):
        last_relation = hop_list[-1][0]
        facts = tuple(graph.sentence(t, inv) for t, (_, inv) in zip(triples, hop_list, strict=True))
        chain = tuple(graph.question(t, inv) for t, (_, inv) in zip(triples, hop_list, strict=True))
        parents = tuple(
            parent_of.get(t) or pair_id(q, "") for t, q in zip(triples, chain, strict=True)
        )
        answer = graph.answer_text(entities[-1])
        kind = f"{len(hop_list)}hop"
        for tid, text in templates(last_relation, "compose", which):
            variant = int(tid[-2:]) % 2
            phrase = graph.phrase(entities[0])
            for relation, inverse in hop_list[:-1]:
                bridge = BRIDGES[(relation, inverse)]
                slot = bridge[variant % len(bridge)]
                phrase = slot.replace("{O}" if inverse else "{S}", phrase)
            question = fill(text, phrase)
            out.append(
                Candidate(question, answer, "compose", tid, parents[0], parents, kind, facts, chain)
            )
    return out


# --- shapes the graph does not know: generic rewordings and math ---------------------------

_EQUATION = re.compile(r"^(\d+)(?:([-+*/])(\d+))+=$")
_TERM = re.compile(r"\d+|[-+*/]")


def math_candidates(record: dict, parent: str, operators: set[str]) -> list[Candidate]:
    """math1k equations: the operands of + or * swapped, the value unchanged.

    Spaced-out forms ("18 + 31 =") are not made: normalised for comparison they are the
    same question, so the filters would drop them; they belong to `surface_variants`.
    """
    question, answer = record["question"].strip(), str(record["answer"])
    if "swap" not in operators or not _EQUATION.match(question):
        return []
    parts = _TERM.findall(question[:-1])
    numbers, ops = parts[0::2], parts[1::2]
    if len(set(ops)) != 1 or ops[0] not in "+*" or numbers[0] == numbers[1]:
        return []
    text = ops[0].join([numbers[1], numbers[0], *numbers[2:]]) + "="
    kind = record.get("kind", "equation")
    return [Candidate(text, answer, "swap", "math/swap", parent, (parent,), kind, ())]


def _lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word looks like a name or acronym."""
    first = text.split(" ", 1)[0]
    return text if first[1:2].isupper() or first[1:2].isdigit() else text[:1].lower() + text[1:]


def _synonyms(text: str) -> str:
    def swap(m):
        return SYNONYMS[m.group(0)]

    return _SYNONYM_RE.sub(swap, text)


def _reorder(text: str) -> str | None:
    """ "A, B." -> "B, a." when B is a trailing modifier ("..., ignoring case.")."""
    body, end = (text[:-1], text[-1]) if text[-1:] in ".?" else (text, "")
    if body.count(", ") != 1 or body.count(",") != 1:
        return None
    head, tail = body.split(", ")
    first = tail.split(" ", 1)[0]
    if not (first.endswith("ing") or first in MOVABLE_OPENERS):
        return None
    return f"{tail[:1].upper()}{tail[1:]}, {_lower_first(head)}{end}"


def generic_candidates(record: dict, parent: str, index: int) -> list[Candidate]:
    """Rewordings that need no knowledge of the question's shape. `index` rotates the prefix
    and suffix so that a pool gets all of them, not the same one on every record.

    A "?" <-> "." swap alone is not made: questions are compared without sentence
    punctuation, so it would be the same question. Single changes mostly stay above the
    near-duplicate threshold for long questions; "mixed" (all changes at once) is the form
    most likely to count as new.
    """
    question, answer = record["question"].strip(), str(record["answer"])
    kind = record.get("kind", "qa")
    mixed = _reorder(_synonyms(question)) or _synonyms(question)
    forms = {
        "generic/prefix": PREFIXES[index % len(PREFIXES)] + _lower_first(question),
        "generic/suffix": question.rstrip(".?") + SUFFIXES[index % len(SUFFIXES)],
        "generic/synonym": _synonyms(question),
        "generic/reorder": _reorder(question) or "",
        "generic/mixed": PREFIXES[(index + 1) % len(PREFIXES)]
        + _lower_first(mixed).rstrip(".?")
        + SUFFIXES[(index + 2) % len(SUFFIXES)],
    }
    return [
        Candidate(text, answer, "generic", tid, parent, (parent,), kind, ())
        for tid, text in forms.items()
        if text and text != question
    ]


# --- teacher: what no fact states -----------------------------------------------------------


def teacher_candidates(graph: FactGraph, parent_of_entity: dict[str, str]) -> list[Candidate]:
    """Questions about entity x relation pairs of fitting types that the graph does not know;
    expected None, so only the teacher's confidence can admit them."""
    out = []
    for rel in RELATIONS.values():
        for subject in graph.entities(rel.subject_type):
            if graph.lookup(subject, rel.name) is not None:
                continue
            parent = parent_of_entity.get(subject, "")
            phrase = graph.phrase(subject)
            wordings = [(f"{rel.name}/canonical", rel.question)] + templates(rel.name, "forward")[
                :TEACHER_TEMPLATES
            ]
            for tid, text in wordings:
                out.append(
                    Candidate(
                        fill(text, phrase), None, "teacher", tid, parent, (parent,), "fact", ()
                    )
                )
    return out


# --- noise (augmentation, not pairs) -------------------------------------------------------


def surface_variants(question: str, rng: random.Random, answer: str = "") -> list[str]:
    """Casual forms of a question: lower case, no final "?", one adjacent-letter typo in a
    word of 5+ letters that is not part of the answer, a doubled or a missing space."""
    out = [question.lower(), question.rstrip().rstrip("?").rstrip()]
    words = question.split(" ")
    protected = set(answer.lower().split())
    typo_at = [
        i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha() and w.lower() not in protected
    ]
    if typo_at:
        i = rng.choice(typo_at)
        w = words[i]
        j = rng.randrange(len(w) - 1)
        if w[j] != w[j + 1]:
            out.append(
                " ".join(words[:i] + [w[:j] + w[j + 1] + w[j] + w[j + 2 :]] + words[i + 1 :])
            )
    if len(words) > 1:
        k = rng.randrange(1, len(words))
        out.append(" ".join(words[:k]) + "  " + " ".join(words[k:]))
        out.append(" ".join(words[:k]) + " ".join(words[k:]))
    return [v for v in dict.fromkeys(out) if v and v != question]


# --- propose --------------------------------------------------------------------------------

_TOKEN = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s.,?!;:\"'\u2019()\[\]{}]")


def _normalize(text: str) -> str:
    """Lower case, sentence punctuation dropped (as filters.normalize): "the same question"."""
    return " ".join(_TOKEN.findall(text.lower()))


def _record_id(record: dict) -> str:
    return str(record.get("id") or pair_id(record["question"], str(record["answer"])))


def _is_original(record: dict) -> bool:
    """A seed (or a plain user record), not a pair an operator made in an earlier round."""
    return (record.get("provenance") or {}).get("operator", "seed") == "seed"


def propose(
    pool: list[dict],
    graph: FactGraph,
    rng: random.Random,
    round_index: int,
    operators: set[str],
    budget: int | None,
) -> list[Candidate]:
    """Candidates from the pool's own facts, deterministic given `rng`.

    Only facts some pool record states are used (a seed10 pool yields questions about its ten
    facts' entities only), answered from `graph`. Every training template is offered from
    round 1 on (`round_index` does not change what is made); a question the pool already has
    is not offered again, so later rounds offer what earlier filters or the budget left out.
    `budget` caps the number by a seeded sample. The "noise" operator makes no pairs (see
    `surface_variants`); "teacher" is off unless asked for.
    """
    parent_of: dict[Triple, str] = {}
    parent_of_entity: dict[str, str] = {}
    unparsed = []
    for record in pool:
        rid = _record_id(record)
        triples = FactGraph().add_record(record)
        for t in triples:
            parent_of.setdefault(t, rid)
            parent_of_entity.setdefault(t.subject, rid)
            parent_of_entity.setdefault(t.object, rid)
        if not triples and not record.get("facts") and _is_original(record):
            unparsed.append((record, rid))
    known = graph.restricted(lambda t: t in parent_of)

    out: list[Candidate] = []
    for triple in known.triples:
        out += fact_candidates(known, triple, parent_of[triple], operators)
    if "compose" in operators:
        out += compose(known, parent_of, which="training")
    for i, (record, rid) in enumerate(unparsed):
        if _EQUATION.match(record["question"].strip()):
            out += math_candidates(record, rid, operators)
        elif "generic" in operators:
            out += generic_candidates(record, rid, i)
    if "teacher" in operators:
        out += teacher_candidates(known, parent_of_entity)

    have = {_normalize(r["question"]) for r in pool}
    unique: dict[tuple[str, str | None], Candidate] = {}
    for c in out:
        if _normalize(c.question) not in have and not is_validation_template(c.template):
            unique.setdefault((c.question, c.expected), c)
    candidates = list(unique.values())
    if budget is not None and len(candidates) > budget:
        chosen = sorted(rng.sample(range(len(candidates)), budget))
        candidates = [candidates[i] for i in chosen]
    return candidates


def validation_candidates(graph: FactGraph) -> list[Candidate]:
    """The held-back templates and compositions over the whole graph: questions no training
    pair was made from, for choosing defaults. Never reported as held-out results."""
    ops = {"reword", "invert", "yesno", "cloze"}
    out = []
    for triple in graph.triples:
        parent = pair_id(graph.question(triple), graph.answer_text(triple.object))
        out += fact_candidates(graph, triple, parent, ops, which="validation")
    out += compose(graph, which="validation")
    return list({(c.question, c.expected): c for c in out}.values())


# ==========================================================================================
# Tables. Written from the training splits' question shapes; never from held-out wording.
# Changing a list's order changes its ids (and which entries are validation-only).
# ==========================================================================================

# Composition: the last relation's question with a bridge phrase as its subject. m00 is the
# training data's own multi-hop wording (so chains can be rebuilt exactly); the rest vary.
COMPOSE: dict[str, list[str]] = {
    "capital": [
        "What is the capital of {S}?",
        "Which city is the capital of {S}?",
        "Name the capital city of {S}.",
        "{S} has which city as its capital?",
        "Tell me the capital of {S}.",
        "From which city is {S} governed?",
    ],
    "continent": [
        "On which continent is {S}?",
        "Which continent is {S} on?",
        "Name the continent that {S} lies in.",
        "{S} is located on which continent?",
        "To which continent does {S} belong?",
        "What continent is {S} part of?",
    ],
    "currency": [
        "What is the currency of {S}?",
        "Which currency is used in {S}?",
        "Name the money of {S}.",
        "{S} pays with which currency?",
        "What currency would you need in {S}?",
        "Tell me the currency of {S}.",
    ],
    "river": [
        "On which river is {S}?",
        "Which river flows through {S}?",
        "Name the river that {S} stands on.",
        "{S} lies on which river?",
        "What river runs through {S}?",
        "Along which river was {S} built?",
    ],
    "atomic_number": [
        "What is the atomic number of {S}?",
        "How many protons does {S} have?",
        "Give the atomic number of {S}.",
        "{S} has which atomic number?",
        "Which number does {S} have in the periodic table?",
        "Tell me the atomic number of {S}.",
    ],
    "symbol": [
        "What is the chemical symbol of {S}?",
        "How is {S} written as a chemical symbol?",
        "Give the symbol of {S}.",
        "{S} has which chemical symbol?",
        "Which letters stand for {S} in chemistry?",
        "Tell me the chemical symbol of {S}.",
    ],
    "birth_city": [
        "In which city was {S} born?",
        "Where was {S} born?",
        "Name the city where {S} was born.",
        "{S} was born in which city?",
        "Which city is the birthplace of {S}?",
        "What is the birth city of {S}?",
    ],
    "published": [
        "In what year was {S} first published?",
        "When was {S} first published?",
        "Give the year {S} came out.",
        "{S} was first published in which year?",
        "Which year saw the first publication of {S}?",
        "In which year did {S} first appear?",
    ],
}

# Bridge phrases: a hop as a noun phrase for the entity it reaches. The first is the
# training data's wording; composition template mNN uses variant NN % 2.
BRIDGES: dict[tuple[str, bool], list[str]] = {
    ("capital", False): ["the capital of {S}", "the capital city of {S}"],
    ("capital", True): ["the country whose capital is {O}", "the country with its capital in {O}"],
    ("currency", True): ["the country whose currency is {O}", "the country that pays with {O}"],
    ("landmark_country", False): ["the country where {S} is", "the country that is home to {S}"],
    ("atomic_number", True): [
        "the element with atomic number {O}",
        "the element whose atomic number is {O}",
    ],
    ("symbol", True): ["the element with the chemical symbol {O}", "the element written {O}"],
    ("author", False): ["the author of {S}", "the writer of {S}"],
    ("birth_city", False): ["the city where {S} was born", "the birthplace of {S}"],
    ("only_novel", False): ["the only novel by {S}", "the single novel {S} wrote"],
    ("only_novel", True): [
        "the writer whose only novel was {O}",
        "the novelist whose one novel was {O}",
    ],
}

# Generic rewordings (shapes the graph does not know).
PREFIXES = [
    "Please tell me: ",
    "Quick question - ",
    "Could you help with this: ",
    "I need to know this: ",
    "Hey, ",
    "One more thing: ",
]
SUFFIXES = [", please.", " - thanks!", ". Can you help?", ", if you can."]
SYNONYMS = {
    "List": "Show",
    "Show": "Display",
    "Display": "Show",
    "directory": "folder",
    "directories": "folders",
    "folder": "directory",
    "Create": "Make",
    "Make": "Create",
    "Delete": "Remove",
    "Remove": "Delete",
    "Print": "Output",
    "Find": "Locate",
    "Download": "Fetch",
    "Fetch": "Download",
    "Count": "Tally",
    "Extract": "Unpack",
    "Compress": "Pack",
}
_SYNONYM_RE = re.compile(r"\b(" + "|".join(map(re.escape, SYNONYMS)) + r")\b")
# A trailing clause that may move to the front: "..., ignoring case." -> "Ignoring case, ..."
MOVABLE_OPENERS = {"in", "with", "without", "from", "into", "for", "on", "as", "using", "keeping"}

TEMPLATES: dict[str, dict[str, list[str]]] = {
    "capital": {
        "forward": [
            "Name the capital city of {S}.",
            "{S}'s capital is which city?",
            "Tell me what city {S} has as its capital.",
            "What city serves as the seat of government of {S}?",
            "Capital of {S}?",
            "{S}: what is its capital?",
            "In which city does the government of {S} sit?",
            "Which city has the role of capital in {S}?",
            "I'd like to know the capital of {S}, please.",
            "What do people call the capital city of {S}?",
            "The capital of {S} is which city?",
            "Which one is {S}'s capital city?",
            "Could you tell me which city is the capital of {S}?",
            "What's the name of {S}'s capital?",
            "{S} has its capital in which city?",
            "Give me the capital of {S}.",
            "From which city is {S} governed?",
            "Identify {S}'s capital.",
            "Where does {S} have its national capital?",
            "If you visit the capital of {S}, what city are you in?",
            "Quick one: {S}'s capital?",
            "Which city did {S} choose as its capital?",
            "Which city holds the status of capital of {S}?",
            "{S} - capital city?",
            "What city is home to the government of {S}?",
            "What city would you name as {S}'s capital?",
            "Among all the cities of {S}, which one is the capital?",
            "Here is a geography question about {S}: which city is its capital?",
            "Where is {S} run from?",
            "Which city is {S}'s political centre?",
            "As a capital city, which city does {S} have?",
            "What city has been made the capital of {S}?",
            "Name {S}'s seat of government.",
        ],
        "inverse": [
            "Which country has {O} as its capital?",
            "Of which country is {O} the capital?",
            "Name the country whose capital is {O}.",
            "What country is governed from {O}?",
            "{O} serves as the capital of which nation?",
            "Tell me the nation with its capital at {O}.",
            "Which nation's capital city is {O}?",
            "If the capital is {O}, what is the country?",
            "Capital {O} - which country?",
            "Which country is run from {O}?",
        ],
        "yesno": [
            "Is {O} the capital of {S}?",
            "{S}'s capital: is it {O}?",
            "Does {S} have {O} as its capital?",
            "Is it true that {S} is governed from {O}?",
            "Yes or no: {O} is {S}'s capital.",
            "Would {O} be the right answer for the capital of {S}?",
            "Is {S}'s seat of government in {O}?",
            "Capital of {S} = {O}?",
            "Am I right that {O} is the capital of {S}?",
        ],
        "cloze": [
            "Complete the sentence: The capital of {S} is ...",
            "Fill in the blank: ___ is the capital city of {S}.",
            "{S}'s capital city is ___.",
            "Finish this: the seat of government of {S} is",
            "Fill the gap: {S} is governed from ___.",
        ],
    },
    "continent": {
        "forward": [
            "On what continent does {S} lie?",
            "{S} is located on which continent?",
            "Name the continent where {S} is.",
            "To which continent does {S} belong?",
            "Continent of {S}?",
            "{S}: which continent?",
            "Where in the world is {S}, by continent?",
            "What continent is {S} part of?",
            "Tell me the continent that {S} is on.",
            "{S} lies in which part of the world?",
            "Which continent would you find {S} on?",
            "In terms of continents, where is {S}?",
            "Can you say which continent {S} is located in?",
            "What's {S}'s continent?",
            "{S} belongs to what continent?",
            "Please name the continent of {S}.",
            "If you travelled to {S}, which continent would you be on?",
            "Give the continent {S} is situated in.",
            "Which of the continents contains {S}?",
            "What continent is home to {S}?",
            "{S} - which continent is that in?",
            "Do you know on which continent {S} lies?",
            "Where is {S}? Name the continent.",
            "Which landmass is {S} a part of?",
            "On a world map, on which continent is {S} found?",
            "Which continent is the country {S} located on?",
            "Tell me, is {S} in Europe, Asia, or another continent - which one?",
            "What continent do you reach when you fly to {S}?",
            "{S} can be found on what continent?",
            "Say which continent holds {S}.",
            "Which continent includes the country of {S}?",
            "I wonder which continent {S} is on.",
        ],
        "yesno": [
            "Is {S} in {O}?",
            "Is {S} a country of {O}?",
            "{S} is on the continent of {O}, yes or no?",
            "Is {O} the continent where {S} is?",
            "Yes or no: {S} belongs to {O}.",
            "Is it true that {S} is located in {O}?",
            "Would you find {S} in {O}?",
            "Continent of {S} = {O}?",
            "Can {S} be found in {O}?",
            "Am I right that {S} is in {O}?",
        ],
        "cloze": [
            "Complete the sentence: {S} is in ...",
            "Fill in the blank: {S} lies on the continent of ___.",
            "{S} is a country of ___.",
            "Finish this: the continent of {S} is",
            "Fill the gap: {S} belongs to ___.",
        ],
    },
    "currency": {
        "forward": [
            "Which currency is used in {S}?",
            "What money do people use in {S}?",
            "{S}'s currency is what?",
            "What do they pay with in {S}?",
            "Currency of {S}?",
            "{S}: which currency?",
            "In {S}, what is the official currency?",
            "What is the name of the money in {S}?",
            "Tell me which currency {S} uses.",
            "What currency does {S} use?",
            "If you go shopping in {S}, which currency do you need?",
            "Which money is legal tender in {S}?",
            "Could you tell me the currency used in {S}?",
            "What's the official money of {S}?",
            "Give the name of {S}'s currency.",
            "What currency would you exchange your money into before a trip to {S}?",
            "Prices in {S} are given in which currency?",
            "What is {S}'s money called?",
            "Quick question: the currency in {S}?",
            "The money of {S} - what is it called?",
            "Please tell me {S}'s currency.",
            "In which currency are salaries paid in {S}?",
            "What currency is accepted in {S}?",
            "Do you know what money {S} has?",
            "{S} - name its currency.",
            "What kind of money is spent in {S}?",
            "Which banknotes and coins does {S} use?",
            "Tell me the national money of {S}.",
            "What's the currency called in {S}?",
            "When you pay in {S}, what currency is it?",
            "Which currency belongs to {S}?",
        ],
        "inverse": [
            "Which country pays with {O}?",
            "{O} is the currency of which country?",
            "In which country is {O} the currency?",
            "Name the country whose currency is {O}.",
            "What country has {O} as its money?",
            "{O} is used as money in which nation?",
            "Tell me the country where people pay in {O}.",
            "Which nation's currency is {O}?",
            "If prices are in {O}, which country are you in?",
            "Where is {O} the official currency?",
        ],
        "yesno": [
            "Is {O} the currency of {S}?",
            "Does {S} use {O}?",
            "Is the money of {S} {O}?",
            "Do people in {S} pay with {O}?",
            "Yes or no: {S}'s currency is {O}.",
            "Is it true that {S} uses {O} as its money?",
            "Would you pay with {O} in {S}?",
            "Is {O} legal tender in {S}?",
            "Currency of {S} = {O}?",
            "Can you spend {O} in {S}?",
            "Am I right that the currency of {S} is {O}?",
        ],
        "cloze": [
            "Complete the sentence: The currency of {S} is the ...",
            "Fill in the blank: people in {S} pay with the ___.",
            "{S}'s money is the ___.",
            "Finish this: the official currency of {S} is the",
            "Fill the gap: {S} uses the ___.",
        ],
    },
    "river": {
        "forward": [
            "Which river flows through {S}?",
            "What river is {S} built on?",
            "Name the river that runs through {S}.",
            "{S} lies on which river?",
            "What is the river of {S}?",
            "Which river does {S} sit beside?",
            "Tell me the river {S} stands on.",
            "What river passes through the city of {S}?",
            "The city of {S} is on which river?",
            "Along which river was {S} built?",
            "What's the name of the river in {S}?",
            "Could you name the river {S} is on?",
            "Which river runs past {S}?",
            "{S} stands beside what river?",
            "What river would you cross on a bridge in {S}?",
            "Which river is {S} situated on?",
            "Quick question: {S}'s river?",
            "What river crosses {S}?",
            "Which river does the city {S} straddle?",
            "Please name the river at {S}.",
            "By which river does {S} lie?",
            "{S} - which river is it on?",
            "Do you know which river {S} stands on?",
            "Name {S}'s river.",
            "If you walk along the river in {S}, which river is it?",
            "On the banks of which river is {S}?",
            "Which river has {S} on its banks?",
            "Tell me what river goes through {S}.",
            "Which river do you see in {S}?",
            "Which river can you see from the bridges of {S}?",
            "{S} grew up around which river?",
            "Which river is {S} famous for?",
        ],
        "yesno": [
            "Does {S} stand on {O}?",
            "Does {O} flow through {S}?",
            "Is {O} the river of {S}?",
            "Does {S} lie on {O}? Answer yes or no.",
            "Yes or no: {O} runs through {S}.",
            "Is it true that {S} is built on {O}?",
            "Would you see {O} in {S}?",
            "Is {S} situated on {O}?",
            "River of {S} = {O}?",
            "Am I right that {S} stands on {O}?",
        ],
        "cloze": [
            "Complete the sentence: {S} stands on the ...",
            "Fill in the blank: the river through {S} is the ___.",
            "{S} is built on the ___.",
            "Finish this: the river of {S} is the",
            "Fill the gap: {S} lies on the ___.",
            "Complete: river of {S} =",
        ],
    },
    "landmark_country": {
        "forward": [
            "Where is {S}? Name the country.",
            "{S} is located in which country?",
            "In what country can you find {S}?",
            "Name the country where {S} stands.",
            "Country of {S}?",
            "To see {S}, which country must you visit?",
            "Tell me the country {S} is in.",
            "What country does {S} belong to?",
            "{S} can be found in which country?",
            "Which nation is {S} located in?",
            "Could you tell me where {S} is, by country?",
            "Give the country that has {S}.",
            "In which nation would you find {S}?",
            "Identify the country where {S} is situated.",
            "Quick question: {S} is in what country?",
            "What country would you travel to to see {S}?",
            "{S} - what country is it in?",
            "Do you know which country {S} is in?",
            "Where would you go to visit {S}? Give the country.",
            "What country hosts {S}?",
            "Tell me which nation has {S}.",
            "Which country's landmark is {S}?",
            "If you stand in front of {S}, which country are you in?",
            "What is the home country of {S}?",
            "Name the nation that {S} is in.",
            "Where is {S} found - which country?",
            "What nation would you be visiting if you saw {S}?",
            "On a map, which country shows {S}?",
            "{S} attracts tourists to which country?",
            "Travel question: where is {S}? Country, please.",
            "Which country would you fly to for {S}?",
            "{S} lies within the borders of which country?",
            "The sight called {S} is in what nation?",
            "Whose territory is {S} on?",
            "{S}'s country?",
            "Say which country has {S} within it.",
        ],
        "yesno": [
            "Is {S} in {O}?",
            "Can you visit {S} in {O}?",
            "Does {O} have {S}?",
            "Is {S} found in {O}? Answer yes or no.",
            "Yes or no: {S} stands in {O}.",
            "Is it true that {S} is a landmark of {O}?",
            "Would a trip to {O} let you see {S}?",
            "Is {O} home to {S}?",
            "Country of {S} = {O}?",
            "Does {S} belong to {O}?",
            "Am I right that {S} is in {O}?",
        ],
        "cloze": [
            "Complete the sentence: {S} is in ...",
            "Fill in the blank: {S} is located in ___.",
            "{S} can be visited in ___.",
            "Finish this: the country of {S} is",
            "Fill the gap: {S} stands in ___.",
        ],
    },
    "atomic_number": {
        "forward": [
            "Which atomic number does {S} have?",
            "What number does {S} have in the periodic table?",
            "How many protons does an atom of {S} have?",
            "{S}'s atomic number is what?",
            "{S}: atomic number?",
            "Tell me the atomic number of the element {S}.",
            "What's {S}'s atomic number?",
            "The element {S} has which atomic number?",
            "How many protons are in the nucleus of {S}?",
            "Could you tell me {S}'s atomic number?",
            "In the periodic table, {S} is element number what?",
            "Which place does {S} take in the periodic table?",
            "Quick chemistry question: the atomic number of {S}?",
            "What atomic number belongs to {S}?",
            "Please give {S}'s atomic number.",
            "{S} - what is its atomic number?",
            "What number of protons does {S} have?",
            "Do you know the atomic number of {S}?",
            "Which element number is {S}?",
            "How many protons define the element {S}?",
            "Tell me how many protons {S} has.",
            "What atomic number would you look up for {S}?",
            "Count the protons in one {S} atom: how many?",
            "Which atomic number is given to {S}?",
            "What is {S}'s position number in the periodic table?",
            "Atomic number for {S}, please?",
            "{S} occupies which slot in the periodic table?",
            "Chemistry: {S} - number in the table?",
            "By atomic number, what is {S}?",
            "The nucleus of {S} holds how many protons?",
            "What Z value does {S} have?",
            "Looking at the periodic table, what number is {S}?",
            "How many positive charges does a {S} nucleus carry?",
        ],
        "inverse": [
            "Which element is number {O} in the periodic table?",
            "What element has {O} protons?",
            "Name the element with atomic number {O}.",
            "Element {O} is which element?",
            "Atomic number {O} belongs to which element?",
            "What is element number {O}?",
            "Tell me the element whose atomic number is {O}.",
            "An atom with {O} protons is which element?",
            "{O} is the atomic number of what element?",
        ],
        "yesno": [
            "Is the atomic number of {S} {O}?",
            "Does {S} have atomic number {O}?",
            "Is {S} element number {O}?",
            "Does an atom of {S} have {O} protons?",
            "Is {O} the atomic number of {S}? Answer yes or no.",
            "Yes or no: {S} has {O} protons.",
            "Is it true that {S} is number {O} in the periodic table?",
            "Would {O} be the atomic number of {S}?",
            "Is {S}'s proton number {O}?",
            "Am I right that {S} has atomic number {O}?",
        ],
        "cloze": [
            "Complete the sentence: The atomic number of {S} is ...",
            "Fill in the blank: an atom of {S} has ___ protons.",
            "{S} is element number ___.",
            "Finish this: the proton number of {S} is",
            "Fill the gap: {S} has atomic number ___.",
            "Complete: atomic number of {S} =",
        ],
    },
    "symbol": {
        "forward": [
            "Which chemical symbol does {S} have?",
            "How is {S} written as a chemical symbol?",
            "{S}'s chemical symbol is what?",
            "Symbol of {S}?",
            "{S}: chemical symbol?",
            "What letters stand for {S} in chemistry?",
            "Tell me the element symbol of {S}.",
            "In the periodic table, what is {S}'s symbol?",
            "What's {S}'s symbol?",
            "The element {S} has which chemical symbol?",
            "Name the chemical symbol for {S}.",
            "How do chemists abbreviate {S}?",
            "{S} has what symbol?",
            "What symbol is used for {S} in chemical formulas?",
            "Which letters represent {S}?",
            "Quick chemistry question: {S}'s symbol?",
            "What chemical symbol belongs to {S}?",
            "Please give the symbol of {S}.",
            "{S} - what is its symbol?",
            "What abbreviation does the periodic table use for {S}?",
            "Do you know the chemical symbol of {S}?",
            "Which symbol stands for {S}?",
            "How is {S} shown in the periodic table?",
            "Tell me how {S} is abbreviated.",
            "What would you write in a formula for {S}?",
            "Say the symbol of the element {S}.",
            "Which symbol is given to {S}?",
            "In chemistry, {S} is written as what?",
            "What one- or two-letter code stands for {S}?",
            "Which letter code does {S} use in the periodic table?",
            "How would you abbreviate the element {S}?",
            "What's the chemical shorthand for {S}?",
        ],
        "inverse": [
            "Which element is written {O}?",
            "What element does the symbol {O} stand for?",
            "Name the element with the symbol {O}.",
            "{O} is the chemical symbol of which element?",
            "The symbol {O} belongs to which element?",
            "What element has {O} as its symbol?",
            "Tell me the element whose symbol is {O}.",
            "In chemistry, {O} stands for what element?",
            "{O}: which element?",
            "Which element do chemists write as {O}?",
            "Symbol {O} - which element is that?",
        ],
        "yesno": [
            "Is the chemical symbol of {S} {O}?",
            "Is {S} written {O}?",
            "Is {O} the symbol for {S}?",
            "Does {O} stand for {S}?",
            "Is {S} abbreviated {O}? Answer yes or no.",
            "Yes or no: {S}'s symbol is {O}.",
            "Is it true that chemists write {S} as {O}?",
            "Would you write {O} for {S}?",
            "Is {O} {S}'s chemical symbol?",
            "Symbol of {S} = {O}?",
            "Does the periodic table list {S} as {O}?",
            "Am I right that the symbol of {S} is {O}?",
        ],
        "cloze": [
            "Complete the sentence: The chemical symbol of {S} is ...",
            "Fill in the blank: chemists write {S} as ___.",
            "{S}'s symbol is ___.",
            "Finish this: the element symbol of {S} is",
            "Fill the gap: {S} is abbreviated ___.",
        ],
    },
    "author": {
        "forward": [
            "Who is the author of {S}?",
            "{S} was written by whom?",
            "Which writer wrote {S}?",
            "Author of {S}?",
            "{S}: who wrote it?",
            "Who penned {S}?",
            "By whom was {S} written?",
            "Which author is {S} by?",
            "Whose novel is {S}?",
            "Who was the writer of {S}?",
            "Could you tell me who the author of {S} is?",
            "{S} is a book by which author?",
            "Give the name of the writer of {S}.",
            "Who is {S} by?",
            "Quick literature question: {S} was written by?",
            "Please name the person who wrote {S}.",
            "{S} - who is the author?",
            "Who created the book {S}?",
            "Do you know who wrote {S}?",
            "Who do we have to thank for writing {S}?",
            "The book {S} came from whose pen?",
            "Which author should I credit for {S}?",
            "Who was {S} written by?",
            "Name the writer behind {S}.",
            "Who is the novelist behind {S}?",
            "Who authored {S}?",
            "Which writer is responsible for {S}?",
            "Tell me the author's name for {S}.",
            "Who wrote the novel called {S}?",
            "Who is credited with writing {S}?",
            "{S} - whose work is it?",
            "Which author's name is on the cover of {S}?",
        ],
        "yesno": [
            "Did {O} write {S}?",
            "Was {S} written by {O}?",
            "Is {O} the author of {S}?",
            "Is {S} a book by {O}?",
            "Did {O} write the book {S}? Answer yes or no.",
            "Yes or no: {S} is by {O}.",
            "Is it true that {O} is the writer of {S}?",
            "Is {S} {O}'s work?",
            "Author of {S} = {O}?",
            "Can {S} be credited to {O}?",
            "Am I right that {O} wrote {S}?",
        ],
        "cloze": [
            "Complete the sentence: {S} was written by ...",
            "Fill in the blank: the author of {S} is ___.",
            "Finish this: {S} came from the pen of",
            "Fill the gap: ___ wrote {S}.",
            "Blank to fill: the writer of {S} was ___.",
        ],
    },
    "published": {
        "forward": [
            "{S} was first published in which year?",
            "Give the year {S} came out.",
            "Year of publication of {S}?",
            "When did {S} first come out?",
            "Tell me the year {S} was first published.",
            "In what year did {S} appear in print?",
            "When did readers first get {S}?",
            "Could you tell me when {S} was first printed?",
            "{S} came out in what year?",
            "The first edition of {S} appeared in which year?",
            "When was the first edition of {S} published?",
            "Which year was {S} released?",
            "Please give the year of {S}'s first publication.",
            "{S} - what year was it published?",
            "Do you know when {S} was first published?",
            "What year is {S} from?",
            "How long ago was {S} published - in which year?",
            "In what year did the book {S} first go on sale?",
            "Publication year of the book {S}, please?",
            "Which year is printed on the first edition of {S}?",
            "What was the year when {S} reached bookshops?",
            "For a book report on {S}, I need its original publication year.",
            "What year was the novel {S} released to the public?",
            "Tell me {S}'s year of first release.",
            "Year {S} hit bookstores?",
            "In which year did the publisher first issue {S}?",
            "When did {S} make its debut?",
            "First edition year for {S}?",
            "{S} first reached readers when? Just the year.",
            "Since which year has {S} been available to read?",
            "The novel {S}: year of first appearance?",
            "Can you date the first publication of {S}?",
            "Book: {S}. Year first published?",
            "How old is {S}? Give the year it first came out.",
        ],
        "yesno": [
            "Was {S} first published in {O}?",
            "Is {O} the year {S} was published?",
            "Did {S} come out in {O}?",
            "Is it true that {S} appeared in {O}?",
            "Would {O} be the publication year of {S}?",
            "Is {S} from {O}?",
            "Year of {S} = {O}?",
            "Am I right that {S} came out in {O}?",
            "Did the first edition of {S} appear in {O}?",
            "Check this: {S} first came out in {O} - yes or no?",
        ],
        "cloze": [
            "Fill in the blank: {S} first appeared in ___.",
            "Finish this: the first edition of {S} is from",
            "Fill in: the year of the first edition of {S} was ___.",
            "Blank to fill: {S} reached readers in ___.",
            "Complete the line: {S}, first edition, ___",
        ],
    },
    "birth_city": {
        "forward": [
            "Where was {S} born?",
            "{S} was born in which city?",
            "Name the birthplace of {S}.",
            "Which city is {S}'s birthplace?",
            "{S}: born where?",
            "Tell me the city where {S} was born.",
            "Which city did {S} come into the world in?",
            "What is the birth city of {S}?",
            "Where did {S} enter the world?",
            "What's {S}'s city of birth?",
            "{S} is a native of which city?",
            "From which city does {S} come originally?",
            "In which city did {S} first see the light of day?",
            "Which city was home to {S} at birth?",
            "Please name the city of {S}'s birth.",
            "{S} - which city were they born in?",
            "Where is {S} from by birth?",
            "Do you know the city {S} was born in?",
            "Which city can claim {S} as a native?",
            "What is {S}'s hometown?",
            "Which city saw the birth of {S}?",
            "{S}'s birthplace - which city?",
            "What city does {S} hail from by birth?",
            "Where did {S}'s life begin?",
            "Which city was {S}'s place of birth?",
            "Where did {S} start life? Name the city.",
            "Which city gave the world {S}?",
            "Tell me where {S} comes from - the city of birth.",
            "Which city appears as the birthplace on {S}'s records?",
            "If you visited {S}'s birthplace, which city would you be in?",
        ],
        "yesno": [
            "Was {S} born in {O}?",
            "Is {O} the birthplace of {S}?",
            "Did {S} come into the world in {O}?",
            "Is {S} a native of {O}?",
            "Was {O} the city where {S} was born? Answer yes or no.",
            "Yes or no: {S} was born in {O}.",
            "Is it true that {S} was born in the city of {O}?",
            "Would {O} be {S}'s birthplace?",
            "Is {O} {S}'s hometown?",
            "Birthplace of {S} = {O}?",
            "Did {S} begin life in {O}?",
            "Am I right that {S} was born in {O}?",
        ],
        "cloze": [
            "Complete the sentence: {S} was born in ...",
            "Fill in the blank: the birthplace of {S} is ___.",
            "Fill the gap: {S} came into the world in ___.",
            "Complete: birthplace of {S} =",
            "Blank to fill: {S}'s home city at birth was ___.",
        ],
    },
    "only_novel": {
        "forward": [
            "Which novel is the only one {S} wrote?",
            "{S} wrote only one novel: which?",
            "Name the single novel by {S}.",
            "What was {S}'s only novel?",
            "Only novel of {S}?",
            "{S}: the one novel?",
            "Which book is {S}'s only novel?",
            "Tell me the only novel {S} published.",
            "{S} is known for a single novel. What is it called?",
            "What novel did {S} write, the only one?",
            "What's the title of {S}'s sole novel?",
            "Which is the sole novel written by {S}?",
            "Could you name the only novel {S} wrote?",
            "{S}'s one and only novel is what?",
            "Give the title of the only novel by {S}.",
            "Which single novel came from {S}?",
            "Quick question: {S}'s only novel?",
            "Which novel stands alone in {S}'s work?",
            "Please name the sole novel of {S}.",
            "{S} - what was the only novel?",
            "The only novel {S} ever wrote is which?",
            "What single novel did {S} produce?",
            "Tell me the name of {S}'s one novel.",
            "Which is the one novel {S} ever published?",
            "What novel is {S}'s only one?",
            "Only novel written by {S}, please?",
            "{S} authored just one novel. Its title?",
            "Which novel was {S}'s single work of long fiction?",
            "{S}'s lone novel?",
        ],
        "inverse": [
            "Who wrote only one novel, {O}?",
            "{O} was the only novel of which writer?",
            "Name the writer whose sole novel is {O}.",
            "Who is the author of {O}, their only novel?",
            "Tell me the novelist whose one novel was {O}.",
            "Which writer published just one novel, {O}?",
            "Which novelist is known for the single novel {O}?",
            "Name the author whose single book-length novel was {O}.",
        ],
        "yesno": [
            "Was {O} the only novel by {S}?",
            "Is {O} {S}'s only novel?",
            "Did {S} write just one novel, {O}?",
            "Was {O} the one novel {S} wrote? Answer yes or no.",
            "Yes or no: {S}'s only novel was {O}.",
            "Is it true that {S} wrote only {O}?",
            "Is {O} the one book {S} published as a novel?",
            "Only novel of {S} = {O}?",
            "Am I right that {S}'s only novel is {O}?",
        ],
        "cloze": [
            "Fill in the blank: {S}'s sole novel is ___.",
            "Fill the gap: the one novel {S} wrote is ___.",
            "Fill in: ___ was the only novel that {S} wrote.",
            "Blank to fill: {S}'s lone novel, ___.",
        ],
    },
}
