"""Fused CPU selective scan: a plain C kernel compiled on first use and loaded with ctypes.

Same signature and maths as `ghost.model.scan.selective_scan_ref` (the oracle the tests
compare against), but it keeps each channel's state in registers, never materialises the
(B, L, ED, N) tensors and recomputes states in the backward pass: see csrc/selective_scan.c.

Map:
- `_load_kernel()` compiles csrc/selective_scan.c and csrc/rows.c (RMSNorm and the SwiGLU
  gate, used by ghost.model.norm_fused) with the system compiler into a per-user
  cache, keyed by source, flags, compiler version and CPU, and loads it; if that fails it
  warns once and the dispatcher uses the reference. No torch headers: installing Ghost
  never builds anything against torch.
- `_SelectiveScanFn` is the autograd Function: activations in fp32 or bf16 (read and
  written as they are, computed in fp32), chunk start states saved, gradients
  for every input (including the initial state and through the last state).
- `selective_scan_fused` (always the kernel) and `selective_scan` (the dispatcher, what the
  model calls) share the reference's signature. `kernel_status()` is for `ghost info`.
- The same library holds the mixer's causal convolution + SiLU: `_CausalConvSiluFn`,
  `causal_conv_silu_fused` and the dispatcher `causal_conv_silu`, against
  `ghost.model.scan.causal_conv_silu_ref`. One pass each way instead of PyTorch's K
  shifted multiply-adds, whose backward writes a zero-filled padded gradient per tap.

Environment: GHOST_SCAN=auto|fused|ref (default auto), GHOST_CC (default $CC or cc),
GHOST_SCAN_MARCH (default native; e.g. x86-64-v2 for a build without AVX-512).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ghost.model.scan import causal_conv_silu_ref, selective_scan_ref

_CSRC = Path(__file__).with_name("csrc")
_SOURCES = (_CSRC / "selective_scan.c", _CSRC / "rows.c")  # one library; both include vec.h
_HEADERS = (_CSRC / "vec.h",)
_LANES = 16  # N is padded up to a multiple of this, and so of the kernel's vector width
_CHUNK = 64  # steps between the states the forward saves for the backward
# With a gate, the forward keeps <h_t, C_t> for the backward (one float per output) instead
# of the backward recomputing it; benchmarks/mixer_step.py turns it off to compare.
_KEEP_Y0 = True


class _Problem(ctypes.Structure):
    """Mirror of `struct ghost_scan_problem`; optional pointers are None."""

    _fields_ = [
        *(
            (name, ctypes.c_int64)
            for name in ("batch", "length", "channels", "nstate", "chunk", "z_row_stride")
        ),
        ("softplus", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
        ("bf16", ctypes.c_int32),
        *((name, ctypes.c_void_p) for name in ("u", "delta", "A", "B", "C", "D", "z")),
        ("delta_bias", ctypes.c_void_p),
        ("h0", ctypes.c_void_p),
    ]


class _Grads(ctypes.Structure):
    """Mirror of `struct ghost_scan_grads`."""

    _fields_ = [
        (name, ctypes.c_void_p)
        for name in ("du", "ddelta", "dA", "dB", "dC", "dD", "dz", "ddelta_bias", "dh0")
    ]


class _ConvProblem(ctypes.Structure):
    """Mirror of `struct ghost_conv_problem`."""

    _fields_ = [
        *(
            (name, ctypes.c_int64)
            for name in ("batch", "length", "channels", "width", "x_batch_stride", "x_row_stride")
        ),
        ("n_threads", ctypes.c_int32),
        ("bf16", ctypes.c_int32),
        *((name, ctypes.c_void_p) for name in ("x", "history", "taps", "bias")),
    ]


def _compiler() -> str:
    return os.environ.get("GHOST_CC") or os.environ.get("CC") or "cc"


def _march() -> str:
    return os.environ.get("GHOST_SCAN_MARCH", "native")


def _compiler_flags() -> list[str]:
    # No -ffast-math: the exp's rounding trick and the NaN handling rely on IEEE semantics.
    return ["-O3", f"-march={_march()}", "-fopenmp", "-shared", "-fPIC", "-Wno-psabi"]


def _cpu_description() -> str:
    """CPU model and feature flags, so a cache shared between machines never mixes builds."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        wanted = [ln for ln in lines if ln.split(":")[0].strip() in ("model name", "flags")]
        return "\n".join(dict.fromkeys(wanted))  # the first CPU's lines, once each
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def _build(cc: str, flags: list[str]) -> Path:
    """Compile the kernel into the cache unless an identical build is already there."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True).stdout
    texts = [path.read_text() for path in (*_SOURCES, *_HEADERS)]
    key = "\n".join([*texts, " ".join(flags), version, _cpu_description()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ghost" / "kernels"
    target = cache / f"selective_scan-{digest}.so"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    # Build under a unique name, then rename: two processes may build at once, and each
    # rename is atomic, so a reader only ever sees a complete library.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
    os.close(fd)
    try:
        command = [cc, *flags, *map(str, _SOURCES), "-o", tmp, "-lm"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            last_line = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"{cc} failed: {last_line}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


_lock = threading.Lock()
_kernel: ctypes.CDLL | None = None
_kernel_error: str | None = None  # why the kernel is unavailable, once it has been tried


def _load_kernel() -> ctypes.CDLL | None:
    """The loaded kernel, building it on first use; None (warned once) if that fails."""
    global _kernel, _kernel_error
    with _lock:
        if _kernel is None and _kernel_error is None:
            try:
                lib = ctypes.CDLL(str(_build(_compiler(), _compiler_flags())))
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                _kernel_error = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"ghost: fused selective-scan kernel unavailable ({_kernel_error}); "
                    "using the slower PyTorch reference scan",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return None
            problem, grads = ctypes.POINTER(_Problem), ctypes.POINTER(_Grads)
            ptr = ctypes.c_void_p
            lib.ghost_scan_forward.argtypes = [problem, ptr, ptr, ptr, ptr]
            lib.ghost_scan_backward.argtypes = [problem, ptr, ptr, ptr, ptr, grads]
            lib.ghost_scan_isa.restype = ctypes.c_char_p
            conv = ctypes.POINTER(_ConvProblem)
            lib.ghost_conv_silu_forward.argtypes = [conv, ptr, ptr]
            lib.ghost_conv_silu_backward.argtypes = [conv, ptr, ptr, ptr, ptr, ptr, ptr]
            # rows.c: RMSNorm and the SwiGLU gate (ghost.model.norm_fused)
            lib.ghost_rms_forward.argtypes = [ptr, ptr, ptr]
            lib.ghost_rms_backward.argtypes = [ptr, ptr, ptr, ptr, ptr]
            lib.ghost_gate_forward.argtypes = [ptr, ptr]
            lib.ghost_gate_backward.argtypes = [ptr, ptr, ptr, ptr]
            _kernel = lib
        return _kernel


def _f32(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.float().contiguous()


def _io_dtype(*activations: torch.Tensor | None) -> torch.dtype:
    """The dtype the kernels read and write activations in: bf16 when all of them are bf16
    (a bf16 model, or autocast), else fp32. Inside, they always compute in fp32."""
    given = [t.dtype for t in activations if t is not None]
    return torch.bfloat16 if all(d == torch.bfloat16 for d in given) else torch.float32


def _io(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if t is None else t.to(dtype).contiguous()


def _is_bf16(t: torch.Tensor) -> int:
    """The kernels' flag for activations stored in bf16 (else fp32)."""
    return int(t.dtype == torch.bfloat16)


