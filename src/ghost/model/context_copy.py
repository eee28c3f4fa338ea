"""A pointer over the row's own recent bytes: p(next byte) mixes the vocabulary's
distribution with a copy of a byte read earlier in the context.

    pair j = (key k_j = k_proj(h_j), byte x_{j+1})      "after what h_j read, x_{j+1} came"
    query t: score_j = q_t . k_j / sqrt(P) + sum_n match_n * [x_{t-n+1..t} == x_{j-n+1..j}]
             over the pairs t - W <= j <= t - 1 (W = `window`)
    p_copy(b) = sum of softmax(score)_j over the pairs with x_{j+1} = b
    p(b) = (1 - g) p_vocab(b) + g p_copy(b)
    g = sigmoid(w . h_t + b + sum_n c_n any_n + sum_j softmax(score)_j [j + A <= t] v . h_{j+A})

The continuation matches are an induction head given rather than learned (as in the memory's
copy head, `ghost.model.memory_read.CopyHead`): once an answer has started copying a span of
the question ("... where the Colosseum is?" -> "In which country is the Col"), the pair that
continues the span scores highest. What the content score must learn is where a copy starts
(which of the question's "the " is followed by the entity). A selective SSM keeps a fixed-size
state, so it cannot write out an arbitrary name it has read once byte for byte; this head can.
`any_n` says some pair matches the last n bytes: the gate can open while a span continues.
The last term reads the state A = `AHEAD` bytes past where the pointer is, where it is
already known: at the space after "Forbidden City" in "... where the Forbidden City is?" it
has read " is?", so the gate can close where the entity ends instead of copying on.

Symbols: B batch, L new positions, N context positions kept (previous + new), P key width,
W window, C a chunk of queries, M the pairs a chunk sees.

`ContextCopyHead.forward` takes the hidden states of new positions and, optionally, a
`ContextCache` of the positions before them (generation, prefix sharing); it returns the
mixed log-probabilities and, if asked, the cache after the new positions. One byte at a time
through the cache equals one pass over the whole row (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

MATCHES = 4  # continuation matches of 1..4 bytes
AHEAD = 4  # the gate reads the state this many bytes past the pair (<= MATCHES: cached)
CHUNK = 256  # queries scored at once: bounds the (B, C, M) score tensors on long rows
_NO_BYTE = -1  # before the start of the row: matches nothing real


@dataclass
class ContextCache:
    """The last `window + MATCHES` positions: their keys (B, S, P), bytes (B, S) and the
    gate's reading of their states (B, S)."""

    keys: torch.Tensor
    data: torch.Tensor
    ahead: torch.Tensor

    def select(self, rows: torch.Tensor) -> ContextCache:
        return ContextCache(self.keys[rows], self.data[rows], self.ahead[rows])


def _shifted(data: torch.Tensor, n: int) -> torch.Tensor:
    """(B, N) -> (B, N): position i holds data[i - n] (`_NO_BYTE` before the start)."""
    return F.pad(data, (n, 0), value=_NO_BYTE)[:, : data.shape[1]] if n else data


