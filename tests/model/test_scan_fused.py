"""The fused C selective scan against its oracle, `selective_scan_ref` (which computes in fp32).

Outputs and every input gradient must agree to 1e-5 of the tensor's scale, across
odd lengths (including chunk boundaries at 64), channel counts that are not a multiple of
16, N = 4, 8, 16 and 20, each optional input on and off, 1 and 2 threads, bf16 inputs, a
build for AVX2 and one for SSE4.2 (other vector widths), and the fallback when no compiler
exists.
"""

import platform
import warnings

import pytest
import torch
from tiny_runs import assert_close

from ghost.model import scan_fused
from ghost.model.scan import selective_scan_ref
from ghost.model.scan_fused import kernel_status, selective_scan, selective_scan_fused

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/model/conftest.py


def make_inputs(batch, length, channels, n, dtype=torch.float32):
    """Inputs in the ranges a Mamba layer sees: A < 0, delta around softplus's knee."""
    g = torch.Generator().manual_seed(batch * 1000 + length * 10 + channels + n)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(dtype)

    return {
        "u": randn(batch, length, channels),
        "delta": randn(batch, length, channels, scale=0.5),
        "A": -torch.exp(randn(channels, n, scale=0.5).float()).to(dtype),
        "B": randn(batch, length, n),
        "C": randn(batch, length, n),
        "D": randn(channels),
        "z": randn(batch, length, channels),
        "delta_bias": randn(channels, scale=0.3),
    }


def run(scan, inputs, grad_out=None, **options):
    """y (and the last state) and the gradients of <y, grad_out> for every input given."""
    leaves = {k: v.detach().clone().requires_grad_() for k, v in inputs.items() if v is not None}
    out = scan(**leaves, **options)
    y = out[0] if isinstance(out, tuple) else out
    if grad_out is None:
        grad_out = torch.randn(y.shape, generator=torch.Generator().manual_seed(7))
    loss = (y.double() * grad_out.double()).sum()
    if isinstance(out, tuple):  # a gradient through the last state too
        loss = loss + out[1].double().sum()
    loss.backward()
    return out, {k: v.grad for k, v in leaves.items()}


def check_against_reference(inputs, **options):
    fused, fused_grads = run(selective_scan_fused, inputs, **options)
    ref, ref_grads = run(selective_scan_ref, inputs, **options)
    for got, want in zip(*(o if isinstance(o, tuple) else (o,) for o in (fused, ref)), strict=True):
        assert got.dtype == inputs["u"].dtype
        assert_close(got, want, what="output")
    assert fused_grads.keys() == ref_grads.keys()
    for name in fused_grads:
        assert_close(fused_grads[name], ref_grads[name], what=f"d{name}")


@pytest.mark.parametrize(
    "batch, length, channels, n",
    [
        (1, 1, 5, 16),
        (2, 7, 20, 16),
        (1, 33, 17, 8),
        (2, 64, 32, 16),
        (1, 100, 19, 4),
        (2, 130, 16, 16),
        (1, 65, 3, 20),
    ],
)
def test_outputs_and_all_gradients_match_the_reference(batch, length, channels, n):
    check_against_reference(make_inputs(batch, length, channels, n))


@pytest.mark.parametrize("drop", [("z",), ("D",), ("delta_bias",), ("z", "D", "delta_bias")])
@pytest.mark.parametrize("softplus", [True, False])
def test_optional_inputs_and_softplus(drop, softplus):
    inputs = make_inputs(2, 33, 24, 16)
    if not softplus:  # delta is then used as the step size directly: keep it positive
        inputs["delta"] = inputs["delta"].abs() + 0.05
    for name in drop:
        inputs[name] = None
    check_against_reference(inputs, delta_softplus=softplus)


@pytest.mark.parametrize("length", [1, 40, 100])
def test_initial_and_last_state_with_their_gradients(length):
    inputs = make_inputs(2, length, 21, 16)
    inputs["initial_state"] = torch.randn(2, 21, 16)
    check_against_reference(inputs, return_last_state=True)


def test_a_gate_given_as_a_view_of_a_wider_tensor_is_read_in_place():
    inputs = make_inputs(2, 70, 24, 16)
    wide = torch.randn(2, 70, 48)
    wide[..., 24:] = inputs["z"]
    inputs["z"] = wide[..., 24:]  # the mixer's z: the second half of in_proj's output
    assert scan_fused._gate(inputs["z"], torch.float32).data_ptr() == inputs["z"].data_ptr()
    check_against_reference(inputs)


