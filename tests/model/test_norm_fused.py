"""The fused RMSNorm and SwiGLU gate (csrc/rows.c) against PyTorch's operators.

Outputs and gradients agree to 1e-5 of the tensor's scale in fp32 for dimensions that are
not a multiple of the vector width and row counts around the weight gradient's blocks of 64;
bf16 activations are read and written in place (results within bf16 rounding); thread
counts give the same bits; under autocast the norm hands its consumers bf16.
"""

import platform

import pytest
import torch
import torch.nn.functional as F
from tiny_runs import assert_close

from ghost.model import norm_fused, scan_fused
from ghost.model.norm import RMSNorm, SwiGLU
from ghost.model.norm_fused import rms_norm, silu_gate

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/model/conftest.py


@pytest.fixture(autouse=True)
def kernels_at_every_size(monkeypatch):
    """GHOST_SCAN=fused: the kernels even for tensors below norm_fused.SMALL (what these tests
    check); a test may set another mode."""
    monkeypatch.setenv("GHOST_SCAN", "fused")


def _grads(fn, inputs, seed=7):
    """fn(*inputs) and the gradients of <fn(*inputs), r> for a fixed random r."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    (out.double() * r.double()).sum().backward()
    return out, [t.grad for t in leaves]


def _reference_norm(x, w):
    return F.rms_norm(x, (x.shape[-1],), w, 1e-5)


@pytest.mark.parametrize("shape", [(1, 1, 5), (2, 3, 16), (3, 50, 37), (2, 65, 256), (130, 24)])
def test_rms_norm_and_its_gradients_match_pytorch(shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g) * 3
    w = torch.randn(shape[-1], generator=g)
    fused, fused_grads = _grads(lambda a, b: rms_norm(a, b, 1e-5), (x, w))
    ref, ref_grads = _grads(_reference_norm, (x, w))
    assert_close(fused, ref, what="output")
    for name, got, want in zip(("dx", "dweight"), fused_grads, ref_grads, strict=True):
        assert_close(got, want, what=name)


@pytest.mark.parametrize("shape", [(1, 1, 5), (3, 50, 37), (2, 40, 512)])
def test_silu_gate_and_its_gradients_match_pytorch(shape):
    g = torch.Generator().manual_seed(sum(shape))
    gate, up = torch.randn(*shape, generator=g) * 4, torch.randn(*shape, generator=g)
    fused, fused_grads = _grads(silu_gate, (gate, up))
    ref, ref_grads = _grads(lambda a, b: F.silu(a) * b, (gate, up))
    assert_close(fused, ref, what="output")
    for name, got, want in zip(("dgate", "dup"), fused_grads, ref_grads, strict=True):
        assert_close(got, want, what=name)


def test_bf16_activations_stay_within_bf16_rounding():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 30, 48, generator=g).to(torch.bfloat16)
    w = torch.randn(48, generator=g)
    y, (dx, dw) = _grads(lambda a, b: rms_norm(a, b, 1e-5), (x, w))
    ref, (rdx, rdw) = _grads(_reference_norm, (x.float(), w))
    assert y.dtype == dx.dtype == torch.bfloat16 and dw.dtype == torch.float32
    assert_close(y, ref, tol=1e-2, what="bf16 norm")
    assert_close(dx, rdx, tol=1e-2, what="bf16 dx")
    assert_close(dw, rdw, tol=1e-2, what="dweight from bf16")
    gate, up = (torch.randn(4, 30, 64, generator=g).to(torch.bfloat16) for _ in range(2))
    h, (dg, du) = _grads(silu_gate, (gate, up))
    ref, (rdg, rdu) = _grads(lambda a, b: F.silu(a) * b, (gate.float(), up.float()))
    assert h.dtype == dg.dtype == du.dtype == torch.bfloat16
    for got, want, what in ((h, ref, "gate"), (dg, rdg, "dgate"), (du, rdu, "dup")):
        assert_close(got, want, tol=1e-2, what=f"bf16 {what}")


def test_bf16_gate_keeps_nan_and_infinity_in_whole_and_partial_vectors():
    """37 values a row: two whole vectors of 16 and a partial one (AVX-512), each rounded
    by its own path."""
    gate, up = torch.ones(2, 37), torch.ones(2, 37)
    for at in (3, 35):  # a whole vector's lane, the partial vector's
        gate[0, at] = float("nan")
        gate[1, at] = float("inf")
    h = silu_gate(gate.to(torch.bfloat16), up.to(torch.bfloat16))
    assert torch.isnan(h[0, [3, 35]]).all() and torch.isinf(h[1, [3, 35]]).all()
    rest = [i for i in range(37) if i not in (3, 35)]
    assert torch.equal(h[:, rest], (F.silu(gate[:, rest]) * up[:, rest]).to(torch.bfloat16))


def test_thread_counts_give_the_same_bits():
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(3, 200, 40, generator=g), torch.randn(40, generator=g)
    runs = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        runs.append(_grads(lambda a, b: rms_norm(a, b, 1e-5), (x, w)))
    for y, grads in runs[1:]:
        assert torch.equal(y, runs[0][0])
        assert all(torch.equal(a, b) for a, b in zip(grads, runs[0][1], strict=True))


def test_under_autocast_the_norm_hands_bf16_to_its_consumers():
    norm, x = RMSNorm(32, feeds_matmul=True), torch.randn(2, 8, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = norm(x)
        kept = RMSNorm(32)(x)  # a norm whose output is kept (the memory encoder's states)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, _reference_norm(x, norm.weight).to(torch.bfloat16))
    assert kept.dtype == torch.float32
    assert norm(x).dtype == torch.float32  # outside autocast: the input's dtype


def test_small_tensors_take_pytorch_s_operators_in_auto_mode(monkeypatch):
    monkeypatch.setenv("GHOST_SCAN", "auto")
    called = []
    monkeypatch.setattr(norm_fused._RmsNormFn, "apply", lambda *a: called.append(a) or a[0])
    x, w = torch.randn(1, 256), torch.ones(256)  # one generated byte's row
    assert torch.equal(rms_norm(x, w, 1e-5), _reference_norm(x, w))
    rms_norm(torch.randn(4, norm_fused.SMALL // 4), torch.ones(norm_fused.SMALL // 4), 1e-5)
    assert len(called) == 1


def test_modules_on_the_kernels_equal_the_modules_on_pytorch(monkeypatch):
    torch.manual_seed(0)
    norm, ffn, x = RMSNorm(40), SwiGLU(40, 72), torch.randn(3, 11, 40)
    results = {}
    for mode in ("fused", "ref"):
        monkeypatch.setenv("GHOST_SCAN", mode)
        out, grads = _grads(lambda a: ffn(norm(a)), (x,))
        params = [p.grad.clone() for p in (*norm.parameters(), *ffn.parameters())]
        norm.zero_grad(set_to_none=True)
        ffn.zero_grad(set_to_none=True)
        results[mode] = (out, grads[0], params)
    fused, ref = results["fused"], results["ref"]
    assert_close(fused[0], ref[0], what="output")
    assert_close(fused[1], ref[1], tol=2e-5, what="dx")
    for got, want in zip(fused[2], ref[2], strict=True):
        assert_close(got, want, tol=2e-5, what="parameter gradient")


def test_without_the_kernel_the_operators_are_pytorch_s(monkeypatch):
    monkeypatch.setattr(norm_fused, "_wanted", lambda t: False)
    x, w = torch.randn(2, 5, 8), torch.randn(8)
    assert torch.equal(rms_norm(x, w, 1e-5), _reference_norm(x, w))
    assert torch.equal(silu_gate(x, x), F.silu(x) * x)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 instruction sets")
@pytest.mark.parametrize("march", ["x86-64-v3", "x86-64-v2"])
def test_a_build_without_avx512_gives_the_same_results(monkeypatch, tmp_path, march):
    """8 and 4 lanes (AVX2, SSE4.2), fp32 and bf16 activations, a dimension that leaves a
    partial vector: the same results as the native build."""
    if march == "x86-64-v3" and "avx2" not in open("/proc/cpuinfo").read().split():
        pytest.skip("this CPU cannot run an AVX2 build")
    g = torch.Generator().manual_seed(3)
    x, w = torch.randn(5, 9, 37, generator=g), torch.randn(37, generator=g)
    gate, up = torch.randn(5, 9, 37, generator=g), torch.randn(5, 9, 37, generator=g)

    def results():
        out = []
        for dtype in (torch.float32, torch.bfloat16):
            out.append(_grads(lambda a, b: rms_norm(a, b, 1e-5), (x.to(dtype), w)))
            out.append(_grads(silu_gate, (gate.to(dtype), up.to(dtype))))
        return out

    native = results()
    monkeypatch.setattr(scan_fused, "_kernel", None)
    monkeypatch.setattr(scan_fused, "_kernel_error", None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("GHOST_SCAN_MARCH", march)
    portable = results()
    for (got, got_grads), (want, want_grads) in zip(portable, native, strict=True):
        tol = 1e-6 if got.dtype == torch.float32 else 1e-2  # bf16: a rounding may flip
        assert_close(got, want, tol=tol, what=f"{march} output")
        for a, b in zip(got_grads, want_grads, strict=True):
            assert_close(a, b, tol=tol if a.dtype == torch.float32 else 1e-2, what=march)
