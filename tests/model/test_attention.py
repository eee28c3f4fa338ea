import pytest
import torch

from ghost.model.attention import (
    SparseSelfAttention,
    sparse_attention,
    sparse_attention_dense,
    sparse_mask,
)


def test_mask_is_causal_local_and_strided():
    mask = sparse_mask(12, window=3, stride=4)
    assert not mask.triu(1).any()  # causal
    assert mask[10, 8] and mask[10, 10]  # the local window of 3
    assert mask[10, 3] and mask[10, 7]  # summary positions 3 and 7 (p % 4 == 3)
    assert not mask[10, 5] and not mask[10, 2]  # neither local nor summary
    assert mask.sum(1)[11] == 3 + 2  # window 9..11 plus summaries 3, 7


@pytest.mark.parametrize(
    "length,window,stride",
    [(50, 8, 4), (97, 16, 32), (64, 8, 128), (33, 5, 3), (12, 8, 4), (16, 8, 3), (6, 8, 4)],
)
def test_blocked_path_equals_the_dense_reference(length, window, stride):
    """Also lengths up to two windows, where training takes plain masked matmuls."""
    q, k, v = torch.randn(3, 2, 3, length, 8, dtype=torch.float64).unbind(0)
    for t in (q, k, v):
        t.requires_grad_(True)
    fast = sparse_attention(q, k, v, window, stride)
    ref = sparse_attention_dense(q, k, v, window, stride)
    torch.testing.assert_close(fast, ref)
    g = torch.randn_like(fast)
    grads_fast = torch.autograd.grad(fast, (q, k, v), g)
    grads_ref = torch.autograd.grad(ref, (q, k, v), g)
    for a, b in zip(grads_fast, grads_ref, strict=True):
        torch.testing.assert_close(a, b)


def test_step_mode_equals_the_full_forward_and_keeps_only_visible_keys():
    layer = SparseSelfAttention(16, n_heads=2, window=4, stride=5).eval()
    x = torch.randn(2, 23, 16)
    with torch.no_grad():
        full = layer(x)
        _, cache = layer(x[:, :1], want_cache=True)
        steps = [full[:, 0]]
        for t in range(1, 23):
            steps.append(layer.step(x[:, t], cache))
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.local_k.shape[2] == 3  # window - 1 keys carried
    assert cache.summary_pos == [4, 9, 14, 19]


@pytest.mark.parametrize("cuts", [(1,), (3, 11), (9, 10, 20), (4, 9, 14, 19)])
def test_continuing_from_a_cache_equals_the_full_forward(cuts):
    """Chunks of any size continue the cache (across window and stride boundaries), which
    they leave unchanged, and hand on the same cache as one call."""
    layer = SparseSelfAttention(16, n_heads=2, window=4, stride=5).eval()
    x = torch.randn(2, 23, 16)
    with torch.no_grad():
        full, whole = layer(x, want_cache=True)
        bounds = [0, *cuts, 23]
        out, cache = layer(x[:, : bounds[1]], want_cache=True)
        outs = [out]
        for a, b in zip(bounds[1:-1], bounds[2:], strict=True):
            kept = cache.local_k.clone()
            out, after = layer(x[:, a:b], want_cache=True, cache=cache)
            assert torch.equal(cache.local_k, kept) and cache.position == a  # unchanged
            outs.append(out)
            assert torch.equal(layer(x[:, a:b], cache=cache), out)
            cache = after
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.position == whole.position == 23
    assert cache.summary_pos == whole.summary_pos == [4, 9, 14, 19]
    torch.testing.assert_close(cache.local_k, whole.local_k)
    torch.testing.assert_close(torch.cat(cache.summary_v, 2), torch.cat(whole.summary_v, 2))


@pytest.mark.parametrize("length", [1, 7, 16])
def test_within_one_window_the_mask_is_plain_causal_and_so_is_the_result(length):
    q, k, v = torch.randn(3, 2, 3, length, 8, dtype=torch.float64).unbind(0)
    mask = sparse_mask(length, window=16, stride=4)
    assert torch.equal(mask, torch.ones(length, length, dtype=torch.bool).tril())
    masked = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(sparse_attention_dense(q, k, v, 16, 4), masked)
