"""The models Ghost is timed against: a byte-level GPT and the `mambapy` package's Mamba.

Both take the call Ghost takes, `model(input_ids, labels=None)` -> `ModelOutput(loss, logits,
cache)` with the labels shifted inside and -100 ignored, so one training step serves all three.

    BytesGPT(x)   = head(ln_f(blocks(embed(x) + pos[:L])))       head tied to the embedding
    block(h)      = h + attn(ln1(h));  h + mlp(ln2(h))            pre-norm, MLP 4x with GELU
    MambaPyLM(x)  = head(norm(mambapy.Mamba(embed(x))))           head tied to the embedding

Symbols: B batch, L length, D dim, H heads, E head dim, T cache capacity.

`BytesGPT.step` is generation with a key/value cache: per-layer (B, H, T, E) tensors allocated
once, one position written per byte, attention over the filled prefix. `mambapy.lm` cannot be
imported on a CPU-only machine (it imports its CUDA Mamba-2), so `MambaPyLM` is built from
`mambapy.mamba.Mamba` directly; install the package with `pip install --no-deps mambapy`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ghost.model.attention import masked_attention
from ghost.model.ghost import ModelOutput, next_byte_loss


def shifted_loss(logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    """Ghost's label convention (position t predicts byte t+1, -100 ignored): its own loss."""
    return next_byte_loss(logits, labels) if labels is not None else None


@dataclass
class KVCache:
    """Keys and values of every layer, allocated for `capacity` positions; `length` filled."""

    keys: list[torch.Tensor]  # per layer (B, H, T, E)
    values: list[torch.Tensor]
    length: int = 0


class CausalSelfAttention(nn.Module):
    """`matmul_training`: while training, plain masked matmuls instead of SDPA (Ghost's
    attention takes them at short lengths; benchmarks/gpt_attention.py measures what the
    GPT would gain); the default is SDPA, the peer as the throughput issue defines it."""

    matmul_training = False

    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0):
        """x (B, L, D) -> (B, L, D); with a cache, also writes this chunk's keys/values."""
        b, length, dim = x.shape
        q, k, v = (
            t.view(b, length, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, L, E)
            for t in self.qkv(x).split(dim, dim=-1)
        )
        if cache is None and self.matmul_training and torch.is_grad_enabled():
            causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
            y = masked_attention(q, k, v, causal)
        elif cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            start, end = cache.length, cache.length + length
            # SDPA's causal mask is aligned top-left, right only when the chunk starts at 0;
            # a single new byte may see the whole prefix.
            if start and length > 1:
                raise ValueError("extend a filled KV cache one byte at a time")
            cache.keys[layer][:, :, start:end] = k
            cache.values[layer][:, :, start:end] = v
            keys, values = cache.keys[layer][:, :, :end], cache.values[layer][:, :, :end]
            y = F.scaled_dot_product_attention(q, keys, values, is_causal=length > 1)
        return self.proj(y.transpose(1, 2).reshape(b, length, dim))


class GPTBlock(nn.Module):
    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, n_heads)
        self.ln2 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 4 * dim, bias=False)
        self.down = nn.Linear(4 * dim, dim, bias=False)

    def forward(self, h, cache: KVCache | None = None, layer: int = 0):
        h = h + self.attn(self.ln1(h), cache, layer)
        return h + self.down(F.gelu(self.fc(self.ln2(h))))


class BytesGPT(nn.Module):
    """A GPT over bytes with a learned position table of `max_len` positions."""

    def __init__(self, dim: int = 256, n_layers: int = 8, n_heads: int = 4, max_len: int = 4096):
        super().__init__()
        self.config = {"dim": dim, "n_layers": n_layers, "n_heads": n_heads, "max_len": max_len}
        self.max_len = max_len
        self.embed = nn.Embedding(256, dim)
        self.pos_embed = nn.Embedding(max_len, dim)
        self.blocks = nn.ModuleList(GPTBlock(dim, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 256, bias=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:  # GPT-2's initialisation, residual projections scaled by depth
                std = (
                    0.02 / (2 * n_layers) ** 0.5
                    if name.endswith(("proj.weight", "down.weight"))
                    else 0.02
                )
                nn.init.normal_(p, mean=0.0, std=std)
        self.head.weight = self.embed.weight

    def _run(self, input_ids: torch.Tensor, start: int, cache: KVCache | None) -> torch.Tensor:
        length = input_ids.shape[1]
        if start + length > self.max_len:
            raise ValueError(f"BytesGPT sees at most {self.max_len} positions")
        positions = torch.arange(start, start + length, device=input_ids.device)
        h = self.embed(input_ids) + self.pos_embed(positions)  # (B, L, D)
        for i, block in enumerate(self.blocks):
            h = block(h, cache, i)
        if cache is not None:
            cache.length = start + length
        return self.head(self.ln_f(h))  # (B, L, 256)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> ModelOutput:
        logits = self._run(input_ids, 0, None)
        return ModelOutput(shifted_loss(logits, labels), logits)

    def empty_cache(self, batch: int, capacity: int | None = None) -> KVCache:
        c = self.config
        shape = (batch, c["n_heads"], capacity or self.max_len, c["dim"] // c["n_heads"])
        device = self.embed.weight.device
        return KVCache(
            keys=[torch.zeros(shape, device=device) for _ in range(c["n_layers"])],
            values=[torch.zeros(shape, device=device) for _ in range(c["n_layers"])],
        )

    def prefill(self, input_ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Fill an empty cache with a prompt (B, L); returns the last position's logits (B, 256)."""
        return self._run(input_ids, 0, cache)[:, -1]

    def step(self, byte_ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """byte_ids (B,) -> next-byte logits (B, 256), appending one position to `cache`."""
        return self._run(byte_ids.unsqueeze(1), cache.length, cache)[:, 0]


class MambaPyLM(nn.Module):
    """`mambapy`'s pure-PyTorch Mamba (parallel scan) as a byte LM; ImportError without it."""

    def __init__(self, dim: int = 256, n_layers: int = 15):
        super().__init__()
        from mambapy.mamba import Mamba, MambaConfig  # mambapy.lm needs CUDA packages

        self.config = {"dim": dim, "n_layers": n_layers, "d_state": 16, "expand": 2, "pscan": True}
        self.embed = nn.Embedding(256, dim)
        self.backbone = Mamba(MambaConfig(d_model=dim, n_layers=n_layers, pscan=True))
        self.norm = nn.RMSNorm(dim, eps=1e-5)
        self.head = nn.Linear(dim, 256, bias=False)
        nn.init.normal_(self.embed.weight, mean=0.0, std=0.02)
        self.head.weight = self.embed.weight

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> ModelOutput:
        logits = self.head(self.norm(self.backbone(self.embed(input_ids))))  # (B, L, 256)
        return ModelOutput(shifted_loss(logits, labels), logits)


def mamba_layer_params(dim: int = 256) -> int:
    """Parameters of one mambapy residual block at this width (to size the peer)."""
    from mambapy.mamba import MambaConfig, ResidualBlock

    return sum(p.numel() for p in ResidualBlock(MambaConfig(d_model=dim, n_layers=1)).parameters())
