"""Filters that decide which distilled candidate pairs may join the training pool.

    kept, log = run_filters(candidates, [leak, agreement, confidence, verifier, near_dup], pool)

A candidate is anything with the attributes `question`, `expected` (answer known by
construction, or None), `operator`, `kind`, `facts`, `chain`, plus `answer` (the teacher's
greedy answer) and `confidence` (its mean byte probability) that the runner sets before
filtering. Filters read these by name only, so they work on `pairs.Candidate` and on any
stand-in. The answer a pair is trained on is `pair_answer(c)`: `expected` when known, else
the teacher's `answer`.

Every filter has a `name` and `__call__(candidates) -> (kept, removed)`, removed being
`(candidate, reason)`; a reason starts with a short category ("exact: ...", "rouge_l: ...")
that `FilterLog` counts. A filter may also have `notes` (kept candidates worth counting, e.g.
"corrected", "unverified") and `observe_pool(records)` (called by `run_filters` first).

Order matters: the leak filter runs first so nothing derived from a held-out question is ever
looked at again, and the near-duplicate filter runs last because it indexes what it keeps.

Similarity is word-level ROUGE-L (LCS F-measure), from `ghost.distill.similarity`.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghost.distill.similarity import TokenIndex, normalize, rouge_l_tokens, tokens


def pair_answer(candidate: Any) -> str | None:
    """The answer a candidate is trained on: `expected` when known, else the teacher's."""
    expected = getattr(candidate, "expected", None)
    return expected if expected is not None else getattr(candidate, "answer", None)


def _check_threshold(name: str, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")


# The log -------------------------------------------------------------------------------


def _example(candidate: Any, reason: str, redact: bool) -> dict:
    example = {"operator": getattr(candidate, "operator", None), "reason": reason}
    if not redact:
        example.update(question=getattr(candidate, "question", None), answer=pair_answer(candidate))
    return example


def _category(reason: str) -> str:
    return reason.split(":", 1)[0].strip()


@dataclass
class _StageLog:
    seen: int = 0
    kept: int = 0
    removed: int = 0
    by_category: Counter = field(default_factory=Counter)
    by_operator: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)
    note_examples: list = field(default_factory=list)


@dataclass
class FilterLog:
    """Per filter: how many were seen, kept, removed (by reason category and by operator),
    up to `max_examples` example reasons, and counted notes. Accumulates over rounds."""

    max_examples: int = 5
    stages: dict[str, _StageLog] = field(default_factory=dict)
    dropped: list = field(default_factory=list)
    """Every removal, in order: (candidate, filter name, reason, redact)."""

    def record(
        self, name: str, seen: int, kept: int, removed, notes=(), redact: bool = False
    ) -> None:
        """Count one filter's pass. With `redact`, examples keep only operator and reason: the
        leak filter's removed questions are (near) copies of held-out ones."""
        stage = self.stages.setdefault(name, _StageLog())
        stage.seen += seen
        stage.kept += kept
        stage.removed += len(removed)
        for candidate, reason in removed:
            stage.by_category[_category(reason)] += 1
            stage.by_operator[str(getattr(candidate, "operator", ""))] += 1
            if len(stage.examples) < self.max_examples:
                stage.examples.append(_example(candidate, reason, redact))
        for candidate, note in notes:
            stage.notes[_category(note)] += 1
            if len(stage.note_examples) < self.max_examples:
                stage.note_examples.append(_example(candidate, note, redact))

    def removed_counts(self) -> dict[str, int]:
        """Removals per filter name, in the order the filters ran."""
        return {name: stage.removed for name, stage in self.stages.items()}

    def summary_line(self) -> str:
        """Removals per filter on one line, e.g. "leak 3, agreement 0, confidence 2"."""
        return ", ".join(f"{name} {n}" for name, n in self.removed_counts().items()) or "none"

    def to_dict(self) -> dict:
        """A JSON-serialisable summary (what the report prints)."""
        return {
            "filters": [
                {
                    "name": name,
                    "seen": s.seen,
                    "kept": s.kept,
                    "removed": s.removed,
                    "removed_by_category": dict(s.by_category),
                    "removed_by_operator": dict(s.by_operator),
                    "examples": list(s.examples),
                    "notes": dict(s.notes),
                    "note_examples": list(s.note_examples),
                }
                for name, s in self.stages.items()
            ]
        }