def test_the_backward_recomputing_y0_gives_the_same_bits(monkeypatch):
    inputs = make_inputs(2, 70, 24, 16)
    kept = run(selective_scan_fused, inputs)
    monkeypatch.setattr(scan_fused, "_KEEP_Y0", False)
    recomputed = run(selective_scan_fused, inputs)
    assert torch.equal(kept[0], recomputed[0])
    for name in NAMES:
        assert torch.equal(kept[1][name], recomputed[1][name]), f"d{name}"


def test_empty_sequence_returns_the_initial_state():
    inputs = make_inputs(2, 0, 8, 16)
    h0 = torch.randn(2, 8, 16)
    y, last = selective_scan_fused(**inputs, return_last_state=True, initial_state=h0)
    assert y.shape == (2, 0, 8)
    torch.testing.assert_close(last, h0)


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_counts_agree_and_repeat_bit_for_bit(threads):
    inputs = make_inputs(3, 70, 40, 16)
    ref, ref_grads = run(selective_scan_ref, inputs)  # on one thread: its many small ops
    torch.set_num_threads(threads)  # would each wait for a busy machine's second core
    first = run(selective_scan_fused, inputs)
    second = run(selective_scan_fused, inputs)
    assert_close(first[0], ref, what="output")
    assert torch.equal(first[0], second[0])
    for name in NAMES:
        assert_close(first[1][name], ref_grads[name], what=f"d{name}")
        assert torch.equal(first[1][name], second[1][name]), f"d{name} not deterministic"


def test_bf16_inputs_compute_in_fp32_and_return_bf16():
    inputs = make_inputs(2, 50, 32, 16, dtype=torch.bfloat16)
    y, grads = run(selective_scan_fused, inputs)
    ref, _ = run(selective_scan_ref, {k: v.float() for k, v in inputs.items()})
    assert y.dtype == torch.bfloat16
    assert all(g.dtype == torch.bfloat16 for g in grads.values())
    assert_close(y, ref, tol=2e-2, what="bf16 output")  # one bf16 rounding of the output


def test_bf16_activations_are_read_and_written_in_place_with_fp32_results_rounded_once():
    """u, delta and z in bf16 (the rest fp32, as under autocast): the kernel widens them in
    registers, so its output and gradients are exactly the fp32 kernel's on the same values,
    rounded to bf16 once (nearest even, as PyTorch rounds)."""
    inputs = make_inputs(2, 70, 40, 16)
    for name in ("u", "delta", "z"):
        inputs[name] = inputs[name].to(torch.bfloat16)
    grad_out = torch.randn(2, 70, 40).to(torch.bfloat16).float()  # the same dy in both runs
    y, grads = run(selective_scan_fused, inputs, grad_out)
    widened = {k: v.float() for k, v in inputs.items()}
    y32, grads32 = run(selective_scan_fused, widened, grad_out)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, y32.to(torch.bfloat16))
    for name, grad in grads.items():
        assert grad.dtype == inputs[name].dtype, name
        assert torch.equal(grad, grads32[name].to(grad.dtype)), f"d{name}"


def test_bf16_rounding_keeps_nan_and_infinity():
    inputs = make_inputs(1, 6, 16, 16, dtype=torch.bfloat16)
    inputs["delta"][0, 2, 3] = float("nan")
    inputs["z"][0, 1, 5] = float("inf")  # silu(inf) = inf: the output is +-inf or NaN
    y = selective_scan_fused(**inputs)
    assert torch.isnan(y[0, 2:, 3]).all()
    assert not torch.isfinite(y[0, 1, 5])
    assert torch.isfinite(y[0, :, 4]).all()


