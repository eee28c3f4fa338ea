"""RMSNorm and the SwiGLU feed-forward layer: the two small pieces every block uses (on the
fused kernels of ghost.model.norm_fused where they run)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ghost.model.norm_fused import rms_norm, silu_gate


class RMSNorm(nn.Module):
    """`feeds_matmul`: every consumer of the output is a matmul, so under bf16 autocast the
    output is bf16 (the consumers' casts are done once, here); else it keeps x's dtype."""

    def __init__(self, dim: int, eps: float = 1e-5, feeds_matmul: bool = False):
        super().__init__()
        self.eps = eps
        self.feeds_matmul = feeds_matmul
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps, to_autocast=self.feeds_matmul)


class SwiGLU(nn.Module):
    """FFN(x) = down(silu(gate(x)) * up(x))."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(silu_gate(self.gate(x), self.up(x)))
