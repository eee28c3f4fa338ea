"""The fused causal convolution + SiLU against its oracle, `causal_conv_silu_ref`, and the
mixer built on it against the mixer on the reference kernels (GHOST_SCAN=ref).

Output and the gradients of x, the weight, the bias and the history must agree to 1e-5 of
the tensor's scale across lengths 1, 2 (shorter than the history), 64 and 65, kernel widths
1, 3 and 4, channel counts that are not a multiple of the vector width, batch 1, x given as
a view of in_proj's wider output, and with and without a history; thread counts must give
the same bits.
"""

import warnings

import pytest
import torch
from tiny_runs import assert_close

from ghost.model import scan_fused
from ghost.model.mamba import MambaMixer, MambaState
from ghost.model.scan import causal_conv_silu_ref
from ghost.model.scan_fused import causal_conv_silu, causal_conv_silu_fused

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/model/conftest.py


def make_inputs(batch, length, channels, k, history, dtype=torch.float32):
    g = torch.Generator().manual_seed(batch * 1000 + length * 10 + channels + k)
    return {
        "xz": torch.randn(batch, length, 2 * channels, generator=g).to(dtype),  # x: first half
        "weight": torch.randn(channels, k, generator=g).to(dtype),
        "bias": torch.randn(channels, generator=g).to(dtype),
        "history": torch.randn(batch, k - 1, channels, generator=g).to(dtype) if history else None,
    }


def run(conv, inputs):
    """u and the gradients of <u, r> (r fixed random) for every input given."""
    leaves = {k: v.detach().clone().requires_grad_() for k, v in inputs.items() if v is not None}
    channels = leaves["weight"].shape[0]
    x = leaves["xz"][..., :channels]  # a strided view, as the mixer passes it
    u = conv(x, leaves["weight"], leaves["bias"], leaves.get("history"))
    r = torch.randn(u.shape, generator=torch.Generator().manual_seed(7))
    r = r.to(torch.bfloat16).float()  # exact in bf16: a bf16 u gets the same gradient
    (u.double() * r.double()).sum().backward()
    return u, {k: v.grad for k, v in leaves.items()}


@pytest.mark.parametrize(
    "batch, length, channels, k, history",
    [
        (1, 1, 5, 4, False),
        (1, 1, 5, 4, True),
        (1, 2, 9, 4, True),
        (2, 7, 20, 4, True),
        (3, 65, 33, 3, False),
        (2, 64, 32, 4, True),
        (2, 5, 9, 1, False),
    ],
)
def test_outputs_and_all_gradients_match_the_reference(batch, length, channels, k, history):
    inputs = make_inputs(batch, length, channels, k, history)
    fused, fused_grads = run(causal_conv_silu_fused, inputs)
    ref, ref_grads = run(causal_conv_silu_ref, inputs)
    assert_close(fused, ref, what="output")
    assert fused_grads.keys() == ref_grads.keys()
    for name in fused_grads:
        assert_close(fused_grads[name], ref_grads[name], what=f"d{name}")


def test_thread_counts_give_the_same_bits():
    inputs = make_inputs(5, 70, 40, 4, True)
    results = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        results.append(run(causal_conv_silu_fused, inputs))
    for u, grads in results[1:]:
        assert torch.equal(u, results[0][0])
        for name, grad in grads.items():
            assert torch.equal(grad, results[0][1][name]), f"d{name} differs between threads"


def test_bf16_inputs_compute_in_fp32_and_return_bf16():
    inputs = make_inputs(2, 30, 16, 4, True, dtype=torch.bfloat16)
    u, grads = run(causal_conv_silu_fused, inputs)
    ref, _ = run(causal_conv_silu_ref, {k: v.float() for k, v in inputs.items()})
    assert u.dtype == torch.bfloat16
    assert all(g.dtype == torch.bfloat16 for g in grads.values())
    assert_close(u, ref, tol=2e-2, what="bf16 output")


def test_bf16_x_is_read_in_place_with_fp32_results_rounded_once():
    """x a bf16 view of in_proj's output: read as it is, computed in fp32, u and dx rounded to
    bf16 once: exactly the fp32 kernel's results on the same values, rounded."""
    inputs = make_inputs(2, 70, 40, 4, False)
    inputs["xz"] = inputs["xz"].to(torch.bfloat16)
    u, grads = run(causal_conv_silu_fused, inputs)
    u32, grads32 = run(causal_conv_silu_fused, {**inputs, "xz": inputs["xz"].float()})
    assert u.dtype == torch.bfloat16
    assert torch.equal(u, u32.to(torch.bfloat16))
    for name, grad in grads.items():
        assert torch.equal(grad, grads32[name].to(grad.dtype)), f"d{name}"


