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

from dataclasses import dataclass

import torch
import torch.nn as nn

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


class FactMemory(nn.Module):
    """The writable bank plus its encoder: `write(texts)`, `clear()`, `batch()`."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.texts: list[str] = []
        self._vectors: torch.Tensor | None = None  # (M, S, D), encoded without gradient

    def __len__(self) -> int:
        return len(self.texts)

    @torch.no_grad()
    def write(self, texts: list[str]) -> None:
        """Add entries; no gradient step is needed for the model to read them."""
        texts = [t for t in texts if t.strip()]
        if not texts:
            return
        encoded = self.encoder(texts).detach()
        self._vectors = encoded if self._vectors is None else torch.cat([self._vectors, encoded])
        self.texts.extend(texts)

    def clear(self) -> None:
        self.texts, self._vectors = [], None

    @torch.no_grad()
    def refresh(self) -> None:
        """Re-encode every entry with the current encoder weights (after training or loading)."""
        texts = self.texts
        self.clear()
        self.write(texts)

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
        y = (probs @ v).transpose(1, 2).reshape(b, length, d)
        return torch.tanh(self.gate) * self.o_proj(y)

    def step(self, x: torch.Tensor, memory: MemoryBatch | None) -> torch.Tensor:
        """One byte: x (B, D) -> update (B, D). Memory layers keep no state of their own."""
        return self.forward(x.unsqueeze(1), memory).squeeze(1)
