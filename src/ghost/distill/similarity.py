"""Word-level text similarity for the distill filters and anything that compares questions.

    tokens(text) -> words and symbols     normalize(text) -> the key for "the same text"
    rouge_l(a, b) -> LCS F-measure        TokenIndex: find an entry reaching a ROUGE-L threshold

ROUGE-L (word-level LCS F-measure, beta = 1) is computed bit-parallel (`rouge_l`), with the
plain dynamic programme beside it as the reference its test compares with
(`rouge_l_reference`); `TokenIndex` finds, among thousands of indexed questions, only those
that can reach a threshold, so the leak and near-duplicate filters stay fast.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

# Words keep inner apostrophes ("what's"); symbols that carry meaning in equations and shell
# commands (+ - * / = | $ ...) are tokens of their own; sentence punctuation is dropped.
_TOKEN = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s.,?!;:\"'\u2019()\[\]{}]")


def tokens(text: str) -> list[str]:
    """Lower-cased word and symbol tokens of `text`, sentence punctuation dropped."""
    return _TOKEN.findall(text.lower())


def normalize(text: str) -> str:
    """Lower-cased, punctuation stripped, single spaces: the key for "the same text"."""
    return " ".join(tokens(text))


# ROUGE-L -------------------------------------------------------------------------------


def _lcs_reference(a: Sequence[str], b: Sequence[str]) -> int:
    """Longest common subsequence length, the textbook dynamic programme."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    """Same as `_lcs_reference`, bit-parallel over b (Allison-Dix / Hyyro), one int per row."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for j, y in enumerate(b):
        masks[y] = masks.get(y, 0) | (1 << j)
    full = (1 << len(b)) - 1
    v = full
    for x in a:
        u = v & masks.get(x, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def _f_measure(lcs: int, m: int, n: int) -> float:
    return 2.0 * lcs / (m + n) if lcs else 0.0


def rouge_l(a: str, b: str) -> float:
    """Word-level ROUGE-L F-measure (beta = 1) of two texts; 0.0 if either has no words."""
    return rouge_l_tokens(tokens(a), tokens(b))


def rouge_l_tokens(a: Sequence[str], b: Sequence[str]) -> float:
    """`rouge_l` of two token lists already cut by `tokens`."""
    return _f_measure(_lcs(a, b), len(a), len(b))


def rouge_l_reference(a: str, b: str) -> float:
    """`rouge_l` through the plain dynamic programme (the oracle its test compares with)."""
    ta, tb = tokens(a), tokens(b)
    return _f_measure(_lcs_reference(ta, tb), len(ta), len(tb))


class TokenIndex:
    """Token lists with a query for an entry whose ROUGE-L reaches a threshold.

    Each entry is posted under its (token, occurrence) keys, so the keys two lists share
    count their multiset overlap, an upper bound of the LCS. A match needs LCS >= `need`,
    hence shares at least one of any `m - need + 1` query keys: the query probes only that
    many, the rarest, rejects on the overlap bound (a C set intersection), and computes the
    LCS only for the survivors, stopping at the first match. Exact for any threshold in (0, 1].
    """

    def __init__(self) -> None:
        self._entries: list[tuple[list[str], frozenset, Any]] = []
        self._postings: dict[tuple[str, int], list[int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _keys(toks: list[str]) -> list[tuple[str, int]]:
        seen: Counter[str] = Counter()
        keys = []
        for tok in toks:
            keys.append((tok, seen[tok]))
            seen[tok] += 1
        return keys

    def add(self, toks: list[str], payload: Any) -> None:
        keys = self._keys(toks)
        index = len(self._entries)
        self._entries.append((toks, frozenset(keys), payload))
        for key in keys:
            self._postings.setdefault(key, []).append(index)

    def find(self, toks: list[str], threshold: float) -> tuple[float, Any] | None:
        """(score, payload) of an entry with ROUGE-L >= threshold, or None if there is none."""
        m = len(toks)
        if m == 0 or not self._entries:
            return None
        shortest = math.ceil(threshold * m / (2.0 - threshold) - 1e-9)
        need = max(1, math.ceil(threshold * (m + shortest) / 2.0 - 1e-9))
        keys = self._keys(toks)
        query = frozenset(keys)
        keys.sort(key=lambda k: len(self._postings.get(k, ())))
        seen: set[int] = set()
        for key in keys[: max(1, m - need + 1)]:
            for index in self._postings.get(key, ()):
                if index in seen:
                    continue
                seen.add(index)
                other, other_keys, payload = self._entries[index]
                n = len(other)
                if _f_measure(len(query & other_keys), m, n) < threshold:
                    continue
                score = _f_measure(_lcs(toks, other), m, n)
                if score >= threshold:
                    return score, payload
        return None