def _gate(z: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """z in the activations' dtype; a view with unit channel stride and evenly spaced rows
    (the mixer's half of in_proj's output) is passed as it is: the kernel takes z's row
    stride."""
    if z is None:
        return None
    z = z.to(dtype)
    batch, length, _ = z.shape
    if z.stride(2) == 1 and (batch == 1 or z.stride(0) == length * z.stride(1)):
        return z
    return z.contiguous()


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _pad_state(t: torch.Tensor, np_: int) -> torch.Tensor:
    """fp32, contiguous, last dimension N zero-padded to NP (a zero A and B keep pads at 0)."""
    if t.shape[-1] == np_:  # N = 16: nothing to pad, and no copy
        return t.float().contiguous()
    return F.pad(t.float(), (0, np_ - t.shape[-1]))


def _problem(u, delta, A_, B_, C_, D, z, delta_bias, h0, delta_softplus) -> _Problem:
    """The kernel's view of one call: the tensors must outlive its use."""
    batch, length, channels = u.shape
    tensors = dict(u=u, delta=delta, A=A_, B=B_, C=C_, D=D, z=z, delta_bias=delta_bias, h0=h0)
    return _Problem(
        batch=batch,
        length=length,
        channels=channels,
        nstate=A_.shape[1],
        chunk=_CHUNK,
        z_row_stride=channels if z is None else z.stride(1),
        softplus=int(delta_softplus),
        n_threads=torch.get_num_threads(),
        bf16=_is_bf16(u),
        **{name: _ptr(t) for name, t in tensors.items()},
    )


class _SelectiveScanFn(torch.autograd.Function):
    """y, last_state = scan(...): u, delta, z (and y, and their gradients) in fp32 or bf16
    alike, everything else fp32; the dispatcher handles dtypes."""

    @staticmethod
    def forward(
        ctx, u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus, return_last_state
    ):
        batch, length, channels = u.shape
        n = A.shape[1]
        np_ = -(-n // _LANES) * _LANES
        A_, B_, C_ = (_pad_state(t, np_) for t in (A, B, C))
        h0 = None if initial_state is None else _pad_state(initial_state, np_)
        problem = _problem(u, delta, A_, B_, C_, D, z, delta_bias, h0, delta_softplus)
        y = torch.empty_like(u)  # (B, L, ED)
        f32 = torch.float32  # states and what the backward keeps, whatever u's dtype
        last = torch.empty(batch, channels, np_, dtype=f32) if return_last_state else None
        # The state entering each chunk of _CHUNK steps after the first, for the backward's
        # recompute (none at all up to _CHUNK steps).
        chunks = max(-(-length // _CHUNK) - 1, 0)
        grads = any(ctx.needs_input_grad)
        ckpt = torch.empty(batch, channels, chunks, np_, dtype=f32) if grads else None
        # <h_t, C_t>, which the gate's gradient needs: kept rather than recomputed.
        y0 = torch.empty(u.shape, dtype=f32) if grads and z is not None and _KEEP_Y0 else None
        status = _load_kernel().ghost_scan_forward(
            ctypes.byref(problem), _ptr(y), _ptr(last), _ptr(ckpt), _ptr(y0)
        )
        if status:
            raise MemoryError("selective scan forward: out of memory for its scratch buffers")
        ctx.save_for_backward(u, delta, A_, B_, C_, D, z, delta_bias, h0, ckpt, y0)
        ctx.n, ctx.delta_softplus = n, delta_softplus
        ctx.set_materialize_grads(False)  # an unused last state then costs no zero tensor
        return y, None if last is None else last[..., :n]

    @staticmethod
    def backward(ctx, dy, dlast):
        u, delta, A_, B_, C_, D, z, delta_bias, h0, ckpt, y0 = ctx.saved_tensors
        # Built again rather than kept from the forward: saved-tensor hooks may have moved
        # the tensors, and the thread count may have changed.
        problem = _problem(u, delta, A_, B_, C_, D, z, delta_bias, h0, ctx.delta_softplus)
        n = ctx.n
        dy = torch.zeros_like(u) if dy is None else dy.to(u.dtype).contiguous()
        dlast = None if dlast is None else _pad_state(dlast, A_.shape[1])
        grads = {
            "du": torch.empty_like(u),
            "ddelta": torch.empty_like(delta),
            "dA": torch.empty_like(A_),
            "dB": torch.empty_like(B_),
            "dC": torch.empty_like(C_),
            "dD": None if D is None else torch.empty_like(D),
            "dz": None if z is None else torch.empty(z.shape, dtype=u.dtype),
            "ddelta_bias": None if delta_bias is None else torch.empty_like(delta_bias),
            "dh0": None if h0 is None else torch.empty_like(h0),
        }
        c_grads = _Grads(**{k: _ptr(v) for k, v in grads.items()})
        status = _load_kernel().ghost_scan_backward(
            ctypes.byref(problem),
            _ptr(ckpt),
            _ptr(y0),
            _ptr(dy),
            _ptr(dlast),
            ctypes.byref(c_grads),
        )
        if status:
            raise MemoryError("selective scan backward: out of memory for its scratch buffers")
        g = grads  # below, [..., :n] drops the padded states
        dh0 = None if h0 is None else g["dh0"][..., :n]
        return (
            g["du"],
            g["ddelta"],
            g["dA"][:, :n],
            g["dB"][..., :n],
            g["dC"][..., :n],
            g["dD"],
            g["dz"],
            g["ddelta_bias"],
            dh0,
            None,
            None,
        )


def _check_shapes(u, delta, A, B, C, D, z, delta_bias, initial_state):
    """The C kernel trusts its shapes, so a mismatch must stop here, not read past a buffer."""
    batch, length, channels = u.shape
    n = A.shape[-1]
    expected = {
        "delta": (batch, length, channels),
        "A": (channels, n),
        "B": (batch, length, n),
        "C": (batch, length, n),
        "D": (channels,),
        "z": (batch, length, channels),
        "delta_bias": (channels,),
        "initial_state": (batch, channels, n),
    }
    given = dict(
        delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias, initial_state=initial_state
    )
    for name, t in given.items():
        if t is not None and tuple(t.shape) != expected[name]:
            raise ValueError(
                f"selective scan: {name} has shape {tuple(t.shape)}, "
                f"expected {expected[name]} for u of shape {tuple(u.shape)}"
            )


def selective_scan_fused(
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
    """The fused kernel; arguments and results as `selective_scan_ref`. Raises if unbuilt."""
    _require_kernel("selective scan", u)
    _check_shapes(u, delta, A, B, C, D, z, delta_bias, initial_state)
    # The kernel computes in fp32 whatever autocast says; it reads and writes the
    # activations in bf16 when they all are (no cast passes), and the casts of the rest are
    # differentiable, so every input gets its gradient in its own dtype.
    io = _io_dtype(u, delta, z)
    params = (*(_f32(t) for t in (A, B, C, D)), _gate(z, io), _f32(delta_bias))
    tensors = (_io(u, io), _io(delta, io), *params, _f32(initial_state))
    y, last = _SelectiveScanFn.apply(*tensors, delta_softplus, return_last_state)
    y = y.to(u.dtype)
    return (y, last) if return_last_state else y


def _conv_problem(x, taps, bias, history) -> _ConvProblem:
    """The kernel's view of one convolution: x may be a view with unit channel stride;
    taps (K, ED) is the weight transposed."""
    batch, length, channels = x.shape
    return _ConvProblem(
        batch=batch,
        length=length,
        channels=channels,
        width=taps.shape[0],
        x_batch_stride=x.stride(0),
        x_row_stride=x.stride(1),
        n_threads=torch.get_num_threads(),
        bf16=_is_bf16(x),
        x=_ptr(x),
        history=_ptr(history),
        taps=_ptr(taps),
        bias=_ptr(bias),
    )


class _CausalConvSiluFn(torch.autograd.Function):
    """u = silu(causal_conv(x)): x and u (and their gradients) fp32 or bf16 alike, the rest
    fp32 (no history with bf16); silu'(pre) is kept in fp32 for the backward."""

    @staticmethod
    def forward(ctx, x, weight, bias, history):
        taps = weight.t().contiguous()  # (K, ED): a row of taps per shift, like x's rows
        u = x.new_empty(x.shape)  # (B, L, ED)
        grads = any(ctx.needs_input_grad)
        dsilu = torch.empty(x.shape, dtype=torch.float32) if grads else None  # silu'(pre)
        _load_kernel().ghost_conv_silu_forward(
            ctypes.byref(_conv_problem(x, taps, bias, history)), _ptr(u), _ptr(dsilu)
        )
        ctx.save_for_backward(x, taps, bias, history, dsilu)
        return u

    @staticmethod
    def backward(ctx, du):
        x, taps, bias, history, dsilu = ctx.saved_tensors
        du = du.to(x.dtype).contiguous()
        dx, dtaps, dbias = torch.empty_like(du), torch.empty_like(taps), torch.empty_like(bias)
        dhistory = None if history is None else torch.empty_like(history)
        status = _load_kernel().ghost_conv_silu_backward(
            ctypes.byref(_conv_problem(x, taps, bias, history)),
            _ptr(dsilu),
            _ptr(du),
            _ptr(dx),
            _ptr(dhistory),
            _ptr(dtaps),
            _ptr(dbias),
        )
        if status:
            raise MemoryError("causal conv backward: out of memory for its scratch buffers")
        return dx, dtaps.t(), dbias, dhistory


def causal_conv_silu_fused(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    history: torch.Tensor | None = None,
) -> torch.Tensor:
    """The fused kernel; arguments and result as `causal_conv_silu_ref`. Raises if unbuilt."""
    _require_kernel("causal convolution", x)
    batch, _, channels = x.shape
    k = weight.shape[1]
    history_shape = None if history is None else tuple(history.shape)
    fits_history = history_shape in (None, (batch, k - 1, channels))
    if weight.shape != (channels, k) or bias.shape != (channels,) or not fits_history:
        raise ValueError(
            f"causal conv: weight {tuple(weight.shape)}, bias {tuple(bias.shape)} and history "
            f"{history_shape} do not fit x of shape {tuple(x.shape)}"
        )
    # bf16 x is read as it is, but a history (a cached state, fp32) wants fp32 x beside it
    io = _io_dtype(x) if history is None else torch.float32
    x_io = x.to(io)
    if x_io.stride(-1) != 1:  # a view of in_proj's output keeps unit channel stride: no copy
        x_io = x_io.contiguous()
    u = _CausalConvSiluFn.apply(x_io, _f32(weight), _f32(bias), _f32(history))
    return u.to(x.dtype)


def causal_conv_silu(x, weight, bias, history=None):
    """The mixer's convolution + SiLU: the fused kernel on CPU when it builds, else the
    reference (GHOST_SCAN chooses for both kernels)."""
    if _use_kernel(x):
        return causal_conv_silu_fused(x, weight, bias, history)
    return causal_conv_silu_ref(x, weight, bias, history)


def _mode() -> str:
    mode = os.environ.get("GHOST_SCAN", "auto").lower()
    if mode not in ("auto", "fused", "ref"):
        raise ValueError(f"GHOST_SCAN must be auto, fused or ref, not {mode!r}")
    return mode


def _use_kernel(t: torch.Tensor) -> bool:
    """What the dispatchers choose for tensors like `t`: GHOST_SCAN=fused always (and fails
    loudly if unbuilt), auto on CPU when the library builds, ref never."""
    mode = _mode()
    return mode == "fused" or (mode == "auto" and t.device.type == "cpu" and bool(_load_kernel()))


def _require_kernel(what: str, t: torch.Tensor) -> None:
    if _load_kernel() is None:
        raise RuntimeError(f"fused {what} kernel unavailable: {_kernel_error}")
    if t.device.type != "cpu":
        raise ValueError(f"the fused {what} runs on CPU tensors, not {t.device}")


def selective_scan(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    z=None,
    delta_bias=None,
    delta_softplus=True,
    return_last_state=False,
    initial_state=None,
):
    """The model's scan: the fused kernel on CPU when it builds, else the reference."""
    args = (u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, initial_state)
    if _use_kernel(u):
        return selective_scan_fused(*args)
    return selective_scan_ref(*args)


def kernel_status() -> str:
    """One line naming the scan the model will use, e.g. for `ghost info`."""
    mode = _mode()
    if mode == "ref":
        return "PyTorch reference (GHOST_SCAN=ref)"
    lib = _load_kernel()
    if lib is None:
        return f"PyTorch reference (fused kernel unavailable: {_kernel_error})"
    isa = lib.ghost_scan_isa().decode()
    return f"fused C kernel ({isa}, -march={_march()}, {torch.get_num_threads()} threads)"
