"""What a fact's text says, read without the network: the subject it is about (`fact_key`,
which tells contradicting entries apart), where its value starts (`value_start`, a feature
the copy head reads), its words for lexical retrieval (`words_of`, `LexicalIndex`), and
where an answer copied from it may start and end (`question_cues`).
"""

from __future__ import annotations

import math
import re

import numpy as np
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


_WORD = "[a-z0-9]{2,}"  # a word: a run of two or more lower-case letters and digits


def words_of(text: str | bytes) -> set[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return set(re.findall(_WORD, text.lower()))


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

    def query_weights(self, query: str | bytes) -> dict[str, float]:
        """The question's words that name rather than ask, each with its rarity weight."""
        return {w: self.weight(w) for w in words_of(query) - _ASKING}

    def scores(self, queries: list[str | bytes]) -> torch.Tensor:
        """(Q, N): for each query, the weighted share of its words each text contains.
        Summed in fp64 so that a text holding every word scores exactly 1, not 1 + 1 ulp
        (the sum's order follows set iteration, which varies between processes)."""
        out = torch.zeros(len(queries), self.size, dtype=torch.float64)
        for q, query in enumerate(queries):
            weights = self.query_weights(query)
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


def next_word_ends(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(U, T) entry bytes and mask -> (U, T) long: for each byte, the position of the last
    byte of the next word that starts after it (words: runs of bytes other than spaces);
    the entry's last byte where no word follows. A causal encoder's state there has read
    the next word: what the copy head looks at to decide whether a value ends at a space."""
    u, t = ids.shape
    at = torch.arange(t, device=ids.device).expand(u, t)
    word = (ids != ord(" ")) & mask
    none = torch.zeros(u, 1, dtype=torch.bool, device=ids.device)
    starts = word & ~torch.cat([none, word[:, :-1]], dim=1)
    ends = word & ~torch.cat([word[:, 1:], none], dim=1)

    def first_from(marked: torch.Tensor) -> torch.Tensor:  # the first marked k >= j, else t
        return torch.where(marked, at, t).flip(1).cummin(1).values.flip(1)

    after = torch.cat([first_from(starts)[:, 1:], torch.full_like(at[:, :1], t)], dim=1)
    end_of = first_from(ends).gather(1, after.clamp(max=t - 1))
    last = (mask.sum(-1, keepdim=True) - 1).clamp(min=0)
    inside = (after < t) & (at < mask.sum(-1, keepdim=True))
    return torch.where(inside, end_of, last)


def _word_spans(data: bytes) -> list[tuple[int, str]]:
    """(start, word) of each word of `data` as `words_of` reads them (lower case)."""
    return [(m.start(), m.group().decode()) for m in re.finditer(_WORD.encode(), data.lower())]


def question_cues(
    lexicon: LexicalIndex, queries: list[str | bytes], data: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """What each question says about the bytes of the entries it reads (`data`, `mask`:
    (1|B, M, T) entry bytes, one row of entries shared by every query or one per query)
    -> (B, M, T, 3), three features, 0 where they do not apply:
    - at a space, 1 when the word right after it is one of the question's words: an answer
      does not repeat its question, so a value has ended there ("Norkthao| is where ..."
      asked "Which city is the seat of ...": "is");
    - at a space, of the question's words the entry contains, the share (rarity-weighted,
      as `LexicalIndex.scores`) still to come: none left means the rest of the entry is
      the value ("... a book by Rintria| Krumanin."), the question's subject still to come
      means the value is not the entry's end ("The Dalbrundach| flows through ...");
    - 1 on the bytes of the entry's words that are the question's words: where an answer
      is not copied from ("Troumaio" asked "In which country is the Troumaio Palace?").
    An entry with none of the question's words (or a question of asking words only) gets
    zeros."""
    b = len(queries)
    shared = data.shape[0] == 1
    out = np.zeros((b, *data.shape[1:], 3), dtype=np.float32)
    rows, lengths = data.tolist(), mask.sum(-1).tolist()
    entries: dict[tuple[int, int], tuple[list[tuple[int, str]], list[int], list[str | None]]] = {}
    for q, query in enumerate(queries):
        weights = lexicon.query_weights(query)
        if not weights:
            continue
        r = 0 if shared else q
        for m, n in enumerate(lengths[r]):
            if (r, m) not in entries:  # its words, its spaces and the word after each
                words = _word_spans(bytes(rows[r][m][:n]))
                spaces = [i for i, c in enumerate(rows[r][m][:n]) if c == 32]
                after = [next((w for start, w in words if start > at), None) for at in spaces]
                entries[r, m] = (words, spaces, after)
            words, spaces, after = entries[r, m]
            last = {}  # each question word's last start in the entry
            for start, w in words:
                if w in weights:
                    last[w] = start
                    out[q, m, start : start + len(w), 2] = 1.0
            if not spaces:
                continue
            out[q, m, spaces, 0] = [w in weights for w in after]
            found = sum(weights[w] for w in last)
            if found > 0:
                out[q, m, spaces, 1] = [
                    sum(weights[w] for w, start in last.items() if start > at) / found
                    for at in spaces
                ]
    return torch.from_numpy(out).to(data.device)
