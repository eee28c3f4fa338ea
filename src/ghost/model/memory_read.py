"""The readers of the fact memory: what a forward pass does with a `MemoryBatch`.

- `MemoryCrossAttention` lets the stack condition on what it reads (layers 2 and 4 of
  v5-fast).
- `CopyHead` lets the output copy a byte of an entry: the key of entry byte j is the state
  before it ("what comes next is byte j"), so "match the entity, then copy what follows" is
  one attention per byte, helped by exact continuation matches and the entry's retrieval
  score (its docstring).
Both start as a no-op on a model that never learned to read (gates 0 / strongly closed),
and without entries they do nothing at all. Rows without entries skip them.

Symbols: B batch, L length, D dim, M entries read, T bytes per entry, U distinct entries.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ghost.model.attention import masked_attention
from ghost.model.memory_batch import MemoryBatch, take_rows


class MemoryCrossAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)
        self.gate = nn.Parameter(torch.zeros(dim))  # tanh(0) = 0: starts as a no-op
        # How much each row reads: r = sigmoid(w_cos * best cosine + w_lex * best lexical + b)
        # from its best entry's retrieval scores, as the copy head's gate. Written facts
        # about other things (a bank without the one asked about) then leave the residual
        # stream alone, where a constant gate lets any same-shaped fact nudge a trained
        # answer. Its three scalars barely move in a memory stage (300-500 steps), so their
        # start decides: the direction is a logistic fit on validation rows (trained
        # questions beside 500 fictional facts: shut; fictional facts asked in their own
        # and the validation wordings, edits: open), where the cosine separates better than
        # the lexical score (their ratio ~2:1), the bias 1.5 below the fit's; retrained, it
        # read better than [0, 10, -3] on every seed and changed as many trained answers
        # (docs/memory.md, "the relevance gate's start"). A model saved before it existed
        # loads it as [0, 0, 30]: r = 1 (`ghost.model.io.LATER_PARAMETERS`). (No random draw.)
        self.relevance = nn.Parameter(torch.tensor([15.5, 7.6, -15.5]))
        self.reads: torch.Tensor | None = None  # (M,) attention mass per entry, when traced

    def _keys_values(self, states: torch.Tensor):
        return self.k_proj(states), self.v_proj(states)  # (U, T, D) each

    def prepare(self, memory: MemoryBatch) -> None:
        """Compute and keep the keys and values this layer reads (`GhostModel.prepare_memory`)."""
        memory.prepare(self, self._keys_values)

    def forward(self, x: torch.Tensor, memory: MemoryBatch | None) -> torch.Tensor:
        """x (B, L, D) -> the update to add to the residual stream (zeros without memory)."""
        if memory is None or memory.n_entries == 0:
            return torch.zeros_like(x)
        return _rows_with_entries(memory, x, torch.zeros_like(x), self._read)

    def _read(self, x: torch.Tensor, memory: MemoryBatch) -> torch.Tensor:
        b, length, d = x.shape
        h, e = self.n_heads, self.head_dim
        q = self.q_proj(x).view(b, length, h, e).transpose(1, 2)  # (B, H, L, E)
        if self.reads is None:  # every row here has entries: no row is all masked
            # Over each row's real entry bytes only (the same attention, less padding).
            k, v, real = memory.projected_packed(self, self._keys_values)  # (1|B, S, D) each
            nb, s, _ = k.shape
            k = k.view(nb, s, h, e).transpose(1, 2).to(x.dtype)  # (1|B, H, S, E)
            v = v.view(nb, s, h, e).transpose(1, 2).to(x.dtype)
            allowed = real[:, None, None, :]  # (1|B, 1, 1, S)
            if q.dtype == torch.bfloat16 and q.requires_grad and torch.is_grad_enabled():
                # Training in bf16: SDPA's CPU backward is slow there; on a memory stage's
                # shapes plain matmuls take 0.69x its time forward + backward (fp32: 1.13x).
                y = masked_attention(q, k, v, allowed)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        else:  # GhostModel.trace_memory(): which entries were read, so the weights by hand
            k, v = memory.projected(self, self._keys_values)  # (1|B, M, T, D) each
            nb, m, t, _ = k.shape
            k = k.reshape(nb, m * t, h, e).transpose(1, 2).to(x.dtype)  # (1|B, H, M*T, E)
            v = v.reshape(nb, m * t, h, e).transpose(1, 2).to(x.dtype)
            allowed = memory.mask.flatten(1)[:, None, None, :]  # (1|B, 1, 1, M*T)
            scores = (q @ k.transpose(-1, -2)) * e**-0.5  # (B, H, L, M*T)
            scores = scores.masked_fill(~allowed, float("-inf"))
            probs = torch.softmax(scores.float(), dim=-1).to(x.dtype)
            _trace(self, probs.sum((1, 2)), memory)
            y = probs @ v
        y = y.transpose(1, 2).reshape(b, length, d)
        update = torch.tanh(self.gate) * self.o_proj(y)
        best_cosine, best_lexical = memory.best_scores()
        if best_cosine is None and best_lexical is None:
            return update  # no query, no scores: the row reads fully
        w_cos, w_lex, bias = self.relevance
        z = bias
        if best_cosine is not None:
            z = z + w_cos * best_cosine
        if best_lexical is not None:
            z = z + w_lex * best_lexical
        return update * torch.sigmoid(z)[:, None, None].to(update.dtype)

    def step(self, x: torch.Tensor, memory: MemoryBatch | None) -> torch.Tensor:
        """One byte: x (B, D) -> update (B, D). Memory layers keep no state of their own."""
        return self.forward(x.unsqueeze(1), memory).squeeze(1)


def _rows_with_entries(memory: MemoryBatch, inputs, default: torch.Tensor, read):
    """`read(*inputs, memory)` on the batch rows that have entries, `default` on the others
    (rows without facts cost nothing; a bank shared by all rows reads every row)."""
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    has = memory.mask.flatten(1).any(-1)  # (1|B,)
    if has.shape[0] == 1:
        return read(*inputs, memory) if bool(has.all()) else default
    if bool(has.all()):
        return read(*inputs, memory)
    keep = has.nonzero().squeeze(1)
    if not keep.numel():
        return default
    kept = (take_rows(t, keep) if t.is_floating_point() else t[keep] for t in inputs)
    return default.index_copy(0, keep, read(*kept, memory.select(keep)))


def _trace(reader: nn.Module, mass: torch.Tensor, memory: MemoryBatch) -> None:
    """Add a reader's attention mass (B, M*T) to its per-bank-entry total."""
    b = mass.shape[0]
    per_entry = mass.detach().float().view(b, memory.n_entries, -1).sum(-1)  # (B, M)
    index = memory.entries.expand(b, -1)
    valid = index >= 0
    size = max(int(index.max()) + 1, reader.reads.numel()) if valid.any() else reader.reads.numel()
    total = torch.zeros(size)
    total[: reader.reads.numel()] += reader.reads
    total.index_add_(0, index[valid].cpu(), per_entry[valid].cpu())
    reader.reads = total