def run_filters(candidates, filters, pool_records=(), log: FilterLog | None = None):
    """Apply `filters` in order; returns (kept, log). Pass the same `log` to accumulate rounds.

    Filters with `observe_pool` are first shown `pool_records` (the seed pool plus pairs
    accepted so far), so they compare against the pool as it is now.
    """
    log = log if log is not None else FilterLog()
    pool_records = list(pool_records)
    current = list(candidates)
    for f in filters:
        if hasattr(f, "observe_pool"):
            f.observe_pool(pool_records)
        seen = len(current)
        current, removed = f(current)
        notes, redact = getattr(f, "notes", ()), getattr(f, "redact_examples", False)
        log.record(f.name, seen, len(current), removed, notes, redact)
        log.dropped.extend((c, f.name, reason, redact) for c, reason in removed)
    return current, log


# 1. Leak -------------------------------------------------------------------------------


def _fact_key(facts) -> frozenset[str] | None:
    key = frozenset(normalize(f) for f in (facts or ()))
    return key if len(key) >= 2 else None


def _chain_key(chain) -> tuple[str, ...] | None:
    key = tuple(normalize(q) for q in (chain or ()))
    return key if len(key) >= 2 else None


class LeakFilter:
    """Keeps held-out questions (and their rewordings and recompositions) out of training.

    Dropped: a question equal (normalised) to a held-out one; ROUGE-L >= `threshold` with a
    held-out question of the same normalised answer; ROUGE-L >= `any_answer_threshold` with any
    held-out question; a fact set (>= 2 facts) or chain equal to a held-out record's, so that
    composition cannot rebuild a held-out multi-hop question in new words. Both the teacher's
    answer and `expected` are checked, whichever would be trained on later. Reasons name the
    held-out record by source and line ("facts200:novel#12"), never by its text, and the log
    keeps no text of what this filter removed (`redact_examples`): it is held-out content.
    """

    name = "leak"
    redact_examples = True

    def __init__(
        self,
        heldout_records=(),
        threshold: float = 0.7,
        any_answer_threshold: float = 0.9,
        source: str = "held-out",
    ) -> None:
        _check_threshold("threshold", threshold)
        _check_threshold("any_answer_threshold", any_answer_threshold)
        self.threshold = threshold
        self.any_answer_threshold = any_answer_threshold
        self._questions: dict[str, str] = {}
        self._by_answer: dict[str, TokenIndex] = {}
        self._all = TokenIndex()
        self._fact_sets: dict[frozenset[str], str] = {}
        self._chains: dict[tuple[str, ...], str] = {}
        self._count = 0
        self.add_records(heldout_records, source)

    def __len__(self) -> int:
        return self._count

    def add_records(self, records: Iterable[dict], source: str) -> None:
        """Index Q&A records ({"question", "answer", "facts"?, "chain"?}); others are skipped."""
        for number, record in enumerate(records, start=1):
            if not isinstance(record, dict) or "question" not in record:
                continue
            label = f"{source}#{number}"
            toks = tokens(record["question"])
            self._questions.setdefault(" ".join(toks), label)
            answer = normalize(str(record.get("answer", "")))
            self._by_answer.setdefault(answer, TokenIndex()).add(toks, label)
            self._all.add(toks, label)
            if (key := _fact_key(record.get("facts"))) is not None:
                self._fact_sets.setdefault(key, label)
            if (key := _chain_key(record.get("chain"))) is not None:
                self._chains.setdefault(key, label)
            self._count += 1

    @classmethod
    def for_dataset(
        cls, spec: str, extra: Sequence[str | Path] | None = (), **kwargs
    ) -> LeakFilter:
        """The leak filter for a `ghost distill` data spec.

        A built-in name ("facts200", "bash100:train", ...) brings every Q&A split its
        `DatasetInfo.held_out` names; a user file has no known held-out part, so only the
        `extra` held-out files (JSONL Q&A) are indexed. `kwargs` go to the constructor.
        """
        from ghost.data import builtin, records

        leak = cls(**kwargs)
        path = Path(spec)
        is_file = path.suffix in (".jsonl", ".json", ".txt") or path.exists()
        if not is_file and builtin.is_builtin(spec):
            info = next(d for d in builtin.list_datasets() if d.name == spec.partition(":")[0])
            for split in info.held_out:
                if info.record_type(split) == "qa":
                    name = f"{info.name}:{split}"
                    leak.add_records(builtin.load_builtin(name), name)
        for path in extra or ():
            leak.add_records(records.read_records(path, kind="qa"), str(path))
        return leak

    def _reason(self, candidate: Any) -> str | None:
        toks = tokens(candidate.question)
        if (label := self._questions.get(" ".join(toks))) is not None:
            return f"exact: question equals held-out {label}"
        answers = {getattr(candidate, attr, None) for attr in ("expected", "answer")}
        for answer in sorted(normalize(str(a)) for a in answers if a is not None):
            index = self._by_answer.get(answer)
            if index is not None and (hit := index.find(toks, self.threshold)) is not None:
                return (
                    f"rouge_l same answer: {hit[0]:.2f} >= {self.threshold} with "
                    f"held-out {hit[1]} (answer {answer!r})"
                )
        if (hit := self._all.find(toks, self.any_answer_threshold)) is not None:
            return (
                f"rouge_l any answer: {hit[0]:.2f} >= {self.any_answer_threshold} "
                f"with held-out {hit[1]}"
            )
        key = _fact_key(getattr(candidate, "facts", ()))
        if key is not None and key in self._fact_sets:
            return f"facts: the fact set of held-out {self._fact_sets[key]}"
        key = _chain_key(getattr(candidate, "chain", ()))
        if key is not None and key in self._chains:
            return f"chain: the chain of held-out {self._chains[key]}"
        return None

    def shares_facts(self, candidate: Any) -> bool:
        """Whether the candidate's fact set or chain is a held-out record's (its wording aside)."""
        key = _fact_key(getattr(candidate, "facts", ()))
        chain = _chain_key(getattr(candidate, "chain", ()))
        return (key is not None and key in self._fact_sets) or (
            chain is not None and chain in self._chains
        )

    def __call__(self, candidates):
        kept, removed = [], []
        for candidate in candidates:
            reason = self._reason(candidate)
            if reason is None:
                kept.append(candidate)
            else:
                removed.append((candidate, reason))
        return kept, removed


