"""Local + strided sparse causal self-attention (Sparse Transformer's "fixed" pattern).

Query position i sees key position j when j <= i and either
    i - window < j                 (the local window, itself included), or
    j % stride == stride - 1       (a "summary" position, one every `stride` bytes).
So each position costs window + i/stride, near-linear in length for stride 128.

Symbols: B batch, L length, H heads, E head dim, W window, S stride, G summary positions.

`sparse_attention_dense` is the readable reference: a dense score matrix under the mask.
`sparse_attention` computes the same thing in blocks of W queries that see 2W local keys
plus the G summary keys; the tests compare the two. `SparseSelfAttention.step` is the
generation path: it keeps the last W-1 keys/values and the summary keys only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


def sparse_mask(length: int, window: int, stride: int, device=None) -> torch.Tensor:
    """(L, L) boolean: True where query i may attend to key j."""
    i = torch.arange(length, device=device).unsqueeze(1)
    j = torch.arange(length, device=device).unsqueeze(0)
    return (j <= i) & ((i - j < window) | (j % stride == stride - 1))


def sparse_attention_dense(q, k, v, window: int, stride: int) -> torch.Tensor:
    """Reference: q, k, v (B, H, L, E) -> (B, H, L, E) with a dense masked softmax."""
    if q.shape[2] <= window:  # every key j <= i is inside the window: the plain causal mask,
        # which SDPA applies by skipping blocks instead of reading a mask
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    mask = sparse_mask(q.shape[2], window, stride, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def masked_attention(q, k, v, mask: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(E), where mask) v with the softmax in fp32 at least; every row of
    the mask must allow a key (a causal mask allows the query's own position)."""
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores.to(torch.promote_types(scores.dtype, torch.float32)), dim=-1)
    return probs.to(q.dtype) @ v


