"""Selective scan: the recurrence at the heart of a Mamba-1 mixer.

For every batch element b and channel d (ED channels), with a state h of N floats:

    dA_t = exp(delta_t * A[d])                       # (N,)  discretised decay
    h_t  = dA_t * h_{t-1} + delta_t * B_t * u_t      # (N,)  zero-order-hold input
    y_t  = <h_t, C_t> + D[d] * u_t                   # scalar
    y_t  = y_t * silu(z_t)                           # optional output gate

Symbols: B batch, L length, ED channels (expand * dim), N state size (16).
Layouts here are batch-first, length-second: u, delta, z are (B, L, ED); B and C are
(B, L, N), so one time step's B_t is N contiguous floats (one AVX-512 register for N=16).

`selective_scan_ref` is the readable oracle: a sequential loop under autograd. The fused
kernel (`ghost.model.scan_fused`) has the same signature and is tested against it; so has
the mixer's step before the scan, `causal_conv_silu_ref` (its causal convolution + SiLU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def selective_scan_ref(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = True,
    return_last_state: bool = False,
    initial_state: torch.Tensor | None = None,
):
    """Sequential selective scan in fp32.

    u, delta, z: (B, L, ED); A: (ED, N); B, C: (B, L, N); D, delta_bias: (ED,);
    initial_state: (B, ED, N) or None (zeros).
    Returns y (B, L, ED) in u's dtype, and the last state (B, ED, N) if asked.
    """
    dtype = u.dtype
    u, delta, B, C = u.float(), delta.float(), B.float(), C.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()
    if delta_softplus:
        delta = F.softplus(delta)
    batch, length, channels = u.shape
    dA = torch.exp(delta.unsqueeze(-1) * A.float())  # (B, L, ED, N)
    dBu = (delta * u).unsqueeze(-1) * B.unsqueeze(2)  # (B, L, ED, N)
    h = (
        initial_state.float()
        if initial_state is not None
        else u.new_zeros(batch, channels, A.shape[1])
    )
    ys = []
    # unbind, not dA[:, t]: the backward of unbind is one stack, while each indexing op's
    # backward would write a zero-filled (B, L, ED, N) tensor.
    for dA_t, dBu_t, C_t in zip(dA.unbind(1), dBu.unbind(1), C.unbind(1), strict=True):
        h = dA_t * h + dBu_t  # (B, ED, N)
        ys.append(torch.einsum("bdn,bn->bd", h, C_t))
    y = torch.stack(ys, dim=1) if ys else u.new_zeros(batch, 0, channels)  # (B, L, ED)
    if D is not None:
        y = y + u * D.float()
    if z is not None:
        y = y * F.silu(z.float())
    y = y.to(dtype)
    return (y, h) if return_last_state else y


def causal_conv_silu_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    history: torch.Tensor | None = None,
) -> torch.Tensor:
    """silu(depthwise causal convolution of x), in x's (B, L, ED) layout and dtype.

    weight (ED, K): tap K-1 sees x_t, tap i sees x_{t-K+1+i}; bias (ED,); `history`
    (B, K-1, ED) holds the inputs just before x (zeros when None). Equal to a depthwise
    `nn.Conv1d(padding=K-1)` on the transposed input, cut to L (to float rounding), written
    as K shifted multiply-adds: no transposes, and its backward is a third faster than
    PyTorch's depthwise conv1d on CPU.
    """
    k, length = weight.shape[1], x.shape[1]
    w = weight.to(x.dtype)
    if history is None:
        padded = F.pad(x, (0, 0, k - 1, 0))  # (B, K-1+L, ED)
    else:
        padded = torch.cat([history.to(x.dtype), x], dim=1)
    out = torch.addcmul(bias.to(x.dtype), padded[:, k - 1 :], w[:, k - 1])
    for i in range(k - 1):
        out = torch.addcmul(out, padded[:, i : i + length], w[:, i])
    return F.silu(out)