# 2. Agreement, 3. Confidence -----------------------------------------------------------


class AgreementFilter:
    """Where the answer is known by construction, the teacher must give it.

    mode "require" drops a disagreeing candidate; mode "correct" keeps it with `answer` set to
    `expected` (a copy; the note "corrected" says so and the old answer is `teacher_answer`).
    Candidates without `expected` pass: only the confidence filter and verifiers judge them.
    """

    name = "agreement"

    def __init__(self, mode: str = "require") -> None:
        if mode not in ("require", "correct"):
            raise ValueError(f"mode must be 'require' or 'correct', got {mode!r}")
        self.mode = mode
        self.notes: list = []

    def __call__(self, candidates):
        kept, removed, self.notes = [], [], []
        for c in candidates:
            answer = getattr(c, "answer", None)
            if c.expected is None or (answer is not None and answer.strip() == c.expected.strip()):
                kept.append(c)
                continue
            said = f"teacher answered {answer!r}, expected {c.expected!r}"
            if self.mode == "require":
                removed.append((c, f"disagree: {said}"))
            else:
                fixed = copy.copy(c)
                fixed.teacher_answer = answer
                fixed.answer = c.expected
                kept.append(fixed)
                self.notes.append((fixed, f"corrected: {said}"))
        return kept, removed