class CopyHead(nn.Module):
    """A pointer over the bytes of the entries read: p(next byte) mixes the vocabulary's
    distribution with a copy of the entry byte the pointer attends to.

    The pointer's score for entry byte j adds:
    - content: the key of byte j is the encoder state after byte j-1 (a learned start vector
      for j = 0), so attending to it means "the byte that comes next is byte j";
    - continuation: learned weights on exact matches of the last n bytes read with the n
      entry bytes before j (n = 1..4, each adding its weight): once an answer has started
      copying an entry, the next byte of that entry is where the pointer goes, and four
      bytes of context keep it from looping on a repeated pair ("...thquuth...") (an
      induction head, given rather than learned: at this scale attention alone takes
      thousands of steps to find it);
    - the entry: learned scales times the cosine between the row's query key and the
      entry's key (retrieval's score, trained by its own loss) and times the entry's lexical
      score (the rarity-weighted share of the question's words it contains), so the pointer
      copies from the entry the question is about;
    - the value's start: a learned function of the state times "byte j begins the entry's
      value" (`MemoryBatch.starts`), so the first byte of an answer comes from where the
      value begins rather than from wherever the learned match lands;
    - the question's own words: a learned scale (starting negative) on the bytes of the
      entry's words that the question contains (`MemoryBatch.cues`): an answer names what
      its question does not, so the pointer does not start on the question's subject.
    The gate adds learned functions of the best entry's two retrieval scores, so a bank that
    does not hold the fact asked about leaves the answer to the weights.
    Copying a fact's final "." emits `stop_byte` (the end-of-answer marker) instead: the
    value of most facts ends the sentence ("The capital of Zorvania is Quessaro."), so the
    end of the fact is the end of the answer. Where a value ends inside the sentence ("The
    quasu is the money of Grothemland."), a learned function of the state decides at each
    space the pointer lands on whether to copy it or to end the answer there (`stop_byte`),
    helped by what the question's words say about that space (`MemoryBatch.cues`): the next
    word is one of them (the value has ended), and how much of them is still to come (none:
    the rest of the entry is the value, as in "... is a book by Rintria Krumanin.").
    The gate g = sigmoid(w . h + b) starts nearly closed (b = -4); a model that never trained
    its memory has it shut (b = -30: g ~ 1e-13), so a bank cannot disturb its answers."""

    MATCHES = 4  # continuation matches of 1..4 bytes

    def __init__(self, dim: int, head_dim: int = 64, stop_byte: int = 3):
        super().__init__()
        self.head_dim, self.stop_byte = head_dim, stop_byte
        self.q_proj = nn.Linear(dim, head_dim, bias=False)
        self.k_proj = nn.Linear(dim, head_dim, bias=False)
        self.start = nn.Parameter(torch.zeros(dim))
        self.gate = nn.Linear(dim, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, -4.0)
        # Weights of the continuation matches (1..MATCHES bytes) and of the entry's retrieval
        # score; they start where they already matter (a score of a few units).
        self.match = nn.Parameter(torch.full((self.MATCHES,), 2.0))
        self.prior_scale = nn.Parameter(torch.tensor(20.0))  # = 1 / the retrieval loss temperature
        # The gate also sees how well the best entry matches the question (its retrieval
        # score): copy when the bank holds the fact asked about, answer from the weights when
        # it holds only other facts. z += scale * (best score - shift).
        self.gate_prior = nn.Parameter(torch.tensor([20.0, 0.8]))
        # The same for the lexical score; the value's start; the end of a value at a space
        # (see the class docstring). A model saved before they existed loads them with
        # values that switch them off (`ghost.model.io.LATER_PARAMETERS`).
        self.lexical_scale = nn.Parameter(torch.tensor(10.0))
        self.gate_lexical = nn.Parameter(torch.tensor([10.0, 0.5]))
        # (Made without drawing random numbers, so the other parameters' initial values are
        # what they were before these existed.)
        self.value_weight = nn.Parameter(torch.zeros(dim))
        self.value_bias = nn.Parameter(torch.tensor(2.0))
        # Ending the answer at a space of the entry (the value ends mid-sentence): its
        # probability sigmoid(stop_weight . h + stop_bias) starts small.
        self.stop_weight = nn.Parameter(torch.zeros(dim))
        self.stop_bias = nn.Parameter(torch.tensor(-4.0))
        # ... plus these scales times the space's two end features (`MemoryBatch.cues`): the
        # next word is the question's, the share of the question still to come. They start
        # where they decide: a space with neither reads -4 (copy it, the value goes on), one
        # followed by the question's word and most of its words 0 to +4 (end there).
        self.end_scale = nn.Parameter(torch.tensor([4.0, 4.0]))
        # ... plus a learned reading of the encoder's state where the next word ends (it has
        # read what follows the space: "as its money." or "Krumanin.").
        self.stop_ahead = nn.Parameter(torch.zeros(dim))
        # The pointer's score on bytes of the question's own words (`MemoryBatch.cues`): an
        # answer names what the question does not, so they start disfavoured.
        self.asked_scale = nn.Parameter(torch.tensor(-3.0))
        self.reads: torch.Tensor | None = None

    def _emitted(self, memory: MemoryBatch) -> torch.Tensor:
        """(1|B, M, T) the byte copying each entry position emits: its own, except a final
        "." (the last real byte of an entry), which emits `stop_byte`."""
        last = (memory.mask.sum(-1, keepdim=True) - 1).clamp(min=0)  # (1|B, M, 1)
        positions = torch.arange(memory.data.shape[-1], device=memory.data.device)
        final_dot = (positions == last) & (memory.data == ord(".")) & memory.mask
        return memory.data.masked_fill(final_dot, self.stop_byte)

    def _keys(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pointer's key of each entry byte (U, T, P) and its stop reading (U, T)."""
        u, _, d = states.shape
        before = torch.cat([self.start.expand(u, 1, d), states[:, :-1]], dim=1)
        return self.k_proj(before), (states @ self.stop_ahead.to(states.dtype)).float()

    def prepare(self, memory: MemoryBatch) -> None:
        """Compute and keep the pointer's keys (`GhostModel.prepare_memory`)."""
        memory.prepare(self, self._keys)

    def forward(
        self, h: torch.Tensor, logits: torch.Tensor, memory: MemoryBatch, recent: torch.Tensor
    ) -> torch.Tensor:
        """h (B, L, D) normed final hidden, logits (B, L, 256), recent (B, L, MATCHES) the byte
        at each position and the ones before it, latest first (-1: none) -> log p(next byte)
        (B, L, 256)."""
        vocab = torch.log_softmax(logits.float(), dim=-1)  # rows without entries: just this
        if memory.read_at is None:
            mixed = _rows_with_entries(memory, (h, vocab, recent), vocab, self._mix)
            return mixed.to(logits.dtype)
        # Only the positions `read_at`: gathered per row into (B, A) slots, mixed, put back.
        rows, positions = memory.read_at.nonzero(as_tuple=True)
        if not rows.numel():
            return vocab.to(logits.dtype)
        counts = memory.read_at.sum(1)
        first = torch.cumsum(counts, 0) - counts  # each row's first slot in `rows`
        slots = torch.arange(rows.numel(), device=rows.device) - first[rows]
        width = int(counts.max())

        def gathered(x, fill):
            out = x.new_full((x.shape[0], width, *x.shape[2:]), fill)
            return out.index_put((rows, slots), x[rows, positions])

        parts = (gathered(h, 0.0), gathered(vocab, 0.0), gathered(recent, -1))
        mixed = _rows_with_entries(memory, parts, parts[1], self._mix)  # (B, A, 256)
        return vocab.index_put((rows, positions), mixed[rows, slots]).to(logits.dtype)

    def _mix(self, h, vocab, recent, memory: MemoryBatch) -> torch.Tensor:
        b, length, _ = h.shape
        keys, ahead = memory.projected(self, self._keys)  # (1|B, M, T, P), (1|B, M, T)
        keys = keys.flatten(1, 2).to(h.dtype)  # (1|B, M*T, P)
        scores = (self.q_proj(h) @ keys.transpose(-1, -2)) * self.head_dim**-0.5  # (B, L, M*T)
        scores = scores.float()
        data = memory.data
        matched = None
        for n in range(1, self.MATCHES + 1):  # entry byte j-n == the n-th latest byte read
            none = torch.full_like(data[..., :n], -2)  # before the entry: matches nothing
            before = torch.cat([none, data[..., :-n]], -1).flatten(1)[:, None, :]
            same = recent[..., n - 1 : n] == before  # (B, L, M*T)
            matched = same if matched is None else matched & same
            scores = scores + self.match[n - 1] * matched
        t = memory.data.shape[-1]
        if memory.prior is not None:
            entry = memory.prior[..., None].expand(-1, -1, t).flatten(1)[:, None, :]
            scores = scores + self.prior_scale * entry.float()
        if memory.lexical is not None:
            entry = memory.lexical[..., None].expand(-1, -1, t).flatten(1)[:, None, :]
            scores = scores + self.lexical_scale * entry.float()
        if memory.starts is not None:
            starts = memory.starts.flatten(1)[:, None, :]  # (1|B, 1, M*T)
            value = (h @ self.value_weight + self.value_bias).float()[..., None]  # (B, L, 1)
            scores = scores + value * starts
        if memory.cues is not None:  # the question's own words: not what an answer copies
            scores = scores + self.asked_scale * memory.cues[..., 2].flatten(1)[:, None, :]
        allowed = memory.mask.flatten(1)[:, None, :]  # (1|B, 1, M*T)
        scores = scores.masked_fill(~allowed, float("-inf"))
        pointer = torch.softmax(scores, dim=-1)  # every row read here has an entry
        if self.reads is not None:
            _trace(self, pointer.sum(1), memory)
        # At a space, the pointer's mass splits: copy the space, or end the answer there.
        spaces = (memory.data == ord(" ")).flatten(1)[:, None, :]  # (1|B, 1, M*T)
        stop = (h @ self.stop_weight + self.stop_bias).float()[..., None]  # (B, L, 1)
        if memory.cues is not None:  # (1|B, M, T, 3) -> (1|B, 1, M*T)
            ends = memory.cues[..., :2].float() @ self.end_scale.float()
            stop = stop + ends.flatten(1)[:, None, :]
        if memory.ahead is not None:  # the stop reading where the next word ends
            at = memory.ahead.expand(ahead.shape[0], -1, -1)
            stop = stop + ahead.gather(-1, at).flatten(1)[:, None, :]
        ending = pointer * (spaces * torch.sigmoid(stop))  # (B, L, M*T)
        data = self._emitted(memory).flatten(1)[:, None, :].expand(b, length, -1)
        copy = torch.zeros(b, length, vocab.shape[-1], device=h.device).scatter_add(
            -1, data, pointer - ending
        )
        marker = torch.tensor([self.stop_byte], device=copy.device)
        copy = copy.index_add(-1, marker, ending.sum(-1, keepdim=True))
        z = self.gate(h).float()  # (B, L, 1)
        best_cosine, best_lexical = memory.best_scores()
        if best_cosine is not None:
            scale, shift = self.gate_prior
            z = z + (scale * (best_cosine - shift))[:, None, None]
        if best_lexical is not None:
            scale, shift = self.gate_lexical
            z = z + (scale * (best_lexical - shift))[:, None, None]
        copied = F.logsigmoid(z) + torch.log(copy.clamp_min(1e-30))
        return torch.logaddexp(F.logsigmoid(-z) + vocab, copied)
