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

Templates are data (the tables in `ghost.distill.templates`), written from the question shapes
of the training splits only. Each has a stable id "relation/<form><NN>" (f forward, i inverse,
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
from ghost.distill.templates import (
    BRIDGES,
    COMPOSE,
    MOVABLE_OPENERS,
    PREFIXES,
    SUFFIXES,
    SYNONYMS,
    TEMPLATES,
)

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


_SYNONYM_RE = re.compile(r"\b(" + "|".join(map(re.escape, SYNONYMS)) + r")\b")


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
    """Lower case, sentence punctuation dropped (as similarity.normalize): "the same question"."""
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
    `budget` caps the number by a seeded sample shared equally among the operators
    (`_share_budget`). The "noise" operator makes no pairs (see
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
        candidates = _share_budget(candidates, budget, rng)
    return candidates


def _share_budget(candidates: list[Candidate], budget: int, rng: random.Random) -> list[Candidate]:
    """A seeded sample of `budget` candidates, shared equally among the operators (an
    operator with fewer candidates than its share gives the rest to the others), in the
    original order. A plain sample would give the few compositions a few percent of the
    budget, and rewordings nearly all of it."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(candidates):
        groups.setdefault(c.operator, []).append(i)
    chosen: list[int] = []
    left, remaining = budget, len(groups)
    for _, members in sorted(groups.items(), key=lambda kv: (len(kv[1]), kv[0])):
        share = left // remaining
        take = members if len(members) <= share else rng.sample(members, share)
        chosen += take
        left -= len(take)
        remaining -= 1
    return [candidates[i] for i in sorted(chosen)]


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