class ConfidenceFilter:
    """The teacher's confidence (mean byte probability of its answer) must reach `threshold`.

    scope "unverified" (default) judges only candidates without `expected`, whose answer
    nothing else vouches for; scope "all" judges every candidate.
    """

    name = "confidence"

    def __init__(self, threshold: float, scope: str = "unverified") -> None:
        if scope not in ("unverified", "all"):
            raise ValueError(f"scope must be 'unverified' or 'all', got {scope!r}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.threshold = threshold
        self.scope = scope

    def __call__(self, candidates):
        kept, removed = [], []
        for c in candidates:
            if self.scope == "unverified" and c.expected is not None:
                kept.append(c)
                continue
            confidence = getattr(c, "confidence", None)
            if confidence is None:
                removed.append((c, "no confidence: the teacher gave none"))
            elif confidence < self.threshold:
                removed.append((c, f"low: confidence {confidence:.3f} < {self.threshold}"))
            else:
                kept.append(c)
        return kept, removed


# 4. Verifiers (ghost.distill.verifiers) ------------------------------------------------


def _verifier_name(verifier) -> str:
    return str(getattr(verifier, "name", getattr(verifier, "__name__", type(verifier).__name__)))


class VerifierFilter:
    """Runs each verifier on `pair_answer(c)`: any False drops the candidate; a candidate no
    verifier could judge passes with the note "unverified" (counted in the log)."""

    name = "verifier"

    def __init__(self, verifiers: Sequence[Callable]) -> None:
        self.verifiers = list(verifiers)
        self.notes: list = []

    @classmethod
    def for_dataset(cls, spec: str, graph=None) -> VerifierFilter:
        """The filter with `ghost.distill.verifiers.default_verifiers(spec, graph)`."""
        from ghost.distill.verifiers import default_verifiers

        return cls(default_verifiers(spec, graph))

    def __call__(self, candidates):
        kept, removed, self.notes = [], [], []
        for c in candidates:
            answer, verdicts, failure = pair_answer(c) or "", [], None
            for verifier in self.verifiers:
                ok, reason = verifier(c.question, answer)
                verdicts.append(ok)
                if ok is False:
                    failure = f"{_verifier_name(verifier)}: {reason}"
                    break
            if failure:
                removed.append((c, failure))
                continue
            kept.append(c)
            checked = [
                _verifier_name(v) for v, ok in zip(self.verifiers, verdicts, strict=False) if ok
            ]
            c.checked_by = checked[0] if checked else None
            if not checked:
                self.notes.append((c, "unverified: no verifier could check it"))
        return kept, removed


# 5. Near duplicates --------------------------------------------------------------------


class NearDuplicateFilter:
    """Drops a candidate that repeats the pool or an earlier accepted candidate.

    Repeating means the same normalised question (whatever the answer), or ROUGE-L >=
    `threshold` with a question of the same normalised answer; questions with different
    answers are different pairs however alike their words. With `use_facts` (default), two
    questions whose supporting facts are both known and differ are different pairs too: "On
    which continent is Spain?" does not repeat "On which continent is France?" although both
    answers are "Europe". The index lives across calls: pool records (`observe_pool`,
    idempotent) and every candidate this filter keeps are added, so it must run last.
    """

    name = "near_duplicate"

    def __init__(
        self, threshold: float = 0.7, pool: Iterable[dict] = (), use_facts: bool = True
    ) -> None:
        _check_threshold("threshold", threshold)
        self.threshold = threshold
        self.use_facts = use_facts
        self._questions: set[str] = set()
        # normalised answer -> fact set (None: unknown) -> questions
        self._by_answer: dict[str, dict[frozenset[str] | None, TokenIndex]] = {}
        self.observe_pool(pool)

    def __len__(self) -> int:
        return len(self._questions)

    def _facts(self, facts) -> frozenset[str] | None:
        key = frozenset(normalize(f) for f in (facts or ()))
        return key if key and self.use_facts else None

    def add(self, question: str, answer: str, facts=()) -> None:
        toks = tokens(question)
        key = " ".join(toks)
        if key in self._questions:
            return
        self._questions.add(key)
        by_facts = self._by_answer.setdefault(normalize(answer), {})
        by_facts.setdefault(self._facts(facts), TokenIndex()).add(toks, question)

    def observe_pool(self, records: Iterable[dict]) -> None:
        for record in records:
            if "question" in record:
                self.add(record["question"], str(record.get("answer", "")), record.get("facts"))

    def _match(self, toks: list[str], answer: str, facts) -> tuple[float, Any] | None:
        by_facts = self._by_answer.get(answer, {})
        own = self._facts(facts)
        indexes = by_facts.values() if own is None else (by_facts.get(own), by_facts.get(None))
        for index in indexes:
            if index is not None and (hit := index.find(toks, self.threshold)) is not None:
                return hit
        return None

    def __call__(self, candidates):
        kept, removed = [], []
        for c in candidates:
            toks = tokens(c.question)
            answer = pair_answer(c) or ""
            facts = getattr(c, "facts", ())
            if " ".join(toks) in self._questions:
                removed.append((c, "exact: the same normalised question is already in the pool"))
            elif (hit := self._match(toks, normalize(answer), facts)) is not None:
                reason = f"rouge_l: {hit[0]:.2f} >= {self.threshold} with {hit[1]!r}"
                removed.append((c, f"{reason} (same answer {normalize(answer)!r})"))
            else:
                kept.append(c)
                self.add(c.question, answer, facts)
        return kept, removed


# Diversity -----------------------------------------------------------------------------


def diversity(questions: Sequence[str], sample: int = 2000, seed: int = 0) -> dict:
    """How varied a set of questions is: distinct normalised questions, and the mean pairwise
    ROUGE-L over all pairs, or over `sample` seeded random pairs when there are more."""
    toks = [tokens(q) for q in questions]
    n = len(toks)
    total = n * (n - 1) // 2
    if total <= sample:
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    else:
        rng = random.Random(seed)
        pairs = [tuple(rng.sample(range(n), 2)) for _ in range(sample)]
    scores = [rouge_l_tokens(toks[i], toks[j]) for i, j in pairs]
    return {
        "questions": n,
        "distinct": len({" ".join(t) for t in toks}),
        "pairs": len(pairs),
        "mean_rouge_l": sum(scores) / len(scores) if scores else 0.0,
    }