def test_under_autocast_the_mixer_makes_no_cast_pass_over_its_activations():
    """bf16 autocast: the kernels read in_proj's bf16 output and write bf16, so neither the
    forward nor the backward copies a (B, L, ED) activation to another dtype."""
    torch.manual_seed(0)
    mixer = MambaMixer(32, d_state=16, dt_rank=4)
    x = torch.randn(2, 40, 32, requires_grad=True)
    with torch.profiler.profile(record_shapes=True) as prof:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = mixer(x)
        y.float().sum().backward()
    activation = [2, 40, mixer.d_inner]
    copies = [
        e.name
        for e in prof.events()
        if e.name in ("aten::copy_", "aten::_to_copy") and e.input_shapes[:1] == [activation]
    ]
    assert copies == []


def test_mismatched_shapes_are_refused():
    inputs = make_inputs(2, 9, 8, 4, True)
    with pytest.raises(ValueError, match="do not fit"):
        causal_conv_silu_fused(inputs["xz"][..., :8], inputs["weight"][:5], inputs["bias"])
    with pytest.raises(ValueError, match="do not fit"):
        causal_conv_silu_fused(
            inputs["xz"][..., :8], inputs["weight"], inputs["bias"], inputs["history"][:, :2]
        )


def test_without_a_compiler_the_dispatcher_uses_the_reference(monkeypatch, tmp_path):
    monkeypatch.setattr(scan_fused, "_kernel", None)
    monkeypatch.setattr(scan_fused, "_kernel_error", None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("GHOST_CC", str(tmp_path / "no-such-compiler"))
    inputs = make_inputs(2, 9, 8, 4, True)
    args = (inputs["xz"][..., :8], inputs["weight"], inputs["bias"], inputs["history"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the scan's one warning
        u = causal_conv_silu(*args)
    assert torch.equal(u, causal_conv_silu_ref(*args))


def _mixer_run(mixer, x, state, want_state):
    """Output, last state and every gradient (parameters, x, the state's tensors)."""
    mixer.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    if state is not None:
        state = MambaState(state.conv.clone().requires_grad_(), state.ssm.clone().requires_grad_())
    out = mixer(x, state=state, want_state=want_state or state is not None)
    y, last = out if isinstance(out, tuple) else (out, None)
    loss = (y * torch.linspace(-1, 1, y.numel()).view(y.shape)).sum()
    if last is not None:
        loss = loss + last.conv.sum() + last.ssm.sum()
    loss.backward()
    grads = {name: p.grad for name, p in mixer.named_parameters()}
    grads["x"] = x.grad
    if state is not None:
        grads["state.conv"], grads["state.ssm"] = state.conv.grad, state.ssm.grad
    return y, last, grads


@pytest.mark.parametrize(
    "length, with_state, want_state",
    [(1, False, False), (13, False, True), (70, True, True), (2, True, True)],
)
def test_mixer_on_the_fused_kernels_equals_the_reference_mixer(
    monkeypatch, length, with_state, want_state
):
    torch.manual_seed(0)
    mixer = MambaMixer(24, d_state=8, dt_rank=3)
    x = torch.randn(2, length, 24)
    state = None
    if with_state:
        state = MambaState(torch.randn(2, mixer.d_inner, mixer.d_conv), torch.randn(2, 48, 8))
    monkeypatch.setenv("GHOST_SCAN", "fused")
    fused = _mixer_run(mixer, x, state, want_state)
    monkeypatch.setenv("GHOST_SCAN", "ref")
    ref = _mixer_run(mixer, x, state, want_state)
    assert_close(fused[0], ref[0], what="output")
    if ref[1] is not None:
        assert_close(fused[1].conv, ref[1].conv, what="last conv window")
        assert_close(fused[1].ssm, ref[1].ssm, what="last ssm state")
    assert fused[2].keys() == ref[2].keys()
    for name in ref[2]:
        assert_close(fused[2][name], ref[2][name], tol=2e-5, what=f"d{name}")
