"""What an operator proposes: a `Candidate` question with its provenance, and `pair_id`.

A candidate carries everything the filters and the report need to judge it without going
back to the operator: the answer known by construction (`expected`, None when only the
teacher can answer), which operator and template made it, the pairs it came from, and the
fact sentences it rests on (the leak filter compares sets of facts and chains, so that
composition cannot rebuild a held-out multi-hop question in new words).

The runner sets the teacher's answer and confidence on candidates as attributes after
construction, so this is a plain (mutable, slot-less) dataclass.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass
class Candidate:
    question: str
    expected: str | None
    """Answer known by construction from the seed facts; None if only the teacher can answer."""
    operator: str
    """"reword", "invert", "yesno", "cloze", "compose", "noise", "swap", "teacher", "generic"."""
    template: str
    """Template id, e.g. "capital/f07"; "" if none."""
    parent: str
    """Id of the parent pair (a seed or an earlier pair); for compose: the first hop's parent."""
    parents: tuple[str, ...]
    """All parent ids (compose has 2-3)."""
    kind: str
    """"fact", "2hop", "3hop", "yesno", "cloze", ... (evaluation groups by kind)."""
    facts: tuple[str, ...]
    """Supporting fact sentences (the leak filter compares sets of facts)."""
    chain: tuple[str, ...] = ()
    """For composed questions: the one-hop questions, as facts200's "chain"."""


def pair_id(question: str, answer: str) -> str:
    """A short id that is the same for the same pair on every run and machine."""
    return hashlib.sha1(f"{question}\x00{answer}".encode()).hexdigest()[:10]