def sparse_attention(q, k, v, window: int, stride: int) -> torch.Tensor:
    """Blocked sparse attention with the mask of `sparse_mask`; q, k, v (B, H, L, E)."""
    batch, heads, length, dim = q.shape
    if length <= 2 * window:  # one or two blocks: the dense path is cheaper
        if q.requires_grad and torch.is_grad_enabled():
            # Training: SDPA's CPU backward is 2-3x slower than plain matmuls at these sizes
            # in bf16 (32 x 4 heads x 64 bytes: 5.9 against 2.0 ms forward + backward).
            return masked_attention(q, k, v, sparse_mask(length, window, stride, q.device))
        return sparse_attention_dense(q, k, v, window, stride)
    w = window
    n_blocks = -(-length // w)
    pad = n_blocks * w - length
    scale = dim**-0.5
    qp = F.pad(q, (0, 0, 0, pad)).view(batch, heads, n_blocks, w, dim)  # (B, H, nb, W, E)
    # Each query block sees the previous block and its own: 2W keys.
    kp = F.pad(k, (0, 0, w, pad)).unfold(2, 2 * w, w).transpose(-1, -2)  # (B, H, nb, 2W, E)
    vp = F.pad(v, (0, 0, w, pad)).unfold(2, 2 * w, w).transpose(-1, -2)
    local = (qp @ kp.transpose(-1, -2)) * scale  # (B, H, nb, W, 2W)

    qpos = torch.arange(n_blocks * w, device=q.device).view(n_blocks, w, 1)
    kpos = (
        torch.arange(n_blocks, device=q.device).view(n_blocks, 1, 1) * w
        - w
        + torch.arange(2 * w, device=q.device).view(1, 1, 2 * w)
    )  # (nb, 1, 2W)
    local_ok = (kpos <= qpos) & (qpos - kpos < w) & (kpos >= 0)  # (nb, W, 2W)
    local = local.masked_fill(~local_ok, float("-inf"))

    summary_pos = torch.arange(stride - 1, max(length, stride - 1), stride, device=q.device)  # (G,)
    ks, vs = k[:, :, summary_pos], v[:, :, summary_pos]  # (B, H, G, E)
    far = (qp.reshape(batch, heads, n_blocks * w, dim) @ ks.transpose(-1, -2)) * scale
    # Summary keys inside the local window are already counted there.
    far_ok = summary_pos.view(1, -1) <= qpos.view(-1, 1) - w  # (nb*W, G)
    far = far.masked_fill(~far_ok, float("-inf"))  # (B, H, nb*W, G)

    scores = torch.cat([local.reshape(batch, heads, n_blocks * w, 2 * w), far], dim=-1)
    probs = torch.softmax(scores.to(torch.promote_types(scores.dtype, torch.float32)), dim=-1).to(
        q.dtype
    )
    p_local, p_far = probs.split([2 * w, summary_pos.numel()], dim=-1)
    out = (p_local.view(batch, heads, n_blocks, w, 2 * w) @ vp).reshape(batch, heads, -1, dim)
    out = out + p_far @ vs
    return out[:, :, :length]


@dataclass
class AttentionCache:
    """Keys/values a generating layer can still see; `position` is the next byte's index."""

    position: int = 0
    local_k: torch.Tensor | None = None  # (B, H, <=W-1, E)
    local_v: torch.Tensor | None = None
    summary_k: list[torch.Tensor] = field(default_factory=list)  # each (B, H, 1, E)
    summary_v: list[torch.Tensor] = field(default_factory=list)
    summary_pos: list[int] = field(default_factory=list)

    def select(self, rows: torch.Tensor) -> AttentionCache:
        """The cache of the batch rows `rows` (all rows share positions)."""
        return AttentionCache(
            self.position,
            self.local_k[rows] if self.local_k is not None else None,
            self.local_v[rows] if self.local_v is not None else None,
            [k[rows] for k in self.summary_k],
            [v[rows] for v in self.summary_v],
            list(self.summary_pos),
        )


class SparseSelfAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int, window: int, stride: int):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.window, self.stride = window, stride
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def _heads(self, x):  # (B, L, D) -> (B, H, L, E)
        b, length, _ = x.shape
        return x.view(b, length, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        want_cache: bool = False,
        reference: bool = False,
        cache: AttentionCache | None = None,
    ):
        """x (B, L, D) -> (B, L, D); with want_cache, also the cache after the last byte.
        With `cache`, x continues the bytes the cache has seen (left unchanged): its queries
        also see the cached keys the mask allows."""
        q, k, v = (
            self._heads(self.q_proj(x)),
            self._heads(self.k_proj(x)),
            self._heads(self.v_proj(x)),
        )
        if cache is not None:
            y = self._continued(q, k, v, cache)
        else:
            attend = sparse_attention_dense if reference else sparse_attention
            y = attend(q, k, v, self.window, self.stride)  # (B, H, L, E)
        out = self.o_proj(y.transpose(1, 2).reshape(x.shape))
        if not want_cache:
            return out
        start = cache.position if cache is not None else 0
        if cache is not None and cache.local_k is not None:  # the window runs on across calls
            k_local, v_local = torch.cat([cache.local_k, k], 2), torch.cat([cache.local_v, v], 2)
        else:
            k_local, v_local = k, v
        keep = max(0, k_local.shape[2] - (self.window - 1))
        new = AttentionCache(start + x.shape[1], k_local[:, :, keep:], v_local[:, :, keep:])
        if cache is not None:
            new.summary_k, new.summary_v = list(cache.summary_k), list(cache.summary_v)
            new.summary_pos = list(cache.summary_pos)
        first = -(-(start + 1) // self.stride) * self.stride - 1  # the first summary >= start
        for p in range(first, start + x.shape[1], self.stride):
            new.summary_k.append(k[:, :, p - start : p - start + 1])
            new.summary_v.append(v[:, :, p - start : p - start + 1])
            new.summary_pos.append(p)
        return out, new

    def _continued(self, q, k, v, cache: AttentionCache) -> torch.Tensor:
        """Attention of new bytes (positions cache.position ...) over the cached keys the
        sparse mask allows and their own, as one dense masked softmax."""
        start, length = cache.position, q.shape[2]
        n_local = cache.local_k.shape[2] if cache.local_k is not None else 0
        # Summary keys older than the cached window; the window's own are in it already.
        far = [i for i, p in enumerate(cache.summary_pos) if p < start - n_local]
        keys = [cache.summary_k[i] for i in far] + ([cache.local_k] if n_local else []) + [k]
        values = [cache.summary_v[i] for i in far] + ([cache.local_v] if n_local else []) + [v]
        key_pos = torch.tensor(
            [cache.summary_pos[i] for i in far] + list(range(start - n_local, start + length)),
            device=q.device,
        )
        query_pos = torch.arange(start, start + length, device=q.device).unsqueeze(1)
        mask = (key_pos <= query_pos) & (
            (query_pos - key_pos < self.window) | (key_pos % self.stride == self.stride - 1)
        )
        return F.scaled_dot_product_attention(
            q, torch.cat(keys, 2), torch.cat(values, 2), attn_mask=mask
        )

    def step(self, x: torch.Tensor, cache: AttentionCache) -> torch.Tensor:
        """One byte: x (B, D) -> (B, D), updating `cache`. O(window + position/stride)."""
        x3 = x.unsqueeze(1)
        q, k, v = (
            self._heads(self.q_proj(x3)),
            self._heads(self.k_proj(x3)),
            self._heads(self.v_proj(x3)),
        )
        p = cache.position
        keys = [cache.local_k, k] if cache.local_k is not None else [k]
        values = [cache.local_v, v] if cache.local_v is not None else [v]
        # Summary positions not already inside the local window; they are in order.
        n_far = sum(1 for s in cache.summary_pos if s <= p - self.window)
        keys = cache.summary_k[:n_far] + keys
        values = cache.summary_v[:n_far] + values
        y = F.scaled_dot_product_attention(q, torch.cat(keys, 2), torch.cat(values, 2))
        if self.window > 1:
            cache.local_k = torch.cat(keys[n_far:], 2)[:, :, -(self.window - 1) :]
            cache.local_v = torch.cat(values[n_far:], 2)[:, :, -(self.window - 1) :]
        if p % self.stride == self.stride - 1:
            cache.summary_k.append(k)
            cache.summary_v.append(v)
            cache.summary_pos.append(p)
        cache.position = p + 1
        return self.o_proj(y.transpose(1, 2).reshape(x.shape))
