import pytest
import torch

from ghost.config import GhostConfig
from ghost.errors import GhostInputError
from ghost.model import GhostModel
from ghost.model.io import load_model


@pytest.fixture
def model():
    return GhostModel.from_preset("tiny").eval()


def test_presets_have_the_documented_sizes():
    assert abs(GhostModel.from_preset("v5-fast").num_parameters() / 6.58e6 - 1) < 0.02
    assert abs(GhostModel.from_preset("v5").num_parameters() / 7.17e6 - 1) < 0.02
    assert GhostModel.from_preset("12m").num_parameters() >= 12e6
    tiny = GhostModel.from_preset("tiny")
    assert tiny.num_parameters() < 300_000
    assert {layer.kind for layer in tiny.layers} == {"", "memory", "attention"}


def test_invalid_config_names_the_field():
    with pytest.raises(ValueError, match="attention_layers"):
        GhostConfig(n_layers=4, memory_layers=(1,), attention_layers=(7,))
    with pytest.raises(ValueError, match="n_heads"):
        GhostConfig(dim=30, n_heads=4)
    with pytest.raises(GhostInputError, match="unknown preset"):
        GhostConfig.from_preset("huge")


def test_labels_shift_inside_and_ignore_minus_100(model):
    x = torch.randint(0, 256, (2, 10))
    labels = x.clone()
    labels[:, :4] = -100
    out = model(x, labels=labels)
    logits = out.logits[:, :-1].reshape(-1, 256)
    expected = torch.nn.functional.cross_entropy(
        logits, labels[:, 1:].reshape(-1), ignore_index=-100
    )
    torch.testing.assert_close(out.loss, expected)


def test_step_mode_equals_full_forward_including_attention_layers(model):
    x = torch.randint(0, 256, (2, 30))  # longer than the tiny window and several strides
    with torch.no_grad():
        full = model(x).logits
        cache = model.empty_cache(2)
        steps = torch.stack([model.step(x[:, t], cache) for t in range(30)], 1)
        prefix = model(x[:, :17], use_cache=True).cache
        rest = torch.stack([model.step(x[:, t], prefix) for t in range(17, 30)], 1)
    torch.testing.assert_close(steps, full, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(rest, full[:, 17:], atol=1e-4, rtol=1e-4)


def test_an_empty_memory_bank_changes_nothing(model):
    x = torch.randint(0, 256, (2, 12))
    with torch.no_grad():
        for layer in model.layers:
            if layer.kind == "memory":
                layer.extra.gate.fill_(1.0)  # an open gate: only the empty bank keeps it a no-op
        before = model(x).logits
        empty = model.memory.encode(["x"])
        empty.vectors, empty.mask = empty.vectors[:, :0], empty.mask[:, :0]
        assert torch.equal(model(x, memory=empty).logits, before)
        model.memory.write(["The capital of Peru is Lima."])
        assert not torch.equal(
            model(x).logits, before
        )  # a written fact is read, no training needed


def test_memory_reads_only_top_k_entries_when_the_bank_is_large():
    """Each query (per head) reads exactly the k entries whose best slot scores highest: the
    layer equals a brute-force loop that picks them and softmaxes over their slots only."""
    from ghost.model.memory import MemoryBatch, MemoryCrossAttention

    torch.manual_seed(0)
    d, heads, k, m, s, length = 16, 2, 2, 6, 3, 5
    layer = MemoryCrossAttention(d, heads, top_k=k)
    layer.gate.data.fill_(1.0)
    bank = MemoryBatch(torch.randn(1, m, s, d), torch.ones(1, m, dtype=torch.bool))
    x = torch.randn(1, length, d)
    with torch.no_grad():
        out = layer(x, bank)
        e = d // heads
        q = layer.q_proj(x).view(length, heads, e)
        keys = layer.k_proj(bank.vectors[0]).view(m, s, heads, e)
        values = layer.v_proj(bank.vectors[0]).view(m, s, heads, e)
        expected = torch.zeros(length, heads, e)
        for t in range(length):
            for h in range(heads):
                scores = (keys[:, :, h] @ q[t, h]) * e**-0.5  # (M, S)
                chosen = scores.amax(1).topk(k).indices  # brute force: the k best entries
                probs = torch.softmax(scores[chosen].flatten(), 0)
                expected[t, h] = probs @ values[chosen, :, h].reshape(k * s, e)
        expected = torch.tanh(layer.gate) * layer.o_proj(expected.reshape(1, length, d))
    torch.testing.assert_close(out, expected)
    # ... and the entries outside every query's top k do not matter at all.
    with torch.no_grad():
        everywhere = {
            int(i) for t in range(length) for h in range(heads)
            for i in ((keys[:, :, h] @ q[t, h]).amax(1).topk(k).indices)
        }  # fmt: skip
        unread = [i for i in range(m) if i not in everywhere]
        assert unread, "the fixture should leave some entry unread"
        changed = bank.vectors.clone()
        changed[0, unread] = 0.0
        torch.testing.assert_close(layer(x, MemoryBatch(changed, bank.mask)), out)


def test_save_then_load_gives_identical_logits(model, tmp_path):
    model.memory.write(["Lima is the capital of Peru."])
    model.save_pretrained(tmp_path / "run")
    loaded = GhostModel.from_pretrained(tmp_path / "run")
    x = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded(x).logits)
    assert loaded.memory.texts == model.memory.texts


def test_corrupt_weights_are_refused_with_the_file_named(model, tmp_path):
    model.save_pretrained(tmp_path / "run")
    weights = tmp_path / "run" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(GhostInputError, match="model.safetensors"):
        load_model(tmp_path / "run")


def test_generate_is_greedy_and_deterministic(model):
    a = model.generate(b"Q: hello", max_bytes=8, stop_bytes=b"")
    assert a == model.generate(b"Q: hello", max_bytes=8, stop_bytes=b"") and len(a) == 8
    s1 = model.generate(b"abc", max_bytes=8, temperature=1.0, top_k=20, top_p=0.9, seed=3)
    s2 = model.generate(b"abc", max_bytes=8, temperature=1.0, top_k=20, top_p=0.9, seed=3)
    assert s1 == s2


def test_batched_generation_equals_one_prompt_at_a_time(model):
    from ghost.model.generate import generate

    prompts = [b"Q: a", b"Q: longer prompt", b"x"]
    together = generate(model, prompts, max_bytes=6)
    alone = [generate(model, [p], max_bytes=6)[0] for p in prompts]
    assert together == alone


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny").train()
    model.memory.write(["The capital of Peru is Lima."])
    x = torch.randint(0, 256, (2, 24))

    def loss_and_grads():
        model.zero_grad()
        loss = model(x, labels=x).loss
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return loss.detach(), grads

    loss_plain, grads_plain = loss_and_grads()
    model.gradient_checkpointing = True
    loss_ckpt, grads_ckpt = loss_and_grads()
    torch.testing.assert_close(loss_ckpt, loss_plain, rtol=0, atol=0)
    assert grads_ckpt.keys() == grads_plain.keys() and len(grads_plain) > 10
    for name, g in grads_plain.items():
        torch.testing.assert_close(grads_ckpt[name], g, rtol=1e-5, atol=1e-7, msg=name)
