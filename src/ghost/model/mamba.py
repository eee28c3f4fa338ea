"""Mamba-1 mixer: the selective state-space layer, with the reference maths and names.

    MambaMixer(x) = out_proj( scan(silu(conv(in_x)), ...) * silu(z) ),  [in_x, z] = in_proj(x)

Symbols: B batch, L length, D dim, ED = expand * D channels, N d_state, R dt_rank, K d_conv.
Parameter names and shapes follow the reference implementation (state-spaces `Mamba`,
transformers' `MambaMixer`): in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj, so a
mixer's weights can be exchanged with it and give the same outputs.

Two modes share the weights:
- full sequence: `mixer(x)` or `mixer(x, state=...)` when a cache is wanted back;
- recurrent step: `mixer.step(x_t, state)` costs O(1) per byte and equals the full forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ghost.model.scan import causal_conv_silu_ref, selective_scan_ref

try:  # the fused C kernels; the dispatchers fall back to the references when they cannot build
    from ghost.model.scan_fused import causal_conv_silu, selective_scan
except ImportError:  # pragma: no cover - only while the kernel module is absent
    causal_conv_silu, selective_scan = causal_conv_silu_ref, selective_scan_ref


@dataclass
class MambaState:
    """What generation carries between bytes: the conv window and the SSM state."""

    conv: torch.Tensor  # (B, ED, K)  the last K inputs of the convolution
    ssm: torch.Tensor  # (B, ED, N)

    def select(self, rows: torch.Tensor) -> MambaState:
        return MambaState(self.conv[rows], self.ssm[rows])


def _linear_input(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """y as out_proj takes it: in x's dtype, except under autocast, where the Linear casts
    to bf16 itself (a cast to the fp32 input's dtype and back would be two passes over y)."""
    return y if torch.is_autocast_enabled(x.device.type) else y.to(x.dtype)


class MambaMixer(nn.Module):
    def __init__(
        self,
        dim: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
    ):
        super().__init__()
        self.d_inner = expand * dim
        self.d_state = d_state
        self.d_conv = d_conv
        self.dt_rank = dt_rank or math.ceil(dim / 16)
        ed, n, r = self.d_inner, d_state, self.dt_rank

        self.in_proj = nn.Linear(dim, 2 * ed, bias=False)
        self.conv1d = nn.Conv1d(
            ed, ed, kernel_size=d_conv, groups=ed, padding=d_conv - 1, bias=True
        )
        self.x_proj = nn.Linear(ed, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, ed, bias=True)
        self.A_log = nn.Parameter(
            torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(ed, 1)
        )
        self.D = nn.Parameter(torch.ones(ed))
        self.out_proj = nn.Linear(ed, dim, bias=False)

        # The reference initialisation: dt_proj maps to a step size in [dt_min, dt_max] at start.
        nn.init.uniform_(self.dt_proj.weight, -(r**-0.5), r**-0.5)
        dt = torch.exp(torch.rand(ed) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=1e-4)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.dt_proj.bias._no_weight_decay = True
        self.A_log._no_weight_decay = True
        self.D._no_weight_decay = True

    def forward(self, x: torch.Tensor, state: MambaState | None = None, want_state: bool = False):
        """x (B, L, D) -> (B, L, D); with want_state, also the state after the last byte.

        `state` continues from a previous call (used when a cached prompt is extended).
        """
        batch, length, _ = x.shape
        xz = self.in_proj(x)  # (B, L, 2*ED)
        x_in, z = xz.chunk(2, dim=-1)  # (B, L, ED) each
        # With a state, the convolution continues across the boundary from its window.
        history = state.conv[:, :, 1:].transpose(1, 2) if state is not None else None
        w = self.conv1d.weight[:, 0, :]  # (ED, K)
        u = causal_conv_silu(x_in, w, self.conv1d.bias, history)  # (B, L, ED)

        x_dbl = self.x_proj(u)  # (B, L, R + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = dt @ self.dt_proj.weight.t()  # (B, L, ED); the bias is added inside the scan
        A = -torch.exp(self.A_log.float())  # (ED, N)
        scan_args = dict(
            D=self.D.float(), z=z, delta_bias=self.dt_proj.bias.float(), delta_softplus=True
        )
        if state is not None or want_state:
            h0 = state.ssm if state is not None else None
            y, h = selective_scan(
                u, delta, A, B, C, return_last_state=True, initial_state=h0, **scan_args
            )
            out = self.out_proj(_linear_input(y, x))
            x_t = x_in.transpose(1, 2)  # (B, ED, L)
            window = (
                torch.cat([state.conv, x_t.to(state.conv.dtype)], dim=2)
                if state is not None
                else F.pad(x_t, (self.d_conv, 0))
            )
            return out, MambaState(conv=window[:, :, -self.d_conv :].float(), ssm=h)
        y = selective_scan(u, delta, A, B, C, **scan_args)  # (B, L, ED)
        return self.out_proj(_linear_input(y, x))

    def empty_state(self, batch: int, device=None) -> MambaState:
        return MambaState(
            conv=torch.zeros(batch, self.d_inner, self.d_conv, device=device),
            ssm=torch.zeros(batch, self.d_inner, self.d_state, device=device),
        )

    def step(self, x: torch.Tensor, state: MambaState):
        """One byte: x (B, D) -> (B, D), updating `state` in place. O(1) in the length."""
        xz = self.in_proj(x)  # (B, 2*ED)
        x_in, z = xz.chunk(2, dim=-1)  # (B, ED)
        state.conv = torch.roll(state.conv, shifts=-1, dims=-1)
        state.conv[:, :, -1] = x_in.float()
        u = (state.conv * self.conv1d.weight[:, 0, :]).sum(-1) + self.conv1d.bias  # (B, ED)
        u = F.silu(u)
        dt, B, C = torch.split(self.x_proj(u), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt)).float()  # (B, ED)
        A = -torch.exp(self.A_log.float())  # (ED, N)
        dA = torch.exp(delta.unsqueeze(-1) * A)  # (B, ED, N)
        state.ssm = dA * state.ssm + (delta * u.float()).unsqueeze(-1) * B.float().unsqueeze(1)
        y = (state.ssm @ C.float().unsqueeze(-1)).squeeze(-1) + self.D * u.float()  # (B, ED)
        y = y * F.silu(z.float())
        return self.out_proj(y.to(x.dtype))
