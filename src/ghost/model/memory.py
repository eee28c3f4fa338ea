"""The fact memory: entries written from text, read by cross-attention layers.

    entry text --encoder--> S slot vectors (S, D)      written once, no gradient step
    hidden (B, L, D) --cross-attention over entries--> gated residual update

Symbols: B batch, L length, D dim, M entries, S slots per entry, H heads, E head dim.

- `ByteMemoryEncoder` turns an entry's bytes into S vectors: byte embedding, one Mamba
  mixer over the entry, and the hidden states at the ends of S equal segments. It is a
  replaceable part: anything mapping (texts) -> (M, S, D) can stand in its place.
- `FactMemory` owns the encoder and the bank of written entries (texts kept beside their
  encodings, so a bank can be persisted as text and re-encoded by the weights it runs with).
- `MemoryCrossAttention` is the layer. With M = 0 it returns its input unchanged, and its
  output gate starts at 0, so adding memory to a model starts as an exact no-op.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn as nn

from ghost.errors import GhostInputError
from ghost.model.mamba import MambaMixer
from ghost.model.norm import RMSNorm


@dataclass
class MemoryBatch:
    """Encoded entries a forward pass reads: shared by all rows (1, ...) or per row (B, ...)."""

    vectors: torch.Tensor  # (1 or B, M, S, D)
    mask: torch.Tensor  # (1 or B, M) True where an entry exists

    @property
    def n_entries(self) -> int:
        return self.vectors.shape[1]

    def select(self, rows: torch.Tensor) -> MemoryBatch:
        """The entries of the batch rows `rows` (a bank shared by all rows stays as it is)."""
        if self.vectors.shape[0] == 1:
            return self
        return MemoryBatch(self.vectors[rows], self.mask[rows])


class ByteMemoryEncoder(nn.Module):
    def __init__(self, dim: int, slots: int, max_bytes: int, d_state: int = 16):
        super().__init__()
        self.slots, self.max_bytes = slots, max_bytes
        self.embed = nn.Embedding(256, dim)
        self.mixer = MambaMixer(dim, d_state=d_state)
        self.norm = RMSNorm(dim)

    def forward(self, texts: list[str]) -> torch.Tensor:
        """texts -> (M, S, D)."""
        device = self.embed.weight.device
        data = [t.encode("utf-8")[: self.max_bytes] or b" " for t in texts]
        width = max(len(d) for d in data)
        ids = torch.zeros(len(data), width, dtype=torch.long, device=device)
        for row, d in enumerate(data):
            ids[row, : len(d)] = torch.tensor(list(d), dtype=torch.long)
        h = self.embed(ids)  # (M, W, D)
        h = self.norm(h + self.mixer(h))  # (M, W, D); causal, so right padding is never seen
        lengths = torch.tensor([len(d) for d in data], device=device)
        # Slot s reads the state at the end of segment s of the entry.
        ends = (lengths.unsqueeze(1) * torch.arange(1, self.slots + 1, device=device)) // self.slots
        ends = (ends - 1).clamp(min=0)  # (M, S)
        return torch.gather(h, 1, ends.unsqueeze(-1).expand(-1, -1, h.shape[-1]))


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


@dataclass(frozen=True)
class MemoryEntry:
    id: int  # stable: kept across saves, never reused within a bank
    text: str


class FactMemory(nn.Module):
    """The writable bank plus its encoder.

    `write(texts)` -> ids, `remove(ids)`, `clear()`, `entries()`, `conflicts(text)`,
    `batch()` (what a forward pass reads). Entries are kept as text beside their encodings;
    `fingerprint()` names the encoder weights the encodings were made with, so a saved bank
    is reused as it is only by the same weights (`ghost.model.io`)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.ids: list[int] = []
        self.texts: list[str] = []
        self.next_id = 1
        self._vectors: torch.Tensor | None = None  # (M, S, D), encoded without gradient
        self.made_by: str | None = None  # fingerprint() of the encoder behind _vectors
        # True once entries were removed or cleared: saving must then remove the bank's
        # files too. A bank that is merely empty (a fresh model, or loaded with memory=False)
        # leaves a run directory's bank files alone.
        self.emptied = False

    def __len__(self) -> int:
        return len(self.texts)

    def entries(self) -> list[MemoryEntry]:
        return [MemoryEntry(i, t) for i, t in zip(self.ids, self.texts, strict=True)]

    @torch.no_grad()
    def write(self, texts: list[str]) -> list[int]:
        """Add entries (blank texts are ignored, a text already in the bank is not added
        twice: its existing id is returned). Returns the id of each non-blank text. No
        gradient step is needed for the model to read them."""
        known = dict(zip(self.texts, self.ids, strict=True))
        ids, new = [], []
        for text in (t.strip() for t in texts):
            if not text:
                continue
            if text not in known:
                known[text] = self.next_id
                self.next_id += 1
                new.append(text)
            ids.append(known[text])
        if new:
            if len(self) and self.made_by != self.fingerprint():
                self.refresh()  # other encoder weights made the old encodings
            self._append([known[t] for t in new], new, self.encode_texts(new))
            self.made_by = self.fingerprint()
        return ids

    def encode_texts(self, texts: list[str], batch: int = 256) -> torch.Tensor:
        """(M, S, D) encodings of `texts`, without gradient, a batch at a time."""
        with torch.no_grad():
            return torch.cat(
                [self.encoder(texts[i : i + batch]) for i in range(0, len(texts), batch)]
            )

    def _append(self, ids: list[int], texts: list[str], vectors: torch.Tensor) -> None:
        self._vectors = vectors if self._vectors is None else torch.cat([self._vectors, vectors])
        self.ids.extend(ids)
        self.texts.extend(texts)
        self.next_id = max([self.next_id, *(i + 1 for i in ids)])

    def restore(
        self,
        ids: list[int],
        texts: list[str],
        vectors: torch.Tensor | None,
        next_id: int | None = None,
    ) -> None:
        """Replace the bank with saved entries; vectors None re-encodes the texts."""
        self.clear()
        self.emptied, self.next_id = False, 1
        if texts:
            self._append(ids, texts, vectors if vectors is not None else self.encode_texts(texts))
            self.made_by = self.fingerprint()
        self.next_id = max(self.next_id, next_id or 1)

    def remove(self, ids: list[int]) -> None:
        """Remove entries by id; an id not in the bank is an error (nothing is removed)."""
        unknown = sorted(set(ids) - set(self.ids))
        if unknown:
            raise GhostInputError(
                f"no memory entry with id {', '.join(map(str, unknown))} (see `ghost memory list`)"
            )
        keep = [i for i, entry_id in enumerate(self.ids) if entry_id not in set(ids)]
        self.ids = [self.ids[i] for i in keep]
        self.texts = [self.texts[i] for i in keep]
        self._vectors = self._vectors[keep] if keep else None
        self.emptied = True

    def clear(self) -> None:
        """Empty the bank (ids are not reused while this object lives: `next_id` stays)."""
        self.ids, self.texts, self._vectors = [], [], None
        self.emptied = True

    def conflicts(self, text: str) -> list[MemoryEntry]:
        """Entries that say something else about what `text` is about ("The capital of
        France is Paris." for "The capital of France is Lyon."; see `fact_key`)."""
        key = fact_key(text)
        if key is None:
            return []
        return [e for e in self.entries() if e.text != text.strip() and fact_key(e.text) == key]

    def vectors(self) -> torch.Tensor | None:
        return self._vectors

    def fingerprint(self) -> str:
        """A digest of the encoder's weights: saved encodings are valid only under these."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.encoder.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().contiguous().cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    @torch.no_grad()
    def refresh(self) -> None:
        """Re-encode every entry with the current encoder weights (after training or loading)."""
        if self.texts:
            self._vectors = self.encode_texts(self.texts)
            self.made_by = self.fingerprint()

    def encode(self, texts: list[str]) -> MemoryBatch:
        """Encode texts with gradient (per-batch facts in training), shared by all rows."""
        vectors = self.encoder(texts).unsqueeze(0)
        return MemoryBatch(
            vectors, torch.ones(1, len(texts), dtype=torch.bool, device=vectors.device)
        )

    def batch(self) -> MemoryBatch | None:
        """The written bank as a MemoryBatch, or None when it is empty."""
        if self._vectors is None:
            return None
        m = self._vectors.shape[0]
        return MemoryBatch(
            self._vectors.unsqueeze(0),
            torch.ones(1, m, dtype=torch.bool, device=self._vectors.device),
        )


class MemoryCrossAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int, top_k: int):
        super().__init__()
        self.n_heads, self.head_dim, self.top_k = n_heads, dim // n_heads, top_k
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)
        self.gate = nn.Parameter(torch.zeros(dim))  # tanh(0) = 0: starts as a no-op
        self.reads: torch.Tensor | None = None  # (M,) attention mass per entry, when traced

    def forward(self, x: torch.Tensor, memory: MemoryBatch | None) -> torch.Tensor:
        """x (B, L, D) -> the update to add to the residual stream (zeros without memory)."""
        if memory is None or memory.n_entries == 0:
            return torch.zeros_like(x)
        b, length, d = x.shape
        h, e = self.n_heads, self.head_dim
        mem = memory.vectors.to(x.dtype)  # (1|B, M, S, D)
        nb, m, s, _ = mem.shape
        flat = mem.reshape(nb, m * s, d)
        q = self.q_proj(x).view(b, length, h, e).transpose(1, 2)  # (B, H, L, E)
        k = self.k_proj(flat).view(nb, m * s, h, e).transpose(1, 2)  # (1|B, H, M*S, E)
        v = self.v_proj(flat).view(nb, m * s, h, e).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)) * e**-0.5  # (B, H, L, M*S)
        allowed = memory.mask.repeat_interleave(s, dim=1)[:, None, None, :]  # (1|B, 1, 1, M*S)
        scores = scores.masked_fill(~allowed, float("-inf"))
        if m > self.top_k:
            # Each query reads only its top-k entries (scored by their best slot).
            entry_scores = scores.view(b, h, length, m, s).amax(-1)  # (B, H, L, M)
            kth = entry_scores.topk(self.top_k, dim=-1).values[..., -1:]  # (B, H, L, 1)
            keep = (entry_scores >= kth).repeat_interleave(s, dim=-1)
            scores = scores.masked_fill(~keep, float("-inf"))
        probs = torch.softmax(scores.float(), dim=-1).to(x.dtype)
        # A row whose bank is empty (per-row memory with no entries) gets no update.
        probs = torch.nan_to_num(probs, nan=0.0)
        if self.reads is not None:  # GhostModel.trace_memory(): which entries were read
            mass = probs.detach().float().view(b, h, length, m, s).sum((0, 1, 2, 4))
            self.reads = mass if self.reads.numel() != m else self.reads + mass
        y = (probs @ v).transpose(1, 2).reshape(b, length, d)
        return torch.tanh(self.gate) * self.o_proj(y)

    def step(self, x: torch.Tensor, memory: MemoryBatch | None) -> torch.Tensor:
        """One byte: x (B, D) -> update (B, D). Memory layers keep no state of their own."""
        return self.forward(x.unsqueeze(1), memory).squeeze(1)