def test_autocast_does_not_lower_the_scan_precision():
    inputs = make_inputs(2, 20, 16, 16)
    plain = selective_scan_fused(**inputs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = selective_scan_fused(**inputs)
    assert under_autocast.dtype == torch.float32
    assert torch.equal(plain, under_autocast)


def test_nan_input_gives_nan_output_as_in_pytorch():
    inputs = make_inputs(1, 6, 16, 16)
    inputs["delta"][0, 2, 3] = float("nan")
    y = selective_scan_fused(**inputs)
    assert torch.isnan(y[0, 2:, 3]).all()
    assert not torch.isnan(y[0, :, 4]).any()


@pytest.fixture
def fresh_kernel(monkeypatch, tmp_path):
    """Forget the loaded kernel for one test and build into an empty cache."""
    monkeypatch.setattr(scan_fused, "_kernel", None)
    monkeypatch.setattr(scan_fused, "_kernel_error", None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def _cpu_has(flag):
    try:
        return flag in open("/proc/cpuinfo").read().split()
    except OSError:
        return False


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 instruction sets")
@pytest.mark.parametrize("march, isa", [("x86-64-v3", "avx2"), ("x86-64-v2", "sse4.2")])
def test_a_build_without_avx512_gives_the_same_results(fresh_kernel, monkeypatch, march, isa):
    if isa == "avx2" and not _cpu_has("avx2"):
        pytest.skip("this CPU cannot run an AVX2 build")
    inputs = make_inputs(2, 70, 24, 16)
    native = run(selective_scan_fused, inputs)
    monkeypatch.setattr(scan_fused, "_kernel", None)
    monkeypatch.setenv("GHOST_SCAN_MARCH", march)
    portable = run(selective_scan_fused, inputs)
    assert f"({isa}," in kernel_status()
    assert_close(portable[0], native[0], tol=1e-6, what="output")
    for name in NAMES:  # the two builds differ only in FMA contraction and summation order
        assert_close(portable[1][name], native[1][name], tol=1e-6, what=f"d{name}")


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 instruction sets")
@pytest.mark.parametrize("march, isa", [("x86-64-v3", "avx2"), ("x86-64-v2", "sse4.2")])
def test_bf16_activations_on_a_build_without_avx512(fresh_kernel, monkeypatch, march, isa):
    """io_load / io_store at 8 and 4 lanes: bf16 results are that build's fp32 results on the
    same values, rounded once."""
    if isa == "avx2" and not _cpu_has("avx2"):
        pytest.skip("this CPU cannot run an AVX2 build")
    monkeypatch.setenv("GHOST_SCAN_MARCH", march)
    inputs = make_inputs(2, 70, 21, 16)  # 21 channels: a partial vector at every width
    for name in ("u", "delta", "z"):
        inputs[name] = inputs[name].to(torch.bfloat16)
    grad_out = torch.randn(2, 70, 21).to(torch.bfloat16).float()
    y, grads = run(selective_scan_fused, inputs, grad_out)
    y32, grads32 = run(selective_scan_fused, {k: v.float() for k, v in inputs.items()}, grad_out)
    assert f"({isa}," in kernel_status()
    assert torch.equal(y, y32.to(torch.bfloat16))
    for name, grad in grads.items():
        assert torch.equal(grad, grads32[name].to(grad.dtype)), f"d{name}"


def test_the_build_is_cached_and_leaves_no_temporary_files(fresh_kernel):
    selective_scan_fused(**make_inputs(1, 3, 4, 16))
    built = list((fresh_kernel / "ghost" / "kernels").iterdir())
    assert len(built) == 1 and built[0].suffix == ".so"
    assert scan_fused._build(scan_fused._compiler(), scan_fused._compiler_flags()) == built[0]


def test_without_a_compiler_it_warns_once_and_uses_the_reference(fresh_kernel, monkeypatch):
    monkeypatch.setenv("GHOST_CC", str(fresh_kernel / "no-such-compiler"))
    inputs = make_inputs(2, 9, 8, 16)
    with pytest.warns(RuntimeWarning, match="reference") as caught:
        y = selective_scan(**inputs)
    assert len(caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call must stay silent
        again = selective_scan(**inputs)
    torch.testing.assert_close(y, selective_scan_ref(**inputs))
    torch.testing.assert_close(again, y)
    assert kernel_status().startswith("PyTorch reference (fused kernel unavailable")
    with pytest.raises(RuntimeError, match="unavailable"):
        selective_scan_fused(**inputs)


def test_ghost_scan_environment_variable_forces_a_path(monkeypatch):
    inputs = make_inputs(1, 5, 8, 16)
    monkeypatch.setenv("GHOST_SCAN", "ref")
    assert kernel_status() == "PyTorch reference (GHOST_SCAN=ref)"
    assert torch.equal(selective_scan(**inputs), selective_scan_ref(**inputs))
    monkeypatch.setenv("GHOST_SCAN", "fused")
    assert torch.equal(selective_scan(**inputs), selective_scan_fused(**inputs))
    assert kernel_status().startswith("fused C kernel")
    monkeypatch.setenv("GHOST_SCAN", "fast")
    with pytest.raises(ValueError, match="GHOST_SCAN"):
        selective_scan(**inputs)


def test_mismatched_shapes_are_refused_before_reaching_the_kernel():
    inputs = make_inputs(2, 9, 8, 16)
    inputs["B"] = inputs["B"][:, :5]
    with pytest.raises(ValueError, match="B has shape"):
        selective_scan_fused(**inputs)
