"""RMSNorm and SwiGLU's gate product on the fused CPU kernels (csrc/rows.c), with fallbacks.

    rms_norm(x, weight, eps, to_autocast=False)
                               x * rsqrt(mean(x^2) + eps) * weight over the last dimension
    silu_gate(g, u)            silu(g) * u

On CPU autograd, `F.rms_norm` runs as five element-wise operators forward and more backward,
and `silu(g) * u` as three; each kernel here is one pass forward and one backward, computed in
fp32 whatever the activations' dtype. With `to_autocast`, under bf16 autocast `rms_norm`
returns bf16: for a norm whose every consumer is a matmul that would cast its input to bf16
anyway (a block's norms), one rounding in the norm replaces a cast pass per consumer
(in_proj; q, k and v; gate and up).

GHOST_SCAN chooses these kernels as it does the scan's (`scan_fused._use_kernel`): auto (the
kernel on CPU when the library builds), fused, or ref (PyTorch's operators, the oracle).
"""

from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F

from ghost.model.scan_fused import _load_kernel, _ptr, _require_kernel, _use_kernel


class _RmsProblem(ctypes.Structure):
    """Mirror of `struct ghost_rms_problem`."""

    _fields_ = [
        ("rows", ctypes.c_int64),
        ("dim", ctypes.c_int64),
        ("eps", ctypes.c_float),
        ("x_bf16", ctypes.c_int32),
        ("y_bf16", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
        ("x", ctypes.c_void_p),
        ("weight", ctypes.c_void_p),
    ]


class _GateProblem(ctypes.Structure):
    """Mirror of `struct ghost_gate_problem`."""

    _fields_ = [
        ("size", ctypes.c_int64),
        ("bf16", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
        ("g", ctypes.c_void_p),
        ("u", ctypes.c_void_p),
    ]


def _is_bf16(t: torch.Tensor) -> int:
    return int(t.dtype == torch.bfloat16)


def _io(t: torch.Tensor) -> torch.Tensor:
    """fp32 or bf16 as given (another dtype in fp32), contiguous."""
    if t.dtype not in (torch.float32, torch.bfloat16):
        t = t.float()
    return t.contiguous()


def _rms_problem(x: torch.Tensor, weight: torch.Tensor, eps: float, out_dtype) -> _RmsProblem:
    return _RmsProblem(
        rows=x.numel() // x.shape[-1],
        dim=x.shape[-1],
        eps=eps,
        x_bf16=_is_bf16(x),
        y_bf16=int(out_dtype == torch.bfloat16),
        n_threads=torch.get_num_threads(),
        x=_ptr(x),
        weight=_ptr(weight),
    )


class _RmsNormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps, out_dtype):
        y = torch.empty(x.shape, dtype=out_dtype)
        rstd = torch.empty(x.shape[:-1], dtype=torch.float32)
        _load_kernel().ghost_rms_forward(
            ctypes.byref(_rms_problem(x, weight, eps, out_dtype)), _ptr(y), _ptr(rstd)
        )
        ctx.save_for_backward(x, weight, rstd)
        ctx.eps, ctx.out_dtype = eps, out_dtype
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, rstd = ctx.saved_tensors
        dy = dy.to(ctx.out_dtype).contiguous()
        dx, dweight = torch.empty_like(x), torch.empty_like(weight)
        status = _load_kernel().ghost_rms_backward(
            ctypes.byref(_rms_problem(x, weight, ctx.eps, ctx.out_dtype)),
            _ptr(rstd),
            _ptr(dy),
            _ptr(dx),
            _ptr(dweight),
        )
        if status:
            raise MemoryError("RMSNorm backward: out of memory for its scratch buffers")
        return dx, dweight, None, None


def _autocast_dtype(t: torch.Tensor) -> torch.dtype | None:
    kind = t.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor, eps: float, to_autocast: bool = False
) -> torch.Tensor:
    """RMSNorm over the last dimension: the kernel on CPU when it builds, else F.rms_norm.
    With `to_autocast`, the kernel's output under autocast is in autocast's dtype (see the
    module's docstring); otherwise in x's."""
    if not _use_kernel(x) or weight.shape != x.shape[-1:]:
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    _require_kernel("RMSNorm", x)
    x_io = _io(x)
    wanted = (to_autocast and _autocast_dtype(x)) or x.dtype
    out_dtype = wanted if wanted in (torch.float32, torch.bfloat16) else torch.float32
    y = _RmsNormFn.apply(x_io, weight.float().contiguous(), float(eps), out_dtype)
    return y.to(wanted)


def _gate_problem(g: torch.Tensor, u: torch.Tensor) -> _GateProblem:
    return _GateProblem(
        size=g.numel(),
        bf16=_is_bf16(g),
        n_threads=torch.get_num_threads(),
        g=_ptr(g),
        u=_ptr(u),
    )


class _SiluGateFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g, u):
        h = torch.empty_like(g)
        _load_kernel().ghost_gate_forward(ctypes.byref(_gate_problem(g, u)), _ptr(h))
        ctx.save_for_backward(g, u)
        return h

    @staticmethod
    def backward(ctx, dh):
        g, u = ctx.saved_tensors
        dh = dh.to(g.dtype).contiguous()
        dg, du = torch.empty_like(g), torch.empty_like(u)
        _load_kernel().ghost_gate_backward(
            ctypes.byref(_gate_problem(g, u)), _ptr(dh), _ptr(dg), _ptr(du)
        )
        return dg, du


def silu_gate(g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """silu(g) * u: the kernel on CPU when it builds and g, u agree in shape and dtype (fp32
    or bf16), else PyTorch's operators."""
    same = g.shape == u.shape and g.dtype == u.dtype
    if not (same and g.dtype in (torch.float32, torch.bfloat16) and _use_kernel(g)):
        return F.silu(g) * u
    _require_kernel("SwiGLU gate", g)
    return _SiluGateFn.apply(g.contiguous(), u.contiguous())
