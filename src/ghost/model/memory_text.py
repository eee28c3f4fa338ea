"""What a fact's text says, read without the network: the subject it is about (`fact_key`,
which tells contradicting entries apart), where its value starts (`value_start`, a feature
the copy head reads), and its words for lexical retrieval (`words_of`, `LexicalIndex`).
"""

from __future__ import annotations

import math
import re

import torch

# What a fact says something about: its text up to the last linking word before its value
# ("The capital of France is Lyon." -> "the capital of france is"; "The Great Gatsby was
# written by F. Scott Fitzgerald." -> "the great gatsby was written by"). Two entries with
# one key and different texts contradict each other. A value that itself contains a linking
# word ("Bay of Bengal") makes the key longer: a missed conflict, never a false one.
_LINKS = {"is", "are", "was", "were", "has", "have", "by", "in", "on", "of", "at", "the", "a"}


def fact_key(text: str) -> str | None:
    words = text.strip().rstrip(".").split()
    links = [i for i, w in enumerate(words[:-1]) if w.lower() in _LINKS]
    return " ".join(words[: links[-1] + 1]).lower() if links else None


_LINK_BYTES = {w.encode() for w in _LINKS}


def value_start(data: bytes) -> int | None:
    """The byte offset where a fact's value begins: after the last linking word before its
    last word, as `fact_key` splits it ("The capital of Zorvania is Quessaro." -> the "Q"),
    or None when the text has no linking word."""
    words = list(re.finditer(rb"\S+", data))
    links = [i for i, w in enumerate(words[:-1]) if w.group().lower() in _LINK_BYTES]
    return words[links[-1] + 1].start() if links else None


def value_starts(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(U, T) entry bytes and mask -> (U, T) bool, True at each entry's `value_start`."""
    starts = torch.zeros_like(mask)
    for row, (data, n) in enumerate(zip(ids.tolist(), mask.sum(-1).tolist(), strict=True)):
        at = value_start(bytes(data[:n]))
        if at is not None:
            starts[row, at] = True
    return starts


# Lexical retrieval: a question's words (lower-case letters and digits, 2 or more) without
# the words that ask rather than name, each weighted by its rarity among the entries
# (inverse document frequency); an entry's score is the weight of the question's words it
# contains over the weight of all of them, in [0, 1].
_ASKING = {
    "what", "which", "who", "whom", "whose", "where", "when", "how", "why", "does", "did",
    "do", "name", "tell", "me", "you",
}  # fmt: skip


def words_of(text: str | bytes) -> set[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 1}


class LexicalIndex:
    """Word -> entries postings over a list of texts, and the rarity weight of each word."""

    def __init__(self, texts: list[str]):
        self.size = len(texts)
        postings: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            for w in words_of(text):
                postings.setdefault(w, []).append(i)
        self.postings = {w: torch.tensor(p, dtype=torch.long) for w, p in postings.items()}

    def weight(self, word: str) -> float:
        found = self.postings.get(word)
        df = 0 if found is None else found.numel()
        return math.log((self.size + 1) / (df + 0.5))

    def scores(self, queries: list[str | bytes]) -> torch.Tensor:
        """(Q, N): for each query, the weighted share of its words each text contains.
        Summed in fp64 so that a text holding every word scores exactly 1, not 1 + 1 ulp
        (the sum's order follows set iteration, which varies between processes)."""
        out = torch.zeros(len(queries), self.size, dtype=torch.float64)
        for q, query in enumerate(queries):
            weights = {w: self.weight(w) for w in words_of(query) - _ASKING}
            total = sum(weights.values())
            for w, weight in weights.items():
                found = self.postings.get(w)
                if found is not None:
                    out[q].index_add_(
                        0, found, torch.full((found.numel(),), weight, dtype=out.dtype)
                    )
            if total > 0:
                out[q] /= total
        return out.float()
