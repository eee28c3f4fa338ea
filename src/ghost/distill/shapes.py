"""Question shapes -> facts: `Triple`, the relations the training data asks about, `FactGraph`.

The operators can only make a question whose answer they know if they know the fact behind
the seed question. facts200's one-hop questions come in a dozen fixed *shapes* ("What is the
capital of X?", "X is the capital of which country?", "Who wrote X?" ...), and each record
carries its fact sentence ("The capital of X is Y."). Both are parsed here into triples

    Triple(subject, relation, object)      e.g. Triple("Italy", "capital", "Rome")

whose entities are bare names ("United Kingdom", "euro", "Eiffel Tower", "sodium"); the
graph remembers the article each one takes mid-sentence ("the United Kingdom", "the euro")
and renders it back, so that generated questions read like the data ("the" capitalised at a
sentence start only; a title's own "The" - "The Great Gatsby" - is part of its name).

A relation reads forwards (ask the object: "What is the capital of Italy?") and, when it is
one-to-one, backwards (ask the subject: "Rome is the capital of which country?"). The data
also words the fact sentence by direction ("The capital of France is Paris." beside "Paris is
the capital of France."), and the graph keeps both, so a composed question lists its facts
exactly as facts200 writes them.

Only the shapes of the training splits (train, seed10, facts) were used to write this.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Triple:
    subject: str
    relation: str
    object: str


@dataclass(frozen=True)
class Relation:
    """One relation: entity types, and its canonical (training-data) question and fact forms.

    `functional`: a subject has one object, so knowing (S, R, O) proves (S, R, O') false for
    O' != O (what makes a "no" answer true). Continent and river are not: a country can span
    two continents, a city stand on two rivers.
    `one_to_one`: an object has one subject too (a capital belongs to one country), which
    makes inverse questions well posed and proves (S', R, O) false for S' != S.
    `inverse_question` is set for one-to-one relations and for currency, which is inverted
    only where the graph knows a single country for the currency (the euro is never asked).
    """

    name: str
    subject_type: str
    object_type: str
    question: str
    fact: str
    inverse_question: str = ""
    inverse_fact: str = ""
    functional: bool = True
    one_to_one: bool = False


RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in [
        Relation(
            "capital",
            "country",
            "city",
            "What is the capital of {S}?",
            "The capital of {S} is {O}.",
            "{O} is the capital of which country?",
            "{O} is the capital of {S}.",
            one_to_one=True,
        ),
        Relation(
            "continent",
            "country",
            "continent",
            "On which continent is {S}?",
            "{S} is in {O}.",
            functional=False,
        ),
        Relation(
            "currency",
            "country",
            "currency",
            "What is the currency of {S}?",
            "The currency of {S} is {O}.",
            "Which country uses {O} as its currency?",
            "{O} is the currency of {S}.",
        ),
        Relation(
            "river",
            "city",
            "river",
            "On which river does {S} stand?",
            "{S} stands on {O}.",
            functional=False,
        ),
        Relation(
            "landmark_country", "landmark", "country", "In which country is {S}?", "{S} is in {O}."
        ),
        Relation(
            "atomic_number",
            "element",
            "number",
            "What is the atomic number of {S}?",
            "The atomic number of {S} is {O}.",
            "Which element has atomic number {O}?",
            "Element number {O} is {S}.",
            one_to_one=True,
        ),
        Relation(
            "symbol",
            "element",
            "symbol",
            "What is the chemical symbol of {S}?",
            "The chemical symbol of {S} is {O}.",
            "Which element has the chemical symbol {O}?",
            "{O} is the chemical symbol of {S}.",
            one_to_one=True,
        ),
        Relation("author", "work", "person", "Who wrote {S}?", "{S} was written by {O}."),
        Relation(
            "published",
            "work",
            "year",
            "In what year was {S} first published?",
            "{S} was first published in {O}.",
        ),
        Relation(
            "birth_city", "person", "city", "In which city was {S} born?", "{S} was born in {O}."
        ),
        Relation(
            "only_novel",
            "person",
            "work",
            "What was the only novel by {S}?",
            "The only novel by {S} was {O}.",
            "Whose only novel was {O}?",
            "{O} was the only novel by {S}.",
            one_to_one=True,
        ),
    ]
}

# "{S} is in {O}." is both a country's continent and a landmark's country: the object decides.
CONTINENTS = {"Africa", "Antarctica", "Asia", "Europe", "North America", "South America", "Oceania"}


def fill(template: str, S: str = "", O: str = "") -> str:
    """A template with its slots filled by noun phrases, capitalised at the sentence start."""
    text = template.replace("{S}", S).replace("{O}", O)
    return text[:1].upper() + text[1:]


def _regex(template: str) -> re.Pattern:
    pattern = re.escape(template).replace(r"\{S\}", "(?P<S>.+?)").replace(r"\{O\}", "(?P<O>.+?)")
    return re.compile(f"^{pattern}$")


_QUESTION_SHAPES = [
    (_regex(form), rel.name, inverse)
    for rel in RELATIONS.values()
    for form, inverse in ((rel.question, False), (rel.inverse_question, True))
    if form
]
_FACT_SHAPES = [
    (_regex(form), rel.name, inverse)
    for rel in RELATIONS.values()
    for form, inverse in ((rel.fact, False), (rel.inverse_fact, True))
    if form
]


@dataclass(frozen=True)
class QuestionShape:
    """A question in a canonical one-hop form: which relation, which way, and the slot's text."""

    relation: str
    inverse: bool
    phrase: str


# A slot that is itself a description ("the country where the Eiffel Tower is") makes a
# multi-hop question in a one-hop shape: "What is the capital of the country where ...?"
_BRIDGE_SLOT = re.compile(
    r"^the (country|city|element|capital|author|writer|novelist|only novel|single novel|"
    r"birthplace|continent|currency|river) "
)


def parse_question(question: str) -> QuestionShape | None:
    """The canonical shape of a one-hop question, or None if it is in no known shape."""
    for pattern, relation, inverse in _QUESTION_SHAPES:
        m = pattern.match(question.strip())
        if m:
            phrase = m.group("O" if inverse else "S")
            return None if _BRIDGE_SLOT.match(phrase) else QuestionShape(relation, inverse, phrase)
    return None


def parse_fact(sentence: str) -> tuple[str, bool, str, str] | None:
    """(relation, inverse, subject phrase, object phrase) of a fact sentence, or None."""
    for pattern, relation, inverse in _FACT_SHAPES:
        m = pattern.match(sentence.strip())
        if not m:
            continue
        if relation in ("continent", "landmark_country") and (
            (m.group("O") in CONTINENTS) != (relation == "continent")
        ):
            continue
        return relation, inverse, m.group("S"), m.group("O")
    return None


def split_article(phrase: str, entity_type: str, at_start: bool = False) -> tuple[str, str]:
    """(name, article) of a noun phrase: "the United Kingdom" -> ("United Kingdom", "the").

    Element names are lower case mid-sentence ("sodium") though answers capitalise them. A
    capital "The" mid-sentence belongs to a title; at a sentence start it is an article
    unless the entity is a work ("The Trial was written by ...").
    """
    phrase = phrase.strip()
    if entity_type == "element":
        return phrase.lower(), ""
    if phrase.startswith("the "):
        return phrase[4:], "the"
    if at_start and phrase.startswith("The ") and entity_type != "work":
        return phrase[4:], "the"
    return phrase, ""


class FactGraph:
    """Triples with lookups both ways, entity types, articles and the sentence of each fact."""

    def __init__(self) -> None:
        self.triples: list[Triple] = []
        self.types: dict[str, str] = {}
        self.articles: dict[str, str] = {}
        self._objects: dict[tuple[str, str], str] = {}
        self._subjects: dict[tuple[str, str], list[str]] = {}
        self._sentences: dict[tuple[Triple, bool], str] = {}

    # --- building -----------------------------------------------------------------------

    @classmethod
    def from_records(cls, records: Iterable[dict]) -> FactGraph:
        graph = cls()
        for record in records:
            graph.add_record(record)
        return graph

    def add_record(self, record: dict) -> list[Triple]:
        """Parse a record's question (with its answer) and fact sentences; add what they say."""
        found = []
        # a record resting on two or more facts is a multi-hop question, whatever its shape
        one_hop = len(record.get("facts") or []) <= 1 and not record.get("chain")
        shape = parse_question(record.get("question", "")) if one_hop else None
        answer = str(record.get("answer", "")).strip()
        if shape and answer:
            rel = RELATIONS[shape.relation]
            given, asked = (rel.subject_type, rel.object_type)
            if shape.inverse:
                given, asked = asked, given
            at_start = record["question"].strip().startswith(shape.phrase)
            given_name = self._entity(shape.phrase, given, at_start)
            asked_name = self._entity(answer, asked)
            s, o = (asked_name, given_name) if shape.inverse else (given_name, asked_name)
            found.append(self.add(Triple(s, rel.name, o)))
        for sentence in record.get("facts", []) or []:
            parsed = parse_fact(sentence)
            if parsed is None:
                continue
            relation, inverse, s_phrase, o_phrase = parsed
            rel = RELATIONS[relation]
            s = self._entity(s_phrase, rel.subject_type, sentence.startswith(s_phrase))
            o = self._entity(o_phrase, rel.object_type, sentence.startswith(o_phrase))
            found.append(self.add(Triple(s, relation, o), sentence=sentence, inverse=inverse))
        return list(dict.fromkeys(found))

    def _entity(self, phrase: str, entity_type: str, at_start: bool = False) -> str:
        name, article = split_article(phrase, entity_type, at_start)
        self.types.setdefault(name, entity_type)
        if article:
            self.articles[name] = article
        return name

    def add(self, triple: Triple, sentence: str | None = None, inverse: bool = False) -> Triple:
        """Add a triple (once) and its sentence in one direction.

        The first object given for a (subject, relation) wins: a later, contradicting triple
        is ignored, so that one graph never answers one question two ways.
        """
        key = (triple.subject, triple.relation)
        if key not in self._objects:
            self._objects[key] = triple.object
            self._subjects.setdefault((triple.relation, triple.object), []).append(triple.subject)
            self.triples.append(triple)
        if self._objects[key] != triple.object:
            return triple
        if sentence and (triple, inverse) not in self._sentences:
            self._sentences[(triple, inverse)] = sentence
        return triple

    def restricted(self, keep: Callable[[Triple], bool]) -> FactGraph:
        """The graph of the triples `keep` accepts, with the same names, types and sentences."""
        sub = FactGraph()
        sub.types, sub.articles = dict(self.types), dict(self.articles)
        for triple in self.triples:
            if keep(triple):
                sub.add(triple)
                for inverse in (False, True):
                    if (triple, inverse) in self._sentences:
                        sub._sentences[(triple, inverse)] = self._sentences[(triple, inverse)]
        return sub

    # --- reading ------------------------------------------------------------------------

    def lookup(self, subject: str, relation: str) -> str | None:
        return self._objects.get((subject, relation))

    def inverse_lookup(self, relation: str, obj: str) -> str | None:
        """The one subject of (relation, obj), for relations that may be asked backwards."""
        if not RELATIONS[relation].inverse_question:
            return None
        subjects = self._subjects.get((relation, obj), [])
        return subjects[0] if len(subjects) == 1 else None

    def type_of(self, name: str) -> str | None:
        return self.types.get(name)

    def entities(self, entity_type: str) -> list[str]:
        """Names of one type that occur in some triple, in first-seen order."""
        seen = dict.fromkeys(n for t in self.triples for n in (t.subject, t.object))
        return [n for n in seen if self.types.get(n) == entity_type]

    def by_relation(self, relation: str) -> list[Triple]:
        return [t for t in self.triples if t.relation == relation]

    def phrase(self, name: str) -> str:
        """The name as it reads mid-sentence: "the United Kingdom", "sodium", "Dracula"."""
        article = self.articles.get(name, "")
        return f"{article} {name}" if article else name

    def answer_text(self, name: str) -> str:
        """The name as an answer: bare ("United Kingdom", "euro"); elements capitalised."""
        if self.types.get(name) == "element":
            return name[:1].upper() + name[1:]
        return name

    def sentence(self, triple: Triple, inverse: bool = False) -> str:
        """The fact sentence in the direction asked: the record's own, else the canonical one."""
        if (triple, inverse) in self._sentences:
            return self._sentences[(triple, inverse)]
        rel = RELATIONS[triple.relation]
        form = rel.inverse_fact if inverse and rel.inverse_fact else rel.fact
        return fill(form, self.phrase(triple.subject), self.phrase(triple.object))

    def question(self, triple: Triple, inverse: bool = False) -> str:
        """The canonical (training-form) one-hop question for a triple."""
        rel = RELATIONS[triple.relation]
        form = rel.inverse_question if inverse else rel.question
        if not form:
            raise ValueError(f"relation {triple.relation!r} has no inverse question")
        return fill(form, self.phrase(triple.subject), self.phrase(triple.object))

    def lookup_question(self, question: str) -> str | None:
        """The graph's answer to a canonical one-hop question; None if unknown or unparsed.

        For the fact verifier: a question in a known shape about a known fact can be checked.
        """
        shape = parse_question(question)
        if shape is None:
            return None
        rel = RELATIONS[shape.relation]
        if shape.inverse:
            name, _ = split_article(
                shape.phrase, rel.object_type, question.startswith(shape.phrase)
            )
            subject = self.inverse_lookup(rel.name, name)
            return self.answer_text(subject) if subject is not None else None
        name, _ = split_article(shape.phrase, rel.subject_type)
        obj = self.lookup(name, rel.name)
        return self.answer_text(obj) if obj is not None else None