class ContextCopyHead(nn.Module):
    def __init__(self, dim: int, key_dim: int = 64, window: int = 128):
        super().__init__()
        self.key_dim, self.window = key_dim, window
        self.q_proj = nn.Linear(dim, key_dim, bias=False)
        self.k_proj = nn.Linear(dim, key_dim, bias=False)
        # The matches start where they already decide (a few units per matched byte).
        self.match = nn.Parameter(torch.full((MATCHES,), 2.0))
        # The gate starts nearly closed: a fresh head leaves the vocabulary's prediction.
        self.gate = nn.Linear(dim, 1)
        self.gate_match = nn.Parameter(torch.zeros(MATCHES))
        self.ahead = nn.Parameter(torch.zeros(dim))  # v: the reading AHEAD bytes past a pair
        self.reset_gate()

    def reset_gate(self) -> None:
        """The gate's own initialisation (kept by the model's weight init)."""
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, -4.0)

    def forward(
        self,
        h: torch.Tensor,
        logits: torch.Tensor,
        input_ids: torch.Tensor,
        cache: ContextCache | None = None,
        want_cache: bool = False,
    ) -> tuple[torch.Tensor, ContextCache | None]:
        """h (B, L, D) normed final hidden of the new positions, logits (B, L, 256) (logits or
        log-probabilities), input_ids (B, L) their bytes; `cache` holds the positions before
        them. -> (log p(next byte) (B, L, 256), the cache after them if `want_cache`)."""
        keys = self.k_proj(h).float()  # (B, L, P)
        ahead = (h @ self.ahead.to(h.dtype)).float()  # (B, L)
        data = input_ids
        before = 0
        if cache is not None:
            keys = torch.cat([cache.keys, keys], 1)  # (B, N, P)
            data = torch.cat([cache.data, input_ids], 1)  # (B, N)
            ahead = torch.cat([cache.ahead, ahead], 1)  # (B, N)
            before = cache.data.shape[1]
        queries = self.q_proj(h).float() * self.key_dim**-0.5  # (B, L, P)
        vocab = torch.log_softmax(logits.float(), dim=-1)
        shifted = [_shifted(data, n) for n in range(MATCHES)]  # x_{i-n}: the n-th byte back
        emitted = F.pad(data[:, 1:], (0, 1), value=0)  # pair j emits x_{j+1}
        out = []
        for c0 in range(0, h.shape[1], CHUNK):
            c = slice(c0, c0 + CHUNK)
            out.append(
                self._mix(
                    h[:, c], vocab[:, c], queries[:, c], before + c0, keys, shifted, emitted, ahead
                )
            )
        mixed = torch.cat(out, 1).to(logits.dtype)
        if not want_cache:
            return mixed, None
        keep = self.window + MATCHES
        return mixed, ContextCache(
            keys[:, -keep:].detach(), data[:, -keep:], ahead[:, -keep:].detach()
        )

    def _mix(self, h, vocab, queries, first, keys, shifted, emitted, ahead):
        """The queries at absolute positions first..first+C-1 against their window's pairs."""
        c = h.shape[1]
        lo, hi = max(0, first - self.window), first + c - 1  # pairs j in [lo, hi)
        if hi <= lo:  # the row's first byte: nothing read before it to copy
            return vocab
        at = torch.arange(first, first + c, device=h.device)[:, None]  # (C, 1) query positions
        j = torch.arange(lo, hi, device=h.device)[None, :]  # (1, M) pair positions
        allowed = (j < at) & (j >= at - self.window)  # (C, M)
        scores = queries @ keys[:, lo:hi].transpose(-1, -2)  # (B, C, M)
        matched = None
        any_match = []
        for n in range(MATCHES):  # the n+1 latest bytes read == the n+1 bytes ending at j
            same = shifted[n][:, first : first + c, None] == shifted[n][:, None, lo:hi]
            matched = same if matched is None else matched & same
            matched = matched & (shifted[n][:, None, lo:hi] != _NO_BYTE)
            scores = scores + self.match[n] * matched
            any_match.append((matched & allowed).any(-1))  # (B, C)
        # Finite, so a query without pairs (a row's first byte) softmaxes to a uniform row
        # that `allowed` then zeroes, with finite gradients.
        attention = torch.softmax(scores.masked_fill(~allowed, -1e9), dim=-1) * allowed
        copy = torch.zeros_like(vocab).scatter_add_(
            -1, emitted[:, None, lo:hi].expand_as(attention), attention
        )  # (B, C, 256)
        z = self.gate(h).float().squeeze(-1)
        z = z + (torch.stack(any_match, -1).float() * self.gate_match).sum(-1)  # (B, C)
        past = F.pad(ahead, (0, AHEAD))[:, lo + AHEAD : hi + AHEAD]  # (B, M): v . h_{j+A}
        known = (j + AHEAD <= at).float()  # (C, M): read by query t already
        z = z + (attention * known * past[:, None, :]).sum(-1)
        mixed = torch.logaddexp(
            F.logsigmoid(-z)[..., None] + vocab,
            F.logsigmoid(z)[..., None] + torch.log(copy + 1e-12),
        )
        has_pair = allowed.any(-1)[None, :, None]  # (1, C, 1)
        return torch.where(has_pair, mixed, vocab)
